"""Hole filling for reconstructed volumes (PLUS's kernels, vectorised over the whole volume).

Empty voxels (zero accumulated weight) are filled from filled ones only — values created by
filling never feed other holes, so the result does not depend on visiting order.

- ``nearest``: mean of the filled voxels in the smallest cube (radius 1..size//2) that has any.
- ``gaussian``: normalised Gaussian-weighted mean over a cube; filled when the filled voxels carry
  at least ``min_ratio`` of the kernel weight.
- ``stick``: along 13 line directions, the nearest filled voxel on each side within
  ``stick_length`` voxels; linear interpolation on the shortest such stick.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError

HoleMethod = Literal["nearest", "gaussian", "stick"]
HOLE_METHODS: tuple[HoleMethod, ...] = ("nearest", "gaussian", "stick")
_STICK_DIRECTIONS = [
    (dz, dy, dx)
    for dz in (-1, 0, 1)
    for dy in (-1, 0, 1)
    for dx in (-1, 0, 1)
    if (dz, dy, dx) > (0, 0, 0)
]


def _shift(a: np.ndarray, offset: tuple[int, int, int], fill: float = 0) -> np.ndarray:
    """``out[p] = a[p + offset]``; positions outside ``a`` get ``fill``."""
    out = np.full_like(a, fill)
    src = []
    dst = []
    for d, n in zip(offset, a.shape, strict=True):
        if abs(d) >= n:
            return out
        src.append(slice(max(d, 0), n + min(d, 0)))
        dst.append(slice(max(-d, 0), n - max(d, 0)))
    out[tuple(dst)] = a[tuple(src)]
    return out


def box_sum(a: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)^3 cube around each voxel (zero outside), via cumulative sums."""
    out = a.astype(np.float64)
    for axis in range(3):
        pad = [(0, 0)] * 3
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad), axis=axis)
        n = out.shape[axis]
        hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        out = hi - lo
    return out


def _gaussian_sum(a: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    out = a.astype(np.float64)
    for axis in range(3):
        acc = np.zeros_like(out)
        for d, w in zip(range(-radius, radius + 1), k, strict=True):
            off = [0, 0, 0]
            off[axis] = d
            acc += w * _shift(out, (off[0], off[1], off[2]))
        out = acc
    return out


def fill_holes(
    data: npt.ArrayLike,
    filled: npt.ArrayLike,
    method: HoleMethod = "gaussian",
    size: int = 3,
    sigma: float = 1.0,
    min_ratio: float = 0.1,
    stick_length: int = 9,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Fill empty voxels of ``data`` [k, j, i]; returns the new data and the new filled mask."""
    values = np.asarray(data, dtype=np.float32)
    mask = np.asarray(filled, dtype=bool)
    if values.ndim != 3 or values.shape != mask.shape:
        raise DataError(f"data {values.shape} and mask {mask.shape} must be equal 3D shapes")
    if method not in HOLE_METHODS:
        raise ConfigError(f"fill method {method!r} is invalid: expected one of {HOLE_METHODS}")
    if size < 1 or size > 31:
        raise ConfigError(f"hole filling size={size} is invalid: expected 1..31 voxels")
    if not mask.any():
        raise DataError("the volume is empty: no filled voxel to fill holes from")
    if method == "nearest":
        new, got = _nearest(values, mask, size)
    elif method == "gaussian":
        if sigma <= 0 or not 0 < min_ratio <= 1:
            raise ConfigError("gaussian hole filling needs sigma > 0 and 0 < min_ratio <= 1")
        new, got = _gaussian(values, mask, size, sigma, min_ratio)
    else:
        if stick_length < 1:
            raise ConfigError(f"stick_length={stick_length} is invalid: expected >= 1 voxel")
        new, got = _stick(values, mask, stick_length)
    out = values.copy()
    hole = ~mask & got
    out[hole] = new[hole]
    return out, mask | got


def _nearest(values: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    weighted = np.where(mask, values, 0).astype(np.float64)
    out = np.zeros(values.shape, np.float64)
    got = np.zeros(values.shape, bool)
    for radius in range(1, max(1, size // 2) + 1):
        count = box_sum(mask, radius)
        new = (count > 0.5) & ~got & ~mask
        if new.any():
            total = box_sum(weighted, radius)
            out[new] = total[new] / count[new]
            got |= new
    return out.astype(np.float32), got


def _gaussian(
    values: np.ndarray, mask: np.ndarray, size: int, sigma: float, min_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    radius = max(1, size // 2)
    weight = _gaussian_sum(mask.astype(np.float64), radius, sigma)
    total_kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).sum() ** 3
    acc = _gaussian_sum(np.where(mask, values, 0), radius, sigma)
    got = weight >= min_ratio * total_kernel
    out = np.zeros(values.shape, np.float32)
    out[got] = (acc[got] / weight[got]).astype(np.float32)
    return out, got


def _stick(values: np.ndarray, mask: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    best_len = np.full(values.shape, np.inf)
    out = np.zeros(values.shape, np.float32)
    for direction in _STICK_DIRECTIONS:
        ends = []
        for sign in (1, -1):
            dist = np.full(values.shape, np.inf)
            val = np.zeros(values.shape, np.float32)
            for step in range(1, length + 1):
                off = (
                    sign * step * direction[0],
                    sign * step * direction[1],
                    sign * step * direction[2],
                )
                hit = _shift(mask, off, False) & np.isinf(dist)
                if hit.any():
                    dist[hit] = step
                    val[hit] = _shift(values, off)[hit]
            ends.append((dist, val))
        (d1, v1), (d2, v2) = ends
        stick = d1 + d2
        better = np.isfinite(stick) & (stick < best_len)
        if better.any():
            a, b = d1[better], d2[better]
            out[better] = (v1[better] * b + v2[better] * a) / (a + b)
            best_len[better] = stick[better]
    return out, np.isfinite(best_len)
