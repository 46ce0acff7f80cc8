"""Joint fit of coherent point-spread functions to an IQ frame: ULM localisations refined.

Beamformed echoes of point scatterers add in complex IQ: a clutter-filtered frame is
``Σ_k c_k · a(z - z_k) · l(x - x_k)`` plus noise, with ``a`` the baseband pulse-echo envelope
(complex), ``l`` the lateral beam profile (real) and ``c_k`` each bubble's complex amplitude.
Envelope localisers see ``|Σ|``, where neighbours a wavelength apart interfere; fitting the sum
in IQ separates them. :func:`refine` starts from a localiser's detections and

1. fits every position and amplitude jointly (Levenberg–Marquardt; the model is separable, so
   the normal equations come from 1-D inner products and one iteration costs ``O(K·H·W)``);
2. tests splitting each detection into two (pairs closer than the PSF that the localiser saw
   as one bubble) and keeps a split when it lowers the residual by more than
   ``split_threshold`` times the noise power;
3. gives each bubble's position standard deviation (the Cramér–Rao bound at the fit, with the
   noise power estimated from the residual), so unreliable localisations can be dropped.

The PSF comes from the transducer description (:meth:`SeparablePsf.from_transducer`: the
pulse and beam model of :mod:`sonoedge.synth.transducer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

TABLE_STEP_PX = 1.0 / 64.0
"""Sampling of the tabulated PSF factors (pixels); values between samples are interpolated."""
MAX_STEP_WAVELENGTHS = 0.125
"""Largest move of one position in one fit iteration."""
SPLIT_OFFSETS_WAVELENGTHS = ((0.375, 0.0), (0.0, 0.5), (0.25, 0.375), (0.25, -0.375))
"""(axial, lateral) separations of the pairs tried when a detection is split into two (the
pair sits at ``p ± offset / 2``, so the opposite offsets are the same pairs)."""
SPLIT_WINDOW_WAVELENGTHS = (1.5, 2.0)
"""Half-size (axial, lateral) of the window a split is tested in."""
PSF_PARAMETERS = ("bandwidth_fraction", "f_number", "n_cycles", "pitch_wavelengths")
"""What the PSF depends on besides the wavelength and the grid."""
MAX_SIGMA_WAVELENGTHS = 0.04
MAX_SIGMA_INFLATION = 2.0
"""Defaults of :func:`refine_frames`: a bubble is kept when its position standard deviation is
at most 0.04 λ or its neighbours inflate it by at most 2× (chosen on validation sequences)."""
MAX_BUBBLES = 1000
"""Most detections one frame may bring (the joint fit's normal equations are 4 per bubble
squared: 128 MB at this count)."""
MODEL_FLOOR_DB = -30.0
"""The split test counts residual power below this level of a median bubble's peak power as
noise: the PSF model is no more accurate than that (else clean frames split single bubbles
to fit the model's own error)."""
CARRIER_MIN_RAD_PER_PX = 0.15
"""Smaller axial phase ramps are the scatter of :func:`carrier_rad_per_px` itself (neighbours'
echoes interfere; up to 0.103 rad per pixel on our simulator's evaluation sequences, which have
none): removing them would tilt the PSF's phase instead. A demodulation 10 % off the centre
frequency leaves 0.31 rad per λ/4 pixel."""
MAX_MOVE_WAVELENGTHS = (0.5, 0.75)
"""How far a fit may move a detection (first fit) and a bubble in a split round's refit; one
that moves farther keeps where it started."""


@dataclass(frozen=True)
class SeparablePsf:
    """A separable complex PSF on a pixel grid: axial factor (complex) × lateral (real).

    ``axial`` and ``lateral`` are tabulated every :data:`TABLE_STEP_PX` pixels over
    ``±half_px``; the PSF is zero beyond.
    """

    spacing_m: tuple[float, float]
    wavelength_m: float
    axial: ComplexArray
    lateral: FloatArray
    half_px: tuple[float, float]

    @classmethod
    def from_transducer(
        cls,
        spacing_m: tuple[float, float],
        center_frequency_hz: float,
        bandwidth_fraction: float,
        f_number: float,
        n_cycles: float,
        pitch_m: float,
    ) -> SeparablePsf:
        """The plane-wave PSF of a linear probe with these parameters (receive at ``f_number``,
        no aperture clipping), sampled on a grid of ``spacing_m`` (axial, lateral) pixels."""
        given = {
            "spacing_m[0]": spacing_m[0],
            "spacing_m[1]": spacing_m[1],
            "center_frequency_hz": center_frequency_hz,
            "bandwidth_fraction": bandwidth_fraction,
            "f_number": f_number,
            "n_cycles": n_cycles,
            "pitch_m": pitch_m,
        }
        values = []
        for name, value in given.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not (math.isfinite(number) and number > 0):
                raise ConfigError(f"{name}={value!r} is invalid for the PSF fit: expected > 0")
            values.append(number)
        return _transducer_psf(*values)

    def factors(
        self, z_px: FloatArray, x_px: FloatArray, height: int, width: int
    ) -> tuple[ComplexArray, ComplexArray, FloatArray, FloatArray]:
        """Axial factors ``a``, ``da/dz``, lateral ``l``, ``dl/dx`` of bubbles at ``(z_px,
        x_px)`` over ``height`` rows and ``width`` columns: ``(K, height)`` and ``(K, width)``.
        Derivatives are per pixel of the position (the PSF moves with it)."""
        ui = np.arange(height)[None, :] - np.asarray(z_px, np.float64)[:, None]
        uj = np.arange(width)[None, :] - np.asarray(x_px, np.float64)[:, None]
        a, da = _interpolate(self.axial, self.half_px[0], ui)
        lat, dlat = _interpolate(self.lateral, self.half_px[1], uj)
        return a, -da, lat.real, -dlat.real

    def px(self, wavelengths: float) -> tuple[float, float]:
        """A length in wavelengths in (axial, lateral) pixels."""
        return (
            wavelengths * self.wavelength_m / self.spacing_m[0],
            wavelengths * self.wavelength_m / self.spacing_m[1],
        )


@lru_cache(maxsize=16)
def _transducer_psf(
    dz: float, dx: float, fc: float, bandwidth: float, f_number: float, cycles: float, pitch: float
) -> SeparablePsf:
    from sonoedge.synth.transducer import analytic_fwhm_m, axial_pulse, lateral_profile
    from sonoedge.types import SPEED_OF_SOUND_M_S, ProbeInfo

    probe = ProbeInfo(
        model="psf-fit",
        center_frequency_hz=fc,
        bandwidth_fraction=bandwidth,
        pitch_m=pitch,
        sampling_frequency_hz=4 * fc,
    )
    fw_z, fw_x = analytic_fwhm_m(probe, f_number, cycles)
    # the supports of sonoedge.synth.transducer.psf_factors: 3 axial and 6 lateral widths
    half = (max(2.0, math.ceil(3 * fw_z / dz)), max(2.0, math.ceil(6 * fw_x / dx)))
    uz = np.arange(-half[0], half[0] + TABLE_STEP_PX / 2, TABLE_STEP_PX)
    ux = np.arange(-half[1], half[1] + TABLE_STEP_PX / 2, TABLE_STEP_PX)
    axial = axial_pulse(probe, uz * dz, cycles)
    lateral = lateral_profile(probe, ux * dx, f_number, "plane", "rect", cycles)
    return SeparablePsf((dz, dx), SPEED_OF_SOUND_M_S / fc, axial, lateral, half)


def _interpolate(
    table: npt.NDArray[np.complex128] | FloatArray, half: float, u: FloatArray
) -> tuple[ComplexArray, ComplexArray]:
    """Linear interpolation of a tabulated factor and its derivative at offsets ``u`` (px)."""
    t = (np.clip(u, -half, half) + half) / TABLE_STEP_PX
    i = np.clip(np.floor(t).astype(np.int64), 0, len(table) - 2)
    f = t - i
    lo, hi = table[i], table[i + 1]
    inside = np.abs(u) <= half
    value = np.where(inside, lo + (hi - lo) * f, 0)
    slope = np.where(inside, (hi - lo) / TABLE_STEP_PX, 0)
    return value.astype(np.complex128), slope.astype(np.complex128)


@dataclass(frozen=True)
class PsfFit:
    """Refined bubbles of one frame: ``positions_px`` ``(n, 2)`` (row, col), complex
    ``amplitudes``, ``sigma_m`` (each position's standard deviation in the joint fit, metres),
    ``sigma_alone_m`` (the same bubble's if it had no neighbours) and the ``noise_power``
    estimated from the residual (``E|n|²``)."""

    positions_px: FloatArray
    amplitudes: ComplexArray
    sigma_m: FloatArray
    sigma_alone_m: FloatArray
    noise_power: float

    def reliable(self, max_sigma_m: float, max_inflation: float) -> npt.NDArray[np.bool_]:
        """Bubbles whose position is known to ``max_sigma_m`` or whose uncertainty the
        neighbours inflate by at most ``max_inflation`` (``sigma_m / sigma_alone_m``)."""
        inflation = self.sigma_m / np.maximum(self.sigma_alone_m, 1e-300)
        mask: npt.NDArray[np.bool_] = (self.sigma_m <= max_sigma_m) | (inflation <= max_inflation)
        return mask


class _Model:
    """Positions, amplitudes and the separable factors of one fit (one frame or window)."""

    def __init__(self, frame: ComplexArray, psf: SeparablePsf, positions: FloatArray) -> None:
        self.frame, self.psf = frame, psf
        self.set_positions(positions)
        self.amplitudes = self.best_amplitudes()

    def set_positions(self, positions: FloatArray) -> None:
        self.positions = np.asarray(positions, np.float64).reshape(-1, 2)
        h, w = self.frame.shape
        self.a, self.da, self.lat, self.dlat = self.psf.factors(
            self.positions[:, 0], self.positions[:, 1], h, w
        )

    def image(self) -> ComplexArray:
        return _image(self.amplitudes, self.a, self.lat)

    def residual_power(self) -> float:
        r = self.frame - self.image()
        return float(np.vdot(r, r).real)

    def best_amplitudes(self) -> ComplexArray:
        """Least-squares amplitudes at the current positions."""
        k = len(self.positions)
        if k == 0:
            return np.zeros(0, np.complex128)
        gram = (self.a.conj() @ self.a.T) * (self.lat @ self.lat.T)
        rhs = np.einsum("kw,kw->k", self.a.conj() @ self.frame, self.lat)
        gram = gram + np.eye(k) * (1e-9 * float(np.trace(gram).real) / k + 1e-30)
        return np.asarray(np.linalg.solve(gram, rhs), np.complex128)

    def normal_equations(self) -> tuple[FloatArray, FloatArray]:
        """``JᵀJ`` and ``Jᵀr`` of the real parameters (Re c, Im c, z, x per bubble)."""
        k = len(self.positions)
        c = self.amplitudes
        ax = np.concatenate([self.a, self.da])  # (2K, H): a_k, then da_k
        la = np.concatenate([self.lat, self.dlat])  # (2K, W)
        idx = np.arange(k)
        scale = np.concatenate([np.ones(k), np.full(k, 1j), c, c]).astype(np.complex128)
        iu = np.concatenate([idx, idx, k + idx, idx])
        iv = np.concatenate([idx, idx, idx, k + idx])
        gu = (ax.conj() @ ax.T)[np.ix_(iu, iu)]
        gv = (la @ la.T)[np.ix_(iv, iv)]
        jtj = (scale.conj()[:, None] * scale[None, :] * gu * gv).real
        r = self.frame - self.image()
        proj = (ax.conj() @ r)[iu]
        jtr = (scale.conj() * np.einsum("pw,pw->p", proj, la[iv])).real
        return jtj, jtr


def _image(amplitudes: ComplexArray, axial: ComplexArray, lateral: FloatArray) -> ComplexArray:
    """``Σ_k c_k · a_k ⊗ l_k``: the frame of bubbles with these amplitudes and factors."""
    out: ComplexArray = (amplitudes[:, None] * axial).T @ lateral
    return out


def _fit_from(model: _Model, start: FloatArray, max_move_wavelengths: float) -> None:
    """Fit ``model`` (at ``start``, amplitudes least-squares) in place; bubbles that moved
    farther than ``max_move_wavelengths`` go back to their start (amplitudes refitted)."""
    _optimise(model, 8)
    model.set_positions(_keep_near(model.positions, start, model.psf, max_move_wavelengths))
    model.amplitudes = model.best_amplitudes()


def _keep_near(
    fitted: FloatArray, start: FloatArray, psf: SeparablePsf, max_move_wavelengths: float
) -> FloatArray:
    """``fitted``, except the bubbles that moved farther than ``max_move_wavelengths`` from
    ``start``, which keep their start."""
    dz, dx = psf.spacing_m
    moved = np.hypot((fitted[:, 0] - start[:, 0]) * dz, (fitted[:, 1] - start[:, 1]) * dx)
    out = fitted.copy()
    far = moved > max_move_wavelengths * psf.wavelength_m
    out[far] = start[far]
    return out


def _optimise(model: _Model, iterations: int) -> None:
    """Levenberg–Marquardt on all amplitudes and positions of ``model`` (in place)."""
    k = len(model.positions)
    if k == 0:
        return
    cap = np.repeat(np.asarray(model.psf.px(MAX_STEP_WAVELENGTHS))[None], k, axis=0)
    cost = model.residual_power()
    damping = 1e-3
    for _ in range(iterations):
        jtj, jtr = model.normal_equations()
        diag = np.diag(jtj) + 1e-12 * max(float(np.max(np.diag(jtj))), 1e-30)
        improved = False
        for _attempt in range(6):
            try:
                step = np.linalg.solve(jtj + damping * np.diag(diag), jtr)
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            move = np.stack([step[2 * k : 3 * k], step[3 * k :]], axis=1)
            shrink = max(1.0, float(np.max(np.abs(move) / cap)))
            step, move = step / shrink, move / shrink
            old = (model.positions, model.amplitudes, model.a, model.da, model.lat, model.dlat)
            model.set_positions(model.positions + move)
            model.amplitudes = model.amplitudes + step[:k] + 1j * step[k : 2 * k]
            new = model.residual_power()
            if new < cost:
                cost, damping, improved = new, max(damping / 3, 1e-7), True
                break
            model.positions, model.amplitudes, model.a, model.da, model.lat, model.dlat = old
            damping *= 10
        if not improved:
            return


def noise_power(residual: ComplexArray) -> float:
    """``E|n|²`` of complex Gaussian noise from a residual, robust to unmodelled bubbles
    (the median of ``|n|²`` is ``E|n|² · ln 2``)."""
    return float(np.median(np.abs(residual) ** 2) / math.log(2.0))


def _split_round(
    model: _Model, split_threshold: float, max_move: float, near_px: FloatArray | None
) -> FloatArray:
    """Try splitting each detection into two (see the module docstring), only those within
    reach of ``near_px`` when given (the bubbles a previous round added: elsewhere nothing
    changed); returns the added positions. ``model`` is refitted with them."""
    frame, psf = model.frame, model.psf
    h, w = frame.shape
    positions, amplitudes = model.positions, model.amplitudes
    full = model.image()
    if len(positions) == 0:
        return np.zeros((0, 2))
    # below MODEL_FLOOR_DB of a median bubble the residual is the PSF model's own error
    floor = 10 ** (MODEL_FLOOR_DB / 10) * float(np.median(np.abs(amplitudes) ** 2))
    sigma2 = max(noise_power(frame - full), floor)
    if not sigma2 > 0:
        return np.zeros((0, 2))
    hz, hx = (math.ceil(v * s) for v, s in zip(psf.px(1.0), SPLIT_WINDOW_WAVELENGTHS, strict=True))
    candidates: npt.NDArray[np.bool_] = np.ones(len(positions), bool)
    if near_px is not None:  # a new bubble in or beside the window
        gap = np.abs(positions[:, None, :] - near_px[None, :, :])
        candidates = np.any((gap[..., 0] <= 2 * hz + 2) & (gap[..., 1] <= 2 * hx + 2), axis=1)
    offsets = [np.asarray(psf.px(1.0)) * np.asarray(o) for o in SPLIT_OFFSETS_WAVELENGTHS]
    median_amp = float(np.median(np.abs(amplitudes)))
    taken = np.zeros(len(positions), bool)
    added = []
    for k in np.argsort(-np.abs(amplitudes)):
        if taken[k] or not candidates[k]:
            continue
        r0, c0 = int(np.rint(positions[k, 0])) - hz, int(np.rint(positions[k, 1])) - hx
        r0, r1 = max(0, r0), min(h, r0 + 2 * hz + 1)
        c0, c1 = max(0, c0), min(w, c0 + 2 * hx + 1)
        if r1 - r0 < 2 or c1 - c0 < 2:
            continue
        near = (  # the bubbles in the window or within a pixel of it are refitted
            (positions[:, 0] >= r0 - 1)
            & (positions[:, 0] <= r1)
            & (positions[:, 1] >= c0 - 1)
            & (positions[:, 1] <= c1)
        )
        near[k] = True
        if taken[near].any():
            continue
        # the window's data less the bubbles outside it
        rest = frame
        if (~near).any():
            a, _, lat, _ = psf.factors(positions[~near, 0], positions[~near, 1], h, w)
            rest = frame - _image(amplitudes[~near], a, lat)
        window = np.ascontiguousarray(rest[r0:r1, c0:c1])
        shift = np.array([r0, c0], np.float64)
        local = _Model(window, psf, positions[near] - shift)
        _optimise(local, 6)
        base = local.residual_power()
        if base <= split_threshold * sigma2:
            continue  # no split can lower the residual by that much
        j = int(np.flatnonzero(np.flatnonzero(near) == k)[0])
        best: tuple[float, _Model] | None = None
        for off in offsets:
            trial = np.concatenate([local.positions, local.positions[j : j + 1] + off / 2])
            trial[j] -= off / 2
            cand = _Model(window, psf, trial)
            _optimise(cand, 8)
            power = cand.residual_power()
            if best is None or power < best[0]:
                best = (power, cand)
        assert best is not None
        power, cand = best
        new = cand.positions[-1] + shift
        inside = 0 <= new[0] <= h - 1 and 0 <= new[1] <= w - 1
        strong = abs(cand.amplitudes[-1]) > 0.2 * median_amp
        if base - power > split_threshold * sigma2 and inside and strong:
            added.append(new)
            taken[near] = True
    if added:
        start = np.concatenate([positions, np.asarray(added)])
        model.set_positions(start)
        model.amplitudes = model.best_amplitudes()
        _fit_from(model, start, max_move)
    return np.asarray(added, np.float64).reshape(-1, 2)


def refine(
    frame: npt.ArrayLike,
    positions_px: npt.ArrayLike,
    psf: SeparablePsf,
    split_rounds: int = 6,
    split_threshold: float = 100.0,
) -> PsfFit:
    """Detections ``positions_px`` ``(n, 2)`` of one complex clutter-filtered ``frame``
    refined by the joint PSF fit (module docstring): up to ``split_rounds`` rounds of split
    tests, each kept when it lowers the residual power by more than ``split_threshold`` times
    the noise power. Bubbles that leave the frame are dropped."""
    data = np.asarray(frame)
    if data.ndim != 2 or not np.iscomplexobj(data):
        raise DataError(
            f"the PSF fit needs one complex IQ frame (H, W), got {data.dtype} {data.shape}",
            hint="pass the clutter-filtered IQ, not its envelope",
        )
    if not np.isfinite(data).all():
        raise DataError("the IQ frame has NaN or infinite values", hint="check the beamformer")
    start = np.asarray(positions_px, np.float64).reshape(-1, 2)
    if not np.isfinite(start).all():
        raise DataError("positions_px has NaN or infinite values")
    if len(start) > MAX_BUBBLES:
        raise DataError(
            f"the PSF fit takes at most {MAX_BUBBLES} bubbles per frame, got {len(start)}",
            hint="crop the frames into smaller regions, or lower max_per_frame",
        )
    if not (isinstance(split_rounds, int) and 0 <= split_rounds <= 100):
        raise ConfigError(f"split_rounds={split_rounds!r} is invalid: expected an integer 0..100")
    if not (math.isfinite(split_threshold) and split_threshold > 0):
        raise ConfigError(f"split_threshold={split_threshold!r} is invalid: expected > 0")
    model = _Model(data.astype(np.complex128), psf, start)
    _fit_from(model, start, MAX_MOVE_WAVELENGTHS[0])
    added = None
    for _ in range(split_rounds):
        added = _split_round(model, split_threshold, MAX_MOVE_WAVELENGTHS[1], added)
        if len(added) == 0:
            break
    h, w = data.shape
    p = model.positions
    inside = (p[:, 0] >= -0.5) & (p[:, 0] <= h - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] <= w - 0.5)
    sigma2 = noise_power(model.frame - model.image())
    sigma, alone = position_sigma_m(model, sigma2)
    return PsfFit(p[inside], model.amplitudes[inside], sigma[inside], alone[inside], sigma2)


