"""Optional numba kernels for pasting one frame (``pip install 'sonoedge[fast]'``).

Same arithmetic as the numpy path in :mod:`sonoedge.freehand.reconstruct` (float64 coordinates
here, so a pixel that lands within ~1e-6 voxel of a rounding boundary may go the other way).
Pixels are visited in row-major order, so results are deterministic. ``AVAILABLE`` is False when
numba is not installed; the reconstructor then uses numpy.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

AVAILABLE = importlib.util.find_spec("numba") is not None
_COMPILED: dict[str, Callable[..., Any]] = {}

MODE_MEAN, MODE_MAX, MODE_LATEST = 0, 1, 2


def _column_range(
    base: float, slope: float, upper: float, strict: bool, lo: int, hi: int
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Columns ``c`` in ``[lo, hi)`` with ``0 <= base + slope·c`` and ``< upper`` (``<=`` unless
    ``strict``), widened by one column each side; the kernel re-checks those edge columns."""
    if slope == 0.0:
        inside = base >= 0 and (base < upper if strict else base <= upper)
        return (lo, hi) if inside else (lo, lo)
    a = -base / slope
    b = (upper - base) / slope
    if a > b:
        a, b = b, a
    first = max(lo, int(np.floor(a)) - 1)
    last = min(hi, int(np.ceil(b)) + 2)
    return (first, last) if first < last else (lo, lo)


def _splat_nearest(
    img: Any,
    w: Any,
    has_w: bool,
    m: Any,
    c0: int,
    r0: int,
    shape: Any,
    value: Any,
    weight: Any,
    stamp: Any,
    frame: int,
    mode: int,
    threshold: float,
) -> int:  # pragma: no cover - compiled
    nk, nj, ni = shape[0], shape[1], shape[2]
    count = 0
    for r in range(img.shape[0]):
        rr = r + r0
        bx = m[0, 1] * rr + m[0, 3] + 0.5
        by = m[1, 1] * rr + m[1, 3] + 0.5
        bz = m[2, 1] * rr + m[2, 3] + 0.5
        lo, hi = 0, img.shape[1]
        lo, hi = _column_range(bx + m[0, 0] * c0, m[0, 0], float(ni), True, lo, hi)
        lo, hi = _column_range(by + m[1, 0] * c0, m[1, 0], float(nj), True, lo, hi)
        lo, hi = _column_range(bz + m[2, 0] * c0, m[2, 0], float(nk), True, lo, hi)
        for c in range(lo, hi):
            wt = w[r, c] if has_w else 1.0
            v = float(img[r, c])
            if wt <= 0 or v < threshold:
                continue
            cc = c + c0
            x = bx + m[0, 0] * cc
            y = by + m[1, 0] * cc
            z = bz + m[2, 0] * cc
            if x < 0 or y < 0 or z < 0 or x >= ni or y >= nj or z >= nk:
                continue
            idx = int(x) + ni * (int(y) + nj * int(z))
            if mode == MODE_LATEST and stamp[idx] != frame:
                value[idx] = 0
                weight[idx] = 0
                stamp[idx] = frame
            if mode == MODE_MAX:
                if v > value[idx]:
                    value[idx] = v
            else:
                value[idx] += v * wt
            weight[idx] += wt
            count += 1
    return count


def _splat_linear(
    img: Any,
    w: Any,
    has_w: bool,
    m: Any,
    c0: int,
    r0: int,
    shape: Any,
    value: Any,
    weight: Any,
    stamp: Any,
    frame: int,
    mode: int,
    threshold: float,
) -> int:  # pragma: no cover - compiled
    nk, nj, ni = shape[0], shape[1], shape[2]
    count = 0
    for r in range(img.shape[0]):
        rr = r + r0
        bx = m[0, 1] * rr + m[0, 3]
        by = m[1, 1] * rr + m[1, 3]
        bz = m[2, 1] * rr + m[2, 3]
        lo, hi = 0, img.shape[1]
        lo, hi = _column_range(bx + m[0, 0] * c0, m[0, 0], float(ni - 1), False, lo, hi)
        lo, hi = _column_range(by + m[1, 0] * c0, m[1, 0], float(nj - 1), False, lo, hi)
        lo, hi = _column_range(bz + m[2, 0] * c0, m[2, 0], float(nk - 1), False, lo, hi)
        for c in range(lo, hi):
            wt = w[r, c] if has_w else 1.0
            v = float(img[r, c])
            if wt <= 0 or v < threshold:
                continue
            cc = c + c0
            x = bx + m[0, 0] * cc
            y = by + m[1, 0] * cc
            z = bz + m[2, 0] * cc
            if x < 0 or y < 0 or z < 0 or x > ni - 1 or y > nj - 1 or z > nk - 1:
                continue
            ix, iy, iz = int(x), int(y), int(z)
            fx, fy, fz = x - ix, y - iy, z - iz
            sx = 1 if ix < ni - 1 else 0
            sy = ni if iy < nj - 1 else 0
            sz = ni * nj if iz < nk - 1 else 0
            base = ix + ni * (iy + nj * iz)
            for corner in range(8):
                dx = corner & 1
                dy = (corner >> 1) & 1
                dz = corner >> 2
                f = (fx if dx else 1 - fx) * (fy if dy else 1 - fy) * (fz if dz else 1 - fz) * wt
                idx = base + dx * sx + dy * sy + dz * sz
                if mode == MODE_LATEST and stamp[idx] != frame:
                    value[idx] = 0
                    weight[idx] = 0
                    stamp[idx] = frame
                if mode == MODE_MAX:
                    if f > 0 and v > value[idx]:
                        value[idx] = v
                else:
                    value[idx] += v * f
                weight[idx] += f
            count += 1
    return count


