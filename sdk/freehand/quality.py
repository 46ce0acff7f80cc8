"""Sweep quality report: is this sweep good enough to make a volume from?

Reports frame gaps, angular and linear speed, elevational spacing between consecutive frames
against the voxel size, the hole fraction of the reconstruction, and the IMU's heading drift
(yaw rate of the fused orientation while the probe rests, which is pure drift without a
magnetometer). Every number is plain SI-derived (ms, °/s, mm/s, mm) for printing as JSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.freehand import quaternion as quat
from sonoedge.freehand.holes import box_sum


def hole_fraction(coverage: npt.ArrayLike, radius: int = 2) -> float:
    """Empty voxels inside the swept region (coverage closed by ``radius`` voxels) / region."""
    mask = np.asarray(coverage, dtype=bool)
    if not mask.any():
        return 1.0
    dilated = box_sum(mask, radius) > 0.5
    closed = ~(box_sum(~dilated, radius) > 0.5)
    region = int(closed.sum())
    return float((closed & ~mask).sum() / region) if region else 0.0


def _frame_corners(shape: tuple[int, int], spacing_m: tuple[float, float]) -> np.ndarray:
    rows, cols = shape
    h = (rows - 1) * spacing_m[0]
    w = (cols - 1) * spacing_m[1]
    return np.array([[0, 0, 0, 1], [w, 0, 0, 1], [0, h, 0, 1], [w, h, 0, 1]], float).T


def _plane_bases(mats: np.ndarray) -> np.ndarray:
    """Orthonormal (in-plane x, in-plane y, normal) columns of image → world matrices."""
    x = mats[:, :3, 0] / np.linalg.norm(mats[:, :3, 0], axis=1, keepdims=True)
    n = np.cross(mats[:, :3, 0], mats[:, :3, 1])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return np.stack([x, np.cross(n, x), n], axis=2)


def heading_drift_dps(
    times_s: npt.ArrayLike, q_sensor: npt.ArrayLike, still: npt.ArrayLike
) -> float:
    """Mean |yaw rate| (°/s) of sensor → Earth orientations over stationary samples."""
    t = np.asarray(times_s, np.float64)
    q = np.asarray(q_sensor, np.float64)
    quiet = np.asarray(still, bool)
    m = quat.to_matrix(q)
    yaw = np.unwrap(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
    rate = np.abs(np.diff(yaw) / np.maximum(np.diff(t), 1e-9))
    both = quiet[1:] & quiet[:-1]
    return float(np.degrees(rate[both].mean())) if both.any() else float("nan")


def sweep_quality(
    times_s: npt.ArrayLike,
    poses: npt.ArrayLike,
    valid: npt.ArrayLike,
    frame_shape: tuple[int, int],
    spacing_m: tuple[float, float],
    voxel_m: float,
    coverage: npt.ArrayLike | None = None,
    heading_drift: float | None = None,
) -> dict[str, Any]:
    """Numbers that say whether the sweep was too fast, too gappy or too sparse for the voxel.

    ``poses`` map image points to world metres; with ``spacing_m = (1, 1)`` they may be
    pixel → world matrices.
    """
    t = np.asarray(times_s, np.float64)
    p = np.asarray(poses, np.float64)
    ok = np.asarray(valid, bool)
    report: dict[str, Any] = {
        "n_frames": len(t),
        "n_valid_poses": int(ok.sum()),
    }
    if len(t) >= 2:
        dt = np.diff(t)
        med = float(np.median(dt))
        report["frame_interval_ms"] = {"median": med * 1e3, "max": float(dt.max()) * 1e3}
        report["frame_gaps"] = int((dt > 1.5 * med).sum())
    idx = np.flatnonzero(ok)
    if len(idx) >= 2:
        a, b = p[idx[:-1]], p[idx[1:]]
        dt = np.maximum(np.diff(t[idx]), 1e-9)
        ra, rb = _plane_bases(a), _plane_bases(b)
        cos = (np.trace(np.swapaxes(ra, 1, 2) @ rb, axis1=1, axis2=2) - 1) / 2
        angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        corners = _frame_corners(frame_shape, spacing_m)
        centre = corners.mean(axis=1)
        move = np.linalg.norm((b @ centre - a @ centre)[:, :3], axis=1)
        # Out-of-plane distance of frame i+1's corners from frame i's plane (world units).
        offsets = (b @ corners)[:, :3, :] - a[:, :3, 3:4]
        elev = np.abs(np.einsum("ni,nic->nc", ra[:, :, 2], offsets)).max(axis=1)
        report["angular_speed_dps"] = {
            "median": float(np.median(angle / dt)),
            "max": float((angle / dt).max()),
        }
        report["linear_speed_mm_s"] = {
            "median": float(np.median(move / dt) * 1e3),
            "max": float((move / dt).max() * 1e3),
        }
        report["elevational_spacing_mm"] = {
            "median": float(np.median(elev) * 1e3),
            "max": float(elev.max() * 1e3),
        }
        report["voxel_mm"] = voxel_m * 1e3
        report["max_spacing_over_voxel"] = float(elev.max() / voxel_m)
    if coverage is not None:
        report["hole_fraction"] = hole_fraction(coverage)
    if heading_drift is not None:
        report["heading_drift_dps"] = heading_drift
    warnings = []
    if report.get("frame_gaps"):
        warnings.append(f"{report['frame_gaps']} frame gap(s) longer than 1.5x the median interval")
    if report.get("max_spacing_over_voxel", 0) > 1:
        warnings.append(
            "frames are farther apart than a voxel somewhere: expect holes "
            "(sweep slower, use a larger voxel, or fill holes)"
        )
    if report["n_valid_poses"] < report["n_frames"]:
        warnings.append(f"{report['n_frames'] - report['n_valid_poses']} frame(s) without a pose")
    report["warnings"] = warnings
    return report
