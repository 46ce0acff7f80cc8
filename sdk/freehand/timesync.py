"""Image ↔ IMU time alignment and per-frame orientation by SLERP.

The probe's image and IMU streams can be offset by a constant latency. Both streams see the same
motion: image content changes (frame-to-frame decorrelation) when the probe turns, and the gyro
reads the turn rate. :func:`estimate_time_offset` cross-correlates the two signals, first on a
coarse grid over ``±max_offset_s``, then on a fine grid around the coarse peak with parabolic
sub-sample refinement. Example (``frames`` is a ``[n, rows, cols]`` array)::

    imu_motion = imu_motion_signal(imu, frames.shape[1:], spacing_m, probe.imu_to_image)
    found = estimate_time_offset(
        pair_times(frame_times), motion_signal(frames), imu.times_s, imu_motion
    )
    q, ok = orientations_at(frame_times, imu.times_s + found.offset_s, q_imu, max_gap_s=0.02)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import quaternion as quat
from sonoedge.types import ImuBatch


def motion_signal(frames: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Out-of-plane motion between consecutive frames, ``sqrt(-ln NCC)`` (n-1 values).

    Under a Gaussian speckle-correlation model this grows linearly with the displacement; it
    belongs to the midpoint of each frame pair.
    """
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 3 or len(arr) < 2:
        raise DataError(f"frames have shape {arr.shape}: expected [n >= 2, rows, cols]")
    flat = arr.reshape(len(arr), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    ncc = np.sum(flat[1:] * flat[:-1], axis=1) / np.maximum(norm[1:] * norm[:-1], 1e-12)
    return np.sqrt(-np.log(np.clip(ncc, 1e-6, 1.0)))


def pair_times(times_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Midpoints of consecutive frame times, where :func:`motion_signal` values belong."""
    t = np.asarray(times_s, dtype=np.float64)
    return 0.5 * (t[1:] + t[:-1])


@dataclass(frozen=True)
class TimeOffset:
    """Seconds to add to IMU timestamps, and the normalised correlation at that lag (-1..1)."""

    offset_s: float
    score: float


def imu_motion_signal(
    imu: ImuBatch,
    frame_shape: tuple[int, int],
    spacing_m: tuple[float, float],
    imu_to_image: npt.ArrayLike | None = None,
    bias_dps: npt.ArrayLike = (0.0, 0.0, 0.0),
) -> npt.NDArray[np.float64]:
    """RMS out-of-plane speed (m/s) over the image that the gyro's turn rate implies.

    A turn ``ω`` (image axes) about the skin contact point moves pixel ``(x, y)`` out of plane
    at ``ω_x · y − ω_y · (x − x_c)``; its RMS over the image is what image decorrelation sees.
    """
    calib = np.eye(4) if imu_to_image is None else np.asarray(imu_to_image, np.float64)
    omega = np.radians(np.asarray(imu.gyro_dps, np.float64) - np.asarray(bias_dps))
    omega = omega @ calib[:3, :3].T
    rows, cols = frame_shape
    depth = (rows - 1) * spacing_m[0]
    width = (cols - 1) * spacing_m[1]
    mean_y2 = depth**2 / 3
    mean_x2 = width**2 / 12
    return np.sqrt(omega[:, 0] ** 2 * mean_y2 + omega[:, 1] ** 2 * mean_x2)


def _normalized(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    s = x.std()
    return x / s if s > 0 else x


def _xcorr_at(
    t_a: np.ndarray, a: np.ndarray, t_b: np.ndarray, b: np.ndarray, lags: np.ndarray, step: float
) -> np.ndarray:
    grid = np.arange(t_a[0], t_a[-1], step)
    sa = _normalized(np.interp(grid, t_a, a))
    scores = np.empty(len(lags))
    for i, lag in enumerate(lags):
        shifted = grid - lag
        ok = (shifted >= t_b[0]) & (shifted <= t_b[-1])
        if ok.sum() < 8:
            scores[i] = -np.inf
            continue
        sb = _normalized(np.interp(shifted[ok], t_b, b))
        scores[i] = float(np.mean(_normalized(sa[ok]) * sb))
    return scores


def estimate_time_offset(
    times_s: npt.ArrayLike,
    image_motion: npt.ArrayLike,
    imu_times_s: npt.ArrayLike,
    imu_motion: npt.ArrayLike,
    max_offset_s: float = 0.25,
) -> TimeOffset:
    """Offset to add to IMU timestamps so the IMU's motion signal lines up with the image's.

    ``times_s`` are the times of the ``image_motion`` values (use :func:`pair_times` with
    :func:`motion_signal`); ``imu_motion`` comes from :func:`imu_motion_signal`. A low
    ``score`` (say < 0.5) means the sweep turned too little to align the clocks.
    """
    t_img = np.asarray(times_s, dtype=np.float64)
    sig_img = np.asarray(image_motion, dtype=np.float64)
    if len(t_img) < 4 or len(t_img) != len(sig_img):
        raise DataError("need >= 4 frame pairs with one motion value each to align clocks")
    if max_offset_s <= 0:
        raise ConfigError(f"max_offset_s={max_offset_s} is invalid: expected > 0 s")
    t_imu = np.asarray(imu_times_s, dtype=np.float64)
    sig_imu = np.asarray(imu_motion, dtype=np.float64)
    coarse_step = float(np.median(np.diff(t_img)))
    lags = np.arange(-max_offset_s, max_offset_s + 1e-12, coarse_step)
    scores = _xcorr_at(t_img, sig_img, t_imu, sig_imu, lags, coarse_step)
    best = float(lags[int(np.argmax(scores))])
    fine_step = max(float(np.median(np.diff(t_imu))), coarse_step / 20)
    fine = np.arange(best - 2 * coarse_step, best + 2 * coarse_step + 1e-12, fine_step)
    f_scores = _xcorr_at(t_img, sig_img, t_imu, sig_imu, fine, fine_step)
    k = int(np.argmax(f_scores))
    offset = float(fine[k])
    score = float(f_scores[k])
    if 0 < k < len(fine) - 1 and np.all(np.isfinite(f_scores[k - 1 : k + 2])):
        y0, y1, y2 = f_scores[k - 1 : k + 2]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            offset += 0.5 * (y0 - y2) / denom * fine_step
    return TimeOffset(offset, score)


def orientations_at(
    times_s: npt.ArrayLike,
    sample_times_s: npt.ArrayLike,
    quaternions: npt.ArrayLike,
    max_gap_s: float = 0.05,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """SLERP orientations at ``times_s``; invalid where the bracketing samples are too far apart.

    A time is valid when it lies within the sample span and the two samples around it are at most
    ``max_gap_s`` apart (so a dropped IMU burst does not produce invented poses).
    """
    t = np.asarray(times_s, dtype=np.float64)
    ts = np.asarray(sample_times_s, dtype=np.float64)
    q = np.asarray(quaternions, dtype=np.float64)
    if len(ts) < 2 or q.shape != (len(ts), 4):
        raise DataError(f"need >= 2 orientation samples [n, 4]; got {q.shape}")
    if max_gap_s <= 0:
        raise ConfigError(f"max_gap_s={max_gap_s} is invalid: expected > 0 s")
    hi = np.clip(np.searchsorted(ts, t, side="right"), 1, len(ts) - 1)
    lo = hi - 1
    span = ts[hi] - ts[lo]
    frac = np.clip((t - ts[lo]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    out = quat.slerp(q[lo], q[hi], frac)
    valid = (t >= ts[0]) & (t <= ts[-1]) & (span <= max_gap_s) & np.isfinite(t)
    return out, valid
