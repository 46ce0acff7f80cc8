"""Noise-level estimation used to pick denoiser strengths."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.processing._checks import as_image

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise_sigma(image: npt.ArrayLike) -> float:
    """Standard deviation of additive white noise (Immerkaer 1996).

    ``sigma = sqrt(pi / 2) / (6 (H - 2)(W - 2)) * sum |I * M|`` with ``M`` the difference of two
    Laplacians ``[[1,-2,1],[-2,4,-2],[1,-2,1]]``, which cancels smooth image structure.
    """
    img = as_image(image)
    if min(img.shape) < 3:
        return float(img.std())
    resp = cv2.filter2D(img, cv2.CV_32F, _IMMERKAER)[1:-1, 1:-1]
    h, w = img.shape
    return float(
        np.sqrt(np.pi / 2) * np.abs(resp, dtype=np.float64).sum() / (6 * (h - 2) * (w - 2))
    )
