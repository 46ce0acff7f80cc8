"""Transducer model: probe presets and the pulse-echo point-spread function (PSF).

The PSF is the complex baseband response of a point scatterer after receive beamforming,
separable into an axial pulse and a lateral beam profile:

- axial: the pulse-echo spectrum is an ``n_cycles`` tone burst at the centre frequency times a
  generalised-normal (flat-topped Gaussian) transducer response whose -6 dB pulse-echo
  fractional bandwidth is ``probe.bandwidth_fraction``; demodulated to baseband and mapped to
  depth by ``z = c t / 2``.
- lateral: the Fraunhofer pattern of the receive aperture at the focus. With dynamic receive
  focusing the aperture grows with depth as ``D = z / F#``, so the profile is the Fourier
  transform of the apodisation over normalised aperture ``[-1/(2 F#), 1/(2 F#)]``, weighted by
  element directivity and summed over the pulse spectrum. A plane-wave transmit leaves the
  receive profile as is (one-way lateral focusing); ``transmit="focused"`` squares it (ideal
  two-way focusing, as after synthetic-aperture imaging or coherent compounding).

Narrowband, with rectangular apodisation and no directivity, the lateral amplitude FWHM is
``1.207 λ F#``; directivity widens it at small F-numbers (about +20 % at F# 1 for L11-5v).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.types import SPEED_OF_SOUND_M_S, ProbeInfo

Transmit = Literal["plane", "focused"]
Apodization = Literal["rect", "hann"]

PRESETS: dict[str, ProbeInfo] = {
    "L11-5v": ProbeInfo(
        model="L11-5v",
        geometry="linear",
        center_frequency_hz=7.6e6,
        bandwidth_fraction=0.77,
        n_elements=128,
        pitch_m=0.3e-3,
        sampling_frequency_hz=4 * 7.6e6,
        depth_range_m=(0.0, 0.04),
    ),
    "linear-7.5": ProbeInfo(
        model="linear-7.5",
        geometry="linear",
        center_frequency_hz=7.5e6,
        bandwidth_fraction=0.6,
        n_elements=128,
        pitch_m=0.3e-3,
        sampling_frequency_hz=30e6,
        depth_range_m=(0.0, 0.05),
    ),
    "convex-3.5": ProbeInfo(
        model="convex-3.5",
        geometry="convex",
        center_frequency_hz=3.5e6,
        bandwidth_fraction=0.7,
        n_elements=128,
        pitch_m=0.48e-3,
        radius_m=0.045,
        sampling_frequency_hz=14e6,
        depth_range_m=(0.0, 0.15),
    ),
    "phased-2.7": ProbeInfo(
        model="phased-2.7",
        geometry="phased",
        center_frequency_hz=2.7e6,
        bandwidth_fraction=0.74,
        n_elements=64,
        pitch_m=0.3e-3,
        sampling_frequency_hz=10.8e6,
        depth_range_m=(0.0, 0.12),
    ),
}
"""Typical probes: an L11-5v-like linear array, a handheld linear and convex, a phased array."""

SECTOR_HALF_ANGLE_RAD = math.radians(40.0)
"""Half opening angle of a phased-array sector."""

RESPONSE_EXPONENT = 4.0
"""Shape of the transducer's pulse-echo frequency response ``exp(-|f - fc|^p / s^p)``: p = 2 is
Gaussian; broadband arrays have flatter pass bands (p ≈ 4)."""

ELEMENT_FILL = 0.9
"""Element width as a fraction of the pitch (the rest is kerf)."""


def get_preset(name: str) -> ProbeInfo:
    """The preset probe called ``name`` (see :data:`PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"probe preset {name!r} is unknown: expected one of {sorted(PRESETS)}"
        ) from None


def sector_half_angle_rad(probe: ProbeInfo) -> float:
    """Half opening angle of a convex (aperture over radius) or phased probe's image sector."""
    if probe.geometry == "convex":
        return probe.aperture_m / 2 / probe.radius_m
    return SECTOR_HALF_ANGLE_RAD


def arc_radius_m(probe: ProbeInfo) -> float:
    """Distance from a sector's apex to mid-depth: beam-space lateral spacing of convex/phased
    images is arc length at this radius."""
    near, far = probe.depth_range_m
    return (probe.radius_m if probe.geometry == "convex" else 0.0) + (near + far) / 2


def check_positive(name: str, value: float) -> None:
    """Raise ConfigError unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={value!r} is invalid: expected a finite number > 0")


def check_f_number(f_number: float) -> None:
    """Raise ConfigError unless 0.25 <= F# <= 20."""
    if not (isinstance(f_number, (int, float)) and 0.25 <= f_number <= 20):
        raise ConfigError(f"f_number={f_number!r} is invalid: expected 0.25 <= F# <= 20")


def axial_pulse(
    probe: ProbeInfo, z_m: npt.NDArray[np.float64], n_cycles: float = 1.0
) -> npt.NDArray[np.complex128]:
    """Baseband pulse-echo envelope at depth offsets ``z_m`` (magnitude 1 at ``z = 0``).

    Computed from :func:`pulse_spectrum` by direct inverse Fourier sums, so any sampling of
    ``z_m`` is exact.
    """
    f_hz, spectrum = pulse_spectrum(probe, n_cycles)
    df = f_hz - probe.center_frequency_hz
    t_s = 2.0 * np.asarray(z_m, dtype=np.float64) / SPEED_OF_SOUND_M_S
    pulse = np.exp(2j * np.pi * np.multiply.outer(t_s, df)) @ spectrum
    return pulse / abs(spectrum.sum())


def lateral_profile(
    probe: ProbeInfo,
    x_m: npt.NDArray[np.float64],
    f_number: float = 1.5,
    transmit: Transmit = "plane",
    apodization: Apodization = "rect",
    n_cycles: float = 1.0,
    directivity: bool = True,
) -> npt.NDArray[np.float64]:
    """Lateral beam amplitude at offsets ``x_m`` from the beam axis (peak 1, real, signed).

    The aperture weights include (unless ``directivity=False``) each element's directivity
    (obliquity × element-width sinc, element width ``ELEMENT_FILL × pitch``), and the pattern is
    summed over the pulse spectrum (a broadband beam at the pulse peak).
    """
    check_f_number(f_number)
    if transmit not in ("plane", "focused"):
        raise ConfigError(f"transmit={transmit!r} is invalid: expected 'plane' or 'focused'")
    if apodization not in ("rect", "hann"):
        raise ConfigError(f"apodization={apodization!r} is invalid: expected 'rect' or 'hann'")
    half_aperture = 1.0 / (2.0 * f_number)
    v = np.linspace(-half_aperture, half_aperture, 257)
    taper = (
        np.ones_like(v) if apodization == "rect" else np.cos(np.pi * v / (2 * half_aperture)) ** 2
    )
    sin_theta = v / np.sqrt(1.0 + v * v)
    cos_theta = 1.0 / np.sqrt(1.0 + v * v)
    width_m = ELEMENT_FILL * probe.pitch_m
    freqs_hz, amps = pulse_spectrum(probe, n_cycles, n_freqs=17)
    x = np.asarray(x_m, dtype=np.float64)
    field = np.zeros(x.shape, dtype=np.float64)
    for f_hz, amp in zip(freqs_hz, amps, strict=True):
        lam = SPEED_OF_SOUND_M_S / f_hz
        weights = taper * cos_theta * np.sinc(width_m * sin_theta / lam) if directivity else taper
        field += amp * (np.cos(2 * np.pi * np.multiply.outer(x, v) / lam) @ weights)
    field = field / np.abs(field).max()
    return field * field if transmit == "focused" else field


def pulse_spectrum(
    probe: ProbeInfo, n_cycles: float = 1.0, n_freqs: int = 801
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Pulse-echo amplitude spectrum: frequencies (Hz, > 0) and real weights."""
    check_positive("n_cycles", n_cycles)
    fc = probe.center_frequency_hz
    bw_hz = probe.bandwidth_fraction * fc
    # Generalised-normal pulse-echo response: amplitude 1/2 (-6 dB) at fc ± bw/2.
    scale_hz = (bw_hz / 2.0) / math.log(2.0) ** (1.0 / RESPONSE_EXPONENT)
    span = 2.0 * scale_hz + 2.0 * fc / n_cycles
    f = np.linspace(max(0.02 * fc, fc - span), fc + span, n_freqs)
    burst_s = n_cycles / fc
    # Spectrum of a rect-windowed sine: difference of two sincs.
    tx = np.sinc(burst_s * (f - fc)) - np.sinc(burst_s * (f + fc))
    return f, tx * np.exp(-((np.abs(f - fc) / scale_hz) ** RESPONSE_EXPONENT))


def effective_f_number(probe: ProbeInfo, f_number: float, depth_m: float | None) -> float:
    """Receive F-number after the aperture is clipped to the array (``D <= n_elements*pitch``)."""
    check_f_number(f_number)
    if depth_m is None:
        return f_number
    return max(f_number, depth_m / probe.aperture_m)


def psf(
    probe: ProbeInfo,
    spacing_m: tuple[float, float],
    f_number: float = 1.5,
    n_cycles: float = 1.0,
    transmit: Transmit = "plane",
    apodization: Apodization = "rect",
    depth_m: float | None = None,
    support: float = 3.0,
) -> npt.NDArray[np.complex64]:
    """Complex baseband PSF kernel ``[axial, lateral]`` sampled at ``spacing_m``, centred.

    The kernel spans ``support`` times the -6 dB widths on each side (odd sizes, centre pixel at
    ``(h // 2, w // 2)``) and has peak magnitude 1. ``depth_m`` clips the aperture to the array.
    """
    axial, lateral = psf_factors(
        probe, spacing_m, f_number, n_cycles, transmit, apodization, depth_m, support
    )
    return np.multiply.outer(axial, lateral).astype(np.complex64)


def psf_factors(
    probe: ProbeInfo,
    spacing_m: tuple[float, float],
    f_number: float = 1.5,
    n_cycles: float = 1.0,
    transmit: Transmit = "plane",
    apodization: Apodization = "rect",
    depth_m: float | None = None,
    support: float = 3.0,
    offset_px: tuple[float, float] = (0.0, 0.0),
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64]]:
    """The separable factors of :func:`psf`: axial pulse and lateral profile samples.

    ``offset_px`` moves the point by a fraction of a pixel (the samples are the PSF at
    ``(i - offset) · spacing``), for exact sub-pixel rendering of a moved field.
    """
    dz, dx = spacing_m
    check_positive("spacing_m[0]", dz)
    check_positive("spacing_m[1]", dx)
    check_positive("support", support)
    f_eff = effective_f_number(probe, f_number, depth_m)
    fw_z, fw_x = analytic_fwhm_m(probe, f_eff, n_cycles, transmit)
    # Side lobes of the rect aperture extend further than the main lobe: keep a few of them.
    half_z = max(2, math.ceil(support * fw_z / dz))
    half_x = max(2, math.ceil(2 * support * fw_x / dx))
    z = (np.arange(-half_z, half_z + 1, dtype=np.float64) - offset_px[0]) * dz
    x = (np.arange(-half_x, half_x + 1, dtype=np.float64) - offset_px[1]) * dx
    return (
        axial_pulse(probe, z, n_cycles),
        lateral_profile(probe, x, f_eff, transmit, apodization, n_cycles),
    )


def analytic_fwhm_m(
    probe: ProbeInfo, f_number: float, n_cycles: float = 1.0, transmit: Transmit = "plane"
) -> tuple[float, float]:
    """Textbook (axial, lateral) amplitude FWHM, used to size kernels and as a sanity check.

    Lateral: narrowband rect aperture, ``1.207 λ F#`` (one-way sinc) or ``0.886 λ F#`` (sinc²).
    Axial: a Gaussian response's envelope ``c · 2 ln2 / (π · bw)``, lengthened in quadrature by
    the burst (the flat-topped response of :func:`pulse_spectrum` is about 20 % longer).
    """
    lam = probe.wavelength_m
    lateral = (1.2067 if transmit == "plane" else 0.8859) * lam * f_number
    bw_hz = probe.bandwidth_fraction * probe.center_frequency_hz
    gauss_t = 4.0 * math.log(2.0) / (math.pi * bw_hz)
    burst_t = n_cycles / probe.center_frequency_hz
    axial = SPEED_OF_SOUND_M_S / 2.0 * math.sqrt(gauss_t**2 + (0.5 * burst_t) ** 2)
    return axial, lateral


def measure_fwhm(profile: npt.NDArray[np.floating], spacing: float) -> float:
    """Full width at half maximum of a 1-D magnitude profile (linear interpolation)."""
    mag = np.abs(np.asarray(profile)).astype(np.float64)
    peak = int(np.argmax(mag))
    half = mag[peak] / 2.0
    left = peak
    while left > 0 and mag[left - 1] >= half:
        left -= 1
    right = peak
    while right < len(mag) - 1 and mag[right + 1] >= half:
        right += 1
    x_left = left - (mag[left] - half) / (mag[left] - mag[left - 1]) if left > 0 else 0.0
    last = len(mag) - 1
    x_right = right + (mag[right] - half) / (mag[right] - mag[right + 1]) if right < last else last
    return float((x_right - x_left) * spacing)
