"""Inference backends: ONNX Runtime with a provider chain, and the OpenVINO runtime.

Order on every target: TensorRT EP → CUDA EP → OpenVINO → CPU EP (each target profile lists the
subset it uses). Each backend that is skipped is logged with the reason, and so is each provider
that ONNX Runtime itself drops while creating the session. TensorRT runs only models whose
engines were built ahead of time for this GPU + TensorRT + ONNX Runtime (``--warmup``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sonoedge.devices import capabilities, trt_cache
from sonoedge.devices.errors import BundleError
from sonoedge.devices.profiles import TargetProfile

log = logging.getLogger(__name__)

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino-ep": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
Arrays = dict[str, npt.NDArray[Any]]
Shapes = Mapping[str, Sequence[int]]
_ShapeKey = tuple[tuple[str, tuple[int, ...], bool], ...]
"""Per input: name, shape, and whether its memory is channels-last."""
STATIC_SHAPES = 4
"""Input shapes an OpenVINO backend keeps a static-shape compilation for (most recent first)."""


def is_channels_last(arr: npt.NDArray[Any]) -> bool:
    """Whether a logically NCHW array (C > 1) lies in memory as a C-contiguous NHWC block, like
    ``x_nhwc.transpose(0, 3, 1, 2)``: such inputs reach OpenVINO without any copy or reorder."""
    return (
        arr.ndim == 4
        and arr.shape[1] > 1
        and not arr.flags.c_contiguous
        and arr.transpose(0, 2, 3, 1).flags.c_contiguous
    )


def channels_last_names(feeds: Mapping[str, npt.NDArray[Any]]) -> frozenset[str]:
    """The inputs of ``feeds`` whose memory is channels-last (see :func:`is_channels_last`)."""
    return frozenset(k for k, v in feeds.items() if is_channels_last(np.asarray(v)))


class Backend(Protocol):
    """A compiled model on one device."""

    name: str

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> Arrays: ...

    def prepare(self, shapes: Shapes, channels_last: frozenset[str] = frozenset()) -> None:
        """Get ready for inputs of these shapes (and memory layouts) now rather than on first
        use."""
        ...

    def close(self) -> None: ...


def tensorrt_options(
    profile: TargetProfile,
    precision: str,
    cache_dir: Path,
    shapes: Mapping[str, list[int]] | None = None,
    device_id: int = 0,
) -> dict[str, Any]:
    """TensorRT EP options (names as documented by ONNX Runtime): fp16 per profile, int8 for QDQ
    (int8) models, engine and timing caches in ``cache_dir``, and an optimisation profile fixed
    at the bundle's example input shapes (the shapes ``--warmup`` builds the engine for)."""
    options: dict[str, Any] = {
        "device_id": device_id,
        "trt_fp16_enable": profile.trt_fp16,
        "trt_int8_enable": precision == "int8",
        "trt_max_workspace_size": profile.trt_workspace_bytes,
        "trt_builder_optimization_level": profile.trt_builder_optimization_level,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
    }
    if shapes:
        spec = ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in shapes.items())
        for key in ("trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes"):
            options[key] = spec
    return options


