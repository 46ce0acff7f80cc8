"""Input validation shared by the processing ops: clear errors instead of tracebacks."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError


def require(condition: bool, name: str, valid: str, value: object) -> None:
    """Raise :class:`ConfigError` naming ``name`` and its valid range when ``condition`` fails."""
    if not condition:
        raise ConfigError(f"{name}={value!r} is invalid: expected {valid}")


def _finite(arr: npt.NDArray[Any], name: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataError(
            f"{name} contains {bad} NaN/Inf value(s)",
            hint="replace or drop invalid samples before processing",
        )


def as_ensemble(iq: object, name: str = "iq", min_frames: int = 1) -> npt.NDArray[np.complex64]:
    """Check an IQ ensemble ``[frame, axial, lateral]`` and return it as complex64."""
    arr = np.asarray(iq)
    if arr.ndim != 3:
        raise DataError(f"{name} has shape {arr.shape}: expected (frames, axial, lateral)")
    if not (np.iscomplexobj(arr) or np.issubdtype(arr.dtype, np.number)):
        raise DataError(f"{name} has dtype {arr.dtype}: expected complex IQ samples")
    if not np.iscomplexobj(arr):
        raise DataError(
            f"{name} has real dtype {arr.dtype}: expected complex IQ (complex64)",
            hint="demodulate RF to IQ first, or pass the complex baseband data",
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise DataError(f"{name} is empty (shape {arr.shape}): expected frames, axial, lateral > 0")
    if arr.shape[0] < min_frames:
        raise DataError(f"{name} has {arr.shape[0]} frame(s): this op needs at least {min_frames}")
    _finite(arr, name)
    return arr.astype(np.complex64, copy=False)


def as_iq_frame(iq: object, name: str = "iq") -> npt.NDArray[np.complexfloating[Any, Any]]:
    """Check an IQ frame ``[axial, lateral]`` (or an ensemble) of complex samples."""
    arr = np.asarray(iq)
    if arr.ndim not in (2, 3):
        raise DataError(
            f"{name} has shape {arr.shape}: expected (axial, lateral) or (N, axial, lateral)"
        )
    if not np.iscomplexobj(arr):
        raise DataError(f"{name} has real dtype {arr.dtype}: expected complex IQ samples")
    if arr.size == 0:
        raise DataError(f"{name} is empty (shape {arr.shape})")
    _finite(arr, name)
    return arr


def as_image(image: object, name: str = "image") -> npt.NDArray[np.float32]:
    """Check a 2-D real image ``[axial, lateral]`` and return it as float32."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise DataError(f"{name} has shape {arr.shape}: expected a 2-D (axial, lateral) image")
    if arr.size == 0:
        raise DataError(f"{name} is empty (shape {arr.shape})")
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(
            f"{name} has dtype {arr.dtype}: expected a real image (uint8, uint16 or float)",
            hint="take the envelope of complex IQ first (op bmode)",
        )
    out = arr.astype(np.float32, copy=False)
    _finite(out, name)
    return out


def as_spacing(spacing_m: object, name: str = "spacing_m") -> tuple[float, float]:
    """Check an ``(axial, lateral)`` pixel spacing in metres."""
    try:
        dz, dx = (float(v) for v in spacing_m)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name}={spacing_m!r} is invalid: expected (axial_m, lateral_m)"
        ) from None
    require(
        np.isfinite(dz) and np.isfinite(dx) and dz > 0 and dx > 0,
        name,
        "two positive pixel sizes in metres (axial, lateral)",
        spacing_m,
    )
    return dz, dx
