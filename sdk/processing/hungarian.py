"""Minimum-cost assignment (Hungarian method, shortest augmenting paths with potentials).

Written for sonoedge so the runtime needs no scipy. ``O(n^2 m)`` for an ``n x m`` cost matrix
(``n <= m``; a taller matrix is transposed).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonoedge.errors import DataError

IntArray = npt.NDArray[np.intp]


def linear_sum_assignment(cost: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Rows and columns of a minimum-cost complete assignment of ``cost`` (finite, 2-D).

    Every row is assigned when ``rows <= cols`` (else every column); the pairs ``(rows[k],
    cols[k])`` minimise ``sum cost[rows, cols]`` and come sorted by row.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise DataError(f"cost has shape {c.shape}: expected a 2-D matrix")
    if not np.all(np.isfinite(c)):
        raise DataError("cost contains NaN/Inf: use a large finite value for forbidden pairs")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty.copy()
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, np.intp)  # owner[j]: row (1-based) assigned to column j, 0 = free
    way = np.zeros(m + 1, np.intp)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.nonzero(owner[1:])[0]
    rows = owner[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.intp), cols[order].astype(np.intp)


def match_within(distance: npt.ArrayLike, max_distance: float) -> tuple[IntArray, IntArray]:
    """Pairs ``(i, j)`` of a minimum-total-distance matching using only ``distance <= max``.

    Forbidden pairs get a cost larger than any sum of allowed ones, so the matching first has the
    most pairs possible and then the smallest total distance.
    """
    d = np.asarray(distance, dtype=np.float64)
    if d.size == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty.copy()
    allowed = d <= max_distance
    if not allowed.any():
        empty = np.zeros(0, np.intp)
        return empty, empty.copy()
    big = (min(d.shape) + 1) * (float(d[allowed].max()) + 1.0)
    rows, cols = linear_sum_assignment(np.where(allowed, d, big))
    keep = allowed[rows, cols]
    return rows[keep], cols[keep]
