"""Imaging engine: direct vs FFT convolution, exact rigid shifts, power calibration."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.synth.imaging import Grid, Imager, fast_size
from sonoedge.synth.transducer import get_preset

L11 = get_preset("L11-5v")


def _imager(margin_m: float = 0.0) -> Imager:
    grid = Grid((40, 48), (50e-6, 100e-6), (0.015, -2.4e-3))
    return Imager(L11, grid, transmit="focused", margin_m=margin_m)


def test_a_point_on_a_pixel_centre_images_as_the_psf() -> None:
    im = _imager()
    z0, x0 = im.grid.origin_m
    dz, dx = im.grid.spacing_m
    z, x = z0 + 20 * dz, x0 + 24 * dx
    iq = im.render([z], [x], [1.0])
    kh, kw = im.kernel.shape
    patch = iq[20 - kh // 2 : 20 + kh // 2 + 1, 24 - kw // 2 : 24 + kw // 2 + 1]
    expected = im.kernel * np.exp(-2j * im.k_rad_m * z)
    assert np.allclose(patch, expected, atol=1e-5)


def test_direct_and_fft_convolution_agree() -> None:
    im = _imager(margin_m=0.5e-3)
    rng = np.random.default_rng(0)
    z0, z1, x0, x1 = im.field_extent_m()
    z, x = rng.uniform(z0, z1, (2, 300)), rng.uniform(x0, x1, (2, 300))
    a = rng.standard_normal(300)
    direct = im.render(z, x, a)
    via_fft = im.to_image(im.spectrum(im.splat(z, x, a)))
    assert np.abs(direct - via_fft).max() < 1e-5 * np.abs(via_fft).max()


def test_moved_kernel_equals_moving_the_scatterers() -> None:
    im = _imager(margin_m=1e-3)
    rng = np.random.default_rng(1)
    dz, dx = im.grid.spacing_m
    z0, z1, x0, x1 = im.grid.extent_m()
    z, x = rng.uniform(z0, z1, 50), rng.uniform(x0, x1, 50)
    # Points on pixel centres, moved by whole and fractional pixels.
    z = z0 + np.round((z - z0) / dz) * dz
    x = x0 + np.round((x - x0) / dx) * dx
    for shift, whole_pixels in (((3 * dz, -2 * dx), True), ((0.5 * dz, 0.25 * dx), False)):
        field = np.fft.fft2(im.splat(z, x, np.ones(50)))
        moved = im.to_image(field * im.moved_kernel_spectra([shift]))[0]
        # Moving the PSF is exact; the reference splats at the moved positions bilinearly, which
        # matches only for whole-pixel shifts.
        reference = im.render(z + shift[0], x + shift[1], np.ones(50))
        if whole_pixels:
            assert np.allclose(moved, reference, atol=2e-3 * np.abs(reference).max())
        assert np.abs(moved).max() == pytest.approx(np.abs(reference).max(), rel=0.2)


def test_expected_intensity_matches_the_mean_speckle_power() -> None:
    im = _imager()
    rng = np.random.default_rng(2)
    z0, z1, x0, x1 = im.field_extent_m()
    density = 200.0 / (1e-3) ** 2
    n = int(density * (z1 - z0) * (x1 - x0))
    powers = [
        np.abs(im.render(rng.uniform(z0, z1, n), rng.uniform(x0, x1, n), np.ones(n))) ** 2
        for _ in range(20)
    ]
    px_area = im.grid.spacing_m[0] * im.grid.spacing_m[1]
    expected = im.expected_intensity(np.full(im.grid.shape, density * px_area))
    inner = (slice(8, -8), slice(8, -8))
    assert np.mean(powers, axis=0)[inner].mean() == pytest.approx(expected[inner].mean(), rel=0.05)


def test_fast_sizes() -> None:
    assert [fast_size(n) for n in (7, 97, 128, 131)] == [8, 100, 128, 135]
