import cv2
import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.metrics import fwhm, point_fwhm
from sonoedge.processing.deconvolution import (
    deconvolve_nlm,
    gaussian_psf,
    probe_psf,
    psf_fwhm_m,
    richardson_lucy,
    wiener,
)
from sonoedge.types import ProbeInfo


def test_gaussian_psf_has_requested_fwhm():
    k = gaussian_psf((5.0, 3.0), size_px=(41, 41))
    assert k.sum() == pytest.approx(1.0)
    assert fwhm(k[:, 20]) == pytest.approx(5.0, rel=0.02)
    assert fwhm(k[20, :]) == pytest.approx(3.0, rel=0.02)


def test_probe_psf_widths():
    probe = ProbeInfo(center_frequency_hz=5e6, bandwidth_fraction=0.5)
    axial, lateral = psf_fwhm_m(probe, f_number=2.0)
    assert axial == pytest.approx(1540 * 0.441 / (2 * 0.5 * 5e6))
    assert lateral == pytest.approx(1540 / 5e6 * 2.0)
    k = probe_psf(probe, (axial / 4, lateral / 4), f_number=2.0)
    assert k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1


def _blurred_points():
    img = np.zeros((48, 48), np.float32)
    img[24, 24] = 1.0
    img[10, 30] = 0.5
    psf = gaussian_psf((6.0, 6.0))
    return img, psf, cv2.filter2D(img, -1, psf[::-1, ::-1], borderType=cv2.BORDER_REFLECT)


def test_wiener_sharpens_point():
    _, psf, blurred = _blurred_points()
    before = point_fwhm(blurred, (1.0, 1.0))
    after = point_fwhm(wiener(blurred, psf, nsr=1e-5), (1.0, 1.0))
    assert before[0] == pytest.approx(6.0, rel=0.05)
    assert after[0] < 0.6 * before[0] and after[1] < 0.6 * before[1]


def test_richardson_lucy_sharpens_and_keeps_flux():
    _, psf, blurred = _blurred_points()
    out = richardson_lucy(blurred, psf, n_iter=50)
    assert out.min() >= 0
    assert out.sum() == pytest.approx(blurred.sum(), rel=0.02)
    assert out.max() > 3 * blurred.max()
    assert point_fwhm(out, (1.0, 1.0))[1] < 0.6 * point_fwhm(blurred, (1.0, 1.0))[1]


def test_bad_inputs():
    psf = gaussian_psf((3.0, 3.0))
    with pytest.raises(DataError, match="negative"):
        richardson_lucy(-np.ones((16, 16)), psf)
    with pytest.raises(DataError, match="no larger"):
        wiener(np.ones((4, 4)), psf)
    with pytest.raises(DataError, match="psf"):
        wiener(np.ones((16, 16)), -psf)


def test_deconvolve_nlm_sharpens_a_blurred_point_and_refuses_unknown_kinds() -> None:
    """The classical enhancement baseline: Gaussian-PSF deconvolution, then NLM, in [0, 1]."""
    img = np.zeros((33, 33), np.float32)
    img[16, 16] = 1.0
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)
    for kind, param in (("wiener", 0.01), ("richardson_lucy", 30)):
        out = deconvolve_nlm(kind, blurred, (1.5, 1.5), param, 0.0)
        assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
        assert out[16, 16] > 2 * blurred[16, 16]
    with pytest.raises(ConfigError, match="kind"):
        deconvolve_nlm("median", blurred, (1.5, 1.5), 1, 0.0)
