"""Image ↔ IMU time alignment and per-frame orientation by SLERP.

The probe's image and IMU streams can be offset by a constant latency. Both streams see the same
motion: image content changes (frame-to-frame decorrelation) when the probe turns, and the gyro
reads the turn rate. :func:`estimate_time_offset` cross-correlates the two signals, first on a
coarse grid over ``±max_offset_s``, then on a fine grid around the coarse peak with parabolic
sub-sample refinement. Example::

    offset_s = estimate_time_offset(frame_times, motion_signal(frames), imu)
    q, ok = orientations_at(frame_times, imu.times_s + offset_s, q_imu, max_gap_s=0.02)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import quaternion as quat
from sonoedge.types import ImuBatch


def motion_signal(frames: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Frame-to-frame decorrelation ``1 - NCC`` (first value repeats the second), per frame."""
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 3 or len(arr) < 2:
        raise DataError(f"frames have shape {arr.shape}: expected [n >= 2, rows, cols]")
    flat = arr.reshape(len(arr), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    ncc = np.sum(flat[1:] * flat[:-1], axis=1) / np.maximum(norm[1:] * norm[:-1], 1e-12)
    out = np.empty(len(arr))
    out[1:] = 1 - ncc
    out[0] = out[1]
    return out


def gyro_speed_dps(imu: ImuBatch, bias_dps: npt.ArrayLike = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Angular speed magnitude (°/s) per IMU sample after removing ``bias_dps``."""
    return np.linalg.norm(np.asarray(imu.gyro_dps, np.float64) - np.asarray(bias_dps), axis=1)


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
    frame_times_s: npt.ArrayLike,
    image_motion: npt.ArrayLike,
    imu: ImuBatch,
    max_offset_s: float = 0.25,
    bias_dps: npt.ArrayLike = (0.0, 0.0, 0.0),
) -> float:
    """Seconds to add to IMU timestamps so IMU motion lines up with image motion."""
    t_img = np.asarray(frame_times_s, dtype=np.float64)
    sig_img = np.asarray(image_motion, dtype=np.float64)
    if len(t_img) < 4 or len(t_img) != len(sig_img):
        raise DataError("need >= 4 frames with one motion value each to align clocks")
    if max_offset_s <= 0:
        raise ConfigError(f"max_offset_s={max_offset_s} is invalid: expected > 0 s")
    t_imu = np.asarray(imu.times_s, dtype=np.float64)
    sig_imu = gyro_speed_dps(imu, bias_dps)
    coarse_step = float(np.median(np.diff(t_img)))
    lags = np.arange(-max_offset_s, max_offset_s + 1e-12, coarse_step)
    scores = _xcorr_at(t_img, sig_img, t_imu, sig_imu, lags, coarse_step)
    best = float(lags[int(np.argmax(scores))])
    fine_step = max(float(np.median(np.diff(t_imu))), coarse_step / 20)
    fine = np.arange(best - 2 * coarse_step, best + 2 * coarse_step + 1e-12, fine_step)
    f_scores = _xcorr_at(t_img, sig_img, t_imu, sig_imu, fine, fine_step)
    k = int(np.argmax(f_scores))
    offset = float(fine[k])
    if 0 < k < len(fine) - 1 and np.all(np.isfinite(f_scores[k - 1 : k + 2])):
        y0, y1, y2 = f_scores[k - 1 : k + 2]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            offset += 0.5 * (y0 - y2) / denom * fine_step
    return offset


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
