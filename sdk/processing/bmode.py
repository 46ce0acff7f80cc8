"""B-mode chain: IQ -> envelope -> time-gain compensation -> log compression -> display image."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonoedge.errors import DataError
from sonoedge.processing._checks import as_image, as_iq_frame, require

FloatArray = npt.NDArray[np.float32]


def envelope(iq: npt.ArrayLike) -> FloatArray:
    """Envelope ``|iq|`` of an IQ frame ``[axial, lateral]``; an ensemble is averaged over frames.

    Averaging the envelopes of an ensemble (incoherent compounding) lowers the speckle variance.
    """
    arr = as_iq_frame(iq)
    env = np.abs(arr).astype(np.float32, copy=False)
    return env.mean(axis=0) if env.ndim == 3 else env


def attenuation_gain_db_per_m(
    center_frequency_hz: float, attenuation_db_cm_mhz: float = 0.5
) -> float:
    """Round-trip TGC slope ``2 * alpha * f[MHz] * 100`` (dB/m) for tissue attenuation ``alpha``."""
    require(center_frequency_hz > 0, "center_frequency_hz", "> 0", center_frequency_hz)
    require(attenuation_db_cm_mhz >= 0, "attenuation_db_cm_mhz", ">= 0", attenuation_db_cm_mhz)
    return 2.0 * attenuation_db_cm_mhz * (center_frequency_hz / 1e6) * 100.0


def tgc(
    amplitude: npt.ArrayLike,
    axial_spacing_m: float,
    gain_db_per_m: float = 0.0,
    curve_db: npt.ArrayLike | None = None,
    depth_offset_m: float = 0.0,
) -> FloatArray:
    """Time-gain compensation of an amplitude image: row ``i`` is scaled by ``10**(g(z_i)/20)``.

    ``g(z) = gain_db_per_m * z`` with ``z = depth_offset_m + i * axial_spacing_m``, plus an optional
    user curve ``curve_db`` (dB at depths spread evenly over the image, linearly interpolated).
    """
    img = as_image(amplitude, "amplitude")
    require(axial_spacing_m > 0, "axial_spacing_m", "> 0", axial_spacing_m)
    rows = img.shape[0]
    depth_m = depth_offset_m + np.arange(rows) * axial_spacing_m
    gain_db = gain_db_per_m * depth_m
    if curve_db is not None:
        curve = np.asarray(curve_db, dtype=np.float64).ravel()
        require(
            curve.size >= 1 and bool(np.all(np.isfinite(curve))),
            "curve_db",
            "one or more finite gains in dB",
            curve_db,
        )
        knots = np.linspace(0, rows - 1, curve.size) if curve.size > 1 else np.zeros(1)
        gain_db = gain_db + np.interp(np.arange(rows), knots, curve)
    scale = (10.0 ** (gain_db / 20.0)).astype(np.float32)
    return img * scale[:, None]


def log_compress(
    amplitude: npt.ArrayLike,
    dynamic_range_db: float = 60.0,
    gain_db: float = 0.0,
    reference: float | None = None,
) -> FloatArray:
    """Log-compress an amplitude image to ``[0, 1]``.

    ``y = clip((20 log10(A / A_ref) + gain_db + DR) / DR, 0, 1)`` with ``A_ref`` the image maximum
    unless ``reference`` is given, so ``A_ref`` maps to 1 and ``DR`` dB below it maps to 0.
    """
    img = as_image(amplitude, "amplitude")
    require(0 < dynamic_range_db <= 200, "dynamic_range_db", "0 < DR <= 200 dB", dynamic_range_db)
    if np.any(img < 0):
        raise DataError("amplitude has negative values: expected an envelope (>= 0)")
    ref = float(img.max()) if reference is None else float(reference)
    require(reference is None or ref > 0, "reference", "> 0", reference)
    if ref <= 0:
        return np.zeros_like(img)
    tiny = np.float32(np.finfo(np.float32).tiny)
    db = 20.0 * np.log10(np.maximum(img, tiny) / np.float32(ref)) + np.float32(gain_db)
    return np.clip((db + dynamic_range_db) / dynamic_range_db, 0.0, 1.0).astype(np.float32)


def to_uint8(image01: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Map a ``[0, 1]`` image to uint8 display grey levels (values outside are clipped)."""
    img = as_image(image01)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def bmode(
    iq: npt.ArrayLike,
    dynamic_range_db: float = 60.0,
    gain_db: float = 0.0,
    tgc_db_per_m: float = 0.0,
    axial_spacing_m: float | None = None,
) -> FloatArray:
    """The B-mode chain: envelope, optional TGC, log compression; returns a ``[0, 1]`` image.

    Example: ``img = bmode(iq, dynamic_range_db=50, tgc_db_per_m=75, axial_spacing_m=1e-4)``.
    """
    env = envelope(iq)
    if tgc_db_per_m:
        require(
            axial_spacing_m is not None and axial_spacing_m > 0,
            "axial_spacing_m",
            "> 0 (needed when tgc_db_per_m is set)",
            axial_spacing_m,
        )
        env = tgc(env, float(axial_spacing_m), tgc_db_per_m)  # type: ignore[arg-type]
    return log_compress(env, dynamic_range_db=dynamic_range_db, gain_db=gain_db)