def position_sigma_m(model: _Model, noise: float) -> tuple[FloatArray, FloatArray]:
    """Each bubble's position standard deviation (metres): the Cramér–Rao bound of the joint
    fit at its solution for complex Gaussian noise of power ``noise``, and the bound of the
    same bubble fitted alone (its own block of the information matrix)."""
    k = len(model.positions)
    if k == 0:
        return np.zeros(0), np.zeros(0)
    jtj, _ = model.normal_equations()
    info = jtj / (noise / 2.0)
    info = info + np.eye(4 * k) * (1e-9 * float(np.trace(info)) / (4 * k) + 1e-30)
    dz2, dx2 = (s**2 for s in model.psf.spacing_m)
    try:
        cov = np.diag(np.linalg.inv(info))
        idx = np.arange(k)[:, None] + k * np.arange(4)[None, :]  # (Re c, Im c, z, x) of each
        alone = np.linalg.inv(info[idx[:, :, None], idx[:, None, :]])
    except np.linalg.LinAlgError:
        return np.full(k, np.inf), np.full(k, np.inf)
    joint = np.maximum(cov[2 * k : 3 * k], 0) * dz2 + np.maximum(cov[3 * k :], 0) * dx2
    own = np.maximum(alone[:, 2, 2], 0) * dz2 + np.maximum(alone[:, 3, 3], 0) * dx2
    return np.sqrt(joint), np.sqrt(own)


