"""Reading and writing the files ``sonoedge process`` works on.

NPZ convention: an array ``iq`` (complex; ``(N, H, W)`` ensemble or ``(H, W)`` frame) or ``image``
(B-mode, float or uint8; ``(H, W)`` or a ``(K, H, W)`` stack), and optional metadata ``prf_hz``,
``x_m`` and ``z_m`` (lateral/axial pixel-centre coordinates in metres) and
``center_frequency_hz``. NPY files hold one array (complex means ``iq``); PNG/JPEG/TIFF/BMP files
one grey image. HDF5 recordings are read with :class:`sonoedge.io.recording.RecordingReader`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import DataError, RecordingError
from sonoedge.types import BmodeFrame, IQEnsemble, IQFrame, ProbeInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
RECORDING_SUFFIXES = (".h5", ".hdf5")
META_KEYS = ("prf_hz", "center_frequency_hz")


@dataclass
class Item:
    """One unit of work: an IQ ensemble/frame or an image, with its grid."""

    data: npt.NDArray[Any]
    spacing_m: tuple[float, float] | None = None
    origin_m: tuple[float, float] = (0.0, 0.0)
    grid: Literal["cartesian", "polar"] = "cartesian"
    prf_hz: float | None = None


@dataclass
class Source:
    """What was read: the kind of data (``"iq"`` or ``"image"``), its items and metadata."""

    kind: Literal["iq", "image"]
    count: int
    items: Callable[[], Iterator[Item]]
    center_frequency_hz: float | None = None
    probe: ProbeInfo | None = None


def _axis(values: npt.ArrayLike, n: int, name: str) -> tuple[float, float]:
    coords = np.asarray(values, np.float64).ravel()
    if coords.size != n or n < 2:
        raise DataError(f"{name} has {coords.size} values: expected one per pixel ({n}), >= 2")
    step = float(np.median(np.diff(coords)))
    if not step > 0 or not np.all(np.isfinite(coords)):
        raise DataError(f"{name} must increase by a constant positive step (metres)")
    return step, float(coords[0])


def _scalar(npz: Any, key: str) -> float | None:
    if key not in npz:
        return None
    value = np.asarray(npz[key]).ravel()
    if value.size != 1 or not np.isfinite(value[0]) or value[0] <= 0:
        raise DataError(f"{key} must be one positive number, got {npz[key]!r}")
    return float(value[0])


def _from_arrays(
    iq: npt.NDArray[Any] | None, image: npt.NDArray[Any] | None, npz: Any, path: Path
) -> Source:
    arr = iq if iq is not None else image
    assert arr is not None
    shape = arr.shape
    spacing = origin = None
    if "z_m" in npz or "x_m" in npz:
        if "z_m" not in npz or "x_m" not in npz or len(shape) < 2:
            raise DataError(f"{path}: give both z_m and x_m (one value per pixel row/column)")
        dz, z0 = _axis(npz["z_m"], shape[-2], "z_m")
        dx, x0 = _axis(npz["x_m"], shape[-1], "x_m")
        spacing, origin = (dz, dx), (z0, x0)
    prf = _scalar(npz, "prf_hz")
    f0 = _scalar(npz, "center_frequency_hz")
    if iq is not None:
        if not np.iscomplexobj(iq) or iq.ndim not in (2, 3):
            raise DataError(
                f"{path}: iq has dtype {iq.dtype} and shape {iq.shape}: expected complex "
                "(N, H, W) or (H, W)"
            )
        items = [Item(iq, spacing, origin or (0.0, 0.0), prf_hz=prf)]
        kind: Literal["iq", "image"] = "iq"
    else:
        assert image is not None
        if image.ndim not in (2, 3) or np.iscomplexobj(image):
            raise DataError(
                f"{path}: image has dtype {image.dtype} and shape {image.shape}: expected a "
                "real (H, W) image or (K, H, W) stack"
            )
        stack = image if image.ndim == 3 else image[None]
        items = [Item(frame, spacing, origin or (0.0, 0.0), prf_hz=prf) for frame in stack]
        kind = "image"
    return Source(kind, len(items), lambda: iter(items), f0)


def read_npz(path: Path) -> Source:
    """Read an NPZ file that follows the convention above."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable NPZ file: {err}") from err
    if ("iq" in data) == ("image" in data):
        raise DataError(
            f"{path} holds arrays {sorted(data)}: expected exactly one of 'iq' or 'image'",
            hint="see 'NPZ convention' in the README",
        )
    return _from_arrays(data.get("iq"), data.get("image"), data, path)


