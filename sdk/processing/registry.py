"""Registry of processing methods per op, so the CLI and pipeline can list and pick them.

``METHODS[op][name]`` is a callable taking a numpy array plus keyword parameters (each with a
default) and returning the op's result:

- ``bmode``: IQ frame ``(H, W)`` or ensemble ``(N, H, W)`` -> ``[0, 1]`` image
- ``doppler``: IQ ensemble ``(N, H, W)`` -> power Doppler in dB ``(H, W)``
- ``despeckle`` and ``enhance``: real image ``(H, W)`` -> image ``(H, W)``
- ``ulm``: IQ ensemble (or intensities) plus ``spacing_m``, ``wavelength_m``, ``prf_hz`` ->
  :class:`~sonoedge.processing.ulm.UlmResult`

The students shipped in :mod:`sonoedge.zoo` are methods too, named after the model
(``doppler/sonic-16``, ``despeckle/despeckle-mk``, ...); each is loaded (onnxruntime) on first
use. Other trained models add themselves with :func:`register`, giving the pixel spacing they were
trained on; inputs on another grid are resampled by the caller (see ``sonoedge process``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.processing import bmode as _bmode
from sonoedge.processing import clutter, deconvolution, despeckle, nllr, ulm

Method = Callable[..., Any]
OPS = ("bmode", "doppler", "despeckle", "enhance", "ulm")


def _svd(cutoff: clutter.CutoffMethod, block: bool = False) -> Method:
    def run(
        iq: npt.ArrayLike,
        low: int | None = None,
        high: int | None = None,
        energy_fraction: float = 0.9,
        block_px: int = 32,
        block_overlap: float = 0.5,
    ) -> npt.NDArray[np.float32]:
        filtered = clutter.svd_filter(
            iq,
            cutoff,
            low,
            high,
            energy_fraction,
            block_px if block else None,
            block_overlap,
        )
        return clutter.power_doppler(filtered)

    what = {"fixed": "fixed cutoffs", "energy": "energy cutoff", "ssm": "SSM adaptive cutoffs"}
    run.__doc__ = (
        f"SVD clutter filter ({what[cutoff]}{', block-wise' if block else ''}) -> power Doppler dB."
    )
    return run


def _psf(psf: npt.ArrayLike | None, psf_fwhm_px: tuple[float, float]) -> npt.ArrayLike:
    return deconvolution.gaussian_psf(psf_fwhm_px) if psf is None else psf


def _wiener(
    image: npt.ArrayLike,
    psf: npt.ArrayLike | None = None,
    psf_fwhm_px: tuple[float, float] = (3.0, 3.0),
    nsr: float = 0.01,
) -> npt.NDArray[np.float32]:
    """Wiener deconvolution with the probe PSF (Gaussian of psf_fwhm_px unless psf is given)."""
    return deconvolution.wiener(image, _psf(psf, psf_fwhm_px), nsr)


def _richardson_lucy(
    image: npt.ArrayLike,
    psf: npt.ArrayLike | None = None,
    psf_fwhm_px: tuple[float, float] = (3.0, 3.0),
    n_iter: int = 20,
) -> npt.NDArray[np.float32]:
    """Richardson-Lucy deconvolution with the probe PSF (Gaussian of psf_fwhm_px by default)."""
    return deconvolution.richardson_lucy(image, _psf(psf, psf_fwhm_px), n_iter)


def _ulm(localizer: str) -> Method:
    def run(
        iq: npt.ArrayLike,
        spacing_m: tuple[float, float],
        wavelength_m: float,
        prf_hz: float,
        svd_low: int | None = None,
        **options: Any,
    ) -> ulm.UlmResult:
        frames = np.asarray(iq)
        if np.iscomplexobj(frames) and svd_low != 0:
            frames = clutter.svd_filter(frames, "fixed", low=svd_low)
        return ulm.ulm(frames, spacing_m, wavelength_m, prf_hz, method=localizer, **options)

    run.__doc__ = (
        f"Conventional ULM ({localizer.replace('_', ' ')} localisation, Hungarian tracking)"
        " -> density and velocity maps on a lambda/10 grid."
    )
    return run


METHODS: dict[str, dict[str, Method]] = {
    "bmode": {"classical": _bmode.bmode},
    "doppler": {
        "svd_fixed": _svd("fixed"),
        "svd_energy": _svd("energy"),
        "svd_ssm": _svd("ssm"),
        "svd_block": _svd("ssm", block=True),
    },
    "despeckle": {
        "srad": despeckle.srad,
        "nlm": despeckle.nlm,
        "median": despeckle.median,
        "bilateral": despeckle.bilateral,
    },
    "enhance": {
        "wiener": _wiener,
        "richardson_lucy": _richardson_lucy,
        "nllr": nllr.nllr,
    },
    "ulm": {name: _ulm(name) for name in ("weighted_centroid", "radial_symmetry", "gaussian_fit")},
}


def _zoo_method(name: str) -> Method:
    """A method that loads shipped model ``name`` on its first call (once, thread-safe);
    ``fn.load()`` loads it now and returns the model's own method (with its real signature)."""
    lock = threading.Lock()
    loaded: list[Method] = []

    def load() -> Method:
        with lock:
            if not loaded:
                from sonoedge import zoo

                loaded.append(zoo.load_model(name).as_method())
        return loaded[0]

    def run(data: npt.ArrayLike, *args: Any, **params: Any) -> Any:
        return load()(data, *args, **params)

    from sonoedge import zoo

    card = zoo.read_card(zoo.ZOO_DIR / f"{name}.onnx")
    arch = card.get("architecture")
    arch_name = arch.get("name", arch.get("kind", "")) if isinstance(arch, dict) else arch
    run.__doc__ = f"Shipped {card['task']} student {name} ({arch_name or 'network'}, onnxruntime)."
    guide = card.get("input", {}).get("params", {}).get("names")
    if guide:
        run.__doc__ += f" Physics-guided: needs {', '.join(guide)}."
    run.load = load  # type: ignore[attr-defined]
    return run