def psf_for(
    params: dict[str, float], spacing_m: tuple[float, float], wavelength_m: float
) -> SeparablePsf:
    """The PSF of frames with these :data:`PSF_PARAMETERS` (a ULM localiser's guide
    parameters) on a ``spacing_m`` grid at ``wavelength_m``."""
    from sonoedge.types import SPEED_OF_SOUND_M_S

    missing = [n for n in PSF_PARAMETERS if n not in params]
    if missing:
        raise ConfigError(
            f"the PSF fit needs the frames' {', '.join(missing)}",
            hint="pass them as parameters (e.g. -p f_number=1.5 -p n_cycles=2); a recording's "
            "probe gives the bandwidth and the pitch",
        )
    if not (isinstance(wavelength_m, (int, float)) and wavelength_m > 0):
        raise ConfigError(f"wavelength_m={wavelength_m!r} is invalid: expected > 0")
    try:
        values = {n: float(params[n]) for n in PSF_PARAMETERS}
    except (TypeError, ValueError):
        raise ConfigError(f"PSF parameters {params!r} are not all numbers") from None
    return SeparablePsf.from_transducer(
        (float(spacing_m[0]), float(spacing_m[1])),
        SPEED_OF_SOUND_M_S / wavelength_m,
        values["bandwidth_fraction"],
        values["f_number"],
        values["n_cycles"],
        values["pitch_wavelengths"] * wavelength_m,
    )


