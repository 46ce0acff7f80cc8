"""Deconvolution with the probe point-spread function: Wiener and Richardson-Lucy."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.errors import DataError
from sonoedge.processing._checks import as_image, as_spacing, require
from sonoedge.types import SPEED_OF_SOUND_M_S, ProbeInfo

FloatArray = npt.NDArray[np.float32]
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def psf_fwhm_m(probe: ProbeInfo, f_number: float = 1.5) -> tuple[float, float]:
    """Approximate envelope PSF widths ``(axial, lateral)`` in metres for a Gaussian pulse.

    Axial: ``c * 0.441 / (2 B f0)`` (time-bandwidth product of a Gaussian pulse, halved for the
    round trip; ``B`` the -6 dB fractional bandwidth). Lateral: ``lambda * F#`` (focal spot).
    """
    require(f_number > 0, "f_number", "> 0", f_number)
    axial = SPEED_OF_SOUND_M_S * 0.441 / (2 * probe.bandwidth_fraction * probe.center_frequency_hz)
    return axial, probe.wavelength_m * f_number


def gaussian_psf(
    fwhm_px: tuple[float, float], size_px: tuple[int, int] | None = None
) -> FloatArray:
    """A normalised (sum 1) separable Gaussian kernel with the given ``(axial, lateral)`` FWHM."""
    fz, fx = (float(v) for v in fwhm_px)
    require(fz > 0 and fx > 0, "fwhm_px", "two positive widths in pixels", fwhm_px)
    sz, sx = fz / _FWHM_PER_SIGMA, fx / _FWHM_PER_SIGMA
    nz, nx = size_px or (2 * math.ceil(3 * sz) + 1, 2 * math.ceil(3 * sx) + 1)
    require(nz % 2 == 1 and nx % 2 == 1, "size_px", "odd sizes", size_px)
    z = np.arange(nz) - nz // 2
    x = np.arange(nx) - nx // 2
    kernel = np.outer(np.exp(-0.5 * (z / sz) ** 2), np.exp(-0.5 * (x / sx) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def probe_psf(
    probe: ProbeInfo, spacing_m: tuple[float, float], f_number: float = 1.5
) -> FloatArray:
    """Gaussian envelope PSF of ``probe`` sampled on a grid of ``spacing_m`` (axial, lateral)."""
    dz, dx = as_spacing(spacing_m)
    fz, fx = psf_fwhm_m(probe, f_number)
    return gaussian_psf((fz / dz, fx / dx))


def _check_psf(psf: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    kernel = as_image(psf, "psf")
    if kernel.shape[0] > shape[0] or kernel.shape[1] > shape[1]:
        raise DataError(f"psf has shape {kernel.shape}: expected no larger than the image {shape}")
    total = float(kernel.sum())
    if not total > 0 or np.any(kernel < 0):
        raise DataError("psf must be non-negative with a positive sum")
    return kernel / np.float32(total)


@functools.lru_cache(maxsize=8)
def _wiener_gain(
    kernel_bytes: bytes, kernel_shape: tuple[int, int], shape: tuple[int, int], nsr: float
) -> npt.NDArray[np.complex128]:
    """``conj(H) / (|H|^2 + nsr)`` on an rfft grid of ``shape`` (cached: video reuses it)."""
    kernel = np.frombuffer(kernel_bytes, np.float32).reshape(kernel_shape)
    pz, px = kernel_shape
    otf_in = np.zeros(shape)
    otf_in[:pz, :px] = kernel
    h = np.fft.rfft2(np.roll(otf_in, (-(pz // 2), -(px // 2)), axis=(0, 1)))
    return np.asarray(np.conj(h) / (np.abs(h) ** 2 + nsr), np.complex128)


def wiener(image: npt.ArrayLike, psf: npt.ArrayLike, nsr: float = 0.01) -> FloatArray:
    """Wiener deconvolution ``X = conj(H) Y / (|H|^2 + nsr)`` (FFT, reflected padding).

    ``nsr`` is the noise-to-signal power ratio; larger values smooth more. The filter for a given
    PSF, image size and ``nsr`` is computed once and reused.
    """
    img = as_image(image)
    kernel = np.ascontiguousarray(_check_psf(psf, img.shape), np.float32)
    require(nsr >= 0, "nsr", ">= 0", nsr)
    pz, px = kernel.shape
    fz = cv2.getOptimalDFTSize(img.shape[0] + 2 * pz)
    fx = cv2.getOptimalDFTSize(img.shape[1] + 2 * px)
    pad = ((pz, fz - img.shape[0] - pz), (px, fx - img.shape[1] - px))
    padded = np.pad(img, pad, mode="symmetric")
    gain = _wiener_gain(kernel.tobytes(), (pz, px), (fz, fx), float(nsr))
    x = np.fft.irfft2(np.fft.rfft2(padded) * gain, s=padded.shape)
    return x[pz : pz + img.shape[0], px : px + img.shape[1]].astype(np.float32)


def richardson_lucy(image: npt.ArrayLike, psf: npt.ArrayLike, n_iter: int = 20) -> FloatArray:
    """Richardson-Lucy deconvolution ``u <- u * (P^T * (d / (P * u)))`` for a non-negative image.

    ``*`` is convolution with the PSF ``P`` (``P^T`` its mirror), reflected borders; the estimate
    starts from the image itself and stays non-negative.
    """
    img = as_image(image)
    kernel = _check_psf(psf, img.shape)
    require(n_iter >= 0, "n_iter", ">= 0", n_iter)
    if float(img.min()) < -1e-5 * max(float(np.abs(img).max()), 1e-30):
        raise DataError("image has negative values: Richardson-Lucy needs a non-negative image")
    img = np.maximum(img, 0.0)  # rounding residue of an earlier filter
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    eps = np.float32(1e-6 * max(float(img.max()), 1e-12))
    u = img.copy()
    for _ in range(n_iter):
        blurred = cv2.filter2D(u, -1, flipped, borderType=cv2.BORDER_REFLECT)
        ratio = img / np.maximum(blurred, eps)
        u = u * cv2.filter2D(ratio, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return u.astype(np.float32)


def deconvolve_nlm(
    kind: str, image: npt.ArrayLike, sigma_px: Sequence[float], param: float, nlm_h: float
) -> FloatArray:
    """Wiener (``kind="wiener"``, ``param`` = NSR) or Richardson–Lucy (``"richardson_lucy"``,
    ``param`` = iterations) with the Gaussian PSF of σ ``sigma_px`` (axial, lateral px; at least
    0.3), then NLM of strength ``nlm_h`` (8-bit grey levels; 0: none), clipped to ``[0, 1]``: the
    classical enhancement baseline of ``sonoedge eval enhance``."""
    from sonoedge.processing.despeckle import nlm

    require(kind in ("wiener", "richardson_lucy"), "kind", "wiener or richardson_lucy", kind)
    fz, fx = (max(float(s), 0.3) * _FWHM_PER_SIGMA for s in sigma_px[:2])
    psf = gaussian_psf((fz, fx))
    if kind == "wiener":
        out = wiener(image, psf, nsr=param)
    else:
        out = richardson_lucy(
            np.maximum(np.asarray(image, np.float32), 0.0), psf, n_iter=int(param)
        )
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    if nlm_h > 0:
        out = nlm(out, h=nlm_h)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
