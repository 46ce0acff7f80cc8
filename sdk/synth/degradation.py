"""Degradation model for blind enhancement: anisotropic Gaussian PSF blur, then noise.

Noise is either additive Gaussian (``noise="gaussian"``) or a complex Fourier-domain
perturbation (``noise="fourier"``): every frequency coefficient of the blurred image gets a
random magnitude factor ``1 + σ_m n₁`` and phase offset ``σ_p n₂`` (n ~ N(0, 1)), and the real
part of the inverse transform is kept. Severity ``light``/``moderate``/``heavy`` (or a number in
[0, 1]) sets the blur range and noise strength; images are expected in [0, 1].

Example::

    degraded, info = degrade(clean, seed=0, noise="fourier", severity="heavy")
"""

from __future__ import annotations

import math
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError

Noise = Literal["gaussian", "fourier"]
SEVERITIES: dict[str, float] = {"light": 0.2, "moderate": 0.5, "heavy": 1.0}


def severity_value(severity: str | float) -> float:
    """Numeric severity in [0, 1] from a name in :data:`SEVERITIES` or a number."""
    if isinstance(severity, str):
        if severity not in SEVERITIES:
            raise ConfigError(
                f"severity={severity!r} is invalid: expected one of {sorted(SEVERITIES)} or 0..1"
            )
        return SEVERITIES[severity]
    if not (isinstance(severity, (int, float)) and 0.0 <= severity <= 1.0):
        raise ConfigError(f"severity={severity!r} is invalid: expected a number in 0..1")
    return float(severity)


def noise_sigmas(severity: float) -> dict[str, float]:
    """Noise strengths at a numeric severity: Gaussian σ (image units), Fourier σ_m and σ_p."""
    return {
        "gaussian_sigma": 0.01 + 0.14 * severity,
        "magnitude_sigma": 0.05 + 0.45 * severity,
        "phase_sigma_rad": 0.05 + 0.55 * severity,
    }


def degrade(
    image: npt.ArrayLike,
    seed: int,
    blur_sigma_px: tuple[float, float] | None = None,
    noise: Noise = "gaussian",
    severity: str | float = "moderate",
) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
    """Blur then add noise to a 2-D image; returns ``(degraded float32, info)``.

    ``blur_sigma_px`` is the Gaussian PSF (axial, lateral) σ in pixels; ``None`` draws each
    from ``[0.3, 0.5 + 2.5·severity]`` independently (random anisotropic blur), ``(0, 0)``
    disables blur. ``info`` records every parameter used and the PSNR against the input.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 2:
        raise DataError(f"image has shape {img.shape}: expected a 2-D array of at least 2×2")
    if not np.all(np.isfinite(img)):
        raise DataError("image contains NaN or Inf: expected finite values")
    if noise not in ("gaussian", "fourier"):
        raise ConfigError(f"noise={noise!r} is invalid: expected 'gaussian' or 'fourier'")
    s = severity_value(severity)
    rng = np.random.default_rng(seed)
    if blur_sigma_px is None:
        hi = 0.5 + 2.5 * s
        sz, sx = (float(v) for v in rng.uniform(0.3, hi, size=2))
    else:
        sz, sx = (float(v) for v in blur_sigma_px)
        if not (sz >= 0 and sx >= 0 and math.isfinite(sz) and math.isfinite(sx)):
            raise ConfigError(
                f"blur_sigma_px={blur_sigma_px!r} is invalid: expected two values >= 0"
            )
    blurred = img
    if sz > 0 or sx > 0:
        blurred = np.asarray(
            cv2.GaussianBlur(
                img,
                (0, 0),
                sigmaX=max(sx, 1e-6),
                sigmaY=max(sz, 1e-6),
                borderType=cv2.BORDER_REFLECT,
            ),
            dtype=np.float32,
        )
    sig = noise_sigmas(s)
    info: dict[str, Any] = {"blur_sigma_px": (sz, sx), "noise": noise, "severity": s}
    if noise == "gaussian":
        out = blurred + rng.normal(0.0, sig["gaussian_sigma"], img.shape).astype(np.float32)
        info["gaussian_sigma"] = sig["gaussian_sigma"]
    else:
        spectrum = np.fft.fft2(blurred)
        factor = 1.0 + sig["magnitude_sigma"] * rng.standard_normal(img.shape)
        phase = sig["phase_sigma_rad"] * rng.standard_normal(img.shape)
        # Keep the mean (DC) intact so brightness does not drift.
        factor[0, 0], phase[0, 0] = 1.0, 0.0
        out = np.fft.ifft2(spectrum * factor * np.exp(1j * phase)).real.astype(np.float32)
        info["magnitude_sigma"] = sig["magnitude_sigma"]
        info["phase_sigma_rad"] = sig["phase_sigma_rad"]
    mse = float(np.mean((out - img) ** 2))
    info["psnr_db"] = 10 * math.log10(1.0 / mse) if mse > 0 else math.inf
    return out.astype(np.float32), info
