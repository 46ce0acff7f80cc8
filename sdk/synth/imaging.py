"""Convolution-model imaging: point scatterers → complex baseband IQ on a pixel grid.

Each scatterer at depth ``z`` contributes ``a · exp(-2j k z) · PSF(· - position)`` with
``k = 2π fc / c`` (the two-way phase that makes axial motion show as Doppler). Scatterers are
splatted bilinearly onto a padded grid and convolved with the separable PSF directly
(:meth:`Imager.render`). Diffuse fields that move rigidly are imaged in the Fourier domain with a
moved PSF (:meth:`Imager.moved_kernel_spectra`); the padding keeps the circular convolution
and the motion from wrapping into view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.transducer import (
    Apodization,
    Transmit,
    arc_radius_m,
    check_positive,
    psf,
    psf_factors,
    sector_half_angle_rad,
)
from sonoedge.types import SPEED_OF_SOUND_M_S, ProbeInfo

FloatArray = npt.NDArray[np.float64]


def check_size(name: str, value: int, low: int = 8, high: int = 4096) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (an integer)."""
    if not (isinstance(value, (int, np.integer)) and low <= value <= high):
        raise ConfigError(f"{name}={value!r} is invalid: expected an integer in {low}..{high}")


def default_spacing_m(probe: ProbeInfo, height: int, width: int) -> tuple[float, float]:
    """Beam-space pixel spacing that fits the probe's field of view into ``height × width``.

    Axial: the depth range. Lateral: the aperture (linear) or the sector's arc length at
    mid-depth (convex, phased).
    """
    near, far = probe.depth_range_m
    if probe.geometry == "linear":
        return ((far - near) / height, probe.aperture_m / width)
    return ((far - near) / height, 2 * sector_half_angle_rad(probe) * arc_radius_m(probe) / width)


