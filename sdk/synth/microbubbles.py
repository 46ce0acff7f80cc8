"""Contrast microbubble frames conditioned on a physical parameter vector (PgD), with ground truth.

Bubbles are point scatterers flowing in a random vessel tree (Poiseuille flow); each frame is
the convolution-model IQ of the bubbles at that time, plus residual tissue clutter and thermal
noise, imaged with the transducer described by :class:`BubbleParams` (plane-wave transmit,
dynamic receive at ``f_number``). Ground truth per frame: the sub-pixel positions of bubbles
inside the image and their track identities (a bubble that leaves its segment and re-enters
gets a new identity).

Levels: bubble amplitudes have median 1 (log-normal spread); ``snr_db`` sets the noise power
relative to a median bubble's peak power; ``clutter_db`` sets the mean tissue clutter power
relative to it. ``frames`` is the envelope ``|iq|`` (float32), the input of ULM localisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.imaging import Grid, Imager, check_size
from sonoedge.synth.transducer import check_f_number, check_positive
from sonoedge.synth.vessels import particle_positions, random_tree, seed_particles
from sonoedge.types import ProbeInfo


@dataclass(frozen=True)
class BubbleParams:
    """The physical parameter vector that conditions bubble frames (see :meth:`as_vector`)."""

    center_frequency_hz: float = 7.6e6
    bandwidth_fraction: float = 0.77
    f_number: float = 1.5
    n_cycles: float = 1.0
    pitch_m: float = 0.3e-3
    concentration_per_mm2: float = 0.5
    snr_db: float = 30.0
    clutter_db: float = -20.0
    frame_rate_hz: float = 500.0
    spacing_m: tuple[float, float] = (50e-6, 50e-6)
    depth_m: float = 0.01

    def __post_init__(self) -> None:
        check_positive("center_frequency_hz", self.center_frequency_hz)
        if not 0 < self.bandwidth_fraction <= 2:
            raise ConfigError(
                f"bandwidth_fraction={self.bandwidth_fraction!r} is invalid: expected 0 < b <= 2"
            )
        check_f_number(self.f_number)
        check_positive("n_cycles", self.n_cycles)
        check_positive("pitch_m", self.pitch_m)
        check_positive("frame_rate_hz", self.frame_rate_hz)
        check_positive("spacing_m[0]", self.spacing_m[0])
        check_positive("spacing_m[1]", self.spacing_m[1])
        check_positive("depth_m", self.depth_m)
        if not (math.isfinite(self.concentration_per_mm2) and self.concentration_per_mm2 >= 0):
            raise ConfigError(
                f"concentration_per_mm2={self.concentration_per_mm2!r} is invalid: expected >= 0"
            )
        if not -20.0 <= self.snr_db <= 80.0:
            raise ConfigError(f"snr_db={self.snr_db!r} is invalid: expected -20..80 dB")
        if not -80.0 <= self.clutter_db <= 20.0:
            raise ConfigError(f"clutter_db={self.clutter_db!r} is invalid: expected -80..20 dB")

    def probe(self) -> ProbeInfo:
        """A linear probe with these transducer parameters."""
        return ProbeInfo(
            model="bubble-sim",
            center_frequency_hz=self.center_frequency_hz,
            bandwidth_fraction=self.bandwidth_fraction,
            pitch_m=self.pitch_m,
            sampling_frequency_hz=4 * self.center_frequency_hz,
            depth_range_m=(0.0, max(0.04, 2 * self.depth_m)),
        )

    def as_vector(self) -> npt.NDArray[np.float32]:
        """Normalised conditioning vector: MHz, fraction, F#, cycles, pitch/λ, bubbles/mm², dB."""
        lam = 1540.0 / self.center_frequency_hz
        return np.array(
            [
                self.center_frequency_hz / 1e6,
                self.bandwidth_fraction,
                self.f_number,
                self.n_cycles,
                self.pitch_m / lam,
                self.concentration_per_mm2,
                self.snr_db / 10.0,
                self.clutter_db / 10.0,
            ],
            dtype=np.float32,
        )

    @classmethod
    def random(
        cls, rng: np.random.Generator, held_out: bool = False, **fixed: object
    ) -> BubbleParams:
        """Random parameters; ``held_out`` draws from ranges partly disjoint from training.

        Training: 3–10 MHz, bandwidth 0.5–0.9, F# 1–2, SNR 10–40 dB. Held out: 10–15 MHz,
        bandwidth 0.9–1.1, F# 2–2.5, SNR 5–10 dB (with the other ranges shared).
        """
        if held_out:
            f0 = rng.uniform(10e6, 15e6)
            bw, fn, snr = rng.uniform(0.9, 1.1), rng.uniform(2.0, 2.5), rng.uniform(5.0, 10.0)
        else:
            f0 = rng.uniform(3e6, 10e6)
            bw, fn, snr = rng.uniform(0.5, 0.9), rng.uniform(1.0, 2.0), rng.uniform(10.0, 40.0)
        lam = 1540.0 / f0
        values: dict[str, object] = {
            "center_frequency_hz": float(f0),
            "bandwidth_fraction": float(bw),
            "f_number": float(fn),
            "n_cycles": float(rng.choice([1.0, 2.0, 3.0])),
            "pitch_m": float(lam * rng.uniform(0.5, 1.0)),
            "concentration_per_mm2": float(rng.uniform(0.1, 2.0)),
            "snr_db": float(snr),
            "clutter_db": float(rng.uniform(-40.0, -10.0)),
            "spacing_m": (float(lam / 4), float(lam / 4)),
        }
        names = {f.name for f in fields(cls)}
        for key in fixed:
            if key not in names:
                raise ConfigError(
                    f"{key!r} is not a BubbleParams field: expected one of {sorted(names)}"
                )
        values.update(fixed)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BubbleFrames:
    """Bubble frames ``[frame, axial, lateral]`` and ground truth (positions relative to pixel
    [0, 0] of the image, in metres, (axial, lateral) per row)."""

    frames: npt.NDArray[np.float32]
    iq: npt.NDArray[np.complex64]
    positions_m: list[npt.NDArray[np.float64]]
    track_ids: list[npt.NDArray[np.int64]]
    spacing_m: tuple[float, float]
    params: BubbleParams

    @classmethod
    def from_iq(
        cls, iq: npt.NDArray[np.complex64], scene: BubbleScene, params: BubbleParams
    ) -> BubbleFrames:
        """The envelope frames of ``iq`` (the images of ``scene``) with the scene's truth."""
        positions, ids = scene.truth()
        return cls(
            frames=np.abs(iq).astype(np.float32),
            iq=iq,
            positions_m=positions,
            track_ids=ids,
            spacing_m=params.spacing_m,
            params=params,
        )


