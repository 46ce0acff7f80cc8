"""Doppler: the two-way phase of moving scatterers, scene ground truth, views, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonoedge.errors import ConfigError
from sonoedge.synth.doppler import simulate_doppler
from sonoedge.synth.imaging import Grid, Imager
from sonoedge.synth.transducer import get_preset
from sonoedge.types import SPEED_OF_SOUND_M_S

L11 = get_preset("L11-5v")
SPACING = (0.1e-3, 0.15e-3)


@pytest.mark.parametrize("v_m_s", [-0.02, 0.005, 0.03])
def test_axial_motion_gives_the_doppler_shift(v_m_s: float) -> None:
    grid = Grid((48, 48), (50e-6, 100e-6), (0.018, -2.4e-3))
    imager = Imager(L11, grid)
    prf = 5000.0
    t = np.arange(8) / prf
    z = 0.0192 + v_m_s * t
    iq = imager.render(z[:, None], np.zeros((8, 1)), np.ones((8, 1)))
    centre = iq[:, 24, 24]
    lag1 = np.angle(np.sum(centre[1:] * np.conj(centre[:-1])))
    expected = -2 * math.pi * (2 * v_m_s * L11.center_frequency_hz / SPEED_OF_SOUND_M_S) / prf
    assert lag1 == pytest.approx(expected, abs=0.02)


def test_doppler_scene_ground_truth_and_views() -> None:
    scene = simulate_doppler(L11, 32, 1000.0, 64, 64, seed=5, spacing_m=SPACING)
    assert scene.iq.shape == (32, 64, 64) and scene.iq.dtype == np.complex64
    assert scene.vessel_mask.dtype == np.bool_ and scene.vessel_mask.any()
    assert scene.blood_power.dtype == np.float32
    inside = scene.blood_power[scene.vessel_mask].mean()
    outside = scene.blood_power[~scene.vessel_mask].mean()
    assert inside > 5 * outside
    # Blood is 25-40 dB below tissue (mean over the lumen, relative to background tissue).
    assert -42 < 10 * np.log10(inside) < -23
    assert -40 <= scene.blood_db <= -25
    assert np.all(np.abs(scene.axial_velocity_m_s) <= 0.05 + 1e-9)
    short = scene.view(8)
    assert short.n_frames == 8 and np.array_equal(short.iq, scene.iq[:8])
    assert short.vessel_mask is scene.vessel_mask
    assert scene.ensemble().prf_hz == 1000.0
    with pytest.raises(ConfigError, match="n_frames"):
        scene.view(64)


def test_clutter_filter_reveals_the_vessels() -> None:
    scene = simulate_doppler(L11, 64, 1000.0, 64, 64, seed=2, spacing_m=SPACING, motion_scale=0.5)
    n, h, w = scene.iq.shape
    casorati = scene.iq.reshape(n, -1).T
    u, s, vh = np.linalg.svd(casorati, full_matrices=False)
    filtered = casorati - (u[:, :4] * s[:4]) @ vh[:4]
    power = np.mean(np.abs(filtered) ** 2, axis=1).reshape(h, w)
    inside, outside = power[scene.vessel_mask].mean(), power[~scene.vessel_mask].mean()
    assert inside > 3 * outside


def test_doppler_is_deterministic_and_checks_input() -> None:
    a = simulate_doppler(L11, 4, 1000.0, 32, 32, seed=1)
    b = simulate_doppler(L11, 4, 1000.0, 32, 32, seed=1)
    assert np.array_equal(a.iq, b.iq)
    with pytest.raises(ConfigError, match="n_frames"):
        simulate_doppler(L11, 0, 1000.0, 32, 32, seed=1)
    with pytest.raises(ConfigError, match="prf_hz"):
        simulate_doppler(L11, 4, -1.0, 32, 32, seed=1)
    with pytest.raises(ConfigError, match="blood_db_range"):
        simulate_doppler(L11, 4, 1000.0, 32, 32, seed=1, blood_db_range=(-20.0, 5.0))
