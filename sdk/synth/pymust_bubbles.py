"""Microbubble frames from PyMUST, an independent simulator, for cross-simulator checks.

:func:`simulate_bubbles_pymust` images the scene that :func:`~sonoedge.synth.microbubbles.
simulate_bubbles` draws for the same seed (vessel tree, flow, amplitudes) with PyMUST instead of
our convolution model: SIMUS plane-wave transmit from a 128-element linear array with the
parameters' centre frequency, bandwidth, pulse cycles and pitch, RF to IQ, then delay-and-sum
on the λ/4 image grid at the parameters' F-number. Element directivity, spherical spreading and
the elevation focus are PyMUST's. Frames are in units of a median bubble's peak at the image
centre; thermal noise is added at ``snr_db`` relative to that peak's power, as in our simulator.
There is no tissue clutter.

PyMUST (LGPL) is an optional validation dependency: ``pip install 'sonoedge[validation]'``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.imaging import Grid
from sonoedge.synth.microbubbles import BubbleFrames, BubbleParams, bubble_scene

N_ELEMENTS = 128
REACH_WAVELENGTHS = 4.0
"""Bubbles up to this far outside the image are simulated: their PSFs reach into it."""


def import_pymust() -> Any:
    """The ``pymust`` module, or a :class:`ConfigError` that says how to install it."""
    try:
        import pymust
    except ImportError as exc:
        raise ConfigError(
            "PyMUST is not installed: cross-simulator checks need it",
            hint="pip install 'sonoedge[validation]' (PyMUST, LGPL)",
        ) from exc
    return pymust


def pymust_param(params: BubbleParams) -> Any:
    """PyMUST's parameter structure for ``params``: a 128-element linear array of the
    parameters' pitch (element width 0.9 pitch), centre frequency, bandwidth and pulse cycles,
    sampled at 4 × the centre frequency, plane-wave transmit, receive F-number."""
    pymust = import_pymust()
    p = pymust.getparam("L11-5v")
    p.fc = params.center_frequency_hz
    p.bandwidth = 100.0 * params.bandwidth_fraction
    p.TXnow = params.n_cycles
    p.pitch = params.pitch_m
    p.width = 0.9 * params.pitch_m
    p.kerf = 0.1 * params.pitch_m
    p.Nelements = N_ELEMENTS
    p.fs = 4.0 * params.center_frequency_hz
    p.TXdelay = np.zeros((1, N_ELEMENTS))
    p.fnumber = params.f_number
    return p


class Beamformer:
    """SIMUS + RF-to-IQ + delay-and-sum onto ``grid`` for one parameter vector: :meth:`iq` of
    bubbles at ``(z, x)`` metres (x = 0 under the array's centre). The DAS matrix is reused while
    the RF length stays the same (a silent scatterer below the image fixes that length)."""

    def __init__(self, params: BubbleParams, grid: Grid) -> None:
        self.pymust = import_pymust()
        self.p = pymust_param(params)
        zs, xs = grid.centres_m()
        self.xg, self.zg = np.meshgrid(xs, zs)
        lam = 1540.0 / params.center_frequency_hz
        self.z_silent = float(zs[-1] + 2 * REACH_WAVELENGTHS * lam)
        self.shape = grid.shape
        self.das: Any = None
        self.rf_shape: tuple[int, ...] = ()

    def iq(self, z_m: npt.ArrayLike, x_m: npt.ArrayLike, amplitudes: npt.ArrayLike) -> Any:
        """Complex IQ ``(h, w)`` of the grid, PyMUST's units."""
        if not np.any(np.asarray(amplitudes)):  # SIMUS divides by the RF's maximum
            return np.zeros(self.shape, np.complex64)
        z = np.append(np.asarray(z_m, np.float64), self.z_silent)
        x = np.append(np.asarray(x_m, np.float64), 0.0)
        a = np.append(np.asarray(amplitudes, np.float64), 0.0)
        rf, _ = self.pymust.simus(x, z, a, self.p.TXdelay, self.p)
        iq = self.pymust.rf2iq(rf, self.p.fs, self.p.fc)
        if self.das is None or iq.shape != self.rf_shape:
            self.das = self.pymust.dasmtx(iq, self.xg, self.zg, self.p)
            self.rf_shape = iq.shape
        flat = self.das @ iq.flatten(order="F")
        return np.asarray(flat).reshape(self.shape, order="F").astype(np.complex64)


def simulate_bubbles_pymust(
    params: BubbleParams, n_frames: int, height: int, width: int, seed: int
) -> BubbleFrames:
    """The bubble scene of ``simulate_bubbles(params, n_frames, height, width, seed)`` imaged by
    PyMUST (see the module docstring); ``params.clutter_db`` is not used (no clutter)."""
    rng = np.random.default_rng(seed)
    scene = bubble_scene(params, n_frames, height, width, rng)
    grid = scene.grid
    bf = Beamformer(params, grid)
    lam = 1540.0 / params.center_frequency_hz
    z_min, z_max, x_min, x_max = grid.extent_m()
    reach = REACH_WAVELENGTHS * lam
    # a median bubble (amplitude 1) at the image centre sets the noise level
    peak = float(np.abs(bf.iq([(z_min + z_max) / 2], [(x_min + x_max) / 2], [1.0])).max())
    noise_sigma = math.sqrt(10 ** (-params.snr_db / 10) / 2)
    frames = np.empty((n_frames, height, width), np.complex64)
    for t in range(n_frames):
        z, x = scene.z_m[t], scene.x_m[t]
        near = (z > z_min - reach) & (z < z_max + reach) & (x > x_min - reach) & (x < x_max + reach)
        frames[t] = bf.iq(z[near], x[near], scene.amplitudes[near]) / peak
    noise = rng.standard_normal((2, n_frames, height, width)).astype(np.float32) * noise_sigma
    iq = (frames + noise[0] + 1j * noise[1]).astype(np.complex64)
    return BubbleFrames.from_iq(iq, scene, params)
