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
    bounds: Any,
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
    c0, c1, r0, r1 = bounds[0], bounds[1], bounds[2], bounds[3]
    for rr in range(r0, r1 + 1):
        r = rr - r0
        bx = m[0, 1] * rr + m[0, 3] + 0.5
        by = m[1, 1] * rr + m[1, 3] + 0.5
        bz = m[2, 1] * rr + m[2, 3] + 0.5
        lo, hi = c0, c1 + 1
        lo, hi = _column_range(bx, m[0, 0], float(ni), True, lo, hi)
        lo, hi = _column_range(by, m[1, 0], float(nj), True, lo, hi)
        lo, hi = _column_range(bz, m[2, 0], float(nk), True, lo, hi)
        for cc in range(lo, hi):
            wt = w[r, cc - c0] if has_w else 1.0
            v = float(img[rr, cc])
            if wt <= 0 or v < threshold:
                continue
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
    bounds: Any,
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
    c0, c1, r0, r1 = bounds[0], bounds[1], bounds[2], bounds[3]
    for rr in range(r0, r1 + 1):
        r = rr - r0
        bx = m[0, 1] * rr + m[0, 3]
        by = m[1, 1] * rr + m[1, 3]
        bz = m[2, 1] * rr + m[2, 3]
        lo, hi = c0, c1 + 1
        lo, hi = _column_range(bx, m[0, 0], float(ni - 1), False, lo, hi)
        lo, hi = _column_range(by, m[1, 0], float(nj - 1), False, lo, hi)
        lo, hi = _column_range(bz, m[2, 0], float(nk - 1), False, lo, hi)
        for cc in range(lo, hi):
            wt = w[r, cc - c0] if has_w else 1.0
            v = float(img[rr, cc])
            if wt <= 0 or v < threshold:
                continue
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
    bounds: Any,
    shape: Any,
    value: Any,
    weight: Any,
    threshold: float,
) -> int:  # pragma: no cover - compiled
    """MEAN compounding: runs of pixels that hit the same voxel are summed before the write."""
    nk, nj, ni = shape[0], shape[1], shape[2]
    count = 0
    c0, c1, r0, r1 = bounds[0], bounds[1], bounds[2], bounds[3]
    for rr in range(r0, r1 + 1):
        r = rr - r0
        bx = m[0, 1] * rr + m[0, 3] + 0.5
        by = m[1, 1] * rr + m[1, 3] + 0.5
        bz = m[2, 1] * rr + m[2, 3] + 0.5
        lo, hi = c0, c1 + 1
        lo, hi = _column_range(bx, m[0, 0], float(ni), True, lo, hi)
        lo, hi = _column_range(by, m[1, 0], float(nj), True, lo, hi)
        lo, hi = _column_range(bz, m[2, 0], float(nk), True, lo, hi)
        run_idx = -1
        run_v = 0.0
        run_w = 0.0
        for cc in range(lo, hi):
            wt = w[r, cc - c0] if has_w else 1.0
            v = float(img[rr, cc])
            if wt <= 0 or v < threshold:
                continue
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


def _mean_linear(
    img: Any,
    w: Any,
    has_w: bool,
    m: Any,
    bounds: Any,
    shape: Any,
    value: Any,
    weight: Any,
    threshold: float,
) -> int:  # pragma: no cover - compiled
    """MEAN compounding, trilinear: per-corner sums are kept while the base voxel repeats
    (consecutive pixels of a row usually share it), then written once."""
    nk, nj, ni = shape[0], shape[1], shape[2]
    count = 0
    acc_v = np.zeros(8)
    acc_w = np.zeros(8)
    offsets = np.zeros(8, np.int64)
    c0, c1, r0, r1 = bounds[0], bounds[1], bounds[2], bounds[3]
    for rr in range(r0, r1 + 1):
        r = rr - r0
        bx = m[0, 1] * rr + m[0, 3]
        by = m[1, 1] * rr + m[1, 3]
        bz = m[2, 1] * rr + m[2, 3]
        lo, hi = c0, c1 + 1
        lo, hi = _column_range(bx, m[0, 0], float(ni - 1), False, lo, hi)
        lo, hi = _column_range(by, m[1, 0], float(nj - 1), False, lo, hi)
        lo, hi = _column_range(bz, m[2, 0], float(nk - 1), False, lo, hi)
        run_base = -1
        for cc in range(lo, hi):
            wt = w[r, cc - c0] if has_w else 1.0
            v = float(img[rr, cc])
            if wt <= 0 or v < threshold:
                continue
            x = bx + m[0, 0] * cc
            y = by + m[1, 0] * cc
            z = bz + m[2, 0] * cc
            if x < 0 or y < 0 or z < 0 or x > ni - 1 or y > nj - 1 or z > nk - 1:
                continue
            ix, iy, iz = int(x), int(y), int(z)
            base = ix + ni * (iy + nj * iz)
            if base != run_base:
                if run_base >= 0:
                    for k in range(8):
                        value[offsets[k]] += acc_v[k]
                        weight[offsets[k]] += acc_w[k]
                sx = 1 if ix < ni - 1 else 0
                sy = ni if iy < nj - 1 else 0
                sz = ni * nj if iz < nk - 1 else 0
                for k in range(8):
                    offsets[k] = base + (k & 1) * sx + ((k >> 1) & 1) * sy + (k >> 2) * sz
                    acc_v[k] = 0.0
                    acc_w[k] = 0.0
                run_base = base
            fx, fy, fz = x - ix, y - iy, z - iz
            gx = 1 - fx
            a0 = (1 - fy) * (1 - fz) * wt
            a1 = fy * (1 - fz) * wt
            a2 = (1 - fy) * fz * wt
            a3 = fy * fz * wt
            f = (gx * a0, fx * a0, gx * a1, fx * a1, gx * a2, fx * a2, gx * a3, fx * a3)
            for k in range(8):
                acc_w[k] += f[k]
                acc_v[k] += v * f[k]
            count += 1
        if run_base >= 0:
            for k in range(8):
                value[offsets[k]] += acc_v[k]
                weight[offsets[k]] += acc_w[k]
    return count