def fast_size(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5 (fast FFT sizes)."""
    size = n
    while True:
        m = size
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return size
        size += 1


@dataclass(frozen=True)
class Grid:
    """A pixel grid: ``shape`` (axial, lateral), ``spacing_m`` and the position of pixel [0, 0]."""

    shape: tuple[int, int]
    spacing_m: tuple[float, float]
    origin_m: tuple[float, float] = (0.0, 0.0)

    def extent_m(self) -> tuple[float, float, float, float]:
        """(z_min, z_max, x_min, x_max) of the pixel centres."""
        (h, w), (dz, dx), (z0, x0) = self.shape, self.spacing_m, self.origin_m
        return z0, z0 + (h - 1) * dz, x0, x0 + (w - 1) * dx

    def centres_m(self) -> tuple[FloatArray, FloatArray]:
        """Axial and lateral pixel-centre coordinates (1-D)."""
        (h, w), (dz, dx), (z0, x0) = self.shape, self.spacing_m, self.origin_m
        return z0 + dz * np.arange(h, dtype=np.float64), x0 + dx * np.arange(w, dtype=np.float64)


class Imager:
    """Renders scatterers into IQ frames on ``grid`` for one probe and beamforming setup.

    ``margin_m`` extra field on every side lets the scene move rigidly by up to that much
    without wrap-around.
    """

    def __init__(
        self,
        probe: ProbeInfo,
        grid: Grid,
        f_number: float = 1.5,
        n_cycles: float = 1.0,
        transmit: Transmit = "plane",
        apodization: Apodization = "rect",
        margin_m: float = 0.0,
    ) -> None:
        if margin_m < 0:
            raise ConfigError(f"margin_m={margin_m!r} is invalid: expected >= 0")
        self.probe = probe
        self.grid = grid
        dz, dx = grid.spacing_m
        check_positive("spacing_m[0]", dz)
        check_positive("spacing_m[1]", dx)
        mid_depth = grid.origin_m[0] + 0.5 * grid.shape[0] * dz
        self._psf_args: dict[str, Any] = {
            "f_number": f_number,
            "n_cycles": n_cycles,
            "transmit": transmit,
            "apodization": apodization,
            "depth_m": mid_depth if probe.geometry == "linear" else None,
        }
        self.kernel = psf(probe, grid.spacing_m, **self._psf_args)
        axial, lateral = psf_factors(probe, grid.spacing_m, **self._psf_args)
        # cv2 filters correlate: flip the factors to convolve.
        self._axial_re = np.ascontiguousarray(axial.real[::-1], dtype=np.float32)
        self._axial_im = np.ascontiguousarray(axial.imag[::-1], dtype=np.float32)
        self._lateral = np.ascontiguousarray(lateral[::-1], dtype=np.float32)
        self._tables: tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]] | None = None
        kh, kw = self.kernel.shape
        h, w = grid.shape
        self.pad = (kh // 2 + 1 + math.ceil(margin_m / dz), kw // 2 + 1 + math.ceil(margin_m / dx))
        self.padded_shape = (fast_size(h + 2 * self.pad[0]), fast_size(w + 2 * self.pad[1]))
        ph, pw = self.padded_shape
        placed = np.zeros(self.padded_shape, dtype=np.complex64)
        placed[:kh, :kw] = self.kernel
        placed = np.roll(placed, (-(kh // 2), -(kw // 2)), axis=(0, 1))
        self.kernel_spectrum = np.fft.fft2(placed).astype(np.complex64)
        self.k_rad_m = 2 * math.pi * probe.center_frequency_hz / SPEED_OF_SOUND_M_S
        self._fz = np.fft.fftfreq(ph).astype(np.float64)
        self._fx = np.fft.fftfreq(pw).astype(np.float64)

    def field_extent_m(self) -> tuple[float, float, float, float]:
        """(z_min, z_max, x_min, x_max) where scatterers may lie and still be rendered."""
        z_min, z_max, x_min, x_max = self.grid.extent_m()
        dz, dx = self.grid.spacing_m
        mz, mx = (self.pad[0] - 1) * dz, (self.pad[1] - 1) * dx
        return z_min - mz, z_max + mz, x_min - mx, x_max + mx

    def splat(
        self, z_m: npt.ArrayLike, x_m: npt.ArrayLike, amplitude: npt.ArrayLike
    ) -> npt.NDArray[np.complex64]:
        """Phase-weighted scatterers on the padded grid; leading axes of inputs are frames.

        Inputs broadcast to shape ``(..., n_scatterers)``; the result is
        ``(..., padded_h, padded_w)`` complex64.
        """
        z, x, a = np.broadcast_arrays(
            np.asarray(z_m, dtype=np.float64),
            np.asarray(x_m, dtype=np.float64),
            np.asarray(amplitude, dtype=np.float64),
        )
        lead = z.shape[:-1]
        n_frames = int(np.prod(lead)) if lead else 1
        ph, pw = self.padded_shape
        dz, dx = self.grid.spacing_m
        z0, x0 = self.grid.origin_m
        z, x, a = z.reshape(n_frames, -1), x.reshape(n_frames, -1), a.reshape(n_frames, -1)
        phase = np.remainder(-2.0 * self.k_rad_m * z, 2 * np.pi).astype(np.float32)
        iz = (z - z0) / dz + self.pad[0]
        ix = (x - x0) / dx + self.pad[1]
        fz, fx = np.floor(iz), np.floor(ix)
        wz, wx = (iz - fz).astype(np.float32), (ix - fx).astype(np.float32)
        inside = (fz >= 0) & (fz < ph - 1) & (fx >= 0) & (fx < pw - 1)
        a32 = np.where(inside, a, 0.0).astype(np.float32)
        base = (
            np.arange(n_frames, dtype=np.int64)[:, None] * (ph * pw)
            + np.clip(fz, 0, ph - 2).astype(np.int64) * pw
            + np.clip(fx, 0, pw - 2).astype(np.int64)
        ).ravel()
        re, im = (a32 * np.cos(phase)).ravel(), (a32 * np.sin(phase)).ravel()
        wz, wx = wz.ravel(), wx.ravel()
        size = n_frames * ph * pw
        # One bincount per corner on the same indices, shifted afterwards: much faster than
        # one bincount over four concatenated index arrays (cache-friendly, no copies).
        acc_re = np.zeros(size + pw + 1)
        acc_im = np.zeros(size + pw + 1)
        for w, offset in (
            ((1 - wz) * (1 - wx), 0),
            ((1 - wz) * wx, 1),
            (wz * (1 - wx), pw),
            (wz * wx, pw + 1),
        ):
            acc_re[offset : offset + size] += np.bincount(base, weights=re * w, minlength=size)
            acc_im[offset : offset + size] += np.bincount(base, weights=im * w, minlength=size)
        out = np.empty(size, dtype=np.complex64)
        out.real = acc_re[:size]
        out.imag = acc_im[:size]
        return out.reshape(*lead, ph, pw)

    def spectrum(self, padded: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """Spectrum of the imaged field (PSF applied) of splatted scatterers."""
        spec = np.fft.fft2(padded, axes=(-2, -1)) * self.kernel_spectrum
        return spec.astype(np.complex64, copy=False)

    def moved_kernel_spectra(self, displacement_m: npt.ArrayLike) -> npt.NDArray[np.complex64]:
        """PSF spectra that image a field moved rigidly by each ``(dz, dx)`` row.

        ``fft2(field) * moved_kernel_spectra(d)`` is the image of the field shifted by ``d``:
        an exact integer-pixel roll times the PSF sampled at the fractional offset (tabulated
        at 1/64 pixel), times the two-way phase ``exp(-2j k dz)``. Unlike a Fourier shift this
        stays exact when the PSF is coarsely sampled. Returns ``(n, padded_h, padded_w)``.
        """
        d = np.atleast_2d(np.asarray(displacement_m, dtype=np.float64))
        table_z, table_x = self._fraction_tables()
        steps = table_z.shape[0] - 1
        pz = d[:, 0] / self.grid.spacing_m[0]
        px = d[:, 1] / self.grid.spacing_m[1]
        iz, ix = np.floor(pz), np.floor(px)
        fz = np.rint((pz - iz) * steps).astype(np.int64)
        fx = np.rint((px - ix) * steps).astype(np.int64)
        ramp_z = np.exp(
            -2j * np.pi * np.multiply.outer(iz, self._fz) - 2j * self.k_rad_m * d[:, :1]
        )
        ramp_x = np.exp(-2j * np.pi * np.multiply.outer(ix, self._fx))
        spec_z = (ramp_z * table_z[fz]).astype(np.complex64)
        spec_x = (ramp_x * table_x[fx]).astype(np.complex64)
        return spec_z[:, :, None] * spec_x[:, None, :]

    def _fraction_tables(self) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]]:
        """1-D spectra of the PSF factors at fractional offsets 0, 1/64, ..., 1 pixel."""
        if self._tables is None:
            steps = 64
            ph, pw = self.padded_shape
            table_z = np.zeros((steps + 1, ph), dtype=np.complex64)
            table_x = np.zeros((steps + 1, pw), dtype=np.complex64)
            for i in range(steps + 1):
                off = i / steps
                az, lx = psf_factors(
                    self.probe,
                    self.grid.spacing_m,
                    offset_px=(off, off),
                    **self._psf_args,
                )
                table_z[i] = np.fft.fft(np.roll(np.pad(az, (0, ph - len(az))), -(len(az) // 2)))
                table_x[i] = np.fft.fft(np.roll(np.pad(lx, (0, pw - len(lx))), -(len(lx) // 2)))
            self._tables = (table_z, table_x)
        return self._tables

    def to_image(self, spectrum: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """Inverse FFT and crop to the visible grid (``(..., h, w)`` complex64)."""
        field = np.fft.ifft2(spectrum, axes=(-2, -1))
        (h, w), (pz, px) = self.grid.shape, self.pad
        return np.ascontiguousarray(field[..., pz : pz + h, px : px + w], dtype=np.complex64)

    def crop(self, padded: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """The visible grid of padded-grid images (``(..., h, w)``)."""
        (h, w), (pz, px) = self.grid.shape, self.pad
        return np.ascontiguousarray(padded[..., pz : pz + h, px : px + w])

    def convolve(self, padded: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """Padded-grid field(s) convolved with the PSF directly (separable; exact, and faster
        than the FFT for the small kernels of scatterer images)."""
        ph, pw = self.padded_shape
        frames = padded.reshape(-1, ph, pw)
        out = np.empty_like(frames)
        lat, a_re, a_im = self._lateral, self._axial_re, self._axial_im
        border = cv2.BORDER_CONSTANT
        for i, frame in enumerate(frames):
            re = np.ascontiguousarray(frame.real)
            im = np.ascontiguousarray(frame.imag)
            out[i].real = cv2.sepFilter2D(re, -1, lat, a_re, borderType=border) - cv2.sepFilter2D(
                im, -1, lat, a_im, borderType=border
            )
            out[i].imag = cv2.sepFilter2D(re, -1, lat, a_im, borderType=border) + cv2.sepFilter2D(
                im, -1, lat, a_re, borderType=border
            )
        return out.reshape(padded.shape)

    def render(
        self, z_m: npt.ArrayLike, x_m: npt.ArrayLike, amplitude: npt.ArrayLike
    ) -> npt.NDArray[np.complex64]:
        """IQ image(s) of scatterers: ``(..., h, w)`` complex64 (see :meth:`splat`)."""
        return self.crop(self.convolve(self.splat(z_m, x_m, amplitude)))

    def expected_intensity(
        self, scatterer_power_per_px: npt.NDArray[np.floating], splatted: bool = True
    ) -> npt.NDArray[np.float32]:
        """Mean ``|IQ|²`` (speckle-free) for a map of scatterer power per pixel on the grid.

        ``scatterer_power_per_px`` is (h, w): expected sum of ``|a|²`` of scatterers per pixel;
        ``splatted=False`` when the reflectivity was placed on pixels directly (no splatting).
        """
        h, w = self.grid.shape
        pz, px = self.pad
        padded = np.zeros(self.padded_shape, dtype=np.float64)
        padded[pz : pz + h, px : px + w] = scatterer_power_per_px
        kernel = self.power_kernel(splatted)
        kh, kw = kernel.shape
        placed = np.zeros(self.padded_shape, dtype=np.float64)
        placed[:kh, :kw] = kernel
        placed = np.roll(placed, (-(kh // 2), -(kw // 2)), axis=(0, 1))
        out = np.fft.ifft2(np.fft.fft2(padded) * np.fft.fft2(placed)).real
        return np.maximum(out[pz : pz + h, px : px + w], 0).astype(np.float32)

    def power_kernel(self, splatted: bool = True) -> FloatArray:
        """Mean ``|response|²`` of one unit scatterer (splatted or on a pixel centre)."""
        if splatted:
            return self.splat_power_kernel()
        return np.pad(np.abs(self.kernel.astype(np.complex128)) ** 2, 1)

    def splat_power_kernel(self, n_offsets: int = 8) -> FloatArray:
        """Mean ``|response|²`` of one unit scatterer, averaged over its sub-pixel position.

        Bilinear splatting spreads a point over 4 pixels before the PSF, so the power kernel is
        not exactly ``|PSF|²`` when the PSF is coarsely sampled; this averages it exactly.
        Shape: the PSF's plus one pixel on each axis (odd), centred.
        """
        kh, kw = self.kernel.shape
        k = np.zeros((kh + 2, kw + 2), dtype=np.complex128)
        k[1:-1, 1:-1] = self.kernel
        total = np.zeros((kh + 2, kw + 2), dtype=np.float64)
        offsets = (np.arange(n_offsets) + 0.5) / n_offsets
        for u in offsets:
            for v in offsets:
                # A point at fractional offset (u, v) from the centre pixel.
                resp = (
                    (1 - u) * (1 - v) * k
                    + (1 - u) * v * np.roll(k, 1, axis=1)
                    + u * (1 - v) * np.roll(k, 1, axis=0)
                    + u * v * np.roll(k, (1, 1), axis=(0, 1))
                )
                total += np.abs(resp) ** 2
        return total / n_offsets**2
