"""Cross-check against ustb's SVD filter (optional: ``pip install -e '.[crosscheck]'``)."""

import numpy as np
import pytest

from sonoedge.processing.clutter import svd_filter

ustb_svd = pytest.importorskip("ustb._svd")


@pytest.mark.parametrize(("low", "high"), [(1, 16), (3, 12)])
def test_svd_filter_matches_ustb(low, high):
    rng = np.random.default_rng(0)
    shape = (16, 12, 10)
    iq = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    iq += 50 * (rng.standard_normal(shape[1:]) + 1j * rng.standard_normal(shape[1:]))[None]
    ours = svd_filter(iq, "fixed", low=low, high=high)
    # ustb: frames on the last axis, MATLAB 1-based inclusive component range
    ref = ustb_svd.svd_filter_frames(np.moveaxis(iq, 0, -1).astype(np.complex128), [low + 1, high])
    np.testing.assert_allclose(ours, np.moveaxis(ref, -1, 0), atol=1e-4 * np.abs(ref).max())