def _plus_mean(
    img: Any,
    w: Any,
    has_w: bool,
    m: Any,
    bounds: Any,
    shape: Any,
    value: Any,
    weight: Any,
    threshold: float,
    nearest: bool,
) -> int:  # pragma: no cover - compiled
    """PLUS's MEAN arithmetic: integer-valued running average per voxel, rounded at every
    update, with the weight kept as PLUS's 16-bit accumulation buffer (1 pixel = 256)."""
    nk, nj, ni = shape[0], shape[1], shape[2]
    c0, c1, r0, r1 = bounds[0], bounds[1], bounds[2], bounds[3]
    count = 0
    half = 0.5 if nearest else 0.0
    top = 0 if nearest else 1
    for rr in range(r0, r1 + 1):
        r = rr - r0
        for cc in range(c0, c1 + 1):
            if has_w and w[r, cc - c0] <= 0:
                continue
            v = float(img[rr, cc])
            if v < threshold:
                continue
            x = m[0, 0] * cc + m[0, 1] * rr + m[0, 3] + half
            y = m[1, 0] * cc + m[1, 1] * rr + m[1, 3] + half
            z = m[2, 0] * cc + m[2, 1] * rr + m[2, 3] + half
            if x < 0 or y < 0 or z < 0 or x > ni - top or y > nj - top or z > nk - top:
                continue
            ix, iy, iz = int(np.floor(x)), int(np.floor(y)), int(np.floor(z))
            if nearest:
                if ix >= ni or iy >= nj or iz >= nk:
                    continue
                idx = ix + ni * (iy + nj * iz)
                acc = int(weight[idx])
                if acc <= 65279:
                    new_acc = acc + 256
                    value[idx] = (int(v) * 256 + int(value[idx]) * acc) // new_acc
                    weight[idx] = min(new_acc, 65535)
                else:
                    value[idx] = int(0.99609375 * v + 0.00390625 * value[idx])
                count += 1
                continue
            fx, fy, fz = x - ix, y - iy, z - iz
            for j in range(7, -1, -1):
                dx, dy, dz = j >> 2, (j >> 1) & 1, j & 1
                f = (fx if dx else 1 - fx) * (fy if dy else 1 - fy) * (fz if dz else 1 - fz)
                if f == 0:
                    continue
                idx = (ix + dx) + ni * ((iy + dy) + nj * (iz + dz))
                prev = weight[idx] / 256.0
                a = f + prev
                value[idx] = np.floor((f * v + prev * value[idx]) / a + 0.5)
                new_acc = a * 256.0
                weight[idx] = 65535.0 if new_acc >= 65535.0 else np.floor(new_acc + 0.5)
            count += 1
    return count


def paste_plus(
    img: np.ndarray,
    w: np.ndarray | None,
    m: np.ndarray,
    bounds: tuple[int, int, int, int],
    shape: tuple[int, int, int],
    value: np.ndarray,
    weight: np.ndarray,
    threshold: float,
    nearest: bool,
) -> int:
    """Paste one frame with PLUS's MEAN arithmetic (see :func:`paste` for the arguments)."""
    weights = np.ones((1, 1), np.float32) if w is None else np.ascontiguousarray(w, np.float32)
    return int(
        _kernel("_plus_mean")(
            np.ascontiguousarray(img),
            weights,
            w is not None,
            np.ascontiguousarray(m, np.float64),
            np.asarray(bounds, np.int64),
            np.asarray(shape, np.int64),
            value,
            weight,
            threshold,
            nearest,
        )
    )


def _kernel(name: str) -> Callable[..., Any]:
    """The compiled kernel ``name`` (numba is imported on first use: it takes ~0.5 s)."""
    if not _COMPILED:
        from numba import njit

        global _column_range
        _column_range = njit(cache=True, inline="always")(_column_range)
        for fn in (_splat_nearest, _splat_linear, _mean_nearest, _mean_linear, _plus_mean):
            _COMPILED[fn.__name__] = njit(cache=True, nogil=True)(fn)
    return _COMPILED[name]


def paste(
    img: np.ndarray,
    w: np.ndarray | None,
    m: np.ndarray,
    bounds: tuple[int, int, int, int],
    shape: tuple[int, int, int],
    value: np.ndarray,
    weight: np.ndarray,
    stamp: np.ndarray,
    frame: int,
    mode: int,
    threshold: float,
    nearest: bool,
) -> int:
    """Paste pixels ``bounds = (c0, c1, r0, r1)`` (inclusive) of frame ``img`` with numba.

    ``w`` (optional) holds per-pixel weights for that rectangle; ``m`` maps pixel
    ``(col, row, 0, 1)`` to voxel index coordinates (3x4).
    """
    image = np.ascontiguousarray(img)
    weights = np.ones((1, 1), np.float32) if w is None else np.ascontiguousarray(w, np.float32)
    args = (
        image,
        weights,
        w is not None,
        np.ascontiguousarray(m, np.float64),
        np.asarray(bounds, np.int64),
        np.asarray(shape, np.int64),
        value,
        weight,
    )
    if mode == MODE_MEAN:
        return int(_kernel("_mean_nearest" if nearest else "_mean_linear")(*args, threshold))
    kernel = _kernel("_splat_nearest" if nearest else "_splat_linear")
    return int(kernel(*args, stamp, frame, mode, threshold))
