"""Non-local low-rank (NLLR) denoising: block matching plus singular-value thresholding.

For reference patches on a grid, the ``n_similar`` most similar patches (sum of squared
differences, found with box-filtered difference images) inside a search window are stacked as the
columns of a matrix ``Y`` (``patch_px^2 x n_similar``). After removing the group mean, noise-only
singular values of ``Y`` stay below ``tau = sigma (sqrt(m) + sqrt(k))`` (the largest singular value
of an ``m x k`` Gaussian noise matrix); they are zeroed (a projection found from the ``k x k``
Gram matrix of the group), the low-rank group is written back and overlapping estimates are
averaged. Further iterations feed back a little of the residual (``y_k = x_{k-1} + delta (y -
x_{k-1})``) with a re-estimated noise level.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.processing._checks import as_image, require
from sonoedge.processing.noise import noise_sigma

FloatArray = npt.NDArray[np.float32]


def _grid(length: int, stride: int) -> npt.NDArray[np.intp]:
    starts = np.arange(0, length, stride)
    if starts[-1] != length - 1:
        starts = np.append(starts, length - 1)
    return starts.astype(np.intp)


def _one_pass(
    img: npt.NDArray[np.float64],
    sigma: float,
    patch_px: int,
    stride_px: int,
    search_px: int,
    n_similar: int,
) -> npt.NDArray[np.float64]:
    h, w = img.shape
    nz, nx = h - patch_px + 1, w - patch_px + 1
    grid_z, grid_x = np.meshgrid(_grid(nz, stride_px), _grid(nx, stride_px), indexing="ij")
    rz, rx = grid_z.ravel(), grid_x.ravel()
    r = search_px // 2
    offsets = [(dz, dx) for dz in range(-r, r + 1) for dx in range(-r, r + 1)]
    dist = np.full((rz.size, len(offsets)), np.inf, np.float32)
    img32 = img.astype(np.float32)
    for k, (dz, dx) in enumerate(offsets):
        shifted = np.roll(img32, (-dz, -dx), axis=(0, 1))
        ssd = cv2.boxFilter(
            (img32 - shifted) ** 2,
            -1,
            (patch_px, patch_px),
            anchor=(0, 0),
            normalize=False,
            borderType=cv2.BORDER_CONSTANT,
        )
        tz, tx = rz + dz, rx + dx
        ok = (tz >= 0) & (tz < nz) & (tx >= 0) & (tx < nx)
        dist[ok, k] = ssd[rz[ok], rx[ok]]
    k_sim = min(n_similar, len(offsets))
    best = np.argpartition(dist, k_sim - 1, axis=1)[:, :k_sim]
    off = np.asarray(offsets, np.intp)[best]  # (refs, k, 2)
    off[~np.isfinite(np.take_along_axis(dist, best, axis=1))] = 0  # too few candidates: self
    gz, gx = rz[:, None] + off[..., 0], rx[:, None] + off[..., 1]
    patches = np.lib.stride_tricks.sliding_window_view(img, (patch_px, patch_px))
    group = patches[gz, gx].reshape(rz.size, k_sim, -1)  # (refs, k, m)
    mean = group.mean(axis=1, keepdims=True)
    centred = group - mean
    # singular values/vectors from the small k x k Gram matrix: keeping the components with
    # sigma > tau is the projection U_keep U_keep^T Y
    eigval, u = np.linalg.eigh(centred @ centred.transpose(0, 2, 1))
    m = patch_px * patch_px
    tau = sigma * (np.sqrt(m) + np.sqrt(k_sim))
    u = u * (np.sqrt(np.clip(eigval, 0.0, None)) > tau)[:, None, :]
    denoised = u @ (u.transpose(0, 2, 1) @ centred) + mean
    pz, px = np.meshgrid(np.arange(patch_px), np.arange(patch_px), indexing="ij")
    flat = (gz[..., None] + pz.ravel()) * w + (gx[..., None] + px.ravel())
    total = np.bincount(flat.ravel(), weights=denoised.ravel(), minlength=h * w)
    count = np.bincount(flat.ravel(), minlength=h * w)
    out = img.ravel().copy()
    covered = count > 0
    out[covered] = total[covered] / count[covered]
    return out.reshape(h, w)


def nllr(
    image: npt.ArrayLike,
    sigma: float | None = None,
    patch_px: int = 6,
    stride_px: int = 3,
    search_px: int = 15,
    n_similar: int = 16,
    n_iter: int = 2,
    feedback: float = 0.1,
) -> FloatArray:
    """Non-local low-rank denoising of a real image; ``sigma`` defaults to :func:`noise_sigma`.

    Example: ``target = nllr(noisy_bmode, n_iter=2)``.
    """
    img = as_image(image).astype(np.float64)
    require(2 <= patch_px <= min(img.shape), "patch_px", f"2..{min(img.shape)}", patch_px)
    require(1 <= stride_px <= patch_px, "stride_px", f"1..patch_px={patch_px}", stride_px)
    require(search_px >= 3 and search_px % 2 == 1, "search_px", "odd, >= 3", search_px)
    require(n_similar >= 2, "n_similar", ">= 2", n_similar)
    require(n_iter >= 1, "n_iter", ">= 1", n_iter)
    require(0 <= feedback < 1, "feedback", "0 <= delta < 1", feedback)
    sigma0 = noise_sigma(img) if sigma is None else float(sigma)
    require(sigma0 >= 0, "sigma", ">= 0", sigma)
    x = img
    for it in range(n_iter):
        y = img if it == 0 else x + feedback * (img - x)
        residual = float(sigma0**2 - np.mean((img - x) ** 2))
        level = sigma0 if it == 0 else 0.67 * float(np.sqrt(max(residual, 0.0)))
        if level <= 0:
            break
        x = _one_pass(y, float(level), patch_px, stride_px, search_px, n_similar)
    return x.astype(np.float32)