def _mean_nearest(
    img: Any,
    w: Any,
    has_w: bool,
    m: Any,
    c0: int,
    r0: int,
    shape: Any,
    value: Any,
    weight: Any,
    threshold: float,
) -> int:  # pragma: no cover - compiled
    """MEAN compounding: runs of pixels that hit the same voxel are summed before the write."""
    nk, nj, ni = shape[0], shape[1], shape[2]
    count = 0
    for r in range(img.shape[0]):
        rr = r + r0
        bx = m[0, 1] * rr + m[0, 3] + 0.5
        by = m[1, 1] * rr + m[1, 3] + 0.5
        bz = m[2, 1] * rr + m[2, 3] + 0.5
        lo, hi = 0, img.shape[1]
        lo, hi = _column_range(bx + m[0, 0] * c0, m[0, 0], float(ni), True, lo, hi)
        lo, hi = _column_range(by + m[1, 0] * c0, m[1, 0], float(nj), True, lo, hi)
        lo, hi = _column_range(bz + m[2, 0] * c0, m[2, 0], float(nk), True, lo, hi)
        run_idx = -1
        run_v = 0.0
        run_w = 0.0
        for c in range(lo, hi):
            wt = w[r, c] if has_w else 1.0
            v = float(img[r, c])
            if wt <= 0 or v < threshold:
                continue
            cc = c + c0
            x = bx + m[0, 0] * cc
            y = by + m[1, 0] * cc
            z = bz + m[2, 0] * cc
            if x < 0 or y < 0 or z < 0 or x >= ni or y >= nj or z >= nk:
                continue
            idx = int(x) + ni * (int(y) + nj * int(z))
            if idx != run_idx:
                if run_idx >= 0:
                    value[run_idx] += run_v
                    weight[run_idx] += run_w
                run_idx, run_v, run_w = idx, 0.0, 0.0
            run_v += v * wt
            run_w += wt
            count += 1
        if run_idx >= 0:
            value[run_idx] += run_v
            weight[run_idx] += run_w
    return count


def _flush8(
    value: Any, weight: Any, base: int, sx: int, sy: int, sz: int, acc: Any
) -> None:  # pragma: no cover - compiled
    """Add the 8 corner sums (values then weights, corner order x fastest) at ``base``."""
    for k in range(8):
        idx = base + (k & 1) * sx + ((k >> 1) & 1) * sy + (k >> 2) * sz
        value[idx] += acc[k]
        weight[idx] += acc[8 + k]


