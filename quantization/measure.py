"""Measured latency of compressed models on this CPU (ONNX Runtime and OpenVINO)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sonoedge.devices.latency import measure


def ort_latency(
    model: Path,
    feeds: dict[str, npt.NDArray[Any]],
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 30,
) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    return measure(lambda f: session.run(None, dict(f)), feeds, warmup, repeats)


def openvino_latency(
    model: Path,
    feeds: dict[str, npt.NDArray[Any]],
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 30,
    channels_last: bool = False,
) -> dict[str, float]:
    """Compiled for the static shapes of ``feeds``, as the runtime compiles a stream's frame
    shape (``sonoedge.devices.backends``; int8 kernels of a dynamic-shape compilation are
    slower: sonic-16 1.10 against 1.02 ms, 0.74 ms with NHWC input). ``channels_last``:
    multi-channel 4-D inputs are fed in NHWC memory to a compilation that takes them so, as the
    runtime does for the SONIC students."""
    import openvino as ov

    from sonoedge.devices.backends import nhwc_inputs

    # fp32 means fp32: CPUs with bf16 units otherwise run float layers in bf16
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    core = ov.Core()
    ir = core.read_model(str(model))
    ir.reshape({k: list(v.shape) for k, v in feeds.items()})
    if channels_last:
        nhwc = [k for k, v in feeds.items() if v.ndim == 4 and v.shape[1] > 1]
        ir = nhwc_inputs(ir, nhwc)
        feeds = {
            k: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) if k in nhwc else v
            for k, v in feeds.items()
        }
    request = core.compile_model(ir, "CPU", config).create_infer_request()
    return measure(lambda f: request.infer(dict(f)), feeds, warmup, repeats)
