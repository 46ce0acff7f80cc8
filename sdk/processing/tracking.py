"""Frame-to-frame linking of localisations into microbubble tracks (Hungarian assignment)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sonoedge.processing._checks import require
from sonoedge.processing.hungarian import match_within

FloatArray = npt.NDArray[np.float64]


def link_tracks(
    positions: Sequence[npt.ArrayLike],
    max_linking_distance: float,
    min_track_length: int = 3,
) -> list[FloatArray]:
    """Link per-frame positions into tracks.

    ``positions[t]`` is an ``(n_t, 2)`` array (any unit; NaN rows are skipped). Between
    consecutive frames the open tracks' last points and the new points are paired by the
    minimum-total-distance assignment restricted to pairs within ``max_linking_distance``;
    unpaired new points start tracks, unpaired tracks end. Tracks shorter than
    ``min_track_length`` points are dropped. Each track is an ``(n, 3)`` array
    ``[frame, row/z, col/x]``.
    """
    require(max_linking_distance > 0, "max_linking_distance", "> 0", max_linking_distance)
    require(min_track_length >= 1, "min_track_length", ">= 1", min_track_length)
    finished: list[list[tuple[float, float, float]]] = []
    open_tracks: list[list[tuple[float, float, float]]] = []
    for t, frame_points in enumerate(positions):
        pts = np.asarray(frame_points, np.float64).reshape(-1, 2)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if open_tracks and len(pts):
            last = np.array([trk[-1][1:] for trk in open_tracks])
            dist = np.linalg.norm(last[:, None, :] - pts[None, :, :], axis=2)
            rows, cols = match_within(dist, max_linking_distance)
        else:
            rows = cols = np.zeros(0, np.intp)
        continued = []
        for r, c in zip(rows, cols, strict=True):
            open_tracks[r].append((float(t), pts[c, 0], pts[c, 1]))
            continued.append(open_tracks[r])
        linked_rows = set(rows.tolist())
        finished.extend(trk for i, trk in enumerate(open_tracks) if i not in linked_rows)
        linked_cols = set(cols.tolist())
        fresh = [[(float(t), p[0], p[1])] for j, p in enumerate(pts) if j not in linked_cols]
        open_tracks = continued + fresh
    finished.extend(open_tracks)
    tracks = [np.asarray(trk, np.float64) for trk in finished if len(trk) >= min_track_length]
    tracks.sort(key=lambda a: (a[0, 0], a[0, 1], a[0, 2]))
    return tracks


def smooth_tracks(tracks: Sequence[npt.ArrayLike], window_frames: int) -> list[FloatArray]:
    """Tracks ``(n, 3)`` ``[frame, row/z, col/x]`` with each position replaced by a straight
    line fitted (least squares) to the track's positions within ``window_frames`` frames of it,
    evaluated at its frame: a bubble moves smoothly between frames while localisation errors
    of consecutive frames are partly independent. Tracks of fewer than 3 points stay as they
    are."""
    require(window_frames >= 1, "window_frames", ">= 1", window_frames)
    out = []
    for track in tracks:
        trk = np.asarray(track, np.float64).reshape(-1, 3)
        if len(trk) < 3:
            out.append(trk.copy())
            continue
        t = trk[:, 0]
        smooth = trk.copy()
        for i in range(len(trk)):
            near = np.abs(t - t[i]) <= window_frames
            dt = t[near] - t[i]
            design = np.stack([np.ones_like(dt), dt], axis=1)
            coef, *_ = np.linalg.lstsq(design, trk[near, 1:], rcond=None)
            smooth[i, 1:] = coef[0]  # the line's value at this point's frame
        out.append(smooth)
    return out
