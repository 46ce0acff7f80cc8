"""Microbubble frames for the ULM task (numpy only): physics renders, conditioning, splits.

Frames live on a square grid of ``wavelength / 4`` (``PIXELS_PER_WAVELENGTH``), so a network
trained here sees every probe at the same scale in wavelengths. A sample is drawn as:

- a parameter vector (:data:`PARAM_NAMES`: centre frequency, bandwidth, F-number, pulse cycles,
  pitch, SNR, clutter level) inside :data:`TRAIN_RANGES`; the *training* split never draws a
  centre frequency inside :data:`HELD_OUT_F0_MHZ`, the *held-out* split always does (unseen
  parameter sets, inside the trained box);
- bubbles at uniform sub-pixel positions (also a little outside the frame, so partial PSFs appear
  at the edges), log-normal amplitudes with median 1, a Poisson count of mean ``density × area``
  (density in bubbles per λ²); or, for a ``vessel_fraction`` of the frames, bubbles confined to
  the lumens of a random vessel tree (:func:`draw_vessel_bubbles`): the same count per image
  area, but crowded as in real ULM, where bubbles only flow inside vessels and often lie within
  a wavelength of each other;
- the physics render: the same convolution model, clutter and noise levels as
  :func:`sonoedge.synth.microbubbles.simulate_bubbles` (plane-wave transmit, dynamic receive at the
  F-number; ``snr_db`` re a median bubble's peak power; ``clutter_db`` the mean power of residual
  tissue clutter re the same).

Scales: ``display = clip(|iq| / (2 · peak of one bubble), 0, 1)`` is the generator's space (median
bubble peak at 0.5); :func:`localizer_input` is the localiser's, ``20 log10(|iq| / median) / 40``
clipped to ``[-1, 2]``: the log envelope re the frame's noise/clutter floor, which needs no
knowledge of the bubbles' absolute level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.zoo.ulm import (
    check_parameters,
    conditioning_maps,
    localizer_input,
    normalise_parameters,
    position_map,
)

PIXELS_PER_WAVELENGTH = 4
PARAM_NAMES = (
    "center_frequency_mhz",
    "bandwidth_fraction",
    "f_number",
    "n_cycles",
    "pitch_wavelengths",
    "snr_db",
    "clutter_db",
)
TRAIN_RANGES: dict[str, tuple[float, float]] = {
    "center_frequency_mhz": (3.0, 10.0),
    "bandwidth_fraction": (0.5, 0.9),
    "f_number": (1.0, 2.0),
    "n_cycles": (1.0, 3.0),
    "pitch_wavelengths": (0.5, 1.0),
    "snr_db": (10.0, 40.0),
    "clutter_db": (-40.0, -10.0),
}
"""The box the generator is trained on (its conditioning is normalised to [-1, 1] over it)."""
HELD_OUT_F0_MHZ = (6.0, 7.0)
"""Centre frequencies never drawn for training; the held-out parameter sets all lie here."""
REFUSE_BEYOND = 0.5
"""A parameter farther than this fraction of its range outside the box is refused."""
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FrameParams:
    """One physical parameter vector (see :data:`PARAM_NAMES`)."""

    center_frequency_mhz: float = 7.6
    bandwidth_fraction: float = 0.77
    f_number: float = 1.5
    n_cycles: float = 1.0
    pitch_wavelengths: float = 0.75
    snr_db: float = 30.0
    clutter_db: float = -25.0

    def as_dict(self) -> dict[str, float]:
        return {n: float(getattr(self, n)) for n in PARAM_NAMES}

    def as_array(self) -> npt.NDArray[np.float64]:
        return np.array([getattr(self, n) for n in PARAM_NAMES], np.float64)

    @classmethod
    def from_array(cls, values: npt.ArrayLike) -> FrameParams:
        arr = np.asarray(values, np.float64).ravel()
        if arr.size != len(PARAM_NAMES):
            raise ConfigError(f"parameter vector has {arr.size} values: expected {PARAM_NAMES}")
        return cls(*(float(v) for v in arr))

    @property
    def wavelength_m(self) -> float:
        return 1540.0 / (self.center_frequency_mhz * 1e6)

    @property
    def spacing_m(self) -> tuple[float, float]:
        s = self.wavelength_m / PIXELS_PER_WAVELENGTH
        return (s, s)


def check_params(params: FrameParams, where: str = "parameter vector") -> list[str]:
    """Warning lines for values outside :data:`TRAIN_RANGES` (each stating the range); refuses
    (``ConfigError``) values farther than :data:`REFUSE_BEYOND` of a range outside it."""
    return check_parameters(params.as_dict(), TRAIN_RANGES, where, REFUSE_BEYOND)


def normalise(params: FrameParams) -> FloatArray:
    """The conditioning vector: each parameter mapped to [-1, 1] over its trained range."""
    return normalise_parameters(params.as_dict(), TRAIN_RANGES)


def draw_params(rng: np.random.Generator, split: str, **fixed: float) -> FrameParams:
    """Random parameters in the trained box; ``split`` ``"train"`` avoids
    :data:`HELD_OUT_F0_MHZ`, ``"held_out"`` draws the centre frequency inside it."""
    values = {n: float(rng.uniform(*TRAIN_RANGES[n])) for n in PARAM_NAMES}
    values["n_cycles"] = float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0]))
    lo, hi = HELD_OUT_F0_MHZ
    f_lo, f_hi = TRAIN_RANGES["center_frequency_mhz"]
    if split == "held_out":
        values["center_frequency_mhz"] = float(rng.uniform(lo, hi))
    elif split == "train":
        u = float(rng.uniform(0.0, (f_hi - f_lo) - (hi - lo)))
        values["center_frequency_mhz"] = f_lo + u if f_lo + u < lo else f_lo + u + (hi - lo)
    else:
        raise ConfigError(f"split={split!r} is invalid: expected 'train' or 'held_out'")
    for key, value in fixed.items():
        if key not in values:
            raise ConfigError(f"{key!r} is not a parameter: expected one of {PARAM_NAMES}")
        values[key] = float(value)
    return FrameParams(**values)


def draw_bubbles(
    rng: np.random.Generator, shape: tuple[int, int], density_per_lambda2: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Uniform bubble positions (pixels, ``(n, 2)`` row/col, 2 px beyond each edge too) and
    log-normal amplitudes (median 1, σ 0.3 in log)."""
    h, w = shape
    margin = 2.0
    area_lambda2 = (h + 2 * margin) * (w + 2 * margin) / PIXELS_PER_WAVELENGTH**2
    n = int(rng.poisson(max(0.0, density_per_lambda2) * area_lambda2))
    pos = np.stack(
        [rng.uniform(-margin, h - 1 + margin, n), rng.uniform(-margin, w - 1 + margin, n)], 1
    ).reshape(-1, 2)
    amp = np.exp(rng.normal(0.0, 0.3, n))
    return pos, amp


