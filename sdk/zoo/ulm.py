"""Torch-free deep-learning ULM: the shipped microbubble localiser (onnxruntime).

Example::

    from sonoedge.zoo import ulm
    model = ulm.load()                                   # "ulm-localizer", or a path to an .onnx
    points = model.localize(envelopes)                   # list of (n, 2) (row, col) per frame
    points = model.localize(envelopes, spacing_m=(5e-5, 5e-5), wavelength_m=2e-4)
    run = model.as_method()                              # the processing registry's "ulm" method
    res = run(iq, spacing_m=(5e-5, 5e-5), wavelength_m=2e-4, prf_hz=1000.0)  # UlmResult

The network was trained on frames on a ``wavelength / 4`` grid (model card: ``input``); given
``spacing_m`` and ``wavelength_m``, :meth:`UlmLocalizer.localize` resamples frames to that grid
(bilinear) and maps positions back to input pixels. Frames are clutter-filtered envelopes ``|iq|``
(complex frames are reduced to their magnitude); the network sees :func:`localizer_input`, the log
envelope re each frame's median (noise/clutter floor). A frame with no bubbles gives an empty
``(0, 2)`` array; an all-zero frame is not run at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing.psf_fit import PSF_PARAMETERS
from sonoedge.zoo.backend import cpu_session

if TYPE_CHECKING:
    from sonoedge.synth.microbubbles import BubbleParams, BubbleScene

DEFAULT_NAME = "ulm-localizer"
LOG_SCALE_DB = 40.0
MIN_SIZE = 8
MAX_SIZE = 4096
RESAMPLE_TOLERANCE = 0.02
MAX_UPSAMPLE = 4.0
"""Coarsest input accepted: pixels up to this many times the network's (one wavelength)."""
BATCH = 32
TRACKING_OPTIONS = (
    "origin_m",
    "max_linking_distance_m",
    "min_track_length",
    "grid_fraction",
    "smoothing_window",
)
PSF_FIT_OPTIONS = ("psf_fit", "max_sigma_wavelengths", "max_sigma_inflation")
"""Options of the ``ulm`` method that refine the network's detections in IQ
(:meth:`UlmLocalizer.localize`)."""
GUIDE_PARAMETERS = PSF_PARAMETERS
"""The frames' transducer and pulse parameters a localiser may be told: what shapes the PSF in
wavelengths (a physics-guided model needs them; a blind one warns when they lie outside its
trained box; the PSF fit models the PSF from them)."""
FloatArray = npt.NDArray[np.float64]


BRIGHT_PERCENTILE = 99.5
"""Percentile of a frame's envelope that stands for its bright bubbles (:func:`localizer_input`)."""
DYNAMIC_RANGE_LIMITS_DB = (10.0, 80.0)
"""Accepted ``dynamic_range_db`` values. The localisers were trained on bubbles 10–37 dB above
the noise and clutter; frames with a lower floor (high SNR after strong clutter filtering,
another simulator's side lobes) gave false detections; a 25 dB floor stopped most."""


def check_dynamic_range(value: Any) -> float:
    """``value`` as a float within :data:`DYNAMIC_RANGE_LIMITS_DB`, or a :class:`ConfigError`."""
    lo, hi = DYNAMIC_RANGE_LIMITS_DB
    try:
        db = float(value)
    except (TypeError, ValueError):
        db = float("nan")
    if not lo <= db <= hi:
        raise ConfigError(
            f"dynamic_range_db={value!r} is invalid: expected {lo:g}..{hi:g} dB below the "
            "frame's bright bubbles (80 keeps practically the whole range)"
        )
    return db


def localizer_input(
    envelope: npt.ArrayLike, dynamic_range_db: float | None = None
) -> npt.NDArray[np.float32]:
    """Network input of envelope frames ``(..., h, w)``: ``20 log10(env / floor) / 40`` with
    ``floor`` each frame's median envelope, clipped to ``[-1, 2]``; all-zero frames give 0.

    ``dynamic_range_db``: first raise every pixel to at least this many dB below the frame's
    bright bubbles (its 99.5th percentile), so that PSF tails and side lobes under that level
    look alike whatever the noise and clutter floor (see :data:`DYNAMIC_RANGE_LIMITS_DB`)."""
    env = np.abs(np.asarray(envelope)).astype(np.float64)
    if dynamic_range_db is not None:
        bright = np.percentile(env, BRIGHT_PERCENTILE, axis=(-2, -1), keepdims=True)
        env = np.maximum(env, bright * 10 ** (-check_dynamic_range(dynamic_range_db) / 20))
    floor = np.median(env, axis=(-2, -1), keepdims=True)
    floor = np.where(floor > 0, floor, np.maximum(env.max(axis=(-2, -1), keepdims=True), 1e-30))
    db = 20.0 * np.log10(np.maximum(env, 1e-30) / floor)
    return np.clip(db / LOG_SCALE_DB, -1.0, 2.0).astype(np.float32)


