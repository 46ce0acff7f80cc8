"""A moving scene: tissue under handheld motion plus blood flowing in vessel trees, plus noise.

Tissue is a diffuse reflectivity field (complex Gaussian per pixel × echogenicity) that moves
rigidly with the probe motion; its spectrum is computed once and imaged per frame with a PSF
moved by the displacement (:meth:`Imager.moved_kernel_spectra`), so tissue costs a multiply
per frame. Blood is a set of point scatterers in
the vessel lumens that also follow the tissue motion; they are splatted and imaged per frame.
Every frame is a pure function of its time, so scenes can be sampled at any PRF and time.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.imaging import Grid, Imager
from sonoedge.synth.motion import HandheldMotion
from sonoedge.synth.phantoms import Phantom
from sonoedge.synth.transducer import Transmit, analytic_fwhm_m
from sonoedge.synth.vessels import Particles, VesselTree, particle_positions, seed_particles
from sonoedge.types import ProbeInfo

Complex64Array = npt.NDArray[np.complex64]


class FlowScene:
    """Renders IQ frames of ``phantom`` tissue and ``tree`` blood at arbitrary times.

    ``blood_db``: blood echo power relative to background tissue; ``lumen_db``: tissue
    echogenicity left inside lumens (clutter there); ``noise_db``: thermal noise power relative
    to background tissue (``None``: no noise). ``transmit="focused"`` models coherently
    compounded plane waves (two-way focusing). ``max_time_s`` bounds the drift for padding.
    """

    def __init__(
        self,
        probe: ProbeInfo,
        grid: Grid,
        phantom: Phantom,
        tree: VesselTree,
        motion: HandheldMotion,
        seed: int,
        blood_db: float = -30.0,
        lumen_db: float = -20.0,
        noise_db: float | None = -50.0,
        blood_per_cell: float = 10.0,
        f_number: float = 1.5,
        transmit: Transmit = "focused",
        max_time_s: float = 1.0,
    ) -> None:
        if not -80.0 <= blood_db <= 0.0:
            raise ConfigError(f"blood_db={blood_db!r} is invalid: expected -80..0 dB")
        self.probe = probe
        self.grid = grid
        self.tree = tree
        self.motion = motion
        self.seed = seed
        self.noise_db = noise_db
        rng = np.random.default_rng(seed)
        self.imager = Imager(
            probe,
            grid,
            f_number=f_number,
            transmit=transmit,
            margin_m=motion.max_displacement_m(max_time_s),
        )
        lumen, _ = tree.rasterize(grid)
        echo = np.where(lumen, np.minimum(phantom.echo_db, lumen_db), phantom.echo_db)
        self.phantom = Phantom(
            grid, echo.astype(np.float32), phantom.points_m, phantom.points_amplitude
        )
        self.tissue_field_spectrum = np.fft.fft2(self._tissue_field(rng)).astype(np.complex64)
        self.background_power = float(self.imager.power_kernel(splatted=False).sum())
        fw_z, fw_x = analytic_fwhm_m(probe, f_number, transmit=transmit)
        density = blood_per_cell / (fw_z * fw_x)
        n_blood = max(1, int(density * tree.lumen_area_m2()))
        self.particles: Particles = seed_particles(tree, rng, n_blood)
        px_area = grid.spacing_m[0] * grid.spacing_m[1]
        splat_loss = self.background_power / float(self.imager.power_kernel(splatted=True).sum())
        blood_amp = math.sqrt(10 ** (blood_db / 10) * splat_loss / (px_area * density))
        self.blood_amplitude = blood_amp * rng.standard_normal(n_blood)

    def _tissue_field(self, rng: np.random.Generator) -> Complex64Array:
        ph_, pw_ = self.imager.padded_shape
        pz, px = self.imager.pad
        (dz, dx), (z0, x0) = self.grid.spacing_m, self.grid.origin_m
        zz, xx = np.meshgrid(
            z0 + (np.arange(ph_) - pz) * dz, x0 + (np.arange(pw_) - px) * dx, indexing="ij"
        )
        amp = self.phantom.amplitude_at(zz, xx) / math.sqrt(2.0)
        noise = rng.standard_normal((2, ph_, pw_))
        field = ((noise[0] + 1j * noise[1]) * amp).astype(np.complex64)
        if len(self.phantom.points_m):
            strength = self.phantom.points_amplitude * math.sqrt(
                float(self.imager.power_kernel(splatted=False).sum())
            )
            field += self.imager.splat(
                self.phantom.points_m[:, 0], self.phantom.points_m[:, 1], strength
            )
        return field

    def vessels_at(self, t_s: float) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
        """Lumen mask and mean axial velocity map where the vessels are at time ``t_s``."""
        moved = self.tree.translated(self.motion.displacement_m([t_s])[0])
        return moved.rasterize(self.grid)

    def blood_positions_m(
        self, times_s: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Blood particle positions (axial, lateral) ``(n_t, n)`` including probe motion."""
        t = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        z, x, wraps = particle_positions(self.tree, self.particles, t)
        d = self.motion.displacement_m(t)
        return z + d[:, :1], x + d[:, 1:], wraps

    def parts(self, times_s: npt.ArrayLike) -> tuple[Complex64Array, Complex64Array]:
        """IQ of tissue and of blood alone at ``times_s`` (each ``(n_t, h, w)``)."""
        t = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        moved = self.imager.moved_kernel_spectra(self.motion.displacement_m(t))
        tissue = self.imager.to_image(self.tissue_field_spectrum * moved)
        z, x, _ = self.blood_positions_m(t)
        return tissue, self.imager.render(z, x, self.blood_amplitude)

    def noise(self, times_s: npt.ArrayLike) -> Complex64Array:
        """Thermal noise frames, each a pure function of (seed, time)."""
        t = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
        h, w = self.grid.shape
        out = np.zeros((len(t), h, w), dtype=np.complex64)
        if self.noise_db is None:
            return out
        sigma = math.sqrt(self.background_power * 10 ** (self.noise_db / 10) / 2)
        for i, ti in enumerate(t):
            key = zlib.crc32(np.float64(ti).tobytes())
            n = np.random.default_rng((self.seed, key)).standard_normal((2, h, w), dtype=np.float32)
            out[i].real = n[0] * sigma
            out[i].imag = n[1] * sigma
        return out

    def render(self, times_s: npt.ArrayLike) -> Complex64Array:
        """IQ frames ``(n_t, h, w)`` complex64 at ``times_s``."""
        tissue, blood = self.parts(times_s)
        return tissue + blood + self.noise(times_s)
