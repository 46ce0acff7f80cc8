"""Run one registered op/method over everything a :class:`~sonoedge.processing.files.Source`
holds, taking care of grids: derived PSFs, native-spacing resampling and scan conversion."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing import registry
from sonoedge.processing.bmode import bmode
from sonoedge.processing.deconvolution import psf_fwhm_m
from sonoedge.processing.files import Item, Source, coordinates
from sonoedge.types import SPEED_OF_SOUND_M_S, ProbeInfo

RESULT_KEYS = {
    "bmode": "image",
    "despeckle": "image",
    "enhance": "image",
    "doppler": "power_db",
    "ulm": "density",
}


@dataclass
class Outcome:
    """Result arrays (first one is the main result), metadata for the output file, and notes."""

    arrays: dict[str, npt.NDArray[Any]]
    meta: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def check_params(fn: Callable[..., Any], params: dict[str, Any], method: str) -> None:
    """Refuse keyword parameters that ``fn`` does not take, listing the ones it does."""
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    names = [n for n, p in sig.parameters.items() if p.default is not p.empty]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ConfigError(
            f"method {method!r} has no parameter(s) {unknown}: expected some of {names}"
        )


def _resample(
    image: npt.NDArray[Any], spacing_m: tuple[float, float], target_m: tuple[float, float]
) -> npt.NDArray[np.float32]:
    import cv2

    h = max(2, round(image.shape[0] * spacing_m[0] / target_m[0]))
    w = max(2, round(image.shape[1] * spacing_m[1] / target_m[1]))
    return np.asarray(cv2.resize(image.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA))


def _as_image(item: Item, notes: list[str]) -> npt.NDArray[np.float32]:
    data = np.asarray(item.data)
    if np.iscomplexobj(data):
        if "B-mode" not in " ".join(notes):
            notes.append("IQ input: B-mode (60 dB) formed before the op")
        return bmode(data)
    if data.dtype == np.uint8:
        return data.astype(np.float32) / 255.0
    return data.astype(np.float32)


def _scan_convert(
    arr: npt.NDArray[Any], item: Item, probe: ProbeInfo | None
) -> tuple[npt.NDArray[np.float32], tuple[float, float], tuple[float, float]]:
    from sonoedge.processing.scan_convert import scan_convert

    if probe is None or probe.geometry == "linear" or item.spacing_m is None:
        raise ConfigError(
            "input is on a polar grid but the probe geometry (convex/phased, radius_m) is unknown",
            hint="the recording's probe descriptor must name a convex or phased probe",
        )
    return scan_convert(arr, probe.geometry, item.spacing_m, item.origin_m, probe.radius_m)


def process_item(
    item: Item,
    op: str,
    method: str,
    params: dict[str, Any],
    source: Source,
    notes: list[str],
    fn: Callable[..., Any] | None = None,
) -> tuple[dict[str, npt.NDArray[Any]], tuple[float, float] | None, tuple[float, float]]:
    """Apply ``op``/``method`` (its callable ``fn`` when already loaded) to one item; returns
    arrays, their spacing and origin."""
    if fn is None:
        fn = registry.get_method(op, method, load=True)
    kwargs = dict(params)
    spacing, origin = item.spacing_m, item.origin_m
    f0 = source.center_frequency_hz
    data: npt.NDArray[Any] = np.asarray(item.data)
    if op in ("doppler", "ulm", "bmode") and not np.iscomplexobj(data):
        raise DataError(f"op {op!r} needs complex IQ data ('iq'), got a real {data.dtype} array")
    if op in ("doppler", "ulm") and data.ndim != 3:
        raise DataError(f"op {op!r} needs an IQ ensemble (N, H, W), got shape {data.shape}")
    if op in ("despeckle", "enhance"):
        data = _as_image(item, notes)
    native = registry.NATIVE_SPACING_M.get((op, method))
    if native is not None and spacing is not None and not np.allclose(spacing, native, rtol=0.01):
        if data.ndim != 2:
            raise DataError(f"method {method!r} works on {native} m pixels: resample the input")
        notes.append(
            f"resampled from spacing {spacing[0]:.3e} x {spacing[1]:.3e} m to the method's native "
            f"{native[0]:.3e} x {native[1]:.3e} m"
        )
        data = _resample(data, spacing, native)
        spacing = native
    derive_psf = "psf" not in kwargs and "psf_fwhm_px" not in kwargs
    deconvolves = op == "enhance" and method in ("wiener", "richardson_lucy")
    if deconvolves and derive_psf and f0 and spacing:
        probe = source.probe or ProbeInfo(
            center_frequency_hz=f0, sampling_frequency_hz=max(30e6, 4 * f0)
        )
        fz, fx = psf_fwhm_m(probe)
        kwargs["psf_fwhm_px"] = (fz / spacing[0], fx / spacing[1])
        notes.append(f"PSF from the probe: FWHM {fz * 1e3:.3f} x {fx * 1e3:.3f} mm")
    if op == "ulm":
        missing = [
            n
            for n, v in (("x_m/z_m", spacing), ("prf_hz", item.prf_hz), ("center_frequency_hz", f0))
            if not v
        ]
        if missing or spacing is None or f0 is None:
            raise DataError(f"op 'ulm' needs {', '.join(missing)} in the input")
        if item.grid != "cartesian":
            raise DataError("op 'ulm' needs Cartesian (linear-array) IQ data")
        wavelength = SPEED_OF_SOUND_M_S / float(f0)
        from sonoedge.processing.ulm import ulm

        check_params(ulm, {k: v for k, v in kwargs.items() if k != "svd_low"}, method)
        res = fn(data, spacing, wavelength, item.prf_hz, **kwargs)
        arrays = {
            "density": res.density,
            "speed_m_s": res.speed_m_s,
            "axial_velocity_m_s": res.axial_velocity_m_s,
        }
        if "lambda/" not in " ".join(notes):
            notes.append(
                f"ULM maps on a lambda/{kwargs.get('grid_fraction', 10)} grid of "
                f"{res.spacing_m[0] * 1e6:.1f} um (input pixels {spacing[0] * 1e6:.1f} x "
                f"{spacing[1] * 1e6:.1f} um)"
            )
        return arrays, res.spacing_m, res.origin_m
    check_params(fn, kwargs, method)
    if op == "doppler":  # students need the acquisition's PRF and pixel spacing
        for key, value in (("prf_hz", item.prf_hz), ("spacing_m", spacing)):
            if value is not None and registry.accepts(fn, key):
                kwargs.setdefault(key, value)
    if op == "bmode" and spacing is not None and kwargs.get("tgc_db_per_m"):
        kwargs.setdefault("axial_spacing_m", spacing[0])
    try:
        out = np.asarray(fn(data, **kwargs))
    except TypeError as err:
        raise ConfigError(f"method {method!r} rejected its parameters: {err}") from err
    if item.grid == "polar":
        out, spacing, origin = _scan_convert(out, item, source.probe)
        if "scan-converted" not in " ".join(notes):
            notes.append("polar (beam-space) input scan-converted to a Cartesian grid")
    return {RESULT_KEYS[op]: out}, spacing, origin


def process_source(
    source: Source,
    op: str,
    method: str,
    params: dict[str, Any] | None = None,
    advance: Callable[[], None] | None = None,
    device: str = "cpu",
) -> Outcome:
    """Apply ``op``/``method`` to every item of ``source`` and stack the results; students and
    bundles run on ``device`` (a target name, see :mod:`sonoedge.devices.targets`)."""
    fn = registry.get_method(op, method, load=True, device=device)
    params = params or {}
    notes: list[str] = []
    stacks: dict[str, list[npt.NDArray[Any]]] = {}
    spacing: tuple[float, float] | None = None
    origin = (0.0, 0.0)
    prf = None
    for item in source.items():
        arrays, spacing, origin = process_item(item, op, method, params, source, notes, fn)
        prf = item.prf_hz or prf
        for key, arr in arrays.items():
            stacks.setdefault(key, []).append(arr)
        if advance is not None:
            advance()
    if not stacks:
        raise DataError("the input holds nothing to process")
    shapes = {a.shape for arrs in stacks.values() for a in arrs}
    if len(shapes) > 1:
        raise DataError(f"results differ in shape across frames ({sorted(shapes)}): cannot stack")
    arrays = {k: (v[0] if len(v) == 1 else np.stack(v)) for k, v in stacks.items()}
    meta: dict[str, Any] = {
        "op": op,
        "method": method,
        "params": json.dumps(params, default=str),
        "prf_hz": prf,
        "center_frequency_hz": source.center_frequency_hz,
        "notes": "; ".join(notes) if notes else None,
    }
    first = next(iter(arrays.values()))
    if spacing is not None:
        meta.update(coordinates(first.shape, spacing, origin))
    return Outcome(arrays, meta, notes)