@dataclass(frozen=True)
class BubbleScene:
    """Where the bubbles of :func:`simulate_bubbles` are, before any imaging: positions of every
    bubble at every frame (also those outside the image) in the imaging plane, metres."""

    z_m: npt.NDArray[np.float64]  # (frames, bubbles) depth
    x_m: npt.NDArray[np.float64]  # (frames, bubbles) lateral, 0 at the image centre
    track_ids: npt.NDArray[np.int64]  # (frames, bubbles)
    amplitudes: npt.NDArray[np.float64]  # (bubbles,)
    grid: Grid

    def truth(self) -> tuple[list[npt.NDArray[np.float64]], list[npt.NDArray[np.int64]]]:
        """Per frame: ``(n, 2)`` positions relative to pixel [0, 0] in metres of the bubbles
        inside the image (between its outer pixel centres) and their track identities."""
        z_min, z_max, x_min, x_max = self.grid.extent_m()
        positions, ids = [], []
        for z, x, i in zip(self.z_m, self.x_m, self.track_ids, strict=True):
            inside = (z >= z_min) & (z <= z_max) & (x >= x_min) & (x <= x_max)
            positions.append(np.stack([z[inside] - z_min, x[inside] - x_min], axis=1))
            ids.append(i[inside])
        return positions, ids


