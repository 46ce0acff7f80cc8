"""Microbubble detection and sub-pixel localisation on clutter-filtered frames.

Positions are ``(row, col)`` pixel coordinates (axial, lateral); ``(0, 0)`` is the centre of the
first pixel. Each localiser looks at a ``window_px x window_px`` patch around a detected peak and
returns NaN rows where it cannot give an answer inside that patch.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.processing._checks import as_image, require

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def detect_peaks(
    intensity: npt.ArrayLike,
    threshold_db: float = -20.0,
    max_peaks: int | None = None,
    window_px: int = 5,
) -> IntArray:
    """Local maxima (3x3) above ``threshold_db`` relative to the frame maximum, brightest first.

    Peaks closer than ``window_px // 2`` to the border are dropped so a full window fits, and of
    touching equal maxima (plateaus) only the first is kept; at most ``max_peaks`` are returned.
    Result: ``(n, 2)`` integer ``(row, col)``.
    """
    img = as_image(intensity, "intensity")
    require(window_px % 2 == 1 and window_px >= 3, "window_px", "odd, >= 3", window_px)
    require(
        threshold_db <= 0, "threshold_db", "<= 0 dB (relative to the frame maximum)", threshold_db
    )
    peak = float(img.max())
    if peak <= 0:
        return np.zeros((0, 2), np.intp)
    local_max = img >= cv2.dilate(img, np.ones((3, 3), np.uint8))
    mask = local_max & (img >= peak * 10 ** (threshold_db / 20))
    r = window_px // 2
    mask[:r] = mask[-r:] = False
    mask[:, :r] = mask[:, -r:] = False
    rows, cols = np.nonzero(mask)
    order = np.argsort(-img[rows, cols], kind="stable")
    taken = np.zeros(img.shape, bool)  # plateaus: keep one pixel of touching equal maxima
    kept = []
    for k in order:
        z, x = rows[k], cols[k]
        if not taken[z, x]:
            kept.append(k)
            taken[z - 1 : z + 2, x - 1 : x + 2] = True
    if max_peaks is not None:
        require(max_peaks >= 0, "max_peaks", ">= 0", max_peaks)
        kept = kept[:max_peaks]
    idx = np.asarray(kept, np.intp)
    return np.stack([rows[idx], cols[idx]], axis=1).astype(np.intp).reshape(-1, 2)


def _patches(img: FloatArray, peaks: IntArray, window_px: int) -> FloatArray:
    r = window_px // 2
    dz, dx = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    return img[peaks[:, 0, None, None] + dz, peaks[:, 1, None, None] + dx]


def _offsets(window_px: int) -> tuple[FloatArray, FloatArray]:
    r = window_px // 2
    dz, dx = np.meshgrid(np.arange(-r, r + 1.0), np.arange(-r, r + 1.0), indexing="ij")
    return dz, dx


def _finish(peaks: IntArray, offset: FloatArray, window_px: int) -> FloatArray:
    bad = ~np.all(np.isfinite(offset), axis=1) | np.any(np.abs(offset) > window_px / 2, axis=1)
    out = peaks.astype(np.float64) + offset
    out[bad] = np.nan
    return out


def weighted_centroid(image: npt.ArrayLike, peaks: IntArray, window_px: int = 5) -> FloatArray:
    """Intensity-weighted centroid ``sum w p / sum w`` with ``w = I - min(I)`` over the window."""
    img = as_image(image).astype(np.float64)
    if len(peaks) == 0:
        return np.zeros((0, 2))
    patch = _patches(img, peaks, window_px)
    w = patch - patch.min(axis=(1, 2), keepdims=True)
    dz, dx = _offsets(window_px)
    total = w.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = (
            np.stack([(w * dz).sum(axis=(1, 2)), (w * dx).sum(axis=(1, 2))], 1) / total[:, None]
        )
    return _finish(peaks, offset, window_px)


def radial_symmetry(image: npt.ArrayLike, peaks: IntArray, window_px: int = 5) -> FloatArray:
    """Radial-symmetry centre (after Parthasarathy 2012): the point closest, in weighted least
    squares, to all lines through the pixel-corner points along the local intensity gradient.

    At the corner ``p_k`` between four pixels the gradient ``g_k`` comes from their differences;
    with ``n_k = g_k / |g_k|`` the centre solves ``sum w_k (I - n_k n_k^T)(c - p_k) = 0``, with
    ``w_k = |g_k|^2 / |p_k - centroid|``.
    """
    img = as_image(image).astype(np.float64)
    if len(peaks) == 0:
        return np.zeros((0, 2))
    patch = _patches(img, peaks, window_px)
    a, b = patch[:, :-1, :-1], patch[:, :-1, 1:]
    c, d = patch[:, 1:, :-1], patch[:, 1:, 1:]
    gz = 0.5 * ((c + d) - (a + b))
    gx = 0.5 * ((b + d) - (a + c))
    r = window_px // 2
    pz, px = np.meshgrid(np.arange(-r, r) + 0.5, np.arange(-r, r) + 0.5, indexing="ij")
    mag2 = gz**2 + gx**2
    with np.errstate(invalid="ignore", divide="ignore"):
        nz, nx = gz / np.sqrt(mag2), gx / np.sqrt(mag2)
        nz, nx = np.nan_to_num(nz), np.nan_to_num(nx)
        cz = (mag2 * pz).sum(axis=(1, 2)) / mag2.sum(axis=(1, 2))
        cx = (mag2 * px).sum(axis=(1, 2)) / mag2.sum(axis=(1, 2))
        dist = np.hypot(
            pz - np.nan_to_num(cz)[:, None, None], px - np.nan_to_num(cx)[:, None, None]
        )
        w = mag2 / np.maximum(dist, 1e-3)
    azz = (w * (1 - nz * nz)).sum(axis=(1, 2))
    axx = (w * (1 - nx * nx)).sum(axis=(1, 2))
    azx = (w * (-nz * nx)).sum(axis=(1, 2))
    bz = (w * ((1 - nz * nz) * pz - nz * nx * px)).sum(axis=(1, 2))
    bx = (w * (-nz * nx * pz + (1 - nx * nx) * px)).sum(axis=(1, 2))
    det = azz * axx - azx**2
    with np.errstate(invalid="ignore", divide="ignore"):
        oz = (axx * bz - azx * bx) / det
        ox = (azz * bx - azx * bz) / det
    return _finish(peaks, np.stack([oz, ox], axis=1), window_px)


def gaussian_fit(image: npt.ArrayLike, peaks: IntArray, window_px: int = 5) -> FloatArray:
    """Centre of a 2-D Gaussian fitted as a quadratic to ``ln I`` (weighted least squares).

    ``ln I = a + b z + c x + d z^2 + e x^2 + f z x`` with weights ``I^2`` (values below 1 % of the
    window peak are ignored); the centre solves ``[[2d, f], [f, 2e]] [z, x]^T = -[b, c]^T``. Exact
    for any noise-free (also elliptical or rotated) Gaussian spot.
    """
    img = as_image(image).astype(np.float64)
    if len(peaks) == 0:
        return np.zeros((0, 2))
    patch = _patches(img, peaks, window_px)
    n = len(peaks)
    dz, dx = _offsets(window_px)
    design = np.stack([np.ones_like(dz), dz, dx, dz**2, dx**2, dz * dx], -1).reshape(-1, 6)
    values = patch.reshape(n, -1)
    floor = 0.01 * values.max(axis=1, keepdims=True)
    weight = np.where(values > floor, values**2, 0.0)
    logs = np.log(np.maximum(values, 1e-300))
    lhs = np.einsum("pi,np,pj->nij", design, weight, design) + 1e-12 * np.eye(6)
    rhs = np.einsum("pi,np,np->ni", design, weight, logs)
    try:
        coef = np.linalg.solve(lhs, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        coef = np.full((n, 6), np.nan)
    _, b, c, d, e, f = coef.T
    det = 4 * d * e - f**2
    with np.errstate(invalid="ignore", divide="ignore"):
        oz = (-b * 2 * e + c * f) / det
        ox = (-c * 2 * d + b * f) / det
    offset = np.stack([oz, ox], axis=1)
    offset[(d >= 0) | (e >= 0) | (det <= 0)] = np.nan  # not a peak
    return _finish(peaks, offset, window_px)


Localizer = Callable[[npt.ArrayLike, IntArray, int], FloatArray]
LOCALIZERS: dict[str, Localizer] = {
    "weighted_centroid": weighted_centroid,
    "radial_symmetry": radial_symmetry,
    "gaussian_fit": gaussian_fit,
}