def provider_chain(
    profile: TargetProfile,
    precision: str,
    model_sha256: str,
    available: list[str],
    cache_dir: Path,
    build_engines: bool = False,
    threads: int | None = None,
    shapes: Mapping[str, list[int]] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The ONNX Runtime providers to try, with their options; logs every backend skipped."""
    chain: list[tuple[str, dict[str, Any]]] = []
    for backend in profile.backends:
        if backend == "openvino":
            continue
        provider = PROVIDERS[backend]
        if provider not in available:
            log.warning(
                "%s: %s is not in this onnxruntime build; falling back to the next backend",
                profile.name,
                provider,
            )
            continue
        if backend == "tensorrt":
            if not (build_engines or trt_cache.is_built(cache_dir, model_sha256)):
                log.warning(
                    "%s: no TensorRT engine built for this model in %s; falling back to the next "
                    "backend (build it ahead of time with `sonoedge package ... --warmup`)",
                    profile.name,
                    cache_dir,
                )
                continue
            chain.append((provider, tensorrt_options(profile, precision, cache_dir, shapes)))
        elif backend == "cuda":
            chain.append((provider, {"device_id": 0, "cudnn_conv_algo_search": "HEURISTIC"}))
        elif backend == "openvino-ep":
            options: dict[str, Any] = {
                "device_type": "CPU",
                "cache_dir": str(trt_cache.cache_root() / "openvino"),
            }
            if threads:
                options["num_of_threads"] = threads
            chain.append((provider, options))
        else:
            chain.append((provider, {}))
    return chain


class OrtBackend:
    """An ONNX Runtime session on the first providers of a chain that load."""

    def __init__(
        self, model: Path, chain: list[tuple[str, dict[str, Any]]], threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        names = [p for p, _ in chain]
        try:
            self.session = ort.InferenceSession(
                str(model), options, providers=names, provider_options=[o for _, o in chain]
            )
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise BundleError(f"onnxruntime cannot load {model.name}: {err}") from None
        active = self.session.get_providers()
        for name in names:
            if name not in active:
                log.warning(
                    "onnxruntime dropped %s while loading %s; using %s", name, model, active
                )
        self.name = {v: k for k, v in PROVIDERS.items()}.get(active[0], active[0])
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> Arrays:
        outputs = self.session.run(self.output_names, dict(feeds))  # it copies strided arrays
        return {n: np.asarray(v) for n, v in zip(self.output_names, outputs, strict=True)}

    def prepare(self, shapes: Shapes, channels_last: frozenset[str] = frozenset()) -> None:
        """Nothing to do: ONNX Runtime sessions serve every shape (TensorRT engines are built
        by ``--warmup``)."""

    def close(self) -> None:
        """Nothing to release beyond the session itself."""


class OpenVinoBackend:
    """A model compiled by the OpenVINO runtime with a performance hint and a model cache.

    A model with dynamic input dimensions runs at once on its dynamic-shape compilation, while a
    background thread compiles it for each new input shape; from the frame after that is ready,
    the static-shape compilation runs (the last :data:`STATIC_SHAPES` shapes are kept). Static
    shapes ran the int8 students 15–30 % faster, and compiling in the background keeps the
    ~25 ms compile out of a stream's first frames. :meth:`prepare` compiles a shape right away
    (benchmarks, ``--warmup``).

    Inputs whose memory is channels-last (:func:`is_channels_last`) get their own static
    compilation that takes NHWC tensors, so OpenVINO skips its NCHW→NHWC reorder (13 % of the
    SONIC int8 student's time); until that is ready they are copied to NCHW."""

    def __init__(
        self,
        model: Path,
        device: str,
        hint: str = "latency",
        cache_dir: Path | None = None,
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        import openvino as ov

        if hint not in HINTS:
            raise BundleError(f"hint={hint!r} is invalid: expected one of {', '.join(HINTS)}")
        core = ov.Core()
        if cache_dir is not None:
            core.set_property({"CACHE_DIR": str(cache_dir)})
        # CPUs with bf16 units (AVX512-BF16, AMX) otherwise run float layers in bf16 by default,
        # which costs ~1e-2 relative error: fp32 and int8 bundles keep their float layers in f32.
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": HINTS[hint],
            "INFERENCE_PRECISION_HINT": "f16" if precision == "fp16" else "f32",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(str(model), device, config)
        self.request = self.compiled.create_infer_request()
        self.name = f"openvino-{device.lower()}"
        self.output_names = [o.get_any_name() for o in self.compiled.outputs]
        self._core, self._device, self._config = core, device, config
        dynamic = any(i.get_partial_shape().is_dynamic for i in self.compiled.inputs)
        self._model = core.read_model(str(model)) if dynamic else None
        self._static: OrderedDict[_ShapeKey, Any] = OrderedDict()
        self._unusable: set[_ShapeKey] = set()
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None

    def run(self, feeds: Mapping[str, npt.NDArray[Any]]) -> Arrays:
        channels_last = channels_last_names(feeds)
        request, nhwc = self._request_for(feeds, channels_last)
        # share_inputs: OpenVINO reads contiguous arrays in place instead of copying them (~25 us
        # for a 2 MB SONIC input) and copies strided ones; outputs are copied, since the next
        # call reuses them.
        result = request.infer(
            {
                k: v.transpose(0, 2, 3, 1) if nhwc and k in channels_last else v
                for k, v in feeds.items()
            },
            share_inputs=True,
        )
        outputs = request.model_outputs
        return {n: np.asarray(result[o]) for n, o in zip(self.output_names, outputs, strict=True)}

    def prepare(self, shapes: Shapes, channels_last: frozenset[str] = frozenset()) -> None:
        """Compile for exactly these input shapes (and memory layouts) now; waits for a
        background compile."""
        if self._model is None:
            return
        self.wait()
        key = _shape_key(shapes, channels_last)
        if key not in self._static and key not in self._unusable:
            self._build(key)

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the background compilation in progress, if any."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout_s)

    def close(self) -> None:
        """Let a background compilation finish (never leave OpenVINO compiling at exit)."""
        self.wait()

    def _request_for(
        self, feeds: Mapping[str, npt.NDArray[Any]], channels_last: frozenset[str]
    ) -> tuple[Any, bool]:
        """The static-shape request for the shapes and layouts of ``feeds`` if compiled (and
        whether it takes the channels-last inputs as NHWC); else the dynamic one, and a
        background compile for those shapes when none is running."""
        if self._model is None:
            return self.request, False
        key = _shape_key({k: np.shape(v) for k, v in feeds.items()}, channels_last)
        with self._lock:
            request = self._static.get(key)
            if request is not None:
                self._static.move_to_end(key)
                return request, True
            if self._builder is None and key not in self._unusable:
                # not a daemon: the interpreter joins it before exiting. OpenVINO aborted the
                # process ("terminate called without an active exception", exit 134) when one
                # exited with a compile in flight, e.g. after one image through a bundle.
                self._builder = threading.Thread(
                    target=self._build, args=(key,), name="openvino-compile", daemon=False
                )
                self._builder.start()
        return self.request, False

    def _build(self, key: _ShapeKey) -> None:
        assert self._model is not None
        request = None
        try:
            model = self._model.clone()
            model.reshape({name: list(shape) for name, shape, _ in key})
            nhwc = [name for name, _, channels_last in key if channels_last]
            if nhwc:
                model = nhwc_inputs(model, nhwc)
            request = self._core.compile_model(
                model, self._device, self._config
            ).create_infer_request()
        except RuntimeError as err:  # a model OpenVINO cannot reshape: keep the dynamic one
            log.warning("OpenVINO cannot compile for input shapes %s: %s", key, err)
        with self._lock:
            if request is None:
                self._unusable.add(key)
            else:
                self._static[key] = request
                while len(self._static) > STATIC_SHAPES:
                    self._static.popitem(last=False)
            if self._builder is threading.current_thread():
                self._builder = None


def _shape_key(shapes: Shapes, channels_last: frozenset[str] = frozenset()) -> _ShapeKey:
    return tuple(
        sorted(
            (name, tuple(int(d) for d in shape), name in channels_last)
            for name, shape in shapes.items()
        )
    )


def nhwc_inputs(model: Any, names: Sequence[str]) -> Any:
    """``model`` taking the named (NCHW) inputs as NHWC tensors."""
    from openvino import Layout
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    for name in names:
        ppp.input(name).tensor().set_layout(Layout("NHWC"))
        ppp.input(name).model().set_layout(Layout("NCHW"))
    return ppp.build()


def open_backend(
    profile: TargetProfile,
    onnx: Path | None,
    ir: Path | None,
    precision: str,
    model_sha256: str,
    hint: str = "latency",
    threads: int | None = None,
    build_engines: bool = False,
    shapes: Mapping[str, list[int]] | None = None,
) -> Backend:
    """The first backend of ``profile`` that can run the model here."""
    cache = trt_cache.cache_root()
    if profile.backends[0] == "openvino":
        reason = _openvino_unusable(profile.openvino_device)
        if reason is None:
            try:
                return OpenVinoBackend(
                    ir or onnx or Path(),
                    profile.openvino_device,
                    hint,
                    cache / "openvino",
                    threads,
                    precision,
                )
            except (RuntimeError, BundleError) as err:
                reason = f"OpenVINO could not compile the model: {err}"
        log.warning("%s: %s; falling back to the next backend", profile.name, reason)
    if onnx is None:
        raise BundleError(
            f"the bundle has no ONNX model, and OpenVINO cannot run it here ({profile.name})",
            hint="package it for this target, or pip install 'sonoedge[openvino]'",
        )
    trt_dir = trt_cache.cache_dir(cache) if profile.uses_tensorrt else cache / "tensorrt"
    chain = provider_chain(
        profile,
        precision,
        model_sha256,
        capabilities.ort_providers(),
        trt_dir,
        build_engines=build_engines,
        threads=threads,
        shapes=shapes,
    )
    return OrtBackend(onnx, chain, threads)


def _openvino_unusable(device: str) -> str | None:
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed (pip install 'sonoedge[openvino]')"
    devices = capabilities.openvino_devices()
    if not any(d.split(".")[0] == device for d in devices):
        return f"OpenVINO has no {device} device here (found: {', '.join(devices) or 'none'})"
    return None