def check_parameters(
    values: dict[str, float],
    ranges: dict[str, Any],
    where: str = "parameter vector",
    refuse_beyond: float = 0.5,
    hint: str = "simulate them with sonoedge.synth.microbubbles instead",
    accepted: dict[str, Any] | None = None,
) -> list[str]:
    """Check physical parameters against the trained ``ranges`` (name -> ``[lo, hi]``).

    Returns one warning line per value outside its range (stating the range); raises
    :class:`ConfigError` for a missing, non-finite or unknown parameter, or a value farther than
    ``refuse_beyond`` of its range's width outside it (frames there would be meaningless).
    ``accepted`` (name -> ``[lo, hi]``) replaces that rule for the parameters it names: the
    range where results were measured to stay meaningful."""
    unknown = sorted(set(values) - set(ranges))
    missing = [n for n in ranges if n not in values]
    if unknown or missing:
        raise ConfigError(
            f"{where}: unknown {unknown} / missing {missing}: expected exactly {list(ranges)}"
        )
    notes = []
    for name, (lo, hi) in ranges.items():
        value = float(values[name])
        span = float(hi) - float(lo)
        if not np.isfinite(value):
            raise ConfigError(f"{where}: {name}={value!r} is not a finite number")
        far_lo, far_hi = (accepted or {}).get(
            name, (lo - refuse_beyond * span, hi + refuse_beyond * span)
        )
        if value < far_lo or value > far_hi:
            raise ConfigError(
                f"{where}: {name}={value:g} is far outside the trained range {lo:g}..{hi:g} "
                f"(refused beyond {far_lo:g}..{far_hi:g}): frames there would be meaningless",
                hint=hint,
            )
        if value < lo or value > hi:
            notes.append(
                f"{where}: {name}={value:g} is outside the trained range {lo:g}..{hi:g}: the "
                "network extrapolates"
            )
    return notes


def normalise_parameters(
    values: dict[str, float], ranges: dict[str, Any]
) -> npt.NDArray[np.float32]:
    """Conditioning vector: each parameter mapped to ``[-1, 1]`` over its trained range."""
    return np.asarray(
        [2.0 * (float(values[n]) - lo) / (hi - lo) - 1.0 for n, (lo, hi) in ranges.items()],
        np.float32,
    )


