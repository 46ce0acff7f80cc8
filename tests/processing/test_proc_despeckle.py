import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.metrics import enl, psnr
from sonoedge.processing.despeckle import bilateral, median, nlm, srad
from sonoedge.processing.noise import noise_sigma

FILTERS = {"srad": srad, "nlm": nlm, "median": median, "bilateral": bilateral}


def _phantom(seed: int = 0, sigma: float = 0.08):
    z, x = np.mgrid[:64, :64]
    clean = np.where((z - 32) ** 2 + (x - 32) ** 2 < 15**2, 0.8, 0.3).astype(np.float32)
    rng = np.random.default_rng(seed)
    return clean, clean + sigma * rng.standard_normal(clean.shape).astype(np.float32)


def test_noise_sigma_known_answer():
    rng = np.random.default_rng(1)
    img = 0.5 + 0.05 * rng.standard_normal((128, 128))
    assert noise_sigma(img) == pytest.approx(0.05, rel=0.05)
    ramp = np.add.outer(np.arange(32.0), np.arange(32.0))  # smooth: no noise
    assert noise_sigma(ramp) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filters_keep_constants_and_remove_noise(name):
    fn = FILTERS[name]
    flat = np.full((32, 32), 0.4, np.float32)
    np.testing.assert_allclose(fn(flat), flat, atol=2e-3)
    clean, noisy = _phantom()
    out = fn(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(clean, out, 1.0) > psnr(clean, noisy, 1.0) + 3


def test_srad_raises_enl_of_speckle():
    rng = np.random.default_rng(2)
    speckle = np.abs(rng.standard_normal((64, 64)) + 1j * rng.standard_normal((64, 64)))
    roi = np.ones_like(speckle, bool)
    out = srad(speckle, n_iter=40)
    assert enl(out, roi) > 5 * enl(speckle, roi)
    assert out.mean() == pytest.approx(speckle.mean(), rel=0.05)  # diffusion keeps the mean


def test_median_large_kernel_matches_definition():
    rng = np.random.default_rng(3)
    img = rng.random((9, 9)).astype(np.float32)
    out = median(img, ksize=7)
    padded = np.pad(img, 3, mode="edge")
    assert out[4, 4] == pytest.approx(np.median(padded[4:11, 4:11]))


def test_bad_inputs():
    with pytest.raises(DataError, match="2-D"):
        srad(np.ones((2, 3, 4)))
    with pytest.raises(DataError, match="dtype"):
        nlm(np.ones((8, 8), np.complex64))
    with pytest.raises(ConfigError, match="ksize"):
        median(np.ones((8, 8)), ksize=4)
    with pytest.raises(ConfigError, match="dt"):
        srad(np.ones((8, 8)), dt=2.0)
