"""A continuous-time scene for the virtual probe: B-mode, IQ frames and Doppler ensembles.

Tissue with layers, cysts, lesions and point targets moves with slow handheld sway, breathing
and tremor; blood flows in two random vessel trees. Every output is a pure function of
``(seed, t_s)``, so frames are continuous in time and repeatable. Images are in the probe's
beam space: ``grid`` is ``"cartesian"`` for linear probes and ``"polar"`` for convex/phased ones
(columns are beam angles; ``spacing_m`` and ``origin_m`` follow :mod:`sonoedge.types`: the
lateral entries are in radians on a polar grid).

Example::

    scene = LiveScene(get_preset("L11-5v"), seed=0)
    frame = scene.bmode(0.033)                      # uint8 (256, 256)
    ens = scene.iq_ensemble(0.0, 16, prf_hz=1000)   # complex64 (16, 256, 256)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.synth.imaging import Grid, check_size, default_spacing_m
from sonoedge.synth.motion import HandheldMotion
from sonoedge.synth.phantoms import make_phantom
from sonoedge.synth.scene import FlowScene
from sonoedge.synth.transducer import arc_radius_m, check_positive
from sonoedge.synth.vessels import merge_trees, random_tree
from sonoedge.types import Grid as GridKind
from sonoedge.types import ProbeInfo

DB_RANGE = (-45.0, 15.0)
"""Display range of :meth:`LiveScene.bmode`, dB relative to background tissue."""


class LiveScene:
    """Virtual-probe scene of ``height × width`` pixels covering the probe's field of view."""

    def __init__(self, probe: ProbeInfo, seed: int, height: int = 256, width: int = 256) -> None:
        check_size("height", height)
        check_size("width", width)
        rng = np.random.default_rng(seed)
        spacing = default_spacing_m(probe, height, width)
        near = probe.depth_range_m[0]
        grid = Grid((height, width), spacing, (near, -spacing[1] * (width - 1) / 2))
        z0, z1, x0, x1 = grid.extent_m()
        tree = merge_trees(
            [
                random_tree(rng, (z0, z1, x0, x1), radius_range_m=(0.3e-3, 1.2e-3)),
                random_tree(rng, (z0, z1, x0, x1), radius_range_m=(0.2e-3, 0.6e-3), levels=2),
            ]
        )
        # Bounded motion (no drift) so the scene can run for ever without leaving the padding.
        motion = HandheldMotion.random(rng, scale=0.5, drift=False)
        self._scene = FlowScene(
            probe,
            grid,
            make_phantom("random", grid, rng),
            tree,
            motion,
            seed=int(rng.integers(2**31)),
            blood_db=-30.0,
            lumen_db=-25.0,
            noise_db=-50.0,
            blood_per_cell=4.0,
        )
        self.probe = probe
        self.grid: GridKind = "cartesian" if probe.geometry == "linear" else "polar"
        if self.grid == "cartesian":
            self.spacing_m: tuple[float, float] = spacing
            self.origin_m: tuple[float, float] = grid.origin_m
        else:
            # types.py convention for polar frames: lateral spacing/origin in radians.
            d_theta = spacing[1] / arc_radius_m(probe)
            self.spacing_m = (spacing[0], d_theta)
            self.origin_m = (near, -d_theta * (width - 1) / 2)

    def vessel_mask(self, t_s: float) -> npt.NDArray[np.bool_]:
        """Ground-truth lumen mask ``(h, w)`` at time ``t_s`` (vessels move with the tissue)."""
        return self._scene.vessels_at(t_s)[0]

    def iq_frame(self, t_s: float) -> npt.NDArray[np.complex64]:
        """One IQ frame ``(h, w)`` complex64 at time ``t_s``."""
        return self._scene.render([t_s])[0]

    def iq_ensemble(self, t_s: float, n_frames: int, prf_hz: float) -> npt.NDArray[np.complex64]:
        """``n_frames`` IQ frames at ``t_s + k / prf_hz``: ``(n, h, w)`` complex64."""
        check_size("n_frames", n_frames, 1, 4096)
        check_positive("prf_hz", prf_hz)
        return self._scene.render(t_s + np.arange(n_frames) / prf_hz)

    def bmode(self, t_s: float) -> npt.NDArray[np.uint8]:
        """Log-compressed B-mode ``(h, w)`` uint8 at time ``t_s`` (range :data:`DB_RANGE`)."""
        iq = self.iq_frame(t_s)
        power = iq.real * iq.real + iq.imag * iq.imag
        return display_uint8(10.0 * np.log10(power / self._scene.background_power + 1e-12))


