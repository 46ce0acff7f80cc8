"""6-DoF poses from tracked PLUS data: chain per-frame and static transforms like PLUS does.

PLUS names transforms ``<From>To<To>``; a frame's ``ImageToReference`` is found by walking the
graph of known transforms (inverting edges as needed), e.g. for a tracked probe
``ImageToReference = inv(ReferenceToTracker) · ProbeToTracker · ImageToProbe``. Example::

    seq = read_sequence("NwirePhantomFreehand.igs.mha")
    config = read_plus_config("PlusDeviceSet.xml")
    pixel_to_world, valid = tracked_pixel_to_world(seq, config.transforms)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.io.plus import SequenceFile

MM_TO_M = np.diag([1e-3, 1e-3, 1e-3, 1.0])


def split_transform_name(name: str) -> tuple[str, str] | None:
    """``"ProbeToTracker"`` → ``("Probe", "Tracker")``; None when the name has no ``To``."""
    for i in range(1, len(name) - 2):
        if name[i : i + 2] == "To" and name[i + 2].isupper() and name[i - 1] != "_":
            return name[:i], name[i + 2 :]
    return None


def _path(edges: Mapping[tuple[str, str], object], src: str, dst: str) -> list[tuple[str, str]]:
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, []).append(a)
    prev: dict[str, str] = {src: src}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        if node == dst:
            break
        for nxt in graph.get(node, []):
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    if dst not in prev:
        known = sorted({f"{a}To{b}" for a, b in edges})
        raise ConfigError(
            f"cannot chain a {src}To{dst} transform from the known transforms {known}",
            hint="give the missing calibration (e.g. ImageToProbe) in the PLUS config XML",
        )
    hops = [dst]
    while hops[-1] != src:
        hops.append(prev[hops[-1]])
    hops.reverse()
    return list(pairwise(hops))


def tracked_transforms(
    seq: SequenceFile,
    static: Mapping[tuple[str, str], npt.ArrayLike],
    src: str = "Image",
    dst: str = "Reference",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per-frame ``<src>To<dst>`` (mm) and validity, chaining frame and static transforms.

    A frame is valid only when every per-frame transform used on the path is valid.
    """
    n = seq.n_frames
    per_frame: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for name in seq.transform_names():
        pair = split_transform_name(name)
        if pair is not None:
            per_frame[pair] = seq.transforms(name)
    edges: dict[tuple[str, str], object] = {**per_frame}
    for pair, mat in static.items():
        edges.setdefault(pair, np.asarray(mat, dtype=np.float64))
    result = np.tile(np.eye(4), (n, 1, 1))
    valid = np.ones(n, dtype=bool)
    for a, b in _path(edges, src, dst):
        if (a, b) in per_frame or (b, a) in per_frame:
            forward = (a, b) in per_frame
            mats, ok = per_frame[(a, b) if forward else (b, a)]
            step = mats if forward else _safe_inv(mats, ok)
            valid &= ok
        else:
            if (a, b) in edges:
                fixed = np.asarray(edges[(a, b)], dtype=np.float64)
            else:
                fixed = np.linalg.inv(np.asarray(edges[(b, a)], dtype=np.float64))
            step = np.broadcast_to(fixed, (n, 4, 4))
        result = step @ result
    valid &= np.all(np.isfinite(result), axis=(1, 2))
    return result, valid


def _safe_inv(mats: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.tile(np.eye(4), (len(mats), 1, 1))
    good = ok & (np.abs(np.linalg.det(mats)) > 1e-12)
    out[good] = np.linalg.inv(mats[good])
    ok &= good
    return out


def tracked_pixel_to_world(
    seq: SequenceFile,
    static: Mapping[tuple[str, str], npt.ArrayLike],
    image_frame: str = "Image",
    reference_frame: str = "Reference",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per-frame pixel ``(col, row)`` → reference (metres) matrices and validity."""
    mats, valid = tracked_transforms(seq, static, image_frame, reference_frame)
    return MM_TO_M @ mats, valid
