"""Speckled B-mode images with clean (speckle-free) targets, for any probe geometry.

Scatterers with random positions and Gaussian reflectivities, scaled by a phantom's
echogenicity, are imaged by the convolution model (:mod:`sonoedge.synth.imaging`) in beam
space; the envelope is log-compressed and, for convex and phased probes, scan-converted to a
Cartesian image. The clean target is the expected intensity ``E|IQ|²`` (echogenicity convolved
with the PSF power) on the same log scale, lowered by the Rayleigh log-mean offset (2.51 dB), so
that in a homogeneous region it equals the mean of the speckled log image.

Both images are float32 in [0, 1]: ``(dB - lo) / (hi - lo)`` clipped, with ``db_range = (lo, hi)``
in dB relative to the mean background-tissue intensity (default -45..+15 dB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.imaging import Grid, Imager, check_size, default_spacing_m
from sonoedge.synth.phantoms import Phantom, PhantomKind, make_phantom
from sonoedge.synth.transducer import (
    Transmit,
    analytic_fwhm_m,
    arc_radius_m,
    check_positive,
    sector_half_angle_rad,
)
from sonoedge.types import Grid as GridKind
from sonoedge.types import ProbeInfo

RAYLEIGH_LOG_OFFSET_DB = 10 * math.log10(math.e) * 0.5772156649015329
"""Mean of ``10 log10(I / E[I])`` for exponential intensity is ``-γ·10/ln 10`` ≈ -2.51 dB."""


@dataclass(frozen=True)
class BmodeSample:
    """One simulated B-mode image pair (see the module docstring for scales)."""

    speckled: npt.NDArray[np.float32]
    clean: npt.NDArray[np.float32]
    iq: npt.NDArray[np.complex64]
    spacing_m: tuple[float, float]
    iq_spacing_m: tuple[float, float]
    iq_grid: GridKind
    echo_db: npt.NDArray[np.float32]
    db_range: tuple[float, float]
    background_power: float


def scatterer_density_per_m2(
    probe: ProbeInfo, f_number: float, n_cycles: float, transmit: Transmit, per_cell: float
) -> float:
    """Scatterers per m² giving ``per_cell`` scatterers per -6 dB resolution cell."""
    check_positive("scatterers_per_cell", per_cell)
    fw_z, fw_x = analytic_fwhm_m(probe, f_number, n_cycles, transmit)
    return per_cell / (fw_z * fw_x)


def to_unit(db: npt.NDArray[np.floating], db_range: tuple[float, float]) -> npt.NDArray[np.float32]:
    """Map dB values to [0, 1] over ``db_range``."""
    lo, hi = db_range
    return np.clip((db - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def simulate_bmode(
    probe: ProbeInfo,
    height: int,
    width: int,
    seed: int,
    phantom: PhantomKind = "random",
    spacing_m: tuple[float, float] | None = None,
    f_number: float = 1.5,
    n_cycles: float = 1.0,
    transmit: Transmit = "focused",
    scatterers_per_cell: float | None = None,
    db_range: tuple[float, float] = (-45.0, 15.0),
    noise_db: float | None = None,
) -> BmodeSample:
    """Simulate one speckled B-mode image and its clean target.

    ``spacing_m`` is the beam-space (IQ) pixel spacing (default: the probe's depth range and
    aperture over ``height × width``; lateral is arc length at mid-depth for convex/phased).
    ``noise_db`` adds thermal noise at that power relative to background tissue.
    ``scatterers_per_cell=None`` uses the diffuse limit (a complex Gaussian reflectivity per
    pixel: fully developed speckle); a number places that many discrete point scatterers per
    -6 dB resolution cell instead (speckle approaches Rayleigh statistics from about 50 up).

    Example::

        probe = get_preset("L11-5v")
        s = simulate_bmode(probe, 256, 256, seed=0, phantom="cyst")
    """
    check_size("height", height)
    check_size("width", width)
    lo, hi = db_range
    if not lo < hi:
        raise ConfigError(f"db_range={db_range!r} is invalid: expected (low, high) with low < high")
    rng = np.random.default_rng(seed)
    near = probe.depth_range_m[0]
    geometry = probe.geometry
    if spacing_m is None:
        spacing_m = default_spacing_m(probe, height, width)
    beam_grid = Grid((height, width), spacing_m, (near, -spacing_m[1] * (width - 1) / 2))
    imager = Imager(probe, beam_grid, f_number=f_number, n_cycles=n_cycles, transmit=transmit)
    out_grid = beam_grid if geometry == "linear" else _sector_grid(probe, height, width)
    ph = make_phantom(phantom, out_grid, rng)

    px_area = spacing_m[0] * spacing_m[1]
    if scatterers_per_cell is None:
        # Diffuse limit: the sum of many sub-resolution scatterers in a pixel is complex Gaussian.
        density = 1.0 / px_area
        field = _diffuse_field(probe, imager, ph, rng)
    else:
        density = scatterer_density_per_m2(probe, f_number, n_cycles, transmit, scatterers_per_cell)
        z0, z1, x0, x1 = imager.field_extent_m()
        n = int(density * (z1 - z0) * (x1 - x0))
        z = rng.uniform(z0, z1, n)
        x = rng.uniform(x0, x1, n)
        amp = rng.standard_normal(n) * ph.amplitude_at(*_to_cartesian(probe, z, x))
        field = imager.splat(z, x, amp)
    splatted = scatterers_per_cell is not None
    background = density * px_area * float(imager.power_kernel(splatted).sum())
    if len(ph.points_m):
        pz, px = _from_cartesian(probe, ph.points_m[:, 0], ph.points_m[:, 1])
        field = field + imager.splat(pz, px, ph.points_amplitude * math.sqrt(background))
    iq = imager.to_image(imager.spectrum(field))

    # Expected intensity: echogenicity power at beam-space pixels, convolved with the PSF power.
    bz, bx = beam_grid.centres_m()
    bzz, bxx = np.meshgrid(bz, bx, indexing="ij")
    echo_power = ph.amplitude_at(*_to_cartesian(probe, bzz, bxx)) ** 2
    mean_intensity = imager.expected_intensity(density * px_area * echo_power, splatted)
    if len(ph.points_m):
        point_map = np.abs(imager.render(pz, px, ph.points_amplitude * math.sqrt(background))) ** 2
        mean_intensity = mean_intensity + point_map
    if noise_db is not None:
        sigma = math.sqrt(background * 10 ** (noise_db / 10) / 2)
        noise = rng.normal(0, sigma, (2, height, width))
        iq = (iq + noise[0] + 1j * noise[1]).astype(np.complex64)
    speckled_db = 10 * np.log10(np.abs(iq) ** 2 / background + 1e-12)
    clean_db = 10 * np.log10(mean_intensity / background + 1e-12) - RAYLEIGH_LOG_OFFSET_DB
    speckled, clean = to_unit(speckled_db, db_range), to_unit(clean_db, db_range)
    if geometry != "linear":
        speckled = _scan_convert(probe, speckled, beam_grid, out_grid)
        clean = _scan_convert(probe, clean, beam_grid, out_grid)
    return BmodeSample(
        speckled=speckled,
        clean=clean,
        iq=iq,
        spacing_m=out_grid.spacing_m,
        iq_spacing_m=beam_grid.spacing_m,
        iq_grid="cartesian" if geometry == "linear" else "polar",
        echo_db=ph.echo_db,
        db_range=(float(lo), float(hi)),
        background_power=background,
    )


def _diffuse_field(
    probe: ProbeInfo, imager: Imager, ph: Phantom, rng: np.random.Generator
) -> npt.NDArray[np.complex64]:
    """Unit-power complex Gaussian reflectivity × echogenicity on the padded beam-space grid."""
    ph_, pw_ = imager.padded_shape
    pad_z, pad_x = imager.pad
    dz, dx = imager.grid.spacing_m
    z0, x0 = imager.grid.origin_m
    bz = z0 + (np.arange(ph_) - pad_z) * dz
    bx = x0 + (np.arange(pw_) - pad_x) * dx
    bzz, bxx = np.meshgrid(bz, bx, indexing="ij")
    amp = ph.amplitude_at(*_to_cartesian(probe, bzz, bxx)) / math.sqrt(2.0)
    noise = rng.standard_normal((2, ph_, pw_))
    return ((noise[0] + 1j * noise[1]) * amp).astype(np.complex64)


def _to_cartesian(
    probe: ProbeInfo, r_m: npt.NDArray[np.float64], s_m: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Beam-space (depth along the beam, arc at mid-depth) → Cartesian (z, x)."""
    if probe.geometry == "linear":
        return r_m, s_m
    theta = s_m / arc_radius_m(probe)
    apex = probe.radius_m if probe.geometry == "convex" else 0.0
    rho = apex + r_m
    return rho * np.cos(theta) - apex, rho * np.sin(theta)