def position_map(
    positions_px: npt.ArrayLike, amplitudes: npt.ArrayLike, shape: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Bubble amplitudes splatted bilinearly at their sub-pixel ``(row, col)`` positions (the
    generator's position conditioning channel)."""
    h, w = shape
    pos = np.asarray(positions_px, np.float64).reshape(-1, 2)
    amp = np.broadcast_to(np.asarray(amplitudes, np.float64), (len(pos),))
    out = np.zeros((h + 2, w + 2), np.float64)
    fz, fx = np.floor(pos[:, 0]), np.floor(pos[:, 1])
    wz, wx = pos[:, 0] - fz, pos[:, 1] - fx
    corners = (
        (0, 0, (1 - wz) * (1 - wx)),
        (0, 1, (1 - wz) * wx),
        (1, 0, wz * (1 - wx)),
        (1, 1, wz * wx),
    )
    for dz, dx, wt in corners:
        iz, ix = fz.astype(int) + dz + 1, fx.astype(int) + dx + 1
        ok = (iz >= 0) & (iz < h + 2) & (ix >= 0) & (ix < w + 2)
        np.add.at(out, (iz[ok], ix[ok]), (amp * wt)[ok])
    return out[1:-1, 1:-1].astype(np.float32)


def conditioning_maps(
    positions_px: npt.ArrayLike,
    amplitudes: npt.ArrayLike,
    shape: tuple[int, int],
    channels: int = 1,
    margin_px: int = 0,
) -> npt.NDArray[np.float32]:
    """The generator's conditioning ``(channels, H + 2 m, W + 2 m)`` on the ``wavelength / 4``
    grid, ``m = margin_px`` pixels beyond each edge of the ``(H, W)`` frame (so bubbles just
    outside it, whose PSFs reach in, are seen): the amplitude splat (:func:`position_map`) and,
    for ``channels = 3``, the amplitude times the cosine and sine of each bubble's two-way echo
    phase ``-2 k z = -π · row`` (one row is λ/4), so the network sees how the echoes of
    neighbouring bubbles interfere. ``positions_px`` are frame pixels."""
    if channels not in (1, 3):
        raise ConfigError(f"channels={channels} is invalid: expected 1 or 3")
    pos = np.asarray(positions_px, np.float64).reshape(-1, 2) + margin_px
    amp = np.broadcast_to(np.asarray(amplitudes, np.float64), (len(pos),))
    shape = (shape[0] + 2 * margin_px, shape[1] + 2 * margin_px)
    maps = [position_map(pos, amp, shape)]
    if channels == 3:
        phase = -np.pi * pos[:, 0]
        maps += [position_map(pos, amp * np.cos(phase), shape)]
        maps += [position_map(pos, amp * np.sin(phase), shape)]
    return np.stack(maps)


def to_network_scale(display: npt.ArrayLike, exponent: float = 1.0) -> npt.NDArray[np.float32]:
    """Display frames in ``[0, 1]`` on the generator's ``[-1, 1]`` scale: ``2 d**exponent - 1``."""
    d = np.clip(np.asarray(display, np.float32), 0.0, 1.0)
    return (2.0 * d**exponent - 1.0).astype(np.float32)


def from_network_scale(x: npt.ArrayLike, exponent: float = 1.0) -> npt.NDArray[np.float32]:
    """Inverse of :func:`to_network_scale` (values outside ``[-1, 1]`` are clipped)."""
    d = np.clip((np.asarray(x, np.float32) + 1.0) / 2.0, 0.0, 1.0)
    return (d ** (1.0 / exponent)).astype(np.float32)


def alpha_bar(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The cosine noise schedule of :func:`sonoedge.models.ulm_generator.alpha_bar`."""
    s = 0.008
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    f0 = np.cos(s / (1 + s) * np.pi / 2) ** 2
    return np.clip(f / f0, 1e-4, 0.9999)


def sample_times(steps: int, power: float = 1.0) -> npt.NDArray[np.float64]:
    """The sampler's diffusion times, ``1 → 0`` in ``steps`` intervals: ``(1 - k / steps) **
    power``. Powers above 1 spend more steps at low noise, where the faint noise and clutter
    texture forms (with uniform times the last step jumps from ``t = 0.1`` to the clean frame)."""
    return np.linspace(1.0, 0.0, int(steps) + 1) ** float(power)


MIRROR_AVERAGES = (1, 2, 4)
"""Mirror images a generator's clean-frame estimates may be averaged over: none, the lateral
mirror, or the lateral and axial mirrors and both (see :func:`mirror_set`)."""


def mirror_set(copies: int) -> tuple[tuple[bool, bool], ...]:
    """The ``(lateral, axial)`` mirrors whose estimates are averaged for ``copies`` in
    :data:`MIRROR_AVERAGES` (the identity first)."""
    if copies not in MIRROR_AVERAGES:
        raise ConfigError(f"mirror_average={copies} is invalid: expected one of {MIRROR_AVERAGES}")
    return ((False, False), (True, False), (False, True), (True, True))[:copies]


def _mirror(x: npt.NDArray[np.float32], lateral: bool, axial: bool) -> npt.NDArray[np.float32]:
    if lateral:
        x = x[..., ::-1]
    if axial:
        x = x[..., ::-1, :]
    return np.ascontiguousarray(x)


def mirror_conditioning(
    pos_maps: npt.NDArray[np.float32], lateral: bool, axial: bool
) -> npt.NDArray[np.float32]:
    """Conditioning maps ``(B, C, Hp, Wp)`` of the mirror image of the scene: equal to
    :func:`conditioning_maps` of the mirrored bubble positions. A lateral mirror only flips the
    maps; an axial one also turns each echo phase ``-π · row`` into ``-π · (Hp - 1 - row)``, so the
    cosine channel takes the sign ``(-1) ** (Hp - 1)`` and the sine channel the opposite one."""
    pm = np.array(_mirror(pos_maps, lateral, axial), np.float32)
    if axial and pm.shape[1] == 3:
        sign = 1.0 if pm.shape[-2] % 2 else -1.0
        pm[:, 1] *= sign
        pm[:, 2] *= -sign
    return pm


class UlmGenerator:
    """The exported conditional diffusion generator (denoiser in ONNX, DDIM loop in numpy).

    :meth:`synthesize` makes bubble frames on the display scale (``|iq| / (2 × one bubble's
    peak)`` clipped to ``[0, 1]``) for bubble positions and a physical parameter vector (names
    and trained ranges in the model card's ``param_ranges``); out-of-range vectors warn (stating
    the range) or are refused (:func:`check_parameters`)."""

    def __init__(
        self, onnx_path: str | Path, card: dict[str, Any], threads: int = 2, session: Any = None
    ) -> None:
        self.path = Path(onnx_path)
        self.card = card
        try:
            self.ranges = {k: tuple(v) for k, v in card["input"]["param_ranges"].items()}
            self.size_multiple = int(card["input"]["size_multiple"])
            self.steps = int(card["sampling"]["steps"])
            self.refuse_beyond = float(card["input"].get("refuse_beyond", 0.5))
            self.pos_channels = int(card["input"].get("pos_channels", 1))
            self.margin_px = int(card["input"].get("margin_px", 0))
            self.display_exponent = float(card["sampling"].get("display_exponent", 1.0))
            self.time_power = float(card["sampling"].get("time_power", 1.0))
            self.mirror_average = int(card["sampling"].get("mirror_average", 1))
            self.pixels_per_wavelength = float(card["input"].get("pixels_per_wavelength", 4))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"model card of {self.path} lacks field {err}") from None
        self.name = str(card.get("name", self.path.stem))
        self.session = session if session is not None else cpu_session(self.path, threads)

    def __repr__(self) -> str:
        return (
            f"UlmGenerator({self.name!r}, steps={self.steps}, mirror_average={self.mirror_average})"
        )

    def denoise(
        self,
        x_t: npt.NDArray[np.float32],
        pos_map: npt.NDArray[np.float32],
        cond: npt.NDArray[np.float32],
        t: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float32]:
        """The network's clean-frame estimate ``(B, 1, H, W)`` in ``[-1, 1]`` units."""
        feeds = {
            "x_t": np.ascontiguousarray(x_t, np.float32),
            "pos_map": np.ascontiguousarray(pos_map, np.float32),
            "cond": np.ascontiguousarray(cond, np.float32),
            "t": np.ascontiguousarray(t, np.float32),
        }
        (y,) = self.session.run(None, feeds)
        return np.asarray(y, np.float32)

    def sample(
        self,
        pos_maps: npt.NDArray[np.float32],
        conds: npt.NDArray[np.float32],
        seed: int = 0,
        steps: int | None = None,
        noise: npt.NDArray[np.float32] | None = None,
        mirror_average: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """DDIM (``eta = 0``) frames ``(B, H, W)`` in ``[0, 1]`` for conditioning maps
        ``(B, pos_channels, H + 2 m, W + 2 m)`` (:func:`conditioning_maps` with this model's
        ``pos_channels`` and ``margin_px``; ``(B, H, W)`` for one channel and no margin) and
        normalised parameter vectors ``(B, P)``; the starting noise is drawn from ``seed`` unless
        given (``(B, 1, H, W)``). Each step's clean-frame estimate is the mean of the network's
        estimates for the frame and its mirror images (``mirror_average`` copies, default the
        card's ``sampling.mirror_average``; :func:`mirror_set`), mirrored back: the physics is
        symmetric under both mirrors, so the copies are estimates of the same frame."""
        pm = pos_maps[:, None] if pos_maps.ndim == 3 else pos_maps
        n, c, h, w = pm.shape
        if c != self.pos_channels:
            raise DataError(
                f"{self.name} takes {self.pos_channels} conditioning channel(s), got {c}: "
                "build them with conditioning_maps(..., channels=pos_channels)"
            )
        h, w = h - 2 * self.margin_px, w - 2 * self.margin_px
        k_steps = self.steps if steps is None else int(steps)
        if k_steps < 1:
            raise ConfigError(f"steps={k_steps} is invalid: expected >= 1")
        if h % self.size_multiple or w % self.size_multiple:
            raise DataError(f"frames must be multiples of {self.size_multiple} pixels per side")
        mirrors = mirror_set(self.mirror_average if mirror_average is None else mirror_average)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, 1, h, w)).astype(np.float32) if noise is None else noise
        pm = pm.astype(np.float32)
        pm_all = np.concatenate([mirror_conditioning(pm, *m) for m in mirrors])
        cond_all = np.concatenate([np.asarray(conds, np.float32)] * len(mirrors))
        times = sample_times(k_steps, self.time_power)
        for k in range(k_steps):
            ab = float(alpha_bar(np.array(times[k])))
            x_all = np.concatenate([_mirror(x, *m) for m in mirrors])
            t_all = np.full(len(x_all), times[k], np.float32)
            est = self.denoise(x_all, pm_all, cond_all, t_all)
            x0 = np.mean([_mirror(est[j * n : (j + 1) * n], *m) for j, m in enumerate(mirrors)], 0)
            x0 = np.clip(x0, -1, 1)
            if k == k_steps - 1:
                x = x0
                break
            eps = (x - np.sqrt(ab) * x0) / np.sqrt(1 - ab)
            ab_next = float(alpha_bar(np.array(times[k + 1])))
            x = (np.sqrt(ab_next) * x0 + np.sqrt(1 - ab_next) * eps).astype(np.float32)
        return from_network_scale(x[:, 0], self.display_exponent)

    def synthesize(
        self,
        positions_px: list[npt.ArrayLike],
        params: dict[str, float],
        shape: tuple[int, int] = (32, 32),
        amplitudes: list[npt.ArrayLike] | None = None,
        seed: int = 0,
        steps: int | None = None,
        mirror_average: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Frames ``(len(positions_px), H, W)`` with bubbles at ``positions_px[i]`` (``(n, 2)``
        row/col on the λ/4 grid; amplitudes default to 1) for one physical parameter set
        (``steps`` and ``mirror_average`` as :meth:`sample`)."""
        import warnings

        for note in check_parameters(params, self.ranges, "generator", self.refuse_beyond):
            warnings.warn(note, UserWarning, stacklevel=2)
        amps = amplitudes if amplitudes is not None else [1.0] * len(positions_px)
        pm = np.stack(
            [
                conditioning_maps(p, a, shape, self.pos_channels, self.margin_px)
                for p, a in zip(positions_px, amps, strict=True)
            ]
        ).reshape(-1, self.pos_channels, *(n + 2 * self.margin_px for n in shape))
        cond = np.repeat(normalise_parameters(params, self.ranges)[None], len(pm), axis=0)
        return self.sample(pm, cond, seed=seed, steps=steps, mirror_average=mirror_average)

    def render_scene(
        self,
        scene: BubbleScene,
        params: BubbleParams,
        seed: int = 0,
        mirror_average: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Envelope frames ``(frames, H, W)`` of a :func:`~sonoedge.synth.microbubbles.bubble_scene`
        imaged with ``params``: the generator's stand-in for the frames of
        :func:`~sonoedge.synth.microbubbles.simulate_bubbles`, in the same units (``|iq|``) except
        that the generator's range ends at twice a median bubble's peak, where it clips. The
        scene's grid must be the generator's (``wavelength / 4``)."""
        from sonoedge.synth.imaging import Imager

        grid = scene.grid
        native = 1540.0 / params.center_frequency_hz / self.pixels_per_wavelength
        if any(abs(d / native - 1.0) > RESAMPLE_TOLERANCE for d in grid.spacing_m):
            raise ConfigError(
                f"the scene's pixels are {grid.spacing_m[0]:.3g} x {grid.spacing_m[1]:.3g} m: the "
                f"generator draws on wavelength/{self.pixels_per_wavelength:g} ({native:.3g} m)",
                hint="make the scene with spacing_m = wavelength / 4 (BubbleParams.random does)",
            )
        h, w = grid.shape
        (z0, x0), (dz, dx), m = grid.origin_m, grid.spacing_m, self.margin_px
        positions: list[npt.ArrayLike] = []
        amplitudes: list[npt.ArrayLike] = []
        for z, x in zip(scene.z_m, scene.x_m, strict=True):
            px = np.stack([(z - z0) / dz, (x - x0) / dx], axis=1)
            seen = (px[:, 0] >= -m) & (px[:, 0] <= h - 1 + m)
            seen &= (px[:, 1] >= -m) & (px[:, 1] <= w - 1 + m)
            positions.append(px[seen])
            amplitudes.append(scene.amplitudes[seen])
        display = self.synthesize(
            positions, generator_parameters(params), (h, w), amplitudes, seed, None, mirror_average
        )
        imager = Imager(params.probe(), grid, f_number=params.f_number, n_cycles=params.n_cycles)
        peak = float(np.abs(imager.kernel).max())
        return (display * (2.0 * peak)).astype(np.float32)


def generator_parameters(params: BubbleParams) -> dict[str, float]:
    """The generator's parameter vector (card ``param_ranges`` names) of a simulator
    :class:`~sonoedge.synth.microbubbles.BubbleParams`."""
    wavelength_m = 1540.0 / params.center_frequency_hz
    return {
        "center_frequency_mhz": params.center_frequency_hz / 1e6,
        "bandwidth_fraction": params.bandwidth_fraction,
        "f_number": params.f_number,
        "n_cycles": params.n_cycles,
        "pitch_wavelengths": params.pitch_m / wavelength_m,
        "snr_db": params.snr_db,
        "clutter_db": params.clutter_db,
    }


def probe_guide(params: dict[str, Any], probe: Any, wavelength_m: float) -> dict[str, Any]:
    """``params`` completed by what a :class:`~sonoedge.types.ProbeInfo` tells a network
    localiser: the bandwidth and the pitch in wavelengths (values in ``params`` win; F# and pulse
    cycles are acquisition settings a probe does not report)."""
    out = dict(params)
    if probe is None:
        return out
    out.setdefault("bandwidth_fraction", float(probe.bandwidth_fraction))
    out.setdefault("pitch_wavelengths", float(probe.pitch_m) / wavelength_m)
    return out


def load_generator(name_or_path: str | Path = "ulm-generator", threads: int = 2) -> UlmGenerator:
    """Load the shipped generator (``"ulm-generator"``) or an exported one."""
    from sonoedge.zoo import read_card, resolve

    onnx_path = resolve(name_or_path)
    card = read_card(onnx_path)
    if card["task"] != "ulm-generator":
        raise ConfigError(f"{onnx_path} is a {card['task']!r} model: expected 'ulm-generator'")
    return UlmGenerator(onnx_path, card, threads=threads)


def check_frames(frames: object) -> npt.NDArray[np.float32]:
    """Envelope frames ``(N, H, W)`` float32 from real or complex ``(N, H, W)`` or ``(H, W)``,
    or a :class:`DataError` saying what is wrong."""
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DataError(
            f"frames have shape {arr.shape}: expected (frames, axial, lateral) or one (H, W) frame"
        )
    if not (np.iscomplexobj(arr) or np.issubdtype(arr.dtype, np.number)):
        raise DataError(f"frames have dtype {arr.dtype}: expected real or complex numbers")
    if min(arr.shape[1:]) < MIN_SIZE or max(arr.shape[1:]) > MAX_SIZE:
        raise DataError(
            f"frames are {arr.shape[1]}x{arr.shape[2]} pixels: expected {MIN_SIZE}..{MAX_SIZE}"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError("frames contain NaN/Inf", hint="replace or drop invalid frames")
    return np.abs(arr).astype(np.float32)


def flip_average(
    maps: npt.NDArray[np.float32], mirrored: npt.NDArray[np.float32], axial: bool = False
) -> npt.NDArray[np.float32]:
    """Mean of maps ``(N, 3, H, W)`` and the maps of the laterally (``axial``: axially) mirrored
    frames, mirrored back (that axis's offset, channel 2 or 1, changes sign)."""
    if axial:
        back = mirrored[:, :, ::-1, :].copy()
        back[:, 1] *= -1.0
    else:
        back = mirrored[:, :, :, ::-1].copy()
        back[:, 2] *= -1.0
    return ((maps + back) / 2).astype(np.float32)


def mirror_averaged(
    run: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
    inputs: npt.NDArray[np.float32],
    copies: int,
) -> npt.NDArray[np.float32]:
    """Maps ``run(inputs)`` ``(N, 3, H, W)`` of inputs ``(N, H, W)`` averaged over ``copies``
    mirror images (1; 2: the lateral one; 4: and the axial ones), each mirrored back
    (:func:`flip_average`). The runtime and the training's threshold tuning share it."""

    def lateral(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        out = run(x)
        if copies >= 2:
            out = flip_average(out, run(np.ascontiguousarray(x[:, :, ::-1])))
        return out

    maps = lateral(inputs)
    if copies == 4:
        maps = flip_average(maps, lateral(np.ascontiguousarray(inputs[:, ::-1])), axial=True)
    return maps


def decode(
    maps: npt.NDArray[np.float32],
    threshold: float,
    max_per_frame: int | None = None,
    offset_clip: float = 1.0,
) -> list[FloatArray]:
    """Positions ``(row, col)`` per frame from network maps ``(N, 3, H, W)``: 3×3 local maxima
    of the probability above ``threshold``, moved by the predicted offsets (each clipped to
    ±``offset_clip`` pixels: the model card's ``decode.offset_clip_px``), most probable first."""
    import cv2

    out = []
    for m in maps:
        prob = np.ascontiguousarray(m[0], np.float32)
        peak = prob >= cv2.dilate(prob, np.ones((3, 3), np.uint8))
        rows, cols = np.nonzero(peak & (prob >= threshold))
        order = np.argsort(-prob[rows, cols], kind="stable")
        rows, cols = rows[order], cols[order]
        if max_per_frame is not None:
            rows, cols = rows[:max_per_frame], cols[:max_per_frame]
        off = np.clip(m[1:, rows, cols].T.astype(np.float64), -offset_clip, offset_clip)
        out.append(np.stack([rows, cols], 1).astype(np.float64).reshape(-1, 2) + off)
    return out


class UlmLocalizer:
    """An exported ULM localiser run by onnxruntime (CPU)."""

    def __init__(
        self, onnx_path: str | Path, card: dict[str, Any], threads: int = 2, session: Any = None
    ) -> None:
        """``session``: an onnxruntime-session-shaped object to run on (a device backend);
        default a plain onnxruntime CPU session with ``threads`` threads."""
        self.path = Path(onnx_path)
        self.card = card
        try:
            self.pixels_per_wavelength = float(card["input"]["pixels_per_wavelength"])
            self.size_multiple = int(card["input"]["size_multiple"])
            self.threshold = float(card["decode"]["threshold"])
            self.offset_clip = float(card["decode"].get("offset_clip_px", 1.0))
            lateral = bool(card["decode"].get("flip_average", False))
            axial = bool(card["decode"].get("axial_average", False))
            self.mirror_average = (2 if lateral else 1) * (2 if axial else 1)
            floor = card["decode"].get("dynamic_range_db")
            self.dynamic_range_db = None if floor is None else check_dynamic_range(floor)
            guided = card["input"].get("params", {})
            self.param_names = tuple(guided.get("names", ()))
            self.accepted = {n: tuple(v) for n, v in guided.get("accepted", {}).items()}
            box = {n: tuple(v) for n, v in card["input"].get("param_ranges", {}).items()}
            self.param_ranges = {n: box[n] for n in self.param_names}
            self.checked_ranges = {n: box[n] for n in GUIDE_PARAMETERS if n in box}
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"model card of {self.path} lacks field {err}") from None
        self.name = str(card.get("name", self.path.stem))
        self.session = session if session is not None else cpu_session(self.path, threads)
        self.device = str(getattr(self.session, "device", "cpu"))
        self.input_name = self.session.get_inputs()[0].name

    def __repr__(self) -> str:
        return f"UlmLocalizer({self.name!r}, threshold={self.threshold:g})"

    def maps(
        self,
        inputs: npt.NDArray[np.float32],
        params: dict[str, float] | None = None,
        mirror_average: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """Network maps ``(N, 3, H, W)`` (probability, dz, dx) of network inputs ``(N, H, W)``
        (:func:`localizer_input` scale); sizes are reflect-padded to the network's multiple.
        ``params``: the frames' transducer and pulse, for a physics-guided model (see
        :meth:`guide`).

        :attr:`mirror_average` (the card's ``decode.flip_average`` and ``decode.axial_average``)
        is how many mirror images of each frame the maps average: 2 adds the lateral mirror
        image, 4 the axial one and both (each mirrored back, that axis's offset negated). A
        linear-array image is laterally symmetric and a symmetric pulse's envelope axially, so
        the copies estimate the same thing with partly independent errors (N times the
        inference); ``mirror_average`` overrides the card."""
        copies = self._copies(mirror_average)
        return self._averaged_maps(inputs, self.guide(params), copies)

    def _copies(self, mirror_average: int | None) -> int:
        copies = self.mirror_average if mirror_average is None else mirror_average
        if copies not in MIRROR_AVERAGES:
            raise ConfigError(
                f"mirror_average={copies!r} is invalid: expected one of {MIRROR_AVERAGES} (the "
                "frame alone, with its lateral mirror image, or with its lateral and axial ones)"
            )
        return int(copies)

    def _averaged_maps(
        self,
        inputs: npt.NDArray[np.float32],
        guide: npt.NDArray[np.float32] | None,
        copies: int,
    ) -> npt.NDArray[np.float32]:
        return mirror_averaged(lambda x: self._maps(x, guide), inputs, copies)

    def guide(self, params: dict[str, float] | None) -> npt.NDArray[np.float32] | None:
        """The normalised guide vector of a physics-guided model (card ``input.params.names``)
        from ``params`` (other keys are ignored), or a :class:`ConfigError` naming what is
        missing; values outside the trained ranges warn, far outside (beyond the card's
        ``input.params.accepted`` ranges where it has them) are refused
        (:func:`check_parameters`). A blind model takes no guide: it only warns about the
        :data:`GUIDE_PARAMETERS` given that lie outside the box it was trained on."""
        import warnings

        if not self.param_names:
            given = tuple(n for n in self.checked_ranges if params and n in params)
            box = {n: self.checked_ranges[n] for n in given}
            values = self._numbers(params or {}, given)
            for note in check_parameters(values, box, self.name, np.inf):  # never refuses
                warnings.warn(note, UserWarning, stacklevel=3)
            return None
        missing = [n for n in self.param_names if params is None or n not in params]
        if missing:
            raise ConfigError(
                f"{self.name} is physics-guided and needs the frames' {', '.join(missing)}",
                hint=f"pass params={{{', '.join(repr(n) + ': ...' for n in self.param_names)}}}"
                " (options of the ulm method), or use the blind 'ulm-localizer'",
            )
        assert params is not None
        values = self._numbers(params, self.param_names)
        blind = "use the blind 'ulm-localizer' for such frames"
        notes = check_parameters(values, self.param_ranges, self.name, 0.5, blind, self.accepted)
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=3)
        return normalise_parameters(values, self.param_ranges)

    def _numbers(self, params: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
        try:
            return {n: float(params[n]) for n in names}
        except (TypeError, ValueError):
            raise ConfigError(
                f"{self.name}: parameters {params!r} are not all numbers: expected "
                f"{', '.join(names)} as numbers"
            ) from None

    def _maps(
        self, inputs: npt.NDArray[np.float32], guide: npt.NDArray[np.float32] | None = None
    ) -> npt.NDArray[np.float32]:
        n, h, w = inputs.shape
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        work = np.pad(inputs, ((0, 0), (0, ph), (0, pw)), mode="reflect") if ph or pw else inputs
        outs = []
        for i in range(0, n, BATCH):
            batch = np.ascontiguousarray(work[i : i + BATCH, None], np.float32)
            feeds = {self.input_name: batch}
            if guide is not None:
                feeds["params"] = np.repeat(guide[None], len(batch), axis=0)
            (y,) = self.session.run(None, feeds)
            outs.append(np.asarray(y, np.float32)[:, :, :h, :w])
        return np.concatenate(outs)

    def localize(
        self,
        frames: npt.ArrayLike,
        spacing_m: tuple[float, float] | None = None,
        wavelength_m: float | None = None,
        threshold: float | None = None,
        max_per_frame: int | None = None,
        params: dict[str, float] | None = None,
        mirror_average: int | None = None,
        dynamic_range_db: float | None = None,
        psf_fit: bool = False,
        max_sigma_wavelengths: float | None = None,
        max_sigma_inflation: float | None = None,
    ) -> list[FloatArray]:
        """Bubble positions ``(n, 2)`` ``(row, col)`` in input pixels, one array per frame.

        ``frames``: clutter-filtered envelopes (or complex IQ) ``(N, H, W)`` or one ``(H, W)``.
        With ``spacing_m`` and ``wavelength_m`` the frames are resampled to the trained
        ``wavelength / pixels_per_wavelength`` grid first (when off by more than 2 %).
        ``params``: the transducer and pulse of the frames (:data:`GUIDE_PARAMETERS`), needed
        by physics-guided models (:attr:`param_names`); blind ones only warn about values
        outside the box they were trained on (:meth:`guide`). ``mirror_average`` (1, 2 or 4):
        the mirror images averaged (:meth:`maps`; default the card's). ``dynamic_range_db``:
        the floor below the frame's bright bubbles (:func:`localizer_input`; default the card's
        ``decode.dynamic_range_db``, :attr:`dynamic_range_db`; absent: none).

        ``psf_fit``: refine the detections by a joint fit of coherent PSFs to the complex IQ
        (:mod:`sonoedge.processing.psf_fit`: needs complex frames, ``spacing_m``,
        ``wavelength_m`` and the PSF parameters in ``params``; seconds per crowded frame),
        splitting pairs the network saw as one bubble and keeping the bubbles whose position
        standard deviation is at most ``max_sigma_wavelengths`` or whose neighbours inflate it
        by at most ``max_sigma_inflation`` (defaults 0.04 λ and 2).
        """
        env = check_frames(frames)
        psf = None
        if psf_fit:
            psf = self._psf(frames, spacing_m, wavelength_m, params)
        floor_db = self.dynamic_range_db  # the card's; an override is refused before any work
        if dynamic_range_db is not None:
            floor_db = check_dynamic_range(dynamic_range_db)
        thr = self.threshold if threshold is None else float(threshold)
        if not 0.0 < thr < 1.0:
            raise ConfigError(f"threshold={thr!r} is invalid: expected 0 < threshold < 1")
        guide = self.guide(params)  # refuse missing parameters before any work
        copies = self._copies(mirror_average)
        scale = (1.0, 1.0)
        if spacing_m is not None or wavelength_m is not None:
            if spacing_m is None or wavelength_m is None or not wavelength_m > 0:
                raise ConfigError("give both spacing_m and wavelength_m (> 0), or neither")
            if not (spacing_m[0] > 0 and spacing_m[1] > 0):
                raise ConfigError(f"spacing_m={spacing_m!r} is invalid: expected > 0")
            native = wavelength_m / self.pixels_per_wavelength
            scale = (spacing_m[0] / native, spacing_m[1] / native)
            if max(scale) > MAX_UPSAMPLE + RESAMPLE_TOLERANCE:
                raise DataError(
                    f"pixels of {spacing_m[0] / wavelength_m:.2g} x "
                    f"{spacing_m[1] / wavelength_m:.2g} wavelengths are too coarse for "
                    f"localisation: expected at most {MAX_UPSAMPLE / self.pixels_per_wavelength:g}"
                    f" wavelength (the network works on wavelength/{self.pixels_per_wavelength:g})",
                    hint="beamform the IQ data on a finer grid (ULM data is usually lambda/2)",
                )
        resample = any(abs(s - 1.0) > RESAMPLE_TOLERANCE for s in scale)
        if resample:
            h, w = env.shape[1:]
            env = _resample(env, scale)
            scale = (env.shape[1] / h, env.shape[2] / w)
        live = np.flatnonzero(env.reshape(len(env), -1).max(axis=1) > 0)
        out: list[FloatArray] = [np.zeros((0, 2)) for _ in range(len(env))]
        if live.size:
            maps = self._averaged_maps(localizer_input(env[live], floor_db), guide, copies)
            found = decode(maps, thr, max_per_frame, self.offset_clip)
            for k, pts in zip(live, found, strict=True):
                out[int(k)] = pts
        if resample:
            s = np.asarray(scale)
            out = [(p + 0.5) / s - 0.5 for p in out]
        if psf is not None:
            from sonoedge.processing import psf_fit as fit

            iq = np.asarray(frames)
            out = fit.refine_frames(
                iq[None] if iq.ndim == 2 else iq,
                out,
                psf,
                max_sigma_wavelengths,
                max_sigma_inflation,
            )
        return out

    def _psf(
        self,
        frames: npt.ArrayLike,
        spacing_m: tuple[float, float] | None,
        wavelength_m: float | None,
        params: dict[str, float] | None,
    ) -> Any:
        """The PSF of the frames for ``psf_fit``, or an error naming what is missing."""
        from sonoedge.processing.psf_fit import psf_for

        if not np.iscomplexobj(np.asarray(frames)):
            raise DataError(
                f"{self.name}: psf_fit needs complex IQ frames, got envelopes",
                hint="pass the clutter-filtered IQ (the ulm method does), or drop psf_fit",
            )
        if spacing_m is None or wavelength_m is None:
            raise ConfigError("psf_fit needs spacing_m and wavelength_m")
        return psf_for(params or {}, spacing_m, wavelength_m)

    def as_method(self) -> Any:
        """A ``ulm`` method for :mod:`sonoedge.processing.registry`:
        ``fn(iq, spacing_m, wavelength_m, prf_hz, svd_low=None, **options) -> UlmResult``.

        Complex IQ ensembles are SVD clutter filtered (``svd_low`` as the classical methods; 0
        skips it), the network localises, and the classical Hungarian tracking renders density
        and velocity maps on the λ/10 grid. Options: ``threshold``, ``max_per_frame``,
        ``mirror_average`` (:meth:`maps`), ``dynamic_range_db``, ``psf_fit`` (1 or true),
        ``max_sigma_wavelengths``, ``max_sigma_inflation`` (:meth:`localize`), the
        tracking options ``origin_m``, ``max_linking_distance_m``, ``min_track_length``,
        ``grid_fraction``, and the frames' :data:`GUIDE_PARAMETERS` (a physics-guided model
        needs them; a blind one checks them against its trained box)."""

        def run(
            iq: npt.ArrayLike,
            spacing_m: tuple[float, float],
            wavelength_m: float,
            prf_hz: float,
            svd_low: int | None = None,
            **options: Any,
        ) -> Any:
            from sonoedge.processing import clutter
            from sonoedge.processing.ulm import ulm_from_localizations

            allowed = (
                "threshold",
                "max_per_frame",
                "mirror_average",
                "dynamic_range_db",
                *PSF_FIT_OPTIONS,
                *TRACKING_OPTIONS,
                *GUIDE_PARAMETERS,
            )
            unknown = sorted(set(options) - set(allowed))
            if unknown:
                raise ConfigError(
                    f"method {self.name!r} has no parameter(s) {unknown}: expected some of "
                    f"{list(allowed)}"
                )
            frames = np.asarray(iq)
            if frames.ndim != 3:
                raise DataError(f"ulm needs frames (N, H, W), got shape {frames.shape}")
            if np.iscomplexobj(frames) and svd_low != 0 and frames.shape[0] > 1:
                frames = clutter.svd_filter(frames, "fixed", low=svd_low)
            spacing = (float(spacing_m[0]), float(spacing_m[1]))
            pix = self.localize(
                frames,
                spacing,
                wavelength_m,
                options.get("threshold"),
                options.get("max_per_frame"),
                {n: options[n] for n in GUIDE_PARAMETERS if n in options},
                options.get("mirror_average"),
                options.get("dynamic_range_db"),
                _flag("psf_fit", options.get("psf_fit", False)),
                options.get("max_sigma_wavelengths"),
                options.get("max_sigma_inflation"),
            )
            origin = options.get("origin_m", (0.0, 0.0))
            locs = [np.asarray(origin, np.float64) + p * np.asarray(spacing) for p in pix]
            track = {k: options[k] for k in TRACKING_OPTIONS[1:] if k in options}
            return ulm_from_localizations(
                locs, frames.shape[1:], spacing, wavelength_m, prf_hz, origin, **track
            )

        run.__doc__ = (
            f"Deep-learning ULM ({self.name}: network localisation, Hungarian tracking) "
            "-> density and velocity maps on a lambda/10 grid."
        )
        run.param_names = self.param_names  # type: ignore[attr-defined]
        return run


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
        return value.lower() in ("true", "yes", "on")
    raise ConfigError(f"{name}={value!r} is invalid: expected true or false (1 or 0)")


def _resample(env: npt.NDArray[np.float32], scale: tuple[float, float]) -> Any:
    import cv2

    _n, h, w = env.shape
    nh, nw = max(MIN_SIZE, round(h * scale[0])), max(MIN_SIZE, round(w * scale[1]))
    return np.stack([cv2.resize(f, (nw, nh), interpolation=cv2.INTER_LINEAR) for f in env]).astype(
        np.float32
    )


def load(name_or_path: str | Path = DEFAULT_NAME, threads: int = 2) -> UlmLocalizer:
    """Load the shipped localiser (``"ulm-localizer"``) or an exported ``.onnx`` + card."""
    from sonoedge.zoo import load_task

    model: UlmLocalizer = load_task(name_or_path, "ulm", UlmLocalizer, threads)
    return model


MODEL = UlmLocalizer
"""The class :func:`sonoedge.zoo.load_model` builds for ``task = "ulm"`` model cards."""
