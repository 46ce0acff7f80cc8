"""Quaternions, IMU fusion (tilt, bias), clock alignment and SLERP with a maximum gap."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import quaternion as quat
from sonoedge.freehand.orientation import (
    FusionSettings,
    estimate_gyro_bias,
    fuse_imu,
    image_orientations,
)
from sonoedge.freehand.timesync import (
    estimate_time_offset,
    imu_motion_signal,
    motion_signal,
    orientations_at,
    pair_times,
)
from sonoedge.synth.sweeps import EARTH_FROM_WORLD
from sonoedge.types import ImuBatch, Sweep


def test_quaternion_helpers() -> None:
    rng = np.random.default_rng(0)
    q = quat.normalize(rng.normal(size=(20, 4)))
    back = quat.from_matrix(quat.to_matrix(q))
    assert np.all(quat.angle_rad(q, back) < 1e-6)
    qx = quat.from_axis_angle([1.0, 0.0, 0.0], np.pi / 2)
    np.testing.assert_allclose(quat.rotate(qx, [0.0, 1.0, 0.0]), [0, 0, 1], atol=1e-12)
    a = quat.from_axis_angle([0.0, 0.0, 1.0], 0.0)
    b = quat.from_axis_angle([0.0, 0.0, 1.0], 1.0)
    mid = quat.slerp(a, b, 0.25)
    assert quat.angle_rad(mid, a) == pytest.approx(0.25)
    np.testing.assert_allclose(quat.slerp(a, -b, 1.0) * np.sign(quat.slerp(a, -b, 1.0)[0]), b)
    twist = quat.multiply(
        quat.from_axis_angle([0, 1, 0], 0.3), quat.from_axis_angle([1, 0, 0], 0.2)
    )
    assert quat.twist_angle_rad(twist, [0, 1, 0]) == pytest.approx(0.3, abs=0.02)


def _tilt_error_deg(sweep: Sweep, q_image: np.ndarray) -> np.ndarray:
    assert sweep.poses is not None
    truth = quat.from_matrix(EARTH_FROM_WORLD @ sweep.poses[:, :3, :3])
    rel_true = quat.multiply(quat.conjugate(truth[0]), truth)
    rel_est = quat.multiply(quat.conjugate(q_image[0]), q_image)
    return np.degrees(quat.angle_rad(rel_true, rel_est))


def test_fusion_tracks_fan_tilt_within_a_degree(fan_sweep: Sweep) -> None:
    assert fan_sweep.imu is not None and fan_sweep.probe is not None
    bias = estimate_gyro_bias(fan_sweep.imu)
    np.testing.assert_allclose(bias, [0.4, -0.3, 0.2], atol=0.05)
    fused = fuse_imu(fan_sweep.imu)
    q_img = image_orientations(fused.quaternions, fan_sweep.probe.imu_to_image)
    q_frames, ok = orientations_at(
        fan_sweep.timestamps_s, fused.times_s + 0.03, q_img, max_gap_s=0.01
    )
    assert ok.all()
    assert _tilt_error_deg(fan_sweep, q_frames).max() < 1.0

    # Absolute tilt (gravity in image axes; heading is free without a magnetometer) needs the
    # IMU-to-image calibration: without it the same IMU data is 90° off.
    def up_in_image(q: np.ndarray) -> np.ndarray:
        return quat.to_matrix(q).T @ np.array([0.0, 0.0, 1.0])

    truth = EARTH_FROM_WORLD @ fan_sweep.poses[0, :3, :3]  # type: ignore[index]
    up_true = truth.T @ np.array([0.0, 0.0, 1.0])
    wrong = orientations_at(fan_sweep.timestamps_s, fused.times_s + 0.03, fused.quaternions)[0]
    assert np.degrees(np.arccos(up_in_image(wrong[0]) @ up_true)) > 45
    assert np.degrees(np.arccos(np.clip(up_in_image(q_frames[0]) @ up_true, -1, 1))) < 1.0


def test_time_offset_coarse_then_fine(fan_sweep: Sweep) -> None:
    assert fan_sweep.imu is not None and fan_sweep.probe is not None
    bias = estimate_gyro_bias(fan_sweep.imu)
    imu_sig = imu_motion_signal(
        fan_sweep.imu,
        fan_sweep.frames.shape[1:],
        fan_sweep.spacing_m,
        fan_sweep.probe.imu_to_image,
        bias,
    )
    found = estimate_time_offset(
        pair_times(fan_sweep.timestamps_s),
        motion_signal(fan_sweep.frames),
        fan_sweep.imu.times_s,
        imu_sig,
        max_offset_s=0.2,
    )
    assert found.offset_s == pytest.approx(0.03, abs=0.012)  # frames every 50 ms
    assert found.score > 0.8


def test_orientations_at_max_gap() -> None:
    t = np.array([0.0, 0.01, 0.02, 0.5, 0.51])
    q = quat.from_axis_angle([0.0, 0.0, 1.0], t)
    got, ok = orientations_at([0.005, 0.3, 0.505, 0.7, -1.0], t, q, max_gap_s=0.05)
    assert ok.tolist() == [True, False, True, False, False]
    assert quat.angle_rad(got[0], quat.from_axis_angle([0, 0, 1], 0.005)) < 1e-9
    with pytest.raises(ConfigError):
        orientations_at([0.0], t, q, max_gap_s=0)
    with pytest.raises(DataError):
        orientations_at([0.0], t[:1], q[:1])


def test_bad_imu_is_refused() -> None:
    t = np.array([0.0, 0.01, 0.01])
    imu = ImuBatch(t, np.zeros((3, 3), np.float32), np.tile([0, 0, 1], (3, 1)).astype(np.float32))
    with pytest.raises(DataError, match="increasing"):
        fuse_imu(imu)
    with pytest.raises(DataError, match="at least 2"):
        fuse_imu(ImuBatch(t[:1], np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)))
    with pytest.raises(ConfigError, match="gain"):
        FusionSettings(gain=-1)
    with pytest.raises(DataError):
        motion_signal(np.zeros((1, 4, 4)))