def _from_cartesian(
    probe: ProbeInfo, z_m: npt.NDArray[np.float64], x_m: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if probe.geometry == "linear":
        return z_m, x_m
    apex = probe.radius_m if probe.geometry == "convex" else 0.0
    rho = np.hypot(z_m + apex, x_m)
    theta = np.arctan2(x_m, z_m + apex)
    return rho - apex, theta * arc_radius_m(probe)


def _sector_grid(probe: ProbeInfo, height: int, width: int) -> Grid:
    """Cartesian grid covering a convex/phased sector."""
    near, far = probe.depth_range_m
    apex = probe.radius_m if probe.geometry == "convex" else 0.0
    half = sector_half_angle_rad(probe)
    z_top = (apex + near) * math.cos(half) - apex
    x_half = (apex + far) * math.sin(half)
    dz = (far - z_top) / (height - 1)
    dx = 2 * x_half / (width - 1)
    return Grid((height, width), (dz, dx), (z_top, -x_half))


def _scan_convert(
    probe: ProbeInfo, image: npt.NDArray[np.float32], beam: Grid, out: Grid
) -> npt.NDArray[np.float32]:
    """Resample a beam-space image onto the Cartesian grid ``out`` (0 outside the sector)."""
    zc, xc = out.centres_m()
    zz, xx = np.meshgrid(zc, xc, indexing="ij")
    r, s = _from_cartesian(probe, zz, xx)
    map_y = ((r - beam.origin_m[0]) / beam.spacing_m[0]).astype(np.float32)
    map_x = ((s - beam.origin_m[1]) / beam.spacing_m[1]).astype(np.float32)
    converted = cv2.remap(
        image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0
    )
    return np.asarray(converted, dtype=np.float32)
