"""Transducer model: presets, PSF shape and widths (analytic and PyMUST), bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.errors import ConfigError
from sonoedge.synth import transducer as T
from sonoedge.types import ProbeInfo

L11 = T.get_preset("L11-5v")


def test_presets_cover_the_documented_probes() -> None:
    assert {"L11-5v", "linear-7.5", "convex-3.5"} <= set(T.PRESETS)
    assert T.get_preset("convex-3.5").geometry == "convex"
    assert L11.center_frequency_hz == pytest.approx(7.6e6)
    with pytest.raises(ConfigError, match="L11-5v"):
        T.get_preset("nope")


def test_psf_is_centred_complex_with_unit_peak() -> None:
    k = T.psf(L11, (20e-6, 20e-6), f_number=1.5)
    assert k.dtype == np.complex64
    h, w = k.shape
    assert h % 2 == 1 and w % 2 == 1
    assert np.unravel_index(np.argmax(np.abs(k)), k.shape) == (h // 2, w // 2)
    assert abs(k[h // 2, w // 2]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("f_number", [1.0, 1.5, 2.0])
def test_narrowband_lateral_fwhm_matches_the_sinc_formula(f_number: float) -> None:
    lam = L11.wavelength_m
    x = np.arange(-400, 401) * lam / 100
    profile = T.lateral_profile(L11, x, f_number, n_cycles=40.0, directivity=False)
    fwhm = T.measure_fwhm(profile, lam / 100)
    assert fwhm == pytest.approx(1.2067 * lam * f_number, rel=0.02)
    focused = T.lateral_profile(L11, x, f_number, "focused", n_cycles=40.0, directivity=False)
    assert T.measure_fwhm(focused, lam / 100) == pytest.approx(0.8859 * lam * f_number, rel=0.02)


def test_axial_width_shrinks_with_bandwidth_and_grows_with_cycles() -> None:
    z = np.arange(-500, 501) * 4e-6

    def width(bw: float, cycles: float = 1.0) -> float:
        probe = ProbeInfo(center_frequency_hz=5e6, bandwidth_fraction=bw)
        return T.measure_fwhm(T.axial_pulse(probe, z, cycles), 4e-6)

    assert width(0.4) > 1.6 * width(0.8)
    assert width(0.6, 4.0) > 1.5 * width(0.6, 1.0)
    # The Gaussian-response textbook value is a lower bound; the flat-topped response is wider.
    probe = ProbeInfo(center_frequency_hz=5e6, bandwidth_fraction=0.6)
    analytic = T.analytic_fwhm_m(probe, 1.5, n_cycles=1.0)[0]
    assert analytic < width(0.6) < 1.3 * analytic


def test_bad_parameters_name_the_parameter_and_range() -> None:
    with pytest.raises(ConfigError, match="center_frequency_hz"):
        ProbeInfo(center_frequency_hz=-5e6)
    with pytest.raises(ConfigError, match=r"bandwidth_fraction.*2"):
        ProbeInfo(bandwidth_fraction=2.5)
    with pytest.raises(ConfigError, match=r"f_number.*0\.25"):
        T.psf(L11, (1e-4, 1e-4), f_number=0)
    with pytest.raises(ConfigError, match="spacing_m"):
        T.psf(L11, (0.0, 1e-4))
    with pytest.raises(ConfigError, match="n_cycles"):
        T.axial_pulse(L11, np.zeros(3), n_cycles=-1)


def _pymust_fwhm(f_numbers: list[float]) -> dict[float, tuple[float, float]]:
    pymust = pytest.importorskip("pymust")
    p = pymust.getparam("L11-5v")
    p.fs = 4 * p.fc
    tx = np.zeros((1, 128))
    p.TXdelay = tx
    rf, _ = pymust.simus(np.array([0.0]), np.array([0.02]), np.array([1.0]), tx, p)
    iq = pymust.rf2iq(rf, p.fs, p.fc)
    dx = 1540 / p.fc / 12
    xs = np.arange(-1.0e-3, 1.0e-3, dx)
    zs = np.arange(0.0197, 0.0203, dx)
    xg, zg = np.meshgrid(xs, zs)
    out = {}
    for f in f_numbers:
        p.fnumber = f
        m = pymust.dasmtx(iq, xg, zg, p)
        img = np.abs((m @ iq.flatten(order="F")).reshape(xg.shape, order="F"))
        i, j = np.unravel_index(np.argmax(img), img.shape)
        out[f] = (T.measure_fwhm(img[:, j], dx), T.measure_fwhm(img[i, :], dx))
    return out


@pytest.mark.slow
def test_psf_fwhm_within_10_percent_of_pymust() -> None:
    reference = _pymust_fwhm([1.0, 1.5, 2.0])
    dx = L11.wavelength_m / 12
    for f, (ref_axial, ref_lateral) in reference.items():
        k = T.psf(L11, (dx, dx), f_number=f)
        h, w = k.shape
        assert T.measure_fwhm(k[:, w // 2], dx) == pytest.approx(ref_axial, rel=0.10)
        assert T.measure_fwhm(k[h // 2, :], dx) == pytest.approx(ref_lateral, rel=0.10)
