import numpy as np
import pytest

from sonoedge.errors import ConfigError
from sonoedge.metrics import psnr
from sonoedge.processing.nllr import nllr


def test_nllr_denoises_piecewise_image():
    z, x = np.mgrid[:48, :48]
    clean = (0.3 + 0.4 * (x > 20) + 0.2 * np.sin(z / 6.0)).astype(np.float32)
    rng = np.random.default_rng(0)
    noisy = clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)
    out = nllr(noisy, search_px=9)
    assert psnr(clean, out, 1.0) > psnr(clean, noisy, 1.0) + 6


def test_nllr_keeps_low_rank_images():
    flat = np.full((20, 20), 0.7, np.float32)
    np.testing.assert_allclose(nllr(flat, sigma=0.05, search_px=5), flat, atol=1e-5)
    rng = np.random.default_rng(1)
    img = rng.random((20, 20)).astype(np.float32)
    np.testing.assert_allclose(nllr(img, sigma=0.0, search_px=5), img, atol=1e-6)


def test_bad_parameters():
    with pytest.raises(ConfigError, match="patch_px"):
        nllr(np.ones((8, 8)), patch_px=12)
    with pytest.raises(ConfigError, match="search_px"):
        nllr(np.ones((8, 8)), search_px=4)
