"""Degradation model: blur and noise strengths, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.synth.degradation import degrade, noise_sigmas


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((96, 96), 0.5, dtype=np.float32)
    img[40:56, 40:56] = 0.9
    return img + rng.normal(0, 0.02, img.shape).astype(np.float32)


def test_gaussian_noise_has_the_stated_sigma() -> None:
    flat = np.full((128, 128), 0.4, dtype=np.float32)
    out, info = degrade(flat, seed=1, blur_sigma_px=(0.0, 0.0), severity="heavy")
    assert np.std(out - flat) == pytest.approx(noise_sigmas(1.0)["gaussian_sigma"], rel=0.05)
    assert info["blur_sigma_px"] == (0.0, 0.0) and info["noise"] == "gaussian"


def test_blur_is_anisotropic_as_requested() -> None:
    img = np.zeros((65, 65), dtype=np.float32)
    img[32, 32] = 1000.0  # far above the severity-0 noise (sigma 0.01)
    out, _ = degrade(img, seed=0, blur_sigma_px=(3.0, 1.0), severity=0.0)
    rows = out[:, 32] - np.median(out)
    cols = out[32, :] - np.median(out)
    spread = lambda p: np.sqrt(np.sum(p.clip(0) * (np.arange(65) - 32) ** 2) / np.sum(p.clip(0)))  # noqa: E731
    assert spread(rows) > 2.0 * spread(cols)


def test_fourier_noise_keeps_the_mean_and_hurts_more_when_heavier() -> None:
    img = _image()
    light, info_light = degrade(img, seed=2, noise="fourier", severity="light")
    _, info_heavy = degrade(img, seed=2, noise="fourier", severity="heavy")
    assert light.mean() == pytest.approx(img.mean(), abs=1e-3)
    assert info_heavy["psnr_db"] < info_light["psnr_db"]
    again, _ = degrade(img, seed=2, noise="fourier", severity="light")
    assert np.array_equal(light, again)
    assert 0.3 <= info_light["blur_sigma_px"][0] <= 0.5 + 2.5 * 0.2


def test_bad_input() -> None:
    with pytest.raises(DataError, match="2-D"):
        degrade(np.zeros((2, 8, 8)), seed=0)
    with pytest.raises(DataError, match="NaN"):
        degrade(np.full((8, 8), np.nan), seed=0)
    with pytest.raises(ConfigError, match="severity"):
        degrade(_image(), seed=0, severity=2.0)
    with pytest.raises(ConfigError, match="noise"):
        degrade(_image(), seed=0, noise="poisson")
    with pytest.raises(ConfigError, match="blur_sigma_px"):
        degrade(_image(), seed=0, blur_sigma_px=(-1.0, 1.0))
