"""Optional numba kernels for pasting one frame (``pip install 'sonoedge[fast]'``).

Same arithmetic as the numpy path in :mod:`sonoedge.freehand.reconstruct` (float64 coordinates
here, so a pixel that lands within ~1e-6 voxel of a rounding boundary may go the other way).
Pixels are visited in row-major order, so results are deterministic. ``AVAILABLE`` is False when
numba is not installed; the reconstructor then uses numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from numba import njit
except ImportError:  # numba is an optional extra
    AVAILABLE = False
else:
    AVAILABLE = True

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


if AVAILABLE:
    _column_range = njit(cache=True, inline="always")(_column_range)
    splat_nearest = njit(cache=True, nogil=True)(_splat_nearest)
    splat_linear = njit(cache=True, nogil=True)(_splat_linear)


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
    kernel = splat_nearest if nearest else splat_linear
    weights = np.ones((1, 1), np.float32) if w is None else w
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
