"""Speckle B-mode: Rayleigh statistics, clean targets, geometries, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.errors import ConfigError
from sonoedge.synth.speckle import simulate_bmode
from sonoedge.synth.transducer import get_preset

L11 = get_preset("L11-5v")


def test_fully_developed_speckle_has_rayleigh_statistics() -> None:
    ratios, log_stds = [], []
    for seed in range(3):
        s = simulate_bmode(L11, 256, 256, seed=seed, phantom="homogeneous")
        env = np.abs(s.iq[16:-16, 16:-16]).astype(np.float64).ravel()
        ratios.append(env.mean() / env.std())
        log_stds.append(np.std(20 * np.log10(env)))
    assert np.mean(ratios) == pytest.approx(1.91, abs=0.05)
    assert np.mean(log_stds) == pytest.approx(5.57, abs=0.2)


def test_discrete_scatterers_approach_rayleigh_with_density() -> None:
    def ratio(per_cell: float) -> float:
        s = simulate_bmode(
            L11, 96, 96, 0, "homogeneous", (40e-6, 80e-6), scatterers_per_cell=per_cell
        )
        env = np.abs(s.iq[8:-8, 8:-8]).astype(np.float64).ravel()
        return float(env.mean() / env.std())

    sparse, dense = ratio(2.0), ratio(60.0)
    assert sparse < 1.80 < dense
    assert dense == pytest.approx(1.91, abs=0.08)


def test_clean_target_matches_speckle_mean_and_shows_the_cyst() -> None:
    s = simulate_bmode(L11, 128, 128, seed=4, phantom="cyst")
    assert s.speckled.dtype == np.float32 and s.clean.dtype == np.float32
    assert s.speckled.shape == s.clean.shape == (128, 128)
    assert s.speckled.min() >= 0 and s.speckled.max() <= 1
    corner = (slice(8, 40), slice(8, 40))
    assert s.clean[corner].mean() == pytest.approx(s.speckled[corner].mean(), abs=0.03)
    assert s.clean[corner].std() < 0.02 < s.speckled[corner].std()
    centre = s.clean[60:68, 60:68]
    assert centre.max() < 0.2 < s.clean[corner].min()


@pytest.mark.parametrize("preset", ["convex-3.5", "phased-2.7"])
def test_sector_probes_are_scan_converted(preset: str) -> None:
    s = simulate_bmode(get_preset(preset), 96, 96, seed=0, phantom="homogeneous")
    assert s.iq_grid == "polar" and s.speckled.shape == (96, 96)
    # Outside the sector (top corners) is empty; the centre line is tissue.
    assert s.speckled[0, 0] == 0 and s.speckled[0, -1] == 0
    assert s.clean[40:60, 44:52].mean() > 0.5


def test_same_seed_same_image_and_bad_input() -> None:
    a = simulate_bmode(L11, 64, 64, seed=9)
    b = simulate_bmode(L11, 64, 64, seed=9)
    c = simulate_bmode(L11, 64, 64, seed=10)
    assert np.array_equal(a.speckled, b.speckled) and not np.array_equal(a.speckled, c.speckled)
    with pytest.raises(ConfigError, match="height"):
        simulate_bmode(L11, 0, 64, seed=0)
    with pytest.raises(ConfigError, match="phantom"):
        simulate_bmode(L11, 64, 64, seed=0, phantom="banana")
    with pytest.raises(ConfigError, match="db_range"):
        simulate_bmode(L11, 64, 64, seed=0, db_range=(10.0, -10.0))


def test_wires_phantom_is_bright_reflectors_in_an_anechoic_field() -> None:
    """Wires in water (as the PLUS N-wire recordings): black background, a few small reflectors
    at the top of the display range."""
    s = simulate_bmode(get_preset("L11-5v"), 128, 128, seed=3, phantom="wires", db_range=(-50, 15))
    img = np.asarray(s.speckled)
    assert np.median(img) < 0.02  # the water is anechoic
    assert img.max() > 0.95  # reflectors reach the top of the display range
    assert 0.0002 < np.mean(img > 0.5) < 0.02  # and are small and few
    broad = simulate_bmode(
        get_preset("L11-5v"), 128, 128, seed=3, phantom="wires_broad", db_range=(-50, 15)
    )
    wide = np.asarray(broad.speckled)
    assert np.median(wide) < 0.02
    # the same points plus bright discs: several times the saturated area
    assert np.mean(wide > 0.95) > 3 * np.mean(img > 0.95)
