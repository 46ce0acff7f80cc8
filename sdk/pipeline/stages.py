"""Pipeline stages: the same interface whether a stage is a classical op or a trained student.

A stage takes the current image (IQ frame/ensemble or a real image) and returns the next one.
:class:`OpStage` runs any method of :mod:`sonoedge.processing.registry` (classical methods, and
students once they register themselves); :class:`FunctionStage` wraps user code.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError
from sonoedge.pipeline.result import Result
from sonoedge.types import SPEED_OF_SOUND_M_S, IQEnsemble, ProbeInfo


class Stage(ABC):
    """One step of a pipeline. Subclasses implement :meth:`process`; it runs on its own thread."""

    name: str = "stage"

    @abstractmethod
    def process(self, data: Any, result: Result, probe: ProbeInfo | None) -> Any:
        """Return this stage's output for ``data`` (the previous stage's output)."""

    def close(self) -> None:
        """Release resources (called once when the pipeline stops)."""


def _check_params(fn: Callable[..., Any], params: Mapping[str, Any], where: str) -> None:
    signature = inspect.signature(fn)
    accepted = [
        p.name
        for p in list(signature.parameters.values())[1:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = [k for k in params if k not in accepted]
    if unknown and not takes_any:
        raise ConfigError(
            f"{where}: unknown parameter(s) {', '.join(unknown)}",
            hint=f"this method takes: {', '.join(accepted) or 'no parameters'}",
        )


class OpStage(Stage):
    """A method from the processing registry, e.g. ``OpStage("despeckle", "srad")``, a shipped
    student (``OpStage("despeckle", "despeckle-mk", device="openvino-cpu")``) or a signed model
    bundle (``OpStage("doppler", "sonic-16-int8.zip", device="auto")``): one interface."""

    def __init__(
        self,
        op: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        device: str = "cpu",
    ) -> None:
        from sonoedge.processing import registry

        self.op = op
        self.method = method
        self.fn = registry.get_method(op, method, load=True, device=device)
        self.params = dict(params or {})
        # students need the acquisition's PRF and pixel spacing; each frame brings its own
        self.takes_meta = [k for k in ("prf_hz", "spacing_m") if registry.accepts(self.fn, k)]
        _check_params(self.fn, self.params, f"stage {op}/{method}")
        self.name = name or op

    def process(self, data: Any, result: Result, probe: ProbeInfo | None) -> Any:
        op = self.op
        if op == "bmode":
            if not np.iscomplexobj(data):
                return data  # the probe already sent B-mode
            return self.fn(data, **self.params)
        if op == "doppler":
            if not isinstance(result.sample, IQEnsemble):
                raise DataError(
                    f"stage {self.name} needs IQ ensembles, got {type(result.sample).__name__}",
                    hint="put the probe in doppler mode (preset 'doppler' does)",
                )
            meta = {k: getattr(result.sample, k) for k in self.takes_meta}
            return self.fn(data, **{**meta, **self.params})
        if op == "ulm":
            sample = result.sample
            if not isinstance(sample, IQEnsemble):
                raise DataError(f"stage {self.name} needs IQ ensembles")
            wavelength = SPEED_OF_SOUND_M_S / (probe.center_frequency_hz if probe else 7.5e6)
            params = self.params
            if hasattr(self.fn, "param_names"):  # a network: the probe tells bandwidth and pitch
                from sonoedge.zoo.ulm import probe_guide

                params = probe_guide(params, probe, wavelength)
            out = self.fn(data, sample.spacing_m, wavelength, sample.prf_hz, **params)
            result.outputs[f"{self.name}_result"] = out
            return np.asarray(out.density, dtype=np.float32)
        image = np.asarray(data)
        if np.iscomplexobj(image) or image.ndim != 2:
            raise DataError(
                f"stage {self.name} needs a real 2-D image, got {image.dtype} {image.shape}",
                hint="put a 'bmode' or 'doppler' stage before it",
            )
        return self.fn(image, **self.params)


class FunctionStage(Stage):
    """User code as a stage: ``fn(data) -> data`` (see examples/custom_stage.py)."""

    def __init__(self, fn: Callable[[Any], Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or str(getattr(fn, "__name__", "custom"))

    def process(self, data: Any, result: Result, probe: ProbeInfo | None) -> Any:
        return self.fn(data)


def display_image(result: Result, dynamic_range_db: float = 40.0) -> npt.NDArray[np.uint8] | None:
    """The result's current image as uint8 for a screen, a video or 3D Slicer."""
    image = result.image
    if image is None:
        return None
    arr = np.asarray(image)
    if np.iscomplexobj(arr):  # raw IQ: show its log envelope
        env = np.abs(arr if arr.ndim == 2 else arr[-1])
        arr = 20 * np.log10(env / (env.max() + 1e-12) + 1e-12)
    elif arr.ndim != 2:
        return None
    if arr.dtype == np.uint8:
        return arr
    if float(np.nanmax(arr)) <= 0.0 and float(np.nanmin(arr)) < 0:  # decibels relative to max
        scaled = (arr + dynamic_range_db) / dynamic_range_db
    else:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    return (np.clip(np.nan_to_num(scaled), 0, 1) * 255).astype(np.uint8)
