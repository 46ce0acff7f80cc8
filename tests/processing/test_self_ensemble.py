"""Geometric self-ensemble of the image students (:mod:`sonoedge.zoo.self_ensemble`)."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.errors import ConfigError
from sonoedge.zoo import self_ensemble


@pytest.mark.parametrize("n", self_ensemble.SIZES)
def test_every_copy_maps_back_to_the_image(n: int) -> None:
    img = np.random.default_rng(0).uniform(0, 1, (12, 7)).astype(np.float32)
    seen: list[tuple[int, ...]] = []

    def run(view: np.ndarray) -> np.ndarray:
        seen.append(view.shape)
        return view

    out = self_ensemble.average(run, img, n)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, img, atol=1e-7)
    assert len(seen) == n
    assert seen.count((7, 12)) == (4 if n == 8 else 0)  # transposed copies only at 8


def test_copies_are_distinct_views_of_the_image() -> None:
    """Against a network that is not equivariant (it marks the top-left pixel), the ensemble is
    the mean of the marks mapped back: one at each corner reached by the copies."""
    img = np.zeros((6, 6), np.float32)

    def mark_top_left(view: np.ndarray) -> np.ndarray:
        out = view.copy()
        out[0, 0] = 1.0
        return out

    corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]
    two = self_ensemble.average(mark_top_left, img, 2)
    assert two[0, 0] == pytest.approx(0.5) and two[0, -1] == pytest.approx(0.5)
    four = self_ensemble.average(mark_top_left, img, 4)
    assert [four[c] for c in corners] == pytest.approx([0.25] * 4)
    eight = self_ensemble.average(mark_top_left, img, 8)  # each corner twice (a transposed copy)
    assert [eight[c] for c in corners] == pytest.approx([0.25] * 4)
    assert four.sum() == pytest.approx(1.0) and eight.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [0, 3, 16, True, 2.0, "8", None])
def test_other_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="self_ensemble"):
        self_ensemble.check_size(bad)
