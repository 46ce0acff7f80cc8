"""Hole filling known answers for the nearest, Gaussian and stick kernels."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand.holes import fill_holes


def _slab_with_gap() -> tuple[np.ndarray, np.ndarray]:
    data = np.zeros((5, 5, 5), np.float32)
    mask = np.zeros((5, 5, 5), bool)
    data[0], mask[0] = 10.0, True
    data[4], mask[4] = 30.0, True
    return data, mask


@pytest.mark.parametrize("method", ["nearest", "gaussian", "stick"])
def test_single_hole_in_constant_volume(method: str) -> None:
    data = np.full((5, 5, 5), 7.0, np.float32)
    mask = np.ones_like(data, bool)
    mask[2, 2, 2] = False
    data[2, 2, 2] = 0
    out, filled = fill_holes(data, mask, method)  # type: ignore[arg-type]
    assert filled.all() and out[2, 2, 2] == pytest.approx(7.0)
    np.testing.assert_array_equal(out[mask], data[mask])


def test_stick_interpolates_linearly_across_gap() -> None:
    data, mask = _slab_with_gap()
    out, filled = fill_holes(data, mask, "stick", stick_length=4)
    assert filled.all()
    np.testing.assert_allclose(out[:, 2, 2], [10, 15, 20, 25, 30], atol=1e-5)


def test_nearest_respects_kernel_size() -> None:
    data, mask = _slab_with_gap()
    out, filled = fill_holes(data, mask, "nearest", size=3)  # radius 1: planes 1 and 3 only
    assert filled[1].all() and filled[3].all() and not filled[2].any()
    assert out[1, 2, 2] == pytest.approx(10.0) and out[3, 2, 2] == pytest.approx(30.0)


def test_gaussian_min_ratio() -> None:
    data, mask = _slab_with_gap()
    _, strict = fill_holes(data, mask, "gaussian", size=3, min_ratio=0.9)
    assert not strict[1:4].any()
    out, loose = fill_holes(data, mask, "gaussian", size=3, sigma=1.0, min_ratio=0.1)
    assert loose[1].all() and out[1, 2, 2] == pytest.approx(10.0)


def test_bad_hole_filling_requests() -> None:
    data, mask = _slab_with_gap()
    with pytest.raises(ConfigError, match="fill method"):
        fill_holes(data, mask, "cubic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="size"):
        fill_holes(data, mask, "nearest", size=0)
    with pytest.raises(DataError, match="empty"):
        fill_holes(data, np.zeros_like(mask), "nearest")
    with pytest.raises(DataError, match="shapes"):
        fill_holes(data, mask[:2], "nearest")
