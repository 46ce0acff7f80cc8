"""Live probe orientation from IMU batches, for the OpenIGTLink TRANSFORM stream."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonoedge.types import ImuBatch, ProbeInfo


class LivePose:
    """Incremental AHRS (imufusion, no magnetometer): ``update(batch)`` → 4x4 image→world (mm).

    Orientation only; the translation stays at the origin (a fan sweep pivots about the skin).
    """

    def __init__(self, probe: ProbeInfo | None = None, gain: float = 0.5) -> None:
        import imufusion

        self._imufusion = imufusion
        self._ahrs = imufusion.Ahrs()
        self._settings_rate = 0.0
        self._gain = gain
        self._last_t: float | None = None
        calib = probe.imu_to_image if probe is not None else np.eye(4)
        self._image_to_imu = np.asarray(calib, dtype=np.float64)[:3, :3].T

    def _configure(self, rate_hz: float) -> None:
        imufusion = self._imufusion
        self._ahrs.set_settings(
            imufusion.AhrsSettings(
                sample_rate=rate_hz,
                convention=imufusion.CONVENTION_NWU,
                gain=self._gain,
                gyroscope_range=2000.0,
                acceleration_rejection=10.0,
                magnetic_rejection=0.0,
                rejection_timeout=int(5 * rate_hz),
            )
        )
        self._settings_rate = rate_hz
        self._ahrs.skip_startup()  # no start-up ramp: the first batches already count

    def update(self, batch: ImuBatch) -> npt.NDArray[np.float64] | None:
        times = np.asarray(batch.times_s, dtype=np.float64)
        if len(times) == 0:
            return None
        if not self._settings_rate and len(times) > 1:
            self._configure(1.0 / max(float(np.median(np.diff(times))), 1e-4))
        for t, gyro, accel in zip(times, batch.gyro_dps, batch.accel_g, strict=True):
            if self._last_t is not None:
                self._ahrs.set_sample_period(float(min(max(t - self._last_t, 1e-4), 0.1)))
            self._ahrs.update_no_magnetometer(
                np.ascontiguousarray(gyro, dtype=np.float64),
                np.ascontiguousarray(accel, dtype=np.float64),
            )
            self._last_t = float(t)
        w, x, y, z = self._ahrs.get_quaternion()
        rotation = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
            ]
        )
        matrix = np.eye(4)
        matrix[:3, :3] = rotation @ self._image_to_imu
        return matrix

    __call__ = update
