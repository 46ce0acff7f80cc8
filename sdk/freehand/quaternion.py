"""Unit quaternions ``(w, x, y, z)`` for orientations: products, matrices, SLERP, angles.

All functions take arrays ``[..., 4]`` (or ``[..., 3, 3]`` matrices) and work element-wise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def normalize(q: npt.ArrayLike) -> Array:
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def conjugate(q: npt.ArrayLike) -> Array:
    return np.asarray(q, dtype=np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def multiply(a: npt.ArrayLike, b: npt.ArrayLike) -> Array:
    """Hamilton product ``a · b`` (apply ``b`` first, then ``a``)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def to_matrix(q: npt.ArrayLike) -> Array:
    """Rotation matrices ``[..., 3, 3]`` of unit quaternions."""
    w, x, y, z = np.moveaxis(normalize(q), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def from_matrix(m: npt.ArrayLike) -> Array:
    """Unit quaternions (w >= 0) of rotation matrices ``[..., 3, 3]``."""
    m = np.asarray(m, dtype=np.float64)
    flat = m.reshape(-1, 3, 3)
    out = np.empty((len(flat), 4))
    for n, r in enumerate(flat):
        # Build from the largest of the four candidate components for numerical stability.
        t = np.trace(r)
        cand = np.array([t, r[0, 0], r[1, 1], r[2, 2]])
        i = int(np.argmax(cand))
        if i == 0:
            s = 2 * np.sqrt(1 + t)
            q = [s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
        elif i == 1:
            s = 2 * np.sqrt(1 + r[0, 0] - r[1, 1] - r[2, 2])
            q = [(r[2, 1] - r[1, 2]) / s, s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
        elif i == 2:
            s = 2 * np.sqrt(1 + r[1, 1] - r[0, 0] - r[2, 2])
            q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s]
        else:
            s = 2 * np.sqrt(1 + r[2, 2] - r[0, 0] - r[1, 1])
            q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4]
        out[n] = q
    out *= np.where(out[:, :1] < 0, -1.0, 1.0)
    return normalize(out.reshape(*m.shape[:-2], 4))


def from_axis_angle(axis: npt.ArrayLike, angle_rad: npt.ArrayLike) -> Array:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle_rad, dtype=np.float64)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def rotate(q: npt.ArrayLike, v: npt.ArrayLike) -> Array:
    """Rotate vectors ``[..., 3]`` by quaternions."""
    return np.einsum("...ij,...j->...i", to_matrix(q), np.asarray(v, dtype=np.float64))


def angle_rad(a: npt.ArrayLike, b: npt.ArrayLike) -> Array:
    """Rotation angle between orientations ``a`` and ``b`` (0..π)."""
    dot = np.abs(np.sum(normalize(a) * normalize(b), axis=-1))
    return 2 * np.arccos(np.clip(dot, 0.0, 1.0))


def slerp(q0: npt.ArrayLike, q1: npt.ArrayLike, t: npt.ArrayLike) -> Array:
    """Spherical linear interpolation from ``q0`` (t=0) to ``q1`` (t=1), shortest path."""
    q0 = normalize(q0)
    q1 = normalize(q1)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-9
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1 - t, np.sin((1 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    return normalize(w0 * q0 + w1 * q1)


def twist_angle_rad(q: npt.ArrayLike, axis: npt.ArrayLike) -> Array:
    """Signed angle of the twist of ``q`` about ``axis`` (swing-twist decomposition)."""
    q = normalize(q)
    unit = np.asarray(axis, dtype=np.float64)
    unit = unit / np.linalg.norm(unit)
    proj = q[..., 1:] @ unit
    return 2 * np.arctan2(proj, q[..., 0])
