import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing.clutter import (
    casorati,
    color_doppler,
    energy_cutoff,
    gram_eig,
    power_doppler,
    ssm_cutoffs,
    svd_cutoffs,
    svd_filter,
)

N, H, W = 24, 16, 12


def _scene(seed: int = 0):
    """Tissue constant in time (40 dB up), blood in rows 6..9 whose pixels each carry a random
    Doppler frequency, and white noise 30 dB below the blood."""
    rng = np.random.default_rng(seed)
    tissue = 100 * (rng.standard_normal((H, W)) + 1j * rng.standard_normal((H, W)))
    blood = np.zeros((N, H, W), complex)
    vessel = np.zeros((H, W), bool)
    vessel[6:10] = True
    k = int(vessel.sum())
    amp = rng.standard_normal(k) + 1j * rng.standard_normal(k)
    freq = rng.uniform(0.5, 2.5, k) * rng.choice([-1, 1], k)
    blood[:, vessel] = amp[None] * np.exp(1j * np.outer(np.arange(N), freq))
    noise = 0.03 * (rng.standard_normal((N, H, W)) + 1j * rng.standard_normal((N, H, W)))
    return (tissue[None] + blood + noise).astype(np.complex64), blood, vessel


def test_casorati_layout():
    iq = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.complex64)
    s = casorati(iq)
    assert s.shape == (12, 2)
    np.testing.assert_array_equal(s[:, 1], iq[1].ravel())


def test_gram_matches_full_svd():
    iq, _, _ = _scene()
    s = casorati(iq)
    sv_g, v_g = gram_eig(s, "gram")
    sv_f, v_f = gram_eig(s, "full")
    np.testing.assert_allclose(sv_g, sv_f, rtol=1e-3)
    # same subspaces: |<v_g, v_f>| = 1 for the well-separated leading components
    np.testing.assert_allclose(np.abs(np.sum(v_g[:, :3].conj() * v_f[:, :3], 0)), 1, atol=1e-4)
    np.testing.assert_allclose(
        svd_filter(iq, low=1, solver="gram"), svd_filter(iq, low=1, solver="full"), atol=1e-2
    )


def test_fixed_cutoff_removes_rank_one_tissue():
    iq, blood, vessel = _scene()
    out = svd_filter(iq, "fixed", low=1)
    # tissue is the one constant component: the filter leaves the blood's fluctuation about its
    # temporal mean (what lies in the constant vector's direction goes with the tissue)
    fluct = blood - blood.mean(axis=0, keepdims=True)
    err = np.abs(out - fluct).mean() / np.abs(fluct[:, vessel]).mean()
    assert err < 0.05
    pd = power_doppler(out)
    assert pd[vessel].mean() > pd[~vessel].mean() + 20


def test_energy_cutoff_known_answer():
    assert energy_cutoff([10.0, 1.0, 1.0], 0.9) == 1  # 100/102 >= 0.9
    assert energy_cutoff([3.0, 3.0, 1.0, 1.0], 0.9) == 2  # 9/20, 18/20 >= 0.9
    assert energy_cutoff([0.0, 0.0], 0.5) == 1


def test_ssm_cutoffs_find_the_blocks():
    ssm = np.full((10, 10), 0.1)
    ssm[:3, :3] = 0.9
    ssm[3:7, 3:7] = 0.8
    np.fill_diagonal(ssm, 1.0)
    assert ssm_cutoffs(ssm) == (3, 7)


def test_adaptive_cutoffs_separate_tissue():
    iq, _, vessel = _scene(1)
    for method in ("energy", "ssm"):
        low, high = svd_cutoffs(iq, method)
        assert low >= 1 and high > low
        pd = power_doppler(svd_filter(iq, method))
        assert pd[vessel].mean() > pd[~vessel].mean() + 10, method


def test_blockwise_filter_matches_global_for_uniform_clutter():
    iq, _, vessel = _scene(2)
    whole = svd_filter(iq, "fixed", low=1)
    blocks = svd_filter(iq, "fixed", low=1, block_px=8, block_overlap=0.5)
    assert blocks.shape == iq.shape
    pd = power_doppler(blocks)
    assert pd[vessel].mean() > pd[~vessel].mean() + 20
    assert np.abs(blocks[:, vessel]).mean() == pytest.approx(
        np.abs(whole[:, vessel]).mean(), rel=0.3
    )


def test_power_doppler_known_values():
    x = np.ones((4, 1, 2), np.complex64)
    x[:, 0, 1] *= 0.1  # power 0.01 -> -20 dB
    np.testing.assert_allclose(power_doppler(x, db=False), [[1.0, 0.01]], rtol=1e-6)
    np.testing.assert_allclose(power_doppler(x), [[0.0, -20.0]], atol=1e-5)


def test_kasai_velocity_known_answer():
    f0, prf, c = 5e6, 4000.0, 1540.0
    v_true = 0.1  # m/s towards the probe
    fd = 2 * v_true * f0 / c
    n = np.arange(16)
    x = np.exp(2j * np.pi * fd * n / prf).astype(np.complex64)[:, None, None] * np.ones((1, 2, 2))
    v = color_doppler(x, prf, f0)
    np.testing.assert_allclose(v, v_true, rtol=1e-4)
    np.testing.assert_allclose(color_doppler(np.conj(x), prf, f0), -v_true, rtol=1e-4)


def test_bad_ensembles():
    with pytest.raises(DataError, match="empty"):
        svd_filter(np.zeros((0, 4, 4), np.complex64))
    with pytest.raises(DataError, match="N=2"):
        svd_filter(np.ones((2, 4, 4), np.complex64), low=2)
    with pytest.raises(DataError, match="at least 2"):
        svd_filter(np.ones((1, 4, 4), np.complex64))
    bad = np.ones((4, 4, 4), np.complex64)
    bad[1, 2, 3] = np.inf
    with pytest.raises(DataError, match="NaN/Inf"):
        svd_filter(bad)
    with pytest.raises(DataError, match="complex"):
        svd_filter(np.ones((4, 4, 4), np.float32))
    with pytest.raises(DataError, match="shape"):
        svd_filter(np.ones((4, 4), np.complex64))
    with pytest.raises(ConfigError, match="cutoff"):
        svd_filter(np.ones((4, 4, 4), np.complex64), cutoff="magic")
    with pytest.raises(ConfigError, match="prf_hz"):
        color_doppler(np.ones((4, 2, 2), np.complex64), prf_hz=0, center_frequency_hz=5e6)
