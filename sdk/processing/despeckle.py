"""Classical despeckling filters: SRAD, non-local means, median and bilateral.

All take a real image ``[axial, lateral]`` (envelope, intensity or log-compressed B-mode) and
return a float32 image on the same scale.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.processing._checks import as_image, require
from sonoedge.processing.noise import noise_sigma

FloatArray = npt.NDArray[np.float32]


def srad(
    image: npt.ArrayLike,
    n_iter: int = 20,
    dt: float = 0.5,
    roi: npt.ArrayLike | None = None,
    decay: float = 0.0,
) -> FloatArray:
    """Speckle-reducing anisotropic diffusion (Yu and Acton 2002).

    Per iteration: ``q^2 = (|grad I|^2 / (2 I^2) - (lap I)^2 / (16 I^2)) / (1 + lap I / (4 I))^2``,
    ``c = 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2)))`` clipped to ``[0, 1]``, and
    ``I += dt / 4 * div(c grad I)`` (reflecting borders). The speckle scale starts at
    ``q0^2 = var / mean^2`` of the homogeneous ``roi`` mask (default: the robust
    ``(1.4826 MAD / median)^2`` of the whole image, or ``std / mean`` where the MAD is 0) and
    decays as ``q0(t) = q0 exp(-decay t)`` (the paper's ``decay`` is 1/6; the default 0 keeps it
    constant, which scores better on log-compressed B-mode images).
    """
    img = as_image(image)
    require(n_iter >= 0, "n_iter", ">= 0", n_iter)
    require(0 < dt <= 1.0, "dt", "0 < dt <= 1 (stability of the explicit scheme)", dt)
    require(decay >= 0, "decay", ">= 0", decay)
    offset = float(img.min())
    scale = float(img.max() - offset) or 1.0
    i = ((img - offset) / scale + 1e-3).astype(np.float32)
    if roi is None:
        med = float(np.median(i))
        q0 = 1.4826 * float(np.median(np.abs(i - med))) / med or float(i.std() / i.mean())
    else:
        mask = np.asarray(roi, bool)
        require(mask.shape == img.shape and mask.sum() > 1, "roi", "a mask of the image shape", roi)
        q0 = float(i[mask].std() / i[mask].mean())
    if not q0 > 0:
        return img.copy()  # no speckle to remove
    # one-sided differences (zero across the border), diffusion coefficients and work buffers,
    # updated in place: temporaries dominate the cost at these sizes
    d_n, d_s, d_w, d_e, c_s, c_e = (np.zeros_like(i) for _ in range(6))
    inv, q2, lap, tmp, c = (np.empty_like(i) for _ in range(5))
    step = np.float32(dt / 4)
    for k in range(n_iter):
        np.subtract(i[1:], i[:-1], out=d_s[:-1])
        np.negative(d_s[:-1], out=d_n[1:])
        np.subtract(i[:, 1:], i[:, :-1], out=d_e[:, :-1])
        np.negative(d_e[:, :-1], out=d_w[:, 1:])
        np.reciprocal(i, out=inv)
        np.multiply(d_n, d_n, out=q2)  # q2 <- |grad I|^2 / I^2
        for d in (d_s, d_w, d_e):
            q2 += d * d
        q2 *= inv
        q2 *= inv
        np.add(d_n, d_s, out=lap)  # lap <- lap I / I
        lap += d_w
        lap += d_e
        lap *= inv
        np.multiply(lap, lap, out=tmp)  # q2 <- (q2 / 2 - lap^2 / 16) / (1 + lap / 4)^2
        q2 *= 0.5
        q2 -= tmp / 16
        lap *= 0.25
        lap += 1
        q2 /= lap * lap
        q02 = max((q0 * np.exp(-decay * k * dt)) ** 2, 1e-12)
        q2 -= q02  # c <- 1 / (1 + (q^2 - q0^2) / (q0^2 (1 + q0^2))), clipped to [0, 1]
        q2 *= 1.0 / (q02 * (1 + q02))
        q2 += 1
        with np.errstate(divide="ignore"):
            np.reciprocal(q2, out=c)
        np.clip(c, 0.0, 1.0, out=c)
        c_s[:-1] = c[1:]
        c_e[:, :-1] = c[:, 1:]
        np.multiply(c_s, d_s, out=tmp)  # I <- I + dt / 4 * div(c grad I)
        tmp += c * d_n
        tmp += c_e * d_e
        tmp += c * d_w
        tmp *= step
        i += tmp
    return ((i - 1e-3) * scale + offset).astype(np.float32)


def _to_uint8(img: FloatArray) -> tuple[npt.NDArray[np.uint8], float, float]:
    lo, hi = float(img.min()), float(img.max())
    span = hi - lo or 1.0
    return np.round((img - lo) / span * 255).astype(np.uint8), lo, span


def nlm(
    image: npt.ArrayLike,
    h: float | None = None,
    template_px: int = 7,
    search_px: int = 21,
) -> FloatArray:
    """Non-local means (OpenCV ``fastNlMeansDenoising``) on the image scaled to 8 bits.

    ``h`` is the filter strength in 8-bit grey levels; by default ``h = 1.2 sigma`` with ``sigma``
    the estimated noise level (:func:`noise_sigma`). Patches are ``template_px`` wide and searched
    in a ``search_px`` window.
    """
    img = as_image(image)
    require(template_px % 2 == 1 and template_px >= 3, "template_px", "odd, >= 3", template_px)
    require(
        search_px % 2 == 1 and search_px >= template_px, "search_px", "odd >= template", search_px
    )
    u8, lo, span = _to_uint8(img)
    strength = 1.2 * noise_sigma(u8) if h is None else float(h)
    require(strength >= 0, "h", ">= 0", h)
    out = cv2.fastNlMeansDenoising(u8, None, max(strength, 0.1), template_px, search_px)
    return (out.astype(np.float32) / 255 * span + lo).astype(np.float32)


def median(image: npt.ArrayLike, ksize: int = 5) -> FloatArray:
    """Median filter over a ``ksize x ksize`` window (replicated borders)."""
    img = as_image(image)
    require(ksize % 2 == 1 and 3 <= ksize <= 31, "ksize", "odd, 3..31", ksize)
    if ksize <= 5:
        return np.asarray(cv2.medianBlur(img, ksize), np.float32)
    r = ksize // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(img, r, mode="edge"), (ksize, ksize))
    return np.median(windows, axis=(2, 3)).astype(np.float32)


def bilateral(
    image: npt.ArrayLike,
    diameter_px: int = 7,
    sigma_color: float | None = None,
    sigma_space_px: float = 2.0,
) -> FloatArray:
    """Bilateral filter (OpenCV): weights ``exp(-d^2 / 2 s_space^2) exp(-dI^2 / 2 s_color^2)``.

    ``sigma_color`` defaults to twice the estimated noise level.
    """
    img = as_image(image)
    require(diameter_px >= 1, "diameter_px", ">= 1", diameter_px)
    require(sigma_space_px > 0, "sigma_space_px", "> 0", sigma_space_px)
    color = 2.0 * noise_sigma(img) if sigma_color is None else float(sigma_color)
    require(color >= 0, "sigma_color", ">= 0", sigma_color)
    return np.asarray(
        cv2.bilateralFilter(img, diameter_px, max(color, 1e-6), sigma_space_px), np.float32
    )
