"""Conventional ultrasound localisation microscopy (ULM): detect, localise, track, render.

Input: clutter-filtered IQ frames ``[frame, axial, lateral]`` (or their intensity). Output:
density and velocity maps on a grid of ``wavelength / grid_fraction`` (lambda/10 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sonoedge.errors import DataError
from sonoedge.processing._checks import as_spacing, require
from sonoedge.processing.localization import LOCALIZERS, detect_peaks
from sonoedge.processing.tracking import link_tracks, smooth_tracks

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UlmResult:
    """ULM maps (``[axial, lateral]`` on ``spacing_m``/``origin_m``) plus the raw detections.

    ``density``: tracks crossing each pixel (each track counts once per pixel). ``speed_m_s``: mean
    track speed per pixel; ``axial_velocity_m_s``: mean axial velocity (positive towards the
    probe). ``localizations_m[t]``: ``(n, 2)`` positions ``(z, x)`` in frame ``t``;
    ``tracks_m``: ``(n, 3)`` arrays ``[frame, z, x]``.
    """

    density: npt.NDArray[np.float32]
    speed_m_s: npt.NDArray[np.float32]
    axial_velocity_m_s: npt.NDArray[np.float32]
    spacing_m: tuple[float, float]
    origin_m: tuple[float, float]
    localizations_m: list[FloatArray] = field(default_factory=list)
    tracks_m: list[FloatArray] = field(default_factory=list)


def localize_frames(
    frames: npt.ArrayLike,
    spacing_m: tuple[float, float],
    origin_m: tuple[float, float] = (0.0, 0.0),
    method: str = "weighted_centroid",
    threshold_db: float = -20.0,
    max_per_frame: int | None = None,
    window_px: int = 5,
) -> list[FloatArray]:
    """Detect and localise bubbles in each frame; returns per-frame ``(n, 2)`` ``(z, x)`` in m.

    ``frames`` are complex IQ or real intensities ``[frame, axial, lateral]``; complex frames are
    reduced to ``|iq|``.
    """
    arr = np.asarray(frames)
    if arr.ndim != 3 or arr.shape[0] == 0 or min(arr.shape[1:]) < window_px:
        raise DataError(
            f"frames have shape {arr.shape}: expected (frames >= 1, axial, lateral >= {window_px})"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError("frames contain NaN/Inf")
    require(method in LOCALIZERS, "method", f"one of {sorted(LOCALIZERS)}", method)
    dz, dx = as_spacing(spacing_m)
    localize = LOCALIZERS[method]
    scale = np.array([dz, dx])
    offset = np.asarray(origin_m, np.float64)
    out = []
    for frame in np.abs(arr) if np.iscomplexobj(arr) else arr:
        peaks = detect_peaks(frame, threshold_db, max_per_frame, window_px)
        pix = localize(frame, peaks, window_px)
        pix = pix[np.all(np.isfinite(pix), axis=1)]
        out.append(offset + pix * scale)
    return out


def render_maps(
    tracks_m: Sequence[FloatArray],
    shape_m: tuple[float, float],
    origin_m: tuple[float, float],
    grid_spacing_m: float,
    prf_hz: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Density, speed and axial-velocity maps of tracks on a square grid of ``grid_spacing_m``.

    Tracks are interpolated linearly at half-pixel steps; a track adds 1 to the density of each
    pixel it crosses, and its segment velocity ``(p[k+1] - p[k]) * prf / (frame gap)`` to the
    velocity sums there. ``shape_m`` is the field's (depth, width); ``origin_m`` the centre of grid
    pixel ``[0, 0]``.
    """
    require(grid_spacing_m > 0, "grid_spacing_m", "> 0", grid_spacing_m)
    require(prf_hz > 0, "prf_hz", "> 0", prf_hz)
    nz = max(1, int(np.ceil(shape_m[0] / grid_spacing_m)))
    nx = max(1, int(np.ceil(shape_m[1] / grid_spacing_m)))
    require(
        nz * nx <= 100_000_000, "grid_spacing_m", "a grid of at most 100 Mpixels", grid_spacing_m
    )
    density = np.zeros(nz * nx)
    speed = np.zeros(nz * nx)
    vz = np.zeros(nz * nx)
    origin = np.asarray(origin_m, np.float64)
    for trk in tracks_m:
        frames, pos = trk[:, 0], trk[:, 1:3]
        seg = np.diff(pos, axis=0)
        gap = np.maximum(np.diff(frames), 1.0)
        vel = seg * prf_hz / gap[:, None]
        steps = np.maximum(1, np.ceil(np.linalg.norm(seg, axis=1) / (grid_spacing_m / 2))).astype(
            int
        )
        pts, seg_id = [pos[:1]], [np.zeros(1, int)]
        for k, n in enumerate(steps):
            frac = (np.arange(1, n + 1) / n)[:, None]
            pts.append(pos[k] + frac * seg[k])
            seg_id.append(np.full(n, k))
        p = np.concatenate(pts)
        sid = np.concatenate(seg_id)
        idx = np.floor((p - origin) / grid_spacing_m + 0.5).astype(int)
        ok = (idx[:, 0] >= 0) & (idx[:, 0] < nz) & (idx[:, 1] >= 0) & (idx[:, 1] < nx)
        flat = idx[ok, 0] * nx + idx[ok, 1]
        flat, first = np.unique(flat, return_index=True)
        density[flat] += 1
        if len(vel):
            v = vel[np.minimum(sid[ok][first], len(vel) - 1)]
            speed[flat] += np.linalg.norm(v, axis=1)
            vz[flat] += -v[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_speed = np.where(density > 0, speed / density, 0.0)
        mean_vz = np.where(density > 0, vz / density, 0.0)
    return (
        density.reshape(nz, nx).astype(np.float32),
        mean_speed.reshape(nz, nx).astype(np.float32),
        mean_vz.reshape(nz, nx).astype(np.float32),
    )


def ulm(
    frames: npt.ArrayLike,
    spacing_m: tuple[float, float],
    wavelength_m: float,
    prf_hz: float,
    origin_m: tuple[float, float] = (0.0, 0.0),
    method: str = "weighted_centroid",
    threshold_db: float = -20.0,
    max_per_frame: int | None = None,
    window_px: int = 5,
    max_linking_distance_m: float | None = None,
    min_track_length: int = 5,
    grid_fraction: int = 10,
    smoothing_window: int = 0,
) -> UlmResult:
    """Conventional ULM on clutter-filtered frames: localise, link, render on a lambda/10 grid.

    ``max_linking_distance_m`` defaults to 2 input pixels; tracks shorter than
    ``min_track_length`` localisations are dropped; ``smoothing_window`` > 0 refines each
    track's positions by a line through its points within that many frames
    (:func:`~sonoedge.processing.tracking.smooth_tracks`) before rendering.

    Example: ``res = ulm(svd_filter(iq), (5e-5, 1e-4), wavelength_m=2e-4, prf_hz=1000)``.
    """
    as_spacing(spacing_m)
    require(wavelength_m > 0, "wavelength_m", "> 0", wavelength_m)
    require(grid_fraction >= 1, "grid_fraction", ">= 1", grid_fraction)
    locs = localize_frames(
        frames, spacing_m, origin_m, method, threshold_db, max_per_frame, window_px
    )
    shape = np.asarray(frames).shape
    return ulm_from_localizations(
        locs,
        (shape[1], shape[2]),
        spacing_m,
        wavelength_m,
        prf_hz,
        origin_m,
        max_linking_distance_m,
        min_track_length,
        grid_fraction,
        smoothing_window,
    )


def ulm_from_localizations(
    localizations_m: Sequence[npt.ArrayLike],
    frame_shape: tuple[int, int],
    spacing_m: tuple[float, float],
    wavelength_m: float,
    prf_hz: float,
    origin_m: tuple[float, float] = (0.0, 0.0),
    max_linking_distance_m: float | None = None,
    min_track_length: int = 5,
    grid_fraction: int = 10,
    smoothing_window: int = 0,
) -> UlmResult:
    """The tracking and rendering half of :func:`ulm` for localisations made elsewhere (e.g. by a
    network): ``localizations_m[t]`` is an ``(n, 2)`` array of ``(z, x)`` in metres in frame
    ``t`` of frames of ``frame_shape`` (axial, lateral) pixels at ``spacing_m`` from ``origin_m``.
    """
    dz, dx = as_spacing(spacing_m)
    require(wavelength_m > 0, "wavelength_m", "> 0", wavelength_m)
    require(grid_fraction >= 1, "grid_fraction", ">= 1", grid_fraction)
    whole = isinstance(smoothing_window, int) and smoothing_window >= 0
    require(whole, "smoothing_window", "a whole number of frames >= 0 (0: off)", smoothing_window)
    locs = [np.asarray(p, np.float64).reshape(-1, 2) for p in localizations_m]
    link = 2 * max(dz, dx) if max_linking_distance_m is None else float(max_linking_distance_m)
    tracks = link_tracks(locs, link, min_track_length)
    if smoothing_window:
        tracks = smooth_tracks(tracks, smoothing_window)
    shape = (len(locs), *frame_shape)
    grid = wavelength_m / grid_fraction
    field_m = (shape[1] * dz, shape[2] * dx)
    corner = (origin_m[0] - dz / 2, origin_m[1] - dx / 2)
    grid_origin = (corner[0] + grid / 2, corner[1] + grid / 2)
    density, speed, vz = render_maps(tracks, field_m, grid_origin, grid, prf_hz)
    return UlmResult(density, speed, vz, (grid, grid), grid_origin, locs, tracks)
