"""Sweep → poses → volume: the freehand pipeline used by ``sonoedge sweep2vol`` and the API.

Example::

    from sonoedge.freehand import estimate_poses, reconstruct_sweep
    poses = estimate_poses(sweep, motion="fan")
    result = reconstruct_sweep(sweep, poses, spacing_m=0.5e-3, interpolation="linear")
    write_volume("sweep.nrrd", result.volume)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import poses as pm
from sonoedge.freehand.holes import HoleMethod, fill_holes
from sonoedge.freehand.orientation import (
    FusionSettings,
    fuse_imu,
    image_orientations,
    stationary_mask,
)
from sonoedge.freehand.quality import heading_drift_dps
from sonoedge.freehand.reconstruct import (
    DEFAULT_MAX_BYTES,
    ClipRectangle,
    Compounding,
    FanMask,
    Interpolation,
    OutputGrid,
    VolumeReconstructor,
)
from sonoedge.freehand.timesync import (
    estimate_time_offset,
    imu_motion_signal,
    motion_signal,
    orientations_at,
    pair_times,
)
from sonoedge.types import Sweep, Volume

log = logging.getLogger(__name__)
MIN_FRAMES_TO_ALIGN = 12  # fewer frame pairs give spurious correlation peaks


def estimate_poses(
    sweep: Sweep,
    motion: str = "fan",
    align_time: bool = True,
    max_offset_s: float = 0.25,
    max_gap_s: float = 0.05,
    speed_m_s: float | None = None,
    estimator: pm.OutOfPlaneEstimator | None = None,
    settings: FusionSettings | None = None,
    min_alignment_score: float = 0.5,
    time_offset_s: float | None = None,
) -> pm.SweepPoses:
    """Per-frame poses for ``sweep`` from its IMU (fan/rotation/linear), its own poses (tracked),
    or a learned ``estimator``.

    The image/IMU clock offset is ``time_offset_s`` when given (a calibrated latency); otherwise
    fan sweeps estimate it by cross-correlation (``align_time``). Rotation and linear sweeps use
    no offset unless given one: their image decorrelation does not follow the gyro closely enough
    to align clocks (rotation: tens of ms bias on simulated sweeps; linear: no turn at all).
    """
    frames = np.asarray(sweep.frames)
    n = len(frames)
    if motion not in pm.MOTIONS:
        raise ConfigError(f"motion={motion!r} is invalid: expected one of {pm.MOTIONS}")
    if estimator is not None:
        poses = pm.learned_poses(frames, sweep.spacing_m, estimator)
        return pm.SweepPoses(poses, np.ones(n, bool))
    if motion == "tracked":
        if sweep.poses is None:
            raise DataError("motion='tracked' needs per-frame poses in the sweep")
        poses = np.asarray(sweep.poses, dtype=np.float64)
        valid = np.all(np.isfinite(poses), axis=(1, 2))
        return pm.SweepPoses(np.where(valid[:, None, None], poses, np.eye(4)), valid)
    times = np.asarray(sweep.timestamps_s, dtype=np.float64)
    pivot = pm.contact_point_m(frames.shape[1:], sweep.spacing_m)
    if sweep.imu is None or len(sweep.imu) < 2:
        if motion != "linear" or speed_m_s is None:
            raise DataError(
                f"motion={motion!r} needs IMU samples; this sweep has none",
                hint="use --motion linear with a speed, or --motion tracked for PLUS files",
            )
        return pm.SweepPoses(pm.linear_poses(times, speed_m_s), np.ones(n, bool), 0.0, speed_m_s)
    fused = fuse_imu(sweep.imu, settings)
    calib = sweep.probe.imu_to_image if sweep.probe is not None else np.eye(4)
    q_image_imu = image_orientations(fused.quaternions, calib)
    offset = 0.0 if time_offset_s is None else float(time_offset_s)
    if time_offset_s is None and align_time and motion == "fan" and n >= MIN_FRAMES_TO_ALIGN:
        imu_motion = imu_motion_signal(
            sweep.imu, frames.shape[1:], sweep.spacing_m, calib, fused.gyro_bias_dps
        )
        found = estimate_time_offset(
            pair_times(times), motion_signal(frames), fused.times_s, imu_motion, max_offset_s
        )
        if found.score >= min_alignment_score:
            offset = found.offset_s
            log.info("image/IMU clock offset %.1f ms (score %.2f)", offset * 1e3, found.score)
        else:
            warnings.warn(
                f"image/IMU clock alignment is unreliable (correlation {found.score:.2f}): "
                "assuming no offset",
                stacklevel=2,
            )
    q_frames, valid = orientations_at(times, fused.times_s + offset, q_image_imu, max_gap_s)
    if not valid.any():
        raise DataError("no frame lies within the IMU's time span: cannot pose the sweep")
    ref = int(np.argmax(valid))
    still = stationary_mask(sweep.imu)
    still &= np.linalg.norm(sweep.imu.gyro_dps - fused.gyro_bias_dps, axis=1) < 3.0
    drift = heading_drift_dps(fused.times_s, fused.quaternions, still)
    speed = None
    if motion == "fan":
        poses = pm.fan_poses(q_frames, pivot, ref)
    elif motion == "rotation":
        poses = pm.rotation_poses(q_frames, pivot, ref)
    else:
        speed = speed_m_s if speed_m_s is not None else pm.estimate_linear_speed(frames, times)
        poses = pm.linear_poses(times, speed, q_frames, pivot, ref)
    return pm.SweepPoses(poses, valid, offset, speed, q_frames, drift)


def _coplanar(mats: np.ndarray, tolerance_m: float) -> bool:
    """Whether every frame's image plane is the first one's (within ``tolerance_m``)."""
    normals = np.cross(mats[:, :3, 0], mats[:, :3, 1])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    same_direction = np.abs(normals @ normals[0]) > 1 - 1e-9
    offsets = (mats[:, :3, 3] - mats[0, :3, 3]) @ normals[0]
    return bool(np.all(same_direction) and np.all(np.abs(offsets) < 0.1 * tolerance_m))


@dataclass(frozen=True)
class ReconstructionResult:
    """A volume, its accumulation (weight) volume, and how many frames were used or skipped."""

    volume: Volume
    weights: Volume
    n_frames_used: int
    n_frames_skipped: int
    n_holes_filled: int = 0


def reconstruct(
    frames: npt.ArrayLike,
    pixel_to_world: npt.ArrayLike,
    valid: npt.ArrayLike | None,
    spacing_m: float | tuple[float, float, float],
    interpolation: Interpolation = "linear",
    compounding: Compounding = "mean",
    clip: ClipRectangle | None = None,
    fan: FanMask | None = None,
    fill: HoleMethod | None = None,
    fill_size: int | None = None,
    fill_sigma: float = 1.0,
    fill_min_ratio: float = 0.1,
    pixel_rejection_threshold: float | None = None,
    grid: OutputGrid | None = None,
    plus_extent: bool = False,
    dtype: npt.DTypeLike = np.uint8,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int], None] | None = None,
    plus_arithmetic: bool = False,
) -> ReconstructionResult:
    """Batch reconstruction with the checks the CLI relies on (skipped frames, flat sweeps)."""
    arr = np.asarray(frames)
    mats = np.asarray(pixel_to_world, dtype=np.float64)
    if arr.ndim != 3 or len(arr) == 0:
        raise DataError(f"frames have shape {arr.shape}: expected [n >= 1, rows, cols]")
    if mats.shape != (len(arr), 4, 4):
        raise DataError(f"pixel_to_world has shape {mats.shape}: expected ({len(arr)}, 4, 4)")
    ok = np.ones(len(arr), bool) if valid is None else np.asarray(valid, bool).copy()
    ok &= np.all(np.isfinite(mats), axis=(1, 2))
    skipped = int((~ok).sum())
    if not ok.any():
        raise DataError(f"none of the {len(arr)} frames has a valid pose: nothing to reconstruct")
    if skipped:
        warnings.warn(
            f"skipped {skipped} of {len(arr)} frames with missing or invalid poses", stacklevel=2
        )
    if ok.sum() == 1:
        warnings.warn("only one frame has a valid pose: the volume is a single slice", stacklevel=2)
    if grid is None:
        grid = OutputGrid.covering(mats, arr.shape[1:], spacing_m, ok, clip, plus_extent)
    if ok.sum() > 1 and _coplanar(mats[ok], min(grid.spacing_m)):
        warnings.warn(
            "all frames lie in one plane: the volume is a single slice, not a 3D sweep",
            stacklevel=2,
        )
    rec = VolumeReconstructor(
        grid,
        interpolation,
        compounding,
        clip,
        fan,
        pixel_rejection_threshold=pixel_rejection_threshold,
        max_bytes=max_bytes,
        plus_arithmetic=plus_arithmetic,
    )
    rec.add_frames(arr, mats, ok, progress)
    data = rec.volume(np.float32)
    filled = rec.coverage()
    if not filled.any():
        raise DataError("no pixel landed inside the output grid: check poses and spacing")
    n_filled = 0
    values = data.data
    if fill is not None:
        if fill == "stick":
            values, new_mask = fill_holes(values, filled, fill, stick_length=fill_size or 9)
        else:
            values, new_mask = fill_holes(
                values,
                filled,
                fill,
                size=fill_size or 3,
                sigma=fill_sigma,
                min_ratio=fill_min_ratio,
            )
        n_filled = int(new_mask.sum() - filled.sum())
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        values = np.clip(np.rint(values), info.min, info.max)
    volume = Volume(values.astype(dt), grid.spacing_m, grid.origin_m, np.eye(3))
    return ReconstructionResult(volume, rec.weights(), int(ok.sum()), skipped, n_filled)


def reconstruct_sweep(
    sweep: Sweep,
    poses: pm.SweepPoses,
    spacing_m: float = 0.5e-3,
    **kwargs: Any,
) -> ReconstructionResult:
    """Reconstruct a sweep from its estimated poses (see :func:`reconstruct` for options)."""
    p2w = pm.pixel_to_world(poses.poses, sweep.spacing_m)
    return reconstruct(sweep.frames, p2w, poses.valid, spacing_m, **kwargs)