def bubble_scene(
    params: BubbleParams, n_frames: int, height: int, width: int, rng: np.random.Generator
) -> BubbleScene:
    """A random vessel tree and the bubbles flowing in it over ``n_frames`` frames of a
    ``height × width`` image (``params`` gives the grid, concentration and frame rate)."""
    check_size("n_frames", n_frames, 1, 100_000)
    check_size("height", height)
    check_size("width", width)
    dz, dx = params.spacing_m
    area_mm2 = height * dz * width * dx * 1e6
    n_expected = params.concentration_per_mm2 * area_mm2
    if n_expected > height * width:
        raise ConfigError(
            f"concentration_per_mm2={params.concentration_per_mm2!r} asks for {n_expected:.0f} "
            f"bubbles in {height * width} pixels: expected <= {height * width / area_mm2:.3g}"
        )
    z_top = params.depth_m - dz * (height - 1) / 2
    if z_top < 0:
        raise ConfigError(
            f"depth_m={params.depth_m!r} is invalid for a {height}-pixel-high image: expected "
            f">= {dz * (height - 1) / 2:.4g} m (the image must start below the probe)"
        )
    grid = Grid((height, width), params.spacing_m, (z_top, -dx * (width - 1) / 2))
    extent = grid.extent_m()
    tree = random_tree(
        rng,
        extent,
        radius_range_m=(3 * min(dz, dx), 10 * min(dz, dx)),
        speed_range_m_s=(5e-3, 50e-3),
        levels=3,
    )
    # Bubbles live only in vessels: the requested count (per image area) spread over the lumens.
    particles = seed_particles(tree, rng, int(rng.poisson(n_expected)))
    amplitude = np.exp(rng.normal(0.0, 0.3, len(particles)))
    times = np.arange(n_frames) / params.frame_rate_hz
    z, x, wraps = particle_positions(tree, particles, times)
    ids = (np.arange(len(particles))[None] + np.asarray(wraps) * len(particles)).astype(np.int64)
    return BubbleScene(
        z_m=np.asarray(z, np.float64).reshape(n_frames, -1),
        x_m=np.asarray(x, np.float64).reshape(n_frames, -1),
        track_ids=ids.reshape(n_frames, -1),
        amplitudes=amplitude,
        grid=grid,
    )


def simulate_bubbles(
    params: BubbleParams, n_frames: int, height: int, width: int, seed: int
) -> BubbleFrames:
    """Simulate ``n_frames`` of ``height × width`` bubble frames (see the module docstring).

    Example::

        b = simulate_bubbles(BubbleParams(concentration_per_mm2=1.0), 20, 128, 128, seed=0)
        b.positions_m[0]  # (k, 2) metres, axial/lateral, of the bubbles in frame 0
    """
    rng = np.random.default_rng(seed)
    scene = bubble_scene(params, n_frames, height, width, rng)
    grid = scene.grid
    imager = Imager(params.probe(), grid, f_number=params.f_number, n_cycles=params.n_cycles)
    iq = imager.render(scene.z_m, scene.x_m, scene.amplitudes)

    peak_power = float(np.abs(imager.kernel).max() ** 2)
    clutter_sigma = math.sqrt(peak_power * 10 ** (params.clutter_db / 10) / 2)
    unit = float(imager.power_kernel(splatted=False).sum())
    field = rng.standard_normal((2, *imager.padded_shape)) * (clutter_sigma / math.sqrt(unit))
    clutter = imager.to_image(imager.spectrum((field[0] + 1j * field[1]).astype(np.complex64)))
    noise_sigma = math.sqrt(peak_power * 10 ** (-params.snr_db / 10) / 2)
    noise = rng.standard_normal((2, n_frames, height, width), dtype=np.float32) * noise_sigma
    iq = (iq + clutter + noise[0] + 1j * noise[1]).astype(np.complex64)
    return BubbleFrames.from_iq(iq, scene, params)