VESSEL_RADIUS_PX = (1.5, 12.0)
"""Lumen radii of :func:`draw_vessel_bubbles` trees, in λ/4 pixels (0.4–3 λ)."""


def draw_vessel_bubbles(
    rng: np.random.Generator, shape: tuple[int, int], density_per_lambda2: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Bubbles confined to a random vessel tree (:func:`sonoedge.synth.vessels.random_tree`,
    1–3 generations, lumen radii :data:`VESSEL_RADIUS_PX`): a Poisson count of mean
    ``density × area`` of the whole frame (2 px margin), spread uniformly over the lumens, so the
    local density inside vessels is several times the nominal one. Same outputs as
    :func:`draw_bubbles`."""
    from sonoedge.synth.vessels import particle_positions, random_tree, seed_particles

    h, w = shape
    margin = 2.0
    extent = (-margin, h - 1 + margin, -margin, w - 1 + margin)
    tree = random_tree(rng, extent, radius_range_m=VESSEL_RADIUS_PX, levels=int(rng.integers(1, 4)))
    area_lambda2 = (h + 2 * margin) * (w + 2 * margin) / PIXELS_PER_WAVELENGTH**2
    n = int(rng.poisson(max(0.0, density_per_lambda2) * area_lambda2))
    z, x, _ = particle_positions(tree, seed_particles(tree, rng, n), [0.0])
    pos = np.stack([z[0], x[0]], 1).reshape(-1, 2)
    inside = (
        (pos[:, 0] >= extent[0])
        & (pos[:, 0] <= extent[1])
        & (pos[:, 1] >= extent[2])
        & (pos[:, 1] <= extent[3])
    )
    pos = pos[inside]
    amp = np.exp(rng.normal(0.0, 0.3, len(pos)))
    return pos, amp


def draw_any_bubbles(
    rng: np.random.Generator,
    shape: tuple[int, int],
    density_range: tuple[float, float],
    vessel_fraction: float = 0.0,
    vessel_density_range: tuple[float, float] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One frame's bubbles: uniform (:func:`draw_bubbles`, density from ``density_range``) or,
    with probability ``vessel_fraction``, in vessels (:func:`draw_vessel_bubbles`, density from
    ``vessel_density_range``, default ``density_range``). With ``vessel_fraction == 0`` the
    random draws are exactly those of the uniform-only sampler (cached sets stay valid)."""
    if vessel_fraction > 0 and rng.uniform() < vessel_fraction:
        lo, hi = vessel_density_range or density_range
        return draw_vessel_bubbles(rng, shape, float(rng.uniform(lo, hi)))
    return draw_bubbles(rng, shape, float(rng.uniform(*density_range)))


def _probe(params: FrameParams) -> Any:
    from sonoedge.types import ProbeInfo

    f0 = params.center_frequency_mhz * 1e6
    return ProbeInfo(
        model="ulm-sim",
        center_frequency_hz=f0,
        bandwidth_fraction=params.bandwidth_fraction,
        pitch_m=params.pitch_wavelengths * params.wavelength_m,
        sampling_frequency_hz=4 * f0,
        depth_range_m=(0.0, 0.04),
    )


ENGINES = ("physics", "pymust")
"""Who images the bubbles of a :class:`Renderer`: our convolution model, or PyMUST
(:mod:`sonoedge.synth.pymust_bubbles`; clutter and noise are ours in both)."""


class Renderer:
    """Physics renders of bubble frames for one parameter vector and frame size. ``engine``
    (:data:`ENGINES`) images the bubbles; ``peak`` is a median bubble's peak in its units."""

    def __init__(
        self,
        params: FrameParams,
        shape: tuple[int, int],
        depth_m: float = 0.01,
        engine: str = "physics",
    ):
        from sonoedge.synth.imaging import Grid, Imager

        if engine not in ENGINES:
            raise ConfigError(f"engine={engine!r} is invalid: expected one of {ENGINES}")
        self.params = params
        self.shape = shape
        dz, dx = params.spacing_m
        self.grid = Grid(shape, (dz, dx), (depth_m - dz * (shape[0] - 1) / 2, 0.0))
        self.imager = Imager(
            _probe(params), self.grid, f_number=params.f_number, n_cycles=params.n_cycles
        )
        self.peak = float(np.abs(self.imager.kernel).max())
        self.beamformer: Any = None
        if engine == "pymust":
            from sonoedge.synth.microbubbles import BubbleParams
            from sonoedge.synth.pymust_bubbles import Beamformer

            self.beamformer = Beamformer(
                BubbleParams(
                    center_frequency_hz=params.center_frequency_mhz * 1e6,
                    bandwidth_fraction=params.bandwidth_fraction,
                    f_number=params.f_number,
                    n_cycles=params.n_cycles,
                    pitch_m=params.pitch_wavelengths * params.wavelength_m,
                    spacing_m=(dz, dx),
                ),
                self.grid,
            )
            centre = self.grid.origin_m[0] + dz * (shape[0] - 1) / 2, dx * (shape[1] - 1) / 2
            self.peak = float(np.abs(self.beamformer.iq([centre[0]], [centre[1]], [1.0])).max())

    def render(
        self,
        positions_px: npt.ArrayLike,
        amplitudes: npt.ArrayLike,
        seed: int,
        noise: bool = True,
    ) -> npt.NDArray[np.complex64]:
        """IQ ``(h, w)`` of bubbles at ``positions_px`` (row/col) plus clutter and noise."""
        imager, p = self.imager, self.params
        pos = np.asarray(positions_px, np.float64).reshape(-1, 2)
        dz, dx = p.spacing_m
        z0, x0 = self.grid.origin_m
        z, x = z0 + pos[:, 0] * dz, x0 + pos[:, 1] * dx
        if self.beamformer is not None:
            iq = self.beamformer.iq(z, x, np.asarray(amplitudes, np.float64))
        else:
            iq = imager.render(z, x, np.asarray(amplitudes))
        if not noise:
            return iq.astype(np.complex64)
        rng = np.random.default_rng(seed)
        peak_power = self.peak**2
        clutter_sigma = math.sqrt(peak_power * 10 ** (p.clutter_db / 10) / 2)
        unit = float(imager.power_kernel(splatted=False).sum())
        field = rng.standard_normal((2, *imager.padded_shape)) * (clutter_sigma / math.sqrt(unit))
        clutter = imager.to_image(imager.spectrum((field[0] + 1j * field[1]).astype(np.complex64)))
        sigma = math.sqrt(peak_power * 10 ** (-p.snr_db / 10) / 2)
        n = rng.standard_normal((2, *self.shape)) * sigma
        return (iq + clutter + n[0] + 1j * n[1]).astype(np.complex64)

    def display(self, iq: npt.NDArray[np.complexfloating]) -> FloatArray:
        """The generator's scale: ``clip(|iq| / (2 · bubble peak), 0, 1)``."""
        return np.clip(np.abs(iq) / (2.0 * self.peak), 0.0, 1.0).astype(np.float32)


@dataclass
class FrameSet:
    """Rendered samples: display frames, localiser inputs, conditioning, bubble positions."""

    display: FloatArray  # (S, h, w) generator scale
    loc_input: FloatArray  # (S, h, w) localiser scale
    cond: FloatArray  # (S, 7) normalised parameter vectors
    pos_map: FloatArray  # (S, h, w)
    params: npt.NDArray[np.float64]  # (S, 7) physical values
    positions: list[npt.NDArray[np.float64]]  # per sample (n, 2) pixels
    amplitudes: list[npt.NDArray[np.float64]]

    def __len__(self) -> int:
        return int(self.display.shape[0])


def render_set(
    n: int,
    shape: tuple[int, int],
    seed: int,
    split: str,
    density_range: tuple[float, float],
    frames_per_params: int = 4,
    progress: Any = None,
    label: str = "render",
    vessel_fraction: float = 0.0,
    vessel_density_range: tuple[float, float] | None = None,
    engine: str = "physics",
    **fixed: float,
) -> FrameSet:
    """``n`` physics samples (``frames_per_params`` share a parameter vector); seeded. Bubbles
    as :func:`draw_any_bubbles` (``vessel_fraction`` of them in vessel trees), imaged by
    ``engine`` (:class:`Renderer`)."""
    disp, loc, cond, pmaps, vecs, poss, amps = [], [], [], [], [], [], []
    task = progress.add_task(label, total=n) if progress is not None else None
    renderer: Renderer | None = None
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        if renderer is None or i % frames_per_params == 0:
            prng = np.random.default_rng([seed, i // frames_per_params, 7])
            renderer = Renderer(draw_params(prng, split, **fixed), shape, engine=engine)
        pos, amp = draw_any_bubbles(
            rng, shape, density_range, vessel_fraction, vessel_density_range
        )
        iq = renderer.render(pos, amp, seed=int(rng.integers(2**31)))
        disp.append(renderer.display(iq))
        loc.append(localizer_input(iq))
        cond.append(normalise(renderer.params))
        pmaps.append(position_map(pos, amp, shape))
        vecs.append(renderer.params.as_array())
        poss.append(pos)
        amps.append(amp)
        if task is not None:
            progress.update(task, advance=1)
    return FrameSet(
        np.stack(disp),
        np.stack(loc),
        np.stack(cond),
        np.stack(pmaps),
        np.stack(vecs),
        poss,
        amps,
    )


def concat_sets(first: FrameSet, second: FrameSet) -> FrameSet:
    """The samples of ``first`` followed by those of ``second``."""
    return FrameSet(
        np.concatenate([first.display, second.display]),
        np.concatenate([first.loc_input, second.loc_input]),
        np.concatenate([first.cond, second.cond]),
        np.concatenate([first.pos_map, second.pos_map]),
        np.concatenate([first.params, second.params]),
        [*first.positions, *second.positions],
        [*first.amplitudes, *second.amplitudes],
    )


def save_set(path: Any, data: FrameSet) -> None:
    counts = np.array([len(p) for p in data.positions], np.int64)
    flat_pos = np.concatenate(data.positions) if counts.sum() else np.zeros((0, 2))
    flat_amp = np.concatenate(data.amplitudes) if counts.sum() else np.zeros(0)
    np.savez(
        path,
        display=data.display,
        loc_input=data.loc_input,
        cond=data.cond,
        pos_map=data.pos_map,
        params=data.params,
        counts=counts,
        positions=flat_pos,
        amplitudes=flat_amp,
    )


def conditioning_stack(data: FrameSet, channels: int, margin_px: int = 0) -> FloatArray:
    """The generator's conditioning maps ``(S, channels, h + 2 m, w + 2 m)`` of every sample
    (:func:`sonoedge.zoo.ulm.conditioning_maps`)."""
    if channels == 1 and margin_px == 0:
        return data.pos_map[:, None]
    shape = (int(data.display.shape[1]), int(data.display.shape[2]))
    return np.stack(
        [
            conditioning_maps(p, a, shape, channels, margin_px)
            for p, a in zip(data.positions, data.amplitudes, strict=True)
        ]
    ).astype(np.float32)


def load_set(path: Any) -> FrameSet:
    with np.load(path) as z:
        counts = z["counts"]
        splits = np.cumsum(counts)[:-1]
        return FrameSet(
            z["display"],
            z["loc_input"],
            z["cond"],
            z["pos_map"],
            z["params"],
            list(np.split(z["positions"], splits)),
            list(np.split(z["amplitudes"], splits)),
        )