def _add_shipped_students() -> None:
    from sonoedge import zoo

    for op, names in zoo.shipped_methods().items():
        for name in names:
            METHODS[op].setdefault(name, _zoo_method(name))


_add_shipped_students()

NATIVE_SPACING_M: dict[tuple[str, str], tuple[float, float]] = {}
"""Pixel spacing ``(axial, lateral)`` a registered method expects; classical ones have none."""


def register(
    op: str, name: str, fn: Method, native_spacing_m: tuple[float, float] | None = None
) -> None:
    """Add (or replace) method ``name`` for ``op``, e.g. a trained student."""
    if op not in METHODS:
        raise ConfigError(f"op={op!r} is invalid: expected one of {OPS}")
    METHODS[op][name] = fn
    if native_spacing_m is not None:
        NATIVE_SPACING_M[(op, name)] = native_spacing_m


def get_method(op: str, name: str, load: bool = False, device: str = "cpu") -> Method:
    """The callable for ``op``/``name``, or a :class:`ConfigError` listing what exists.

    ``name`` may also be a signed model bundle (``.zip`` or directory) holding a student for
    ``op``. Shipped students load on their first call; ``load=True`` loads them now (a model that
    cannot load fails here, not on the first frame) and returns the model's method itself, run on
    ``device`` (``cpu``: onnxruntime; or a target such as ``openvino-cpu``, see
    :mod:`sonoedge.devices.targets`)."""
    if op not in METHODS:
        raise ConfigError(f"op={op!r} is invalid: expected one of {OPS}")
    from sonoedge import zoo
    from sonoedge.zoo.backend import is_bundle

    if name not in METHODS[op] and is_bundle(name):
        return _student(op, name, device)
    if name not in METHODS[op] and name in zoo.shipped_bundles():
        return _student(op, str(zoo.shipped_bundles()[name]), device)
    if name not in METHODS[op]:
        raise ConfigError(
            f"method={name!r} is not available for op {op!r}: expected one of "
            f"{sorted(METHODS[op])}, a shipped bundle ({', '.join(zoo.shipped_bundles())}) or "
            "a model bundle (.zip or directory)"
        )
    fn = METHODS[op][name]
    loader = getattr(fn, "load", None)
    if not (load and callable(loader)):
        return fn
    return loader() if device == "cpu" else _student(op, name, device)


def _student(op: str, name: str, device: str) -> Method:
    """A student (shipped name or bundle) loaded on ``device``, checked to serve ``op``."""
    from sonoedge import zoo

    model = zoo.load_model(name, device=device)
    task = str(model.card.get("task"))
    if zoo.TASK_OPS.get(task) != op:
        raise ConfigError(
            f"model {name} is a {task!r} student: it cannot run op {op!r}",
            hint=f"use it for op {zoo.TASK_OPS.get(task, '?')!r}",
        )
    fn: Method = model.as_method()
    return fn


def accepts(fn: Method, param: str) -> bool:
    """Whether method ``fn`` takes keyword ``param`` (e.g. ``prf_hz`` for a student)."""
    import inspect

    return param in inspect.signature(fn).parameters


def describe(fn: Method) -> str:
    """First line of a method's docstring."""
    return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