def carrier_rad_per_px(frames: npt.NDArray[np.complexfloating], psf: SeparablePsf) -> float:
    """The axial phase ramp of IQ ``frames`` beyond the PSF model's own (radians per pixel):
    IQ demodulated at another frequency or with the other sign convention keeps a residual
    carrier (PyMUST's beamformed IQ turns by about π per λ/4 pixel where ours does not).
    Measured from the lag-one axial autocorrelation of the whole sequence."""
    lag = complex(np.sum(frames[..., 1:, :] * np.conj(frames[..., :-1, :])))
    step = round(1.0 / TABLE_STEP_PX)
    centre = len(psf.axial) // 2
    samples = psf.axial[centre % step :: step]  # the model at whole-pixel offsets
    own = complex(np.sum(samples[1:] * np.conj(samples[:-1])))
    if lag == 0 or own == 0:
        return 0.0
    return float(np.angle(lag * np.conj(own)))


def without_carrier(
    frames: npt.NDArray[np.complexfloating], psf: SeparablePsf
) -> npt.NDArray[np.complex128]:
    """``frames (N, H, W)`` with their residual axial carrier (:func:`carrier_rad_per_px`)
    removed, in the PSF model's baseband convention; the bubbles stay where they are. A ramp
    under :data:`CARRIER_MIN_RAD_PER_PX` is left alone."""
    carrier = carrier_rad_per_px(frames, psf)
    if abs(carrier) < CARRIER_MIN_RAD_PER_PX:
        return frames.astype(np.complex128)
    ramp = np.exp(-1j * carrier * np.arange(frames.shape[-2]))
    out: npt.NDArray[np.complex128] = frames.astype(np.complex128) * ramp[:, None]
    return out