def read_npy(path: Path) -> Source:
    """Read one array: complex means ``iq``, real means ``image``."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable NPY file: {err}") from err
    complex_ = np.iscomplexobj(arr)
    return _from_arrays(arr if complex_ else None, None if complex_ else arr, {}, path)


def read_picture(path: Path) -> Source:
    """Read a grey picture (PNG, JPEG, TIFF, BMP) as a float image scaled to ``[0, 1]``."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise DataError(f"{path} is not a readable image file")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    item = Item((img / scale).astype(np.float32))
    return Source("image", 1, lambda: iter([item]))


def read_recording(path: Path, kind: Literal["iq", "image"], ensembles: bool) -> Source:
    """Items of a recording: IQ ensembles (``ensembles``), IQ frames, or B-mode frames."""
    from sonoedge.io.recording import RecordingReader

    wanted: tuple[type, ...]
    if kind == "image":
        wanted = (BmodeFrame,)
    else:
        wanted = (IQEnsemble,) if ensembles else (IQEnsemble, IQFrame)
    with RecordingReader(path) as reader:
        probe = reader.probe_info
        count = sum(1 for s in reader.samples() if isinstance(s, wanted))
    if count == 0:
        names = " or ".join(t.__name__ for t in wanted)
        raise RecordingError(f"{path} holds no {names} samples for this op")

    def items() -> Iterator[Item]:
        with RecordingReader(path) as rec:
            for s in rec.samples():
                if not isinstance(s, wanted):
                    continue
                if isinstance(s, BmodeFrame):
                    yield Item(s.image, s.spacing_m, s.origin_m, s.grid)
                elif isinstance(s, IQEnsemble):
                    yield Item(s.iq, s.spacing_m, s.origin_m, s.grid, s.prf_hz)
                elif isinstance(s, IQFrame):
                    yield Item(s.iq, s.spacing_m, s.origin_m, s.grid)

    f0 = probe.center_frequency_hz if probe is not None else None
    return Source(kind, count, items, f0, probe)


def read_input(path: str | Path, op: str) -> Source:
    """Read ``path`` by its suffix (.npz, .npy, picture, .h5 recording) for ``op``."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"input {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return read_npz(p)
    if suffix == ".npy":
        return read_npy(p)
    if suffix in IMAGE_SUFFIXES:
        return read_picture(p)
    if suffix in RECORDING_SUFFIXES:
        kind: Literal["iq", "image"] = "image" if op in ("despeckle", "enhance") else "iq"
        return read_recording(p, kind, ensembles=op in ("doppler", "ulm"))
    raise DataError(
        f"input {p} has an unknown suffix {suffix!r}",
        hint="use .npz, .npy, .png/.jpg/.tif, or a .h5 recording",
    )


def coordinates(
    shape: tuple[int, ...], spacing_m: tuple[float, float], origin_m: tuple[float, float]
) -> dict[str, npt.NDArray[np.float64]]:
    """``z_m``/``x_m`` pixel-centre coordinates of an ``(..., H, W)`` grid."""
    return {
        "z_m": np.asarray(origin_m[0] + np.arange(shape[-2]) * spacing_m[0], np.float64),
        "x_m": np.asarray(origin_m[1] + np.arange(shape[-1]) * spacing_m[1], np.float64),
    }


def display_uint8(arr: npt.NDArray[Any], key: str) -> npt.NDArray[np.uint8]:
    """An 8-bit picture of a result: ``[0, 1]`` images as is, dB maps over 60 dB, else min-max."""
    a = np.asarray(arr, np.float64)
    if key.endswith("_db"):
        scaled = (np.clip(a, -60.0, 0.0) + 60.0) / 60.0
    elif key == "image" and a.min() >= 0 and a.max() <= 1:
        scaled = a
    else:
        span = float(a.max() - a.min()) or 1.0
        scaled = (a - a.min()) / span
    return np.round(scaled * 255).astype(np.uint8)


def write_output(
    path: str | Path, arrays: dict[str, npt.NDArray[Any]], meta: dict[str, Any]
) -> Path:
    """Write results: NPZ (arrays + metadata), NPY (the first array) or a picture of it."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    key, first = next(iter(arrays.items()))
    if suffix == ".npz":
        content: dict[str, Any] = dict(arrays)
        content.update({k: np.asarray(v) for k, v in meta.items() if v is not None})
        np.savez_compressed(p, allow_pickle=False, **content)
    elif suffix == ".npy":
        np.save(p, first)
    elif suffix in IMAGE_SUFFIXES:
        import cv2

        picture = display_uint8(first if first.ndim == 2 else first[0], key)
        if not cv2.imwrite(str(p), picture):
            raise DataError(f"could not write picture {p}")
    else:
        raise DataError(
            f"output {p} has an unknown suffix {suffix!r}", hint="use .npz, .npy or .png"
        )
    return p