def _mean_linear(
    img: Any,
    w: Any,
    has_w: bool,
    m: Any,
    c0: int,
    r0: int,
    shape: Any,
    value: Any,
    weight: Any,
    threshold: float,
) -> int:  # pragma: no cover - compiled
    """MEAN compounding, trilinear: per-corner sums stay in registers while the base voxel
    repeats (consecutive pixels of a row usually share it), then go to memory once."""
    nk, nj, ni = shape[0], shape[1], shape[2]
    count = 0
    acc = np.zeros(16)
    for r in range(img.shape[0]):
        rr = r + r0
        bx = m[0, 1] * rr + m[0, 3]
        by = m[1, 1] * rr + m[1, 3]
        bz = m[2, 1] * rr + m[2, 3]
        lo, hi = 0, img.shape[1]
        lo, hi = _column_range(bx + m[0, 0] * c0, m[0, 0], float(ni - 1), False, lo, hi)
        lo, hi = _column_range(by + m[1, 0] * c0, m[1, 0], float(nj - 1), False, lo, hi)
        lo, hi = _column_range(bz + m[2, 0] * c0, m[2, 0], float(nk - 1), False, lo, hi)
        run_base = -1
        sx = sy = sz = 0
        v0 = v1 = v2 = v3 = v4 = v5 = v6 = v7 = 0.0
        w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = 0.0
        for c in range(lo, hi):
            wt = w[r, c] if has_w else 1.0
            v = float(img[r, c])
            if wt <= 0 or v < threshold:
                continue
            cc = c + c0
            x = bx + m[0, 0] * cc
            y = by + m[1, 0] * cc
            z = bz + m[2, 0] * cc
            if x < 0 or y < 0 or z < 0 or x > ni - 1 or y > nj - 1 or z > nk - 1:
                continue
            ix, iy, iz = int(x), int(y), int(z)
            base = ix + ni * (iy + nj * iz)
            if base != run_base:
                if run_base >= 0:
                    acc[0], acc[1], acc[2], acc[3] = v0, v1, v2, v3
                    acc[4], acc[5], acc[6], acc[7] = v4, v5, v6, v7
                    acc[8], acc[9], acc[10], acc[11] = w0, w1, w2, w3
                    acc[12], acc[13], acc[14], acc[15] = w4, w5, w6, w7
                    _flush8(value, weight, run_base, sx, sy, sz, acc)
                sx = 1 if ix < ni - 1 else 0
                sy = ni if iy < nj - 1 else 0
                sz = ni * nj if iz < nk - 1 else 0
                v0 = v1 = v2 = v3 = v4 = v5 = v6 = v7 = 0.0
                w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = 0.0
                run_base = base
            fx, fy, fz = x - ix, y - iy, z - iz
            gx = 1 - fx
            a0 = (1 - fy) * (1 - fz) * wt
            a1 = fy * (1 - fz) * wt
            a2 = (1 - fy) * fz * wt
            a3 = fy * fz * wt
            f0, f1, f2, f3 = gx * a0, fx * a0, gx * a1, fx * a1
            f4, f5, f6, f7 = gx * a2, fx * a2, gx * a3, fx * a3
            w0 += f0
            w1 += f1
            w2 += f2
            w3 += f3
            w4 += f4
            w5 += f5
            w6 += f6
            w7 += f7
            v0 += v * f0
            v1 += v * f1
            v2 += v * f2
            v3 += v * f3
            v4 += v * f4
            v5 += v * f5
            v6 += v * f6
            v7 += v * f7
            count += 1
        if run_base >= 0:
            acc[0], acc[1], acc[2], acc[3] = v0, v1, v2, v3
            acc[4], acc[5], acc[6], acc[7] = v4, v5, v6, v7
            acc[8], acc[9], acc[10], acc[11] = w0, w1, w2, w3
            acc[12], acc[13], acc[14], acc[15] = w4, w5, w6, w7
            _flush8(value, weight, run_base, sx, sy, sz, acc)
    return count


def _kernel(name: str) -> Callable[..., Any]:
    """The compiled kernel ``name`` (numba is imported on first use: it takes ~0.5 s)."""
    if not _COMPILED:
        from numba import njit

        global _column_range, _flush8
        _column_range = njit(cache=True, inline="always")(_column_range)
        _flush8 = njit(cache=True)(_flush8)
        for fn in (_splat_nearest, _splat_linear, _mean_nearest, _mean_linear):
            _COMPILED[fn.__name__] = njit(cache=True, nogil=True)(fn)
    return _COMPILED[name]


def paste(
    img: np.ndarray,
    w: np.ndarray | None,
    m: np.ndarray,
    c0: int,
    r0: int,
    shape: tuple[int, int, int],
    value: np.ndarray,
    weight: np.ndarray,
    stamp: np.ndarray,
    frame: int,
    mode: int,
    threshold: float,
    nearest: bool,
) -> int:
    """Paste the clipped frame ``img`` (rows/cols offset by ``r0``/``c0``) with numba."""
    weights = np.ones((1, 1), np.float32) if w is None else w
    shape_arr = np.asarray(shape, np.int64)
    mat = np.ascontiguousarray(m, np.float64)
    if mode == MODE_MEAN:
        mean_kernel = _kernel("_mean_nearest" if nearest else "_mean_linear")
        return int(
            mean_kernel(
                img, weights, w is not None, mat, c0, r0, shape_arr, value, weight, threshold
            )
        )
    kernel = _kernel("_splat_nearest" if nearest else "_splat_linear")
    return int(
        kernel(
            img,
            weights,
            w is not None,
            np.ascontiguousarray(m, np.float64),
            c0,
            r0,
            np.asarray(shape, np.int64),
            value,
            weight,
            stamp,
            frame,
            mode,
            threshold,
        )
    )
