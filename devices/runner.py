"""Run a bundle: verify it, pick the backend for the device, check inputs, run.

Example::

    from sonoedge.devices import load_bundle
    runner = load_bundle("sonic-16-int8.zip", device="auto")
    outputs = runner.run({"iq": x})          # or runner.run(x) for a single-input model
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sonoedge.devices import backends, trt_cache, versions
from sonoedge.devices.backends import channels_last_names, is_channels_last
from sonoedge.devices.bundle import Bundle, open_bundle
from sonoedge.devices.profiles import profile
from sonoedge.devices.targets import available_targets, resolve_device
from sonoedge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class Runner:
    """A verified bundle compiled on a backend. ``run`` takes and returns numpy arrays by name."""

    def __init__(self, bundle: Bundle, backend: backends.Backend, target: str) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.backend = backend
        self.target = target
        self.inputs: list[dict[str, Any]] = bundle.manifest["inputs"]
        self.outputs: list[dict[str, Any]] = bundle.manifest["outputs"]

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def example_inputs(
        self, channels_last: bool = False, shape: Sequence[int] | None = None
    ) -> dict[str, npt.NDArray[Any]]:
        """Zeros at each input's :func:`example_shape`, or at ``shape`` (a one-input model's);
        ``channels_last``: multi-channel 4-D inputs in NHWC memory (shape still NCHW)."""
        if shape is not None and len(self.inputs) != 1:
            raise ConfigError(
                f"an input shape was given, but this model takes {len(self.inputs)} inputs",
                hint="leave the shape out: each input then gets its example shape",
            )
        inputs = {}
        for spec in self.inputs:
            dims = example_shape(spec) if shape is None else [int(d) for d in shape]
            if channels_last and len(dims) == 4 and dims[1] > 1:
                n, c, h, w = dims
                inputs[spec["name"]] = np.zeros((n, h, w, c), spec["dtype"]).transpose(0, 3, 1, 2)
            else:
                inputs[spec["name"]] = np.zeros(dims, spec["dtype"])
        return inputs

    def run(
        self, inputs: Mapping[str, npt.ArrayLike] | npt.ArrayLike
    ) -> dict[str, npt.NDArray[Any]]:
        """Outputs by name. Inputs are checked against the manifest (names, rank, fixed sizes,
        dtype; floats are cast to the declared float type)."""
        if not isinstance(inputs, Mapping):
            if len(self.inputs) != 1:
                names = ", ".join(s["name"] for s in self.inputs)
                raise DataError(
                    f"this model takes {len(self.inputs)} inputs: pass a dict ({names})"
                )
            inputs = {self.inputs[0]["name"]: inputs}
        feeds = {spec["name"]: _check(spec, inputs) for spec in self.inputs}
        extra = set(inputs) - set(feeds)
        if extra:
            raise DataError(f"unknown inputs {sorted(extra)}: expected {sorted(feeds)}")
        return self.backend.run(feeds)

    def prepare(self, inputs: Mapping[str, npt.ArrayLike] | None = None) -> None:
        """Compile for the shapes and memory layouts of ``inputs`` now, so that the first
        inferences at those shapes already run the fastest kernels (OpenVINO). Default: the
        example inputs, both contiguous and, for multi-channel 4-D inputs, channels-last."""
        if inputs is None:  # a layout compiled already is skipped by the backend
            layouts = [self.example_inputs(), self.example_inputs(channels_last=True)]
        else:
            layouts = [{k: np.asarray(v) for k, v in inputs.items()}]
        for arrays in layouts:
            shapes = {k: v.shape for k, v in arrays.items()}
            self.backend.prepare(shapes, channels_last_names(arrays))

    def close(self) -> None:
        self.backend.close()
        self.bundle.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def example_shape(spec: Mapping[str, Any]) -> list[int]:
    """The manifest's ``example_shape``; without one (bundles packaged before it was derived
    for image models), the declared shape with a dynamic batch or channel count set to 1 and
    dynamic image sides to :data:`EXAMPLE_SIDE`."""
    if "example_shape" in spec:
        return [int(d) for d in spec["example_shape"]]
    return [
        d if isinstance(d, int) else (1 if axis < 2 else EXAMPLE_SIDE)
        for axis, d in enumerate(spec["shape"])
    ]


EXAMPLE_SIDE = 64
"""Dynamic image sides of an example input without ``example_shape`` (a size every shipped
image model runs at: space-to-depth and downsampling need a multiple of 8)."""


def _check(spec: Mapping[str, Any], inputs: Mapping[str, npt.ArrayLike]) -> npt.NDArray[Any]:
    name = spec["name"]
    if name not in inputs:
        raise DataError(f"missing input {name!r}")
    arr = np.asarray(inputs[name])
    want = np.dtype(spec["dtype"])
    if arr.dtype != want:
        if arr.dtype.kind == "f" and want.kind == "f":
            arr = arr.astype(want)
        else:
            raise DataError(f"input {name!r} has dtype {arr.dtype}: expected {want}")
    shape = spec["shape"]
    if arr.ndim != len(shape) or any(
        isinstance(d, int) and d != n for d, n in zip(shape, arr.shape, strict=True)
    ):
        raise DataError(
            f"input {name!r} has shape {arr.shape}: expected {shape} (layout {spec['layout']})"
        )
    return arr if arr.flags.c_contiguous or is_channels_last(arr) else np.ascontiguousarray(arr)


def load_bundle(
    path: str | Path,
    device: str = "auto",
    *,
    keys: Iterable[Path | Ed25519PublicKey] = (),
    allow_unsigned: bool = False,
    hint: str = "latency",
    threads: int | None = None,
    warmup: bool = False,
) -> Runner:
    """Verify a bundle (signature, schema, sha256 of every file) and compile it for ``device``.

    ``device="auto"`` runs on the bundle's own target when this machine has it, else on the best
    available target; a named target that is not available falls back to ``cpu`` (logged).
    ``warmup=True`` builds TensorRT engines now (what ``sonoedge package --warmup`` does) and runs
    one inference at the example shapes; without it TensorRT is used only when its engines were
    built before. ``hint`` is ``"latency"`` or ``"throughput"`` (OpenVINO)."""
    bundle = open_bundle(path, keys=keys, allow_unsigned=allow_unsigned)
    try:
        manifest = bundle.manifest
        versions.check(manifest["min_runtime"], {"sonoedge", "onnxruntime"})
        if device == "auto":
            own = manifest["target"]
            target = own if own in available_targets() else resolve_device("auto")
        else:
            target = resolve_device(device)
        onnx = bundle.file("onnx")
        sha = manifest["files"][onnx.name]["sha256"] if onnx is not None else ""
        shapes = {s["name"]: example_shape(s) for s in manifest["inputs"]}
        backend = backends.open_backend(
            profile(target),
            onnx,
            bundle.file("openvino-xml"),
            manifest["precision"],
            sha,
            hint=hint,
            threads=threads,
            build_engines=warmup,
            shapes=shapes,
        )
        runner = Runner(bundle, backend, target)
        log.info("bundle %s runs on %s (%s)", manifest["name"], target, backend.name)
        if warmup:
            runner.prepare()
            runner.run(runner.example_inputs())
            if backend.name == "tensorrt":
                trt_cache.mark_built(trt_cache.cache_dir(), sha)
        return runner
    except BaseException:
        bundle.close()
        raise
