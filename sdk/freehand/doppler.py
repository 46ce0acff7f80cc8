"""Freehand 3D power Doppler: clutter-filter each slice's ensemble, compound the slices in 3D.

Each sweep position carries a short IQ ensemble; :func:`power_doppler_slices` turns it into a
power Doppler image with :func:`sonoedge.processing.clutter.svd_filter` (or any filter with the
same signature, e.g. a SONIC student wrapped as a function), and the slices are compounded with
MAXIMUM (vessel connectivity) or MEAN into a vascular volume. Example::

    slices = power_doppler_slices(ensembles)                # [n, rows, cols] in dB
    result = reconstruct(slices_to_uint8(slices), pixel_to_world, valid, 0.3e-3,
                         compounding="max")
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError

ClutterFilter = Callable[[npt.NDArray[np.complex64]], npt.NDArray[np.complex64]]


def power_doppler_slices(
    ensembles: npt.ArrayLike,
    clutter_filter: ClutterFilter | None = None,
    floor_db: float = -40.0,
) -> npt.NDArray[np.float32]:
    """Power Doppler in dB (0 = brightest pixel of the sweep) per ensemble ``[n, N, rows, cols]``.

    The default filter is the SVD clutter filter with the spatial-similarity cutoff.
    """
    from sonoedge.processing.clutter import power_doppler, svd_filter

    arr = np.asarray(ensembles)
    if arr.ndim != 4 or arr.shape[1] < 2 or not np.iscomplexobj(arr):
        raise DataError(
            f"ensembles have shape {arr.shape}: expected complex [n, N >= 2, rows, cols]"
        )
    if floor_db >= 0:
        raise ConfigError(f"floor_db={floor_db} is invalid: expected < 0 dB")
    filt = clutter_filter or (lambda iq: svd_filter(iq, cutoff="ssm"))
    power = np.stack([power_doppler(filt(e.astype(np.complex64)), db=False) for e in arr])
    peak = float(power.max())
    if peak <= 0:
        return np.full(power.shape, floor_db, np.float32)
    return np.maximum(10 * np.log10(np.maximum(power / peak, 1e-30)), floor_db).astype(np.float32)


def slices_to_uint8(slices_db: npt.ArrayLike, floor_db: float = -40.0) -> npt.NDArray[np.uint8]:
    """Map dB images (``floor_db``..0) to 0..255 for compounding and display."""
    db = np.asarray(slices_db, dtype=np.float32)
    return np.clip((db - floor_db) / -floor_db * 255.0, 0, 255).astype(np.uint8)
