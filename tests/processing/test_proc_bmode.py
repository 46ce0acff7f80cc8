import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing.bmode import (
    attenuation_gain_db_per_m,
    bmode,
    envelope,
    log_compress,
    tgc,
    to_uint8,
)


def test_envelope_is_magnitude_and_ensemble_mean():
    iq = np.array([[3 + 4j, 1j], [0, -2]], np.complex64)
    np.testing.assert_allclose(envelope(iq), [[5, 1], [0, 2]])
    ens = np.stack([iq, 2 * iq])
    np.testing.assert_allclose(envelope(ens), 1.5 * np.abs(iq))


def test_log_compress_known_levels():
    amp = np.array([[1.0, 0.1, 0.001, 1e-6]], np.float32)  # 0, -20, -60, -120 dB
    out = log_compress(amp, dynamic_range_db=60)
    np.testing.assert_allclose(out, [[1.0, 40 / 60, 0.0, 0.0]], atol=1e-6)
    out = log_compress(amp, dynamic_range_db=60, gain_db=20)
    np.testing.assert_allclose(out[0, :3], [1.0, 1.0, 20 / 60], atol=1e-6)
    out = log_compress(amp, dynamic_range_db=40, reference=0.1)
    np.testing.assert_allclose(out[0, :3], [1.0, 1.0, 0.0], atol=1e-6)


def test_tgc_slope_and_curve():
    img = np.ones((3, 2), np.float32)
    out = tgc(img, axial_spacing_m=0.01, gain_db_per_m=2000)  # 0, 20, 40 dB
    np.testing.assert_allclose(out[:, 0], [1, 10, 100], rtol=1e-5)
    out = tgc(img, axial_spacing_m=0.01, curve_db=[0, 40])  # 0, 20, 40 dB interpolated
    np.testing.assert_allclose(out[:, 1], [1, 10, 100], rtol=1e-5)
    assert attenuation_gain_db_per_m(5e6, 0.5) == pytest.approx(500.0)


def test_bmode_chain_and_uint8():
    rng = np.random.default_rng(0)
    iq = (rng.standard_normal((16, 8)) + 1j * rng.standard_normal((16, 8))).astype(np.complex64)
    img = bmode(iq, dynamic_range_db=50, tgc_db_per_m=100, axial_spacing_m=1e-4)
    assert img.shape == (16, 8) and img.dtype == np.float32
    assert img.max() == pytest.approx(1.0) and img.min() >= 0
    u8 = to_uint8(np.array([[0, 0.5, 1.0]], np.float32))
    np.testing.assert_array_equal(u8, [[0, 128, 255]])


@pytest.mark.parametrize(
    "bad",
    [
        np.ones((4, 4), np.float32),  # real, not IQ
        np.full((4, 4), np.nan + 0j, np.complex64),
        np.zeros((0, 4), np.complex64),
        np.zeros((2, 2, 2, 2), np.complex64),
    ],
)
def test_bmode_rejects_bad_iq(bad):
    with pytest.raises(DataError):
        bmode(bad)


def test_bad_parameters_name_themselves():
    with pytest.raises(ConfigError, match="dynamic_range_db"):
        log_compress(np.ones((2, 2)), dynamic_range_db=0)
    with pytest.raises(ConfigError, match="axial_spacing_m"):
        bmode(np.ones((2, 2), np.complex64), tgc_db_per_m=10)
    with pytest.raises(DataError, match="negative"):
        log_compress(-np.ones((2, 2)))