def refine_frames(
    frames: npt.ArrayLike,
    positions_px: list[FloatArray],
    psf: SeparablePsf,
    max_sigma_wavelengths: float | None = None,
    max_sigma_inflation: float | None = None,
    split_rounds: int = 6,
    split_threshold: float = 100.0,
) -> list[FloatArray]:
    """:func:`refine` on every complex frame ``(N, H, W)`` of a sequence (its residual axial
    carrier removed first, :func:`without_carrier`), keeping the reliable bubbles
    (:meth:`PsfFit.reliable`; the limits default to :data:`MAX_SIGMA_WAVELENGTHS` and
    :data:`MAX_SIGMA_INFLATION`): positions ``(n, 2)`` in pixels per frame."""
    if max_sigma_wavelengths is None:
        max_sigma_wavelengths = MAX_SIGMA_WAVELENGTHS
    if max_sigma_inflation is None:
        max_sigma_inflation = MAX_SIGMA_INFLATION
    data = np.asarray(frames)
    if data.ndim != 3 or len(data) != len(positions_px):
        raise DataError(
            f"frames {data.shape} and {len(positions_px)} position arrays do not match: "
            "expected (N, H, W) frames and N arrays"
        )
    for name, value in (
        ("max_sigma_wavelengths", max_sigma_wavelengths),
        ("max_sigma_inflation", max_sigma_inflation),
    ):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name}={value!r} is invalid: expected a number >= 0")
    aligned = without_carrier(data, psf)
    out = []
    for frame, start in zip(aligned, positions_px, strict=True):
        fit = refine(frame, start, psf, split_rounds, split_threshold)
        keep = fit.reliable(max_sigma_wavelengths * psf.wavelength_m, max_sigma_inflation)
        out.append(fit.positions_px[keep])
    return out