class LiveBubbleScene:
    """Virtual-probe scene for ultrasound localisation microscopy (ULM): contrast microbubbles.

    Microbubbles (point scatterers, log-normal amplitudes with median 1) flow in two random vessel
    trees (Poiseuille flow, 5–50 mm/s), imaged with the convolution model of
    :mod:`sonoedge.synth.microbubbles` on a grid of ``wavelength / pixels_per_wavelength`` (λ/4
    by default: fine enough for network localisation, which needs pixels of at most one
    wavelength, and for conventional ULM, usually run at λ/2 or finer). Around them: tissue
    clutter (``tissue_db`` re a median bubble's peak power; 10 dB by default, about what a
    contrast pulse sequence leaves of tissue) that sways slowly with the hand (tens of µm at under
    1 Hz), so a clutter filter (the pipeline's SVD) is needed as in vivo, and thermal noise at
    ``snr_db`` re the same peak. At 20 dB of tissue the SVD filter's residue already puts about
    a sixth of the conventional localiser's tracks off the vessels. The image covers
    ``height × width`` pixels centred laterally, its top at 40 % of the probe's depth range
    (linear probes only).

    Bubble positions and clutter are pure functions of ``(seed, t_s)``; the noise of an ensemble
    is a pure function of ``(seed, t_s, n_frames)``. Ground truth: :meth:`bubbles` and
    :meth:`vessel_mask`.

    Example::

        scene = LiveBubbleScene(get_preset("L11-5v"), seed=0)
        ens = scene.iq_ensemble(0.0, 64, prf_hz=1000)   # complex64 (64, 128, 128), λ/4 pixels
    """

    def __init__(
        self,
        probe: ProbeInfo,
        seed: int,
        height: int = 128,
        width: int = 128,
        pixels_per_wavelength: float = 4.0,
        concentration_per_lambda2: float = 0.05,
        snr_db: float = 30.0,
        tissue_db: float = 10.0,
    ) -> None:
        import math

        from sonoedge.synth.imaging import Imager
        from sonoedge.synth.vessels import seed_particles

        check_size("height", height)
        check_size("width", width)
        self.check_options(
            probe, pixels_per_wavelength, concentration_per_lambda2, snr_db, tissue_db
        )
        rng = np.random.default_rng(seed)
        self.probe = probe
        self.seed = int(seed)
        self.wavelength_m = 1540.0 / probe.center_frequency_hz
        step = self.wavelength_m / pixels_per_wavelength
        near, far = probe.depth_range_m
        z_top = near + 0.4 * (far - near)
        self.grid: GridKind = "cartesian"
        self.spacing_m: tuple[float, float] = (step, step)
        self.origin_m: tuple[float, float] = (z_top, -step * (width - 1) / 2)
        grid = Grid((height, width), self.spacing_m, self.origin_m)
        self._grid = grid
        # hand sway: two slow sinusoids per axis, bounded well inside the imager's margin
        self._sway = rng.uniform([10e-6, 10e-6], [40e-6, 40e-6])
        self._sway_hz = rng.uniform([0.2, 0.2], [0.8, 0.8])
        self._sway_phase = rng.uniform(0, 2 * math.pi, 2)
        self._imager = Imager(probe, grid, margin_m=2 * float(self._sway.max()) + step)
        extent = grid.extent_m()
        self._tree = merge_trees(
            [
                random_tree(rng, extent, (3 * step, 10 * step), (5e-3, 50e-3), levels=3),
                random_tree(rng, extent, (2 * step, 6 * step), (5e-3, 30e-3), levels=2),
            ]
        )
        area_lambda2 = height * width * (step / self.wavelength_m) ** 2
        n = int(rng.poisson(concentration_per_lambda2 * area_lambda2))
        self._particles = seed_particles(self._tree, rng, n)
        self._amplitude = np.exp(rng.normal(0.0, 0.3, n))
        peak_power = float(np.abs(self._imager.kernel).max() ** 2)
        unit = float(self._imager.power_kernel(splatted=False).sum())
        sigma = math.sqrt(peak_power * 10 ** (tissue_db / 10) / 2 / unit)
        field = rng.standard_normal((2, *self._imager.padded_shape)) * sigma
        self._tissue = self._imager.spectrum((field[0] + 1j * field[1]).astype(np.complex64))
        ph, pw = self._imager.padded_shape
        self._fz, self._fx = np.fft.fftfreq(ph), np.fft.fftfreq(pw)
        self._noise_sigma = math.sqrt(peak_power * 10 ** (-snr_db / 10) / 2)

    @staticmethod
    def check_options(
        probe: ProbeInfo,
        pixels_per_wavelength: float,
        concentration_per_lambda2: float,
        snr_db: float,
        tissue_db: float,
    ) -> None:
        """Raise ConfigError for options the scene cannot honour (see the class doc)."""
        import math

        from sonoedge.errors import ConfigError

        if probe.geometry != "linear":
            raise ConfigError(
                f"the microbubble scene needs a linear probe, got {probe.geometry!r}",
                hint="use a linear probe (ULM data is beamformed on a Cartesian grid)",
            )
        if not 2.0 <= pixels_per_wavelength <= 16.0:
            raise ConfigError(
                f"pixels_per_wavelength={pixels_per_wavelength!r} is invalid: expected 2..16 "
                "(ULM needs pixels of at most half a wavelength)"
            )
        if not (math.isfinite(concentration_per_lambda2) and 0 <= concentration_per_lambda2 <= 2):
            raise ConfigError(
                f"concentration_per_lambda2={concentration_per_lambda2!r} is invalid: "
                "expected 0..2 bubbles per wavelength^2"
            )
        if not -20.0 <= snr_db <= 80.0:
            raise ConfigError(f"snr_db={snr_db!r} is invalid: expected -20..80 dB")
        if not -80.0 <= tissue_db <= 60.0:
            raise ConfigError(f"tissue_db={tissue_db!r} is invalid: expected -80..60 dB")

    def _displacement(self, t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        arg = 2 * np.pi * np.multiply.outer(t, self._sway_hz) + self._sway_phase
        return np.asarray(self._sway * np.sin(arg), np.float64)

    def bubbles(self, t_s: float) -> npt.NDArray[np.float64]:
        """Ground truth: ``(n, 2)`` ``(z, x)`` in metres of the bubbles inside the image."""
        return self._bubbles(np.array([float(t_s)]))[0]

    def _positions(
        self, t: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Bubble ``z, x`` ``(len(t), n)`` moved by the hand sway, and the sway ``(len(t), 2)``."""
        from sonoedge.synth.vessels import particle_positions

        z, x, _ = particle_positions(self._tree, self._particles, t)
        d = self._displacement(t)
        return z + d[:, :1], x + d[:, 1:], d

    def _bubbles(self, t: npt.NDArray[np.float64]) -> list[npt.NDArray[np.float64]]:
        z, x, _ = self._positions(t)
        z0, z1, x0, x1 = self._grid.extent_m()
        inside = (z >= z0) & (z <= z1) & (x >= x0) & (x <= x1)
        return [np.stack([z[k][inside[k]], x[k][inside[k]]], 1) for k in range(len(t))]

    def vessel_mask(self, t_s: float = 0.0) -> npt.NDArray[np.bool_]:
        """Lumen mask ``(h, w)`` of the vessel trees (the sway moves it by under λ/4)."""
        return self._tree.rasterize(self._grid)[0]

    def _render(self, t: npt.NDArray[np.float64], noise_key: int) -> npt.NDArray[np.complex64]:
        imager = self._imager
        z, x, d = self._positions(t)
        # One FFT pass for bubbles and tissue: the splatted bubbles' spectrum plus the tissue
        # image's spectrum moved by a Fourier shift with the two-way phase (the PSF is sampled
        # at λ/4 or finer here, so the shift theorem is accurate).
        spec = np.fft.fft2(imager.splat(z, x, self._amplitude))
        ramp_z = np.exp(
            -2j * np.pi * np.multiply.outer(d[:, 0] / self.spacing_m[0], self._fz)
            - 2j * imager.k_rad_m * d[:, :1]
        ).astype(np.complex64)
        ramp_x = np.exp(
            -2j * np.pi * np.multiply.outer(d[:, 1] / self.spacing_m[1], self._fx)
        ).astype(np.complex64)
        spec = spec * imager.kernel_spectrum + self._tissue * ramp_z[:, :, None] * ramp_x[:, None]
        iq = imager.to_image(spec.astype(np.complex64))
        rng = np.random.default_rng([self.seed, noise_key, len(t)])
        shape = (2, len(t), *self._grid.shape)
        noise = rng.standard_normal(shape, dtype=np.float32) * self._noise_sigma
        return (iq + noise[0] + 1j * noise[1]).astype(np.complex64)

    def iq_frame(self, t_s: float) -> npt.NDArray[np.complex64]:
        """One IQ frame ``(h, w)`` complex64 at time ``t_s``."""
        return self._render(np.array([float(t_s)]), round(t_s * 1e6))[0]

    def iq_ensemble(self, t_s: float, n_frames: int, prf_hz: float) -> npt.NDArray[np.complex64]:
        """``n_frames`` IQ frames at ``t_s + k / prf_hz``: ``(n, h, w)`` complex64."""
        check_size("n_frames", n_frames, 1, 4096)
        check_positive("prf_hz", prf_hz)
        return self._render(t_s + np.arange(n_frames) / prf_hz, round(t_s * 1e6))

    def bmode(self, t_s: float) -> npt.NDArray[np.uint8]:
        """Log-compressed B-mode ``(h, w)`` uint8 (range :data:`DB_RANGE` re a median bubble's
        peak)."""
        iq = self.iq_frame(t_s)
        peak = float(np.abs(self._imager.kernel).max())
        return display_uint8(20.0 * np.log10(np.abs(iq) / peak + 1e-12))


def display_uint8(db: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint8]:
    """Decibels mapped linearly from :data:`DB_RANGE` to 0..255 (clipped)."""
    lo, hi = DB_RANGE
    return np.clip((db - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
