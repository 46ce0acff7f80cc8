"""Pose models: a 4x4 image → world matrix (metres) per frame.

Image coordinates are ``(lateral_m, axial_m, elevation_m)``: pixel ``[row, col]`` sits at
``(col · lateral spacing, row · axial spacing, 0)``. The world frame of the IMU-driven models is
the first valid frame's image frame, so a sweep's volume comes out in probe-aligned axes.

- ``fan``: tilt about the skin contact point (top centre of the image); orientation alone suffices.
- ``rotation``: turn about the probe axis (the image's axial line through the contact point); only
  the twist of the IMU orientation about that axis is used.
- ``linear``: slide along the elevation axis at a given speed, or at a speed estimated from speckle
  decorrelation; IMU tilt (when present) is applied about the contact point.
- ``tracked``: 6-DoF poses from a tracker (see :mod:`sonoedge.freehand.tracked`).
- a learned estimator of out-of-plane motion plugs in through :class:`OutOfPlaneEstimator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import quaternion as quat

Motion = Literal["fan", "linear", "rotation", "tracked"]
MOTIONS: tuple[Motion, ...] = ("fan", "linear", "rotation", "tracked")


class OutOfPlaneEstimator(Protocol):
    """Hook for learned motion estimation between consecutive frames.

    Called with two frames ``[rows, cols]`` and the pixel spacing ``(axial, lateral)`` in metres;
    returns the 4x4 transform (metres) from the current frame's image frame to the previous one's.
    """

    def __call__(
        self,
        previous: npt.NDArray[np.generic],
        current: npt.NDArray[np.generic],
        spacing_m: tuple[float, float],
    ) -> npt.NDArray[np.float64]: ...


def pixel_scale(spacing_m: Sequence[float]) -> npt.NDArray[np.float64]:
    """4x4 matrix from pixel ``(col, row, 0, 1)`` to image metres, given ``(axial, lateral)``."""
    axial, lateral = float(spacing_m[0]), float(spacing_m[1])
    if not (axial > 0 and lateral > 0):
        raise ConfigError(f"spacing_m={tuple(spacing_m)} is invalid: expected (axial, lateral) > 0")
    return np.diag([lateral, axial, 1.0, 1.0])


def pixel_to_world(poses: npt.ArrayLike, spacing_m: Sequence[float]) -> npt.NDArray[np.float64]:
    """Per-frame pixel → world matrices from image → world poses."""
    return np.asarray(poses, dtype=np.float64) @ pixel_scale(spacing_m)


def contact_point_m(frame_shape: Sequence[int], spacing_m: Sequence[float]) -> np.ndarray:
    """The skin contact point in image metres: top centre of the image."""
    return np.array([(frame_shape[1] - 1) * spacing_m[1] / 2, 0.0, 0.0])


def _about_pivot(rotations: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    poses = np.tile(np.eye(4), (len(rotations), 1, 1))
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = pivot - rotations @ pivot
    return poses


def _relative(q_image: np.ndarray, reference: int) -> np.ndarray:
    """Orientation of each frame in the reference frame's image axes."""
    return quat.multiply(quat.conjugate(q_image[reference]), q_image)


def fan_poses(q_image: npt.ArrayLike, pivot_m: npt.ArrayLike, reference: int = 0) -> np.ndarray:
    """Poses of a fan (tilt) sweep about the contact point from image → Earth orientations."""
    rel = _relative(np.asarray(q_image, np.float64), reference)
    return _about_pivot(quat.to_matrix(rel), np.asarray(pivot_m, np.float64))


def rotation_poses(
    q_image: npt.ArrayLike, pivot_m: npt.ArrayLike, reference: int = 0
) -> np.ndarray:
    """Poses of a rotation about the probe (axial) axis through the contact point."""
    rel = _relative(np.asarray(q_image, np.float64), reference)
    angle = quat.twist_angle_rad(rel, [0.0, 1.0, 0.0])
    twist = quat.from_axis_angle(np.array([0.0, 1.0, 0.0]), angle)
    return _about_pivot(quat.to_matrix(twist), np.asarray(pivot_m, np.float64))


def linear_poses(
    times_s: npt.ArrayLike,
    speed_m_s: float,
    q_image: npt.ArrayLike | None = None,
    pivot_m: npt.ArrayLike = (0.0, 0.0, 0.0),
    reference: int = 0,
) -> np.ndarray:
    """Poses of a slide along the elevation axis; optional IMU tilt about the contact point."""
    t = np.asarray(times_s, dtype=np.float64)
    if not np.isfinite(speed_m_s) or abs(speed_m_s) > 1.0:
        raise ConfigError(f"speed_m_s={speed_m_s} is invalid: expected |speed| <= 1 m/s")
    if q_image is None:
        poses = np.tile(np.eye(4), (len(t), 1, 1))
    else:
        poses = fan_poses(q_image, pivot_m, reference)
    poses[:, 2, 3] += speed_m_s * (t - t[reference])
    return poses


def estimate_linear_speed(
    frames: npt.ArrayLike, times_s: npt.ArrayLike, decorrelation_length_m: float = 0.5e-3
) -> float:
    """Elevational speed from speckle decorrelation between consecutive frames.

    Assumes a Gaussian elevational correlation ``ρ(d) = exp(-d² / (2 L²))`` with
    ``L = decorrelation_length_m`` (calibrate it per probe: it follows the elevation beam width).
    """
    from sonoedge.freehand.timesync import motion_signal

    if decorrelation_length_m <= 0:
        raise ConfigError("decorrelation_length_m must be > 0 m")
    dist = decorrelation_length_m * np.sqrt(2.0) * motion_signal(frames)
    dt = np.diff(np.asarray(times_s, dtype=np.float64))
    return float(np.median(dist / np.maximum(dt, 1e-9)))


def learned_poses(
    frames: npt.ArrayLike, spacing_m: tuple[float, float], estimator: OutOfPlaneEstimator
) -> np.ndarray:
    """Poses from a frame-to-frame motion estimator, chained from the first frame."""
    arr = np.asarray(frames)
    if arr.ndim != 3 or len(arr) < 1:
        raise DataError(f"frames have shape {arr.shape}: expected [n, rows, cols]")
    poses = np.tile(np.eye(4), (len(arr), 1, 1))
    for i in range(1, len(arr)):
        step = np.asarray(estimator(arr[i - 1], arr[i], spacing_m), dtype=np.float64)
        if step.shape != (4, 4) or not np.all(np.isfinite(step)):
            raise DataError(f"out-of-plane estimator returned {step.shape}: expected finite 4x4")
        poses[i] = poses[i - 1] @ step
    return poses


@dataclass(frozen=True)
class SweepPoses:
    """Per-frame poses with validity and how they were found."""

    poses: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    time_offset_s: float = 0.0
    speed_m_s: float | None = None
    q_image: npt.NDArray[np.float64] | None = None
    heading_drift_dps: float | None = None
