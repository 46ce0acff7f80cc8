"""Pose models and the sweep pipeline on simulated sweeps with ground truth."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import quaternion as quat
from sonoedge.freehand.poses import (
    contact_point_m,
    fan_poses,
    learned_poses,
    linear_poses,
    pixel_to_world,
    rotation_poses,
)
from sonoedge.freehand.quality import hole_fraction, sweep_quality
from sonoedge.freehand.sweep import estimate_poses, reconstruct_sweep
from sonoedge.synth.sweeps import default_phantom, simulate_sweep
from sonoedge.types import ProbeInfo, Sweep


def test_fan_pose_keeps_contact_point_fixed() -> None:
    q = quat.from_axis_angle([1.0, 0.0, 0.0], np.radians([0.0, 10.0, 20.0]))
    pivot = np.array([0.01, 0.0, 0.0])
    poses = fan_poses(q, pivot)
    for p in poses:
        np.testing.assert_allclose(p[:3, :3] @ pivot + p[:3, 3], pivot, atol=1e-12)
    deep = poses[2] @ [0.01, 0.03, 0.0, 1.0]
    assert deep[2] == pytest.approx(0.03 * np.sin(np.radians(20)))  # depth tilts into elevation


def test_rotation_pose_keeps_only_twist() -> None:
    q = quat.multiply(
        quat.from_axis_angle([0, 1, 0], np.radians(30)),
        quat.from_axis_angle([1, 0, 0], np.radians(2)),
    )
    poses = rotation_poses(np.stack([quat.from_axis_angle([0, 1, 0], 0.0), q]), [0.0, 0.0, 0.0])
    angle = np.degrees(np.arctan2(poses[1, 0, 2], poses[1, 0, 0]))
    assert angle == pytest.approx(30, abs=0.1)
    assert poses[1, 1, 1] == pytest.approx(1.0)


def test_linear_and_learned_poses() -> None:
    poses = linear_poses([1.0, 1.5, 2.0], 0.02)
    np.testing.assert_allclose(poses[:, 2, 3], [0.0, 0.01, 0.02])
    with pytest.raises(ConfigError):
        linear_poses([0.0], 5.0)

    def one_mm(
        previous: np.ndarray, current: np.ndarray, spacing_m: tuple[float, float]
    ) -> np.ndarray:
        step = np.eye(4)
        step[2, 3] = 1e-3
        return step

    chained = learned_poses(np.zeros((4, 3, 3)), (1e-3, 1e-3), one_mm)
    np.testing.assert_allclose(chained[:, 2, 3], [0, 1e-3, 2e-3, 3e-3])
    with pytest.raises(DataError, match="estimator"):
        learned_poses(np.zeros((2, 3, 3)), (1e-3, 1e-3), lambda a, b, s: np.eye(3))
    assert pixel_to_world(np.eye(4)[None], (0.5e-3, 0.2e-3))[0, 0, 0] == pytest.approx(0.2e-3)
    np.testing.assert_allclose(contact_point_m((10, 11), (1e-3, 1e-3)), [5e-3, 0, 0])


def _lesion_error_mm(sweep: Sweep, volume_data: np.ndarray, spacing: tuple, origin: tuple) -> float:
    assert sweep.probe is not None
    sphere = default_phantom(sweep.probe, 3).spheres[0]  # bright lesion
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in volume_data.shape], indexing="ij")
    pts = np.stack([xx, yy, zz], -1) * np.array(spacing) + np.array(origin)
    near = np.linalg.norm(pts - np.array(sphere.center_m), axis=-1) < 1.6 * sphere.radius_m
    bright = near & (volume_data > 200)
    return float(np.linalg.norm(pts[bright].mean(axis=0) - sphere.center_m) * 1e3)


def test_fan_sweep_geometry_within_a_millimetre(fan_sweep: Sweep) -> None:
    assert fan_sweep.poses is not None
    est = estimate_poses(fan_sweep, "fan")
    assert est.time_offset_s == pytest.approx(0.03, abs=0.012)
    assert est.valid.all() and est.heading_drift_dps is not None
    # Anchor the estimated sweep at the true first pose to compare with the phantom.
    anchored = type(est)(fan_sweep.poses[0] @ est.poses, est.valid)
    result = reconstruct_sweep(fan_sweep, anchored, spacing_m=0.4e-3)
    vol = result.volume
    assert _lesion_error_mm(fan_sweep, vol.data, vol.spacing_m, vol.origin_m) < 1.0
    truth = reconstruct_sweep(fan_sweep, type(est)(fan_sweep.poses, est.valid), spacing_m=0.4e-3)
    err = _lesion_error_mm(
        fan_sweep, truth.volume.data, truth.volume.spacing_m, truth.volume.origin_m
    )
    assert err < 1.0


@pytest.mark.parametrize("motion", ["linear", "rotation"])
def test_linear_and_rotation_sweeps(motion: str, small_probe: Callable[..., ProbeInfo]) -> None:
    sweep = simulate_sweep(
        small_probe(),
        motion,
        seed=5,
        n_frames=24,
        frame_rate_hz=12,
        spacing_m=(0.5e-3, 0.5e-3),
        angle_deg=40,
        length_m=0.02,
    )
    assert sweep.poses is not None
    est = estimate_poses(sweep, motion, speed_m_s=0.02 / 2.0 if motion == "linear" else None)
    rel_true = np.linalg.inv(sweep.poses[0]) @ sweep.poses
    if motion == "linear":
        np.testing.assert_allclose(est.poses[:, 2, 3], rel_true[:, 2, 3], atol=2e-4)
    else:
        err = np.degrees(
            np.arccos(
                np.clip(
                    (
                        np.trace(
                            np.swapaxes(est.poses[:, :3, :3], 1, 2) @ rel_true[:, :3, :3],
                            axis1=1,
                            axis2=2,
                        )
                        - 1
                    )
                    / 2,
                    -1,
                    1,
                )
            )
        )
        assert err.max() < 1.5  # hand tremor about other axes is not modelled


def test_tracked_and_missing_imu(small_probe: Callable[..., ProbeInfo]) -> None:
    sweep = simulate_sweep(small_probe(), "fan", seed=1, n_frames=6, spacing_m=(1e-3, 1e-3))
    assert sweep.poses is not None
    poses = sweep.poses.copy()
    poses[2] = np.nan
    tracked = estimate_poses(
        Sweep(sweep.frames, sweep.spacing_m, sweep.timestamps_s, poses), "tracked"
    )
    assert tracked.valid.tolist() == [True, True, False, True, True, True]
    bare = Sweep(sweep.frames, sweep.spacing_m, sweep.timestamps_s)
    with pytest.raises(DataError, match="IMU"):
        estimate_poses(bare, "fan")
    with pytest.raises(DataError, match="poses"):
        estimate_poses(bare, "tracked")
    with pytest.raises(ConfigError, match="motion"):
        estimate_poses(bare, "spiral")


def test_quality_report(fan_sweep: Sweep) -> None:
    assert fan_sweep.poses is not None
    times = fan_sweep.timestamps_s.copy()
    times[10:] += 0.2  # one dropped burst
    rep = sweep_quality(
        times,
        fan_sweep.poses,
        np.ones(len(times), bool),
        fan_sweep.frames.shape[1:],
        fan_sweep.spacing_m,
        voxel_m=0.1e-3,
        heading_drift=0.1,
    )
    assert rep["frame_gaps"] == 1
    assert rep["angular_speed_dps"]["max"] == pytest.approx(
        30 * 1.5 / 2, rel=0.1
    )  # smoothstep peak
    assert rep["max_spacing_over_voxel"] > 1 and any("holes" in w for w in rep["warnings"])
    cov = np.ones((6, 6, 6), bool)
    cov[3, 3, 3] = False
    assert hole_fraction(cov) == pytest.approx(1 / 216)
