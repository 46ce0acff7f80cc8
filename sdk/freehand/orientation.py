"""IMU orientation: imufusion's AHRS (1.3 API) with gyro-bias estimation and image calibration.

The AHRS runs without a magnetometer (probes are used next to metal), so heading is gyro-only and
drifts; :func:`estimate_gyro_bias` removes the constant part of that drift from stationary
samples before fusion, and imufusion's ``Bias`` tracks what is left. Acceleration rejection makes
the AHRS ignore the accelerometer while the probe is being swung. Orientations are unit
quaternions ``(w, x, y, z)`` of sensor → Earth (NWU); :func:`image_orientations` turns them into
image → Earth with ``ProbeInfo.imu_to_image``. Example::

    fused = fuse_imu(sweep.imu)
    q_image = image_orientations(fused.quaternions, sweep.probe.imu_to_image)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import quaternion as quat
from sonoedge.types import ImuBatch


@dataclass(frozen=True)
class FusionSettings:
    """AHRS settings (imufusion's names, SI-ish units as imufusion takes them)."""

    gain: float = 0.5
    gyro_range_dps: float = 2000.0
    acceleration_rejection_deg: float = 10.0
    rejection_timeout_s: float = 5.0
    bias_threshold_dps: float = 3.0
    stationary_threshold_dps: float = 0.3
    bias_period_s: float = 3.0
    stationary_window_s: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.gain <= 10:
            raise ConfigError(f"gain={self.gain} is invalid: expected 0..10")
        if self.stationary_window_s <= 0:
            raise ConfigError("stationary_window_s must be > 0 s")


@dataclass(frozen=True)
class FusedOrientation:
    """Sensor → Earth (NWU) orientation per IMU sample."""

    times_s: npt.NDArray[np.float64]
    quaternions: npt.NDArray[np.float64]
    gyro_bias_dps: npt.NDArray[np.float64]
    accelerometer_ignored: npt.NDArray[np.bool_]


def _check_imu(imu: ImuBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    t = np.asarray(imu.times_s, dtype=np.float64)
    if len(t) < 2:
        raise DataError(f"IMU has {len(t)} samples: at least 2 are needed for orientation")
    dt = np.diff(t)
    if not np.all(np.isfinite(t)) or np.any(dt <= 0):
        raise DataError("IMU timestamps must be finite and strictly increasing")
    gyro = np.asarray(imu.gyro_dps, dtype=np.float64)
    accel = np.asarray(imu.accel_g, dtype=np.float64)
    if not (np.all(np.isfinite(gyro)) and np.all(np.isfinite(accel))):
        raise DataError("IMU gyro/accel contain NaN/Inf")
    return t, gyro, accel, float(np.median(dt))


def stationary_mask(
    imu: ImuBatch, threshold_dps: float = 0.3, window_s: float = 0.25, accel_std_g: float = 0.02
) -> np.ndarray:
    """Samples in windows where gyro and accelerometer barely vary and |accel| ≈ 1 g."""
    _, gyro, accel, dt = _check_imu(imu)
    n_win = max(2, round(window_s / dt))

    def spread(x: np.ndarray) -> np.ndarray:
        kernel = np.ones(n_win) / n_win
        mean = np.stack([np.convolve(x[:, a], kernel, mode="same") for a in range(3)], 1)
        sq = np.stack([np.convolve(x[:, a] ** 2, kernel, mode="same") for a in range(3)], 1)
        return np.sqrt(np.maximum(sq - mean**2, 0).sum(axis=1))

    g_norm = np.linalg.norm(accel, axis=1)
    quiet = (spread(gyro) < threshold_dps) & (spread(accel) < accel_std_g)
    quiet &= np.abs(g_norm - 1) < 0.05
    # Edges of the window average see zero padding: trust only full windows.
    half = n_win // 2
    quiet[:half] = quiet[half] if len(quiet) > half else False
    quiet[len(quiet) - half :] = quiet[len(quiet) - half - 1] if len(quiet) > half else False
    # A window that only grazes the start of a motion still looks quiet: erode by half a window.
    loud = np.convolve((~quiet).astype(np.float64), np.ones(2 * half + 1), mode="same") > 0
    return ~loud


def estimate_gyro_bias(
    imu: ImuBatch, threshold_dps: float = 0.3, window_s: float = 0.25, max_bias_dps: float = 5.0
) -> npt.NDArray[np.float64]:
    """Mean gyro reading (°/s) over stationary samples; zeros when the probe never rests.

    Steady turns about the vertical look stationary to both sensors, so samples farther than
    ``max_bias_dps`` from zero, then farther than ``threshold_dps`` from the median of the
    remaining candidates, are not used.
    """
    quiet = stationary_mask(imu, threshold_dps, window_s)
    gyro = np.asarray(imu.gyro_dps, dtype=np.float64)
    quiet &= np.linalg.norm(gyro, axis=1) < max_bias_dps
    if quiet.sum() < 10:
        return np.zeros(3)
    centre = np.median(gyro[quiet], axis=0)
    quiet &= np.linalg.norm(gyro - centre, axis=1) < 3 * threshold_dps
    if quiet.sum() < 10:
        return np.zeros(3)
    return gyro[quiet].mean(axis=0)


def fuse_imu(
    imu: ImuBatch,
    settings: FusionSettings | None = None,
    gyro_bias_dps: npt.ArrayLike | None = None,
) -> FusedOrientation:
    """Run imufusion's AHRS over ``imu`` and return sensor → Earth quaternions per sample."""
    import imufusion

    s = settings or FusionSettings()
    t, gyro, accel, dt = _check_imu(imu)
    rate = 1.0 / dt
    bias = (
        estimate_gyro_bias(imu, s.stationary_threshold_dps, s.stationary_window_s)
        if gyro_bias_dps is None
        else np.asarray(gyro_bias_dps, dtype=np.float64)
    )
    ahrs = imufusion.Ahrs()
    ahrs.set_settings(
        imufusion.AhrsSettings(
            sample_rate=rate,
            convention=imufusion.CONVENTION_NWU,
            gain=s.gain,
            gyroscope_range=s.gyro_range_dps,
            acceleration_rejection=s.acceleration_rejection_deg,
            magnetic_rejection=0.0,
            rejection_timeout=max(1.0, s.rejection_timeout_s * rate),
        )
    )
    tracker = imufusion.Bias()
    tracker.set_settings(
        imufusion.BiasSettings(
            sample_rate=rate,
            stationary_threshold=s.bias_threshold_dps,
            stationary_period=s.bias_period_s,
        )
    )
    # Start from the accelerometer's gravity direction instead of waiting for the start-up ramp.
    ahrs.set_quaternion(_gravity_quaternion(accel[: max(1, int(0.1 * rate))].mean(axis=0)))
    ahrs.skip_startup()
    out = np.empty((len(t), 4))
    ignored = np.zeros(len(t), dtype=bool)
    prev = t[0] - dt
    for i in range(len(t)):
        g = tracker.update(np.ascontiguousarray(gyro[i] - bias))
        ahrs.set_sample_period(float(t[i] - prev))
        ahrs.update_no_magnetometer(g, np.ascontiguousarray(accel[i]))
        out[i] = ahrs.get_quaternion()
        ignored[i] = ahrs.get_internal_states().accelerometer_ignored
        prev = t[i]
    return FusedOrientation(t, quat.normalize(out), bias + tracker.get_offset(), ignored)


def _gravity_quaternion(accel_g: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Sensor → Earth quaternion with zero heading whose up axis matches the accelerometer."""
    up = np.asarray(accel_g, dtype=np.float64)
    norm = np.linalg.norm(up)
    if not np.isfinite(norm) or norm < 0.5:
        return np.array([1.0, 0.0, 0.0, 0.0])
    up = up / norm
    # Rotation taking sensor 'up' onto Earth z.
    axis = np.cross(up, [0.0, 0.0, 1.0])
    s = np.linalg.norm(axis)
    if s < 1e-9:
        return np.array([1.0, 0.0, 0.0, 0.0]) if up[2] > 0 else np.array([0.0, 1.0, 0.0, 0.0])
    return quat.from_axis_angle(axis / s, np.arctan2(s, up[2]))


def image_orientations(
    sensor_to_earth: npt.ArrayLike, imu_to_image: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Image → Earth quaternions from sensor → Earth and the IMU → image calibration (4x4)."""
    calib = np.asarray(imu_to_image, dtype=np.float64)
    if calib.shape != (4, 4):
        raise ConfigError(f"imu_to_image has shape {calib.shape}: expected (4, 4)")
    image_to_imu = quat.from_matrix(calib[:3, :3].T)
    return quat.multiply(sensor_to_earth, image_to_imu)
