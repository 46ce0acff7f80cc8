"""Measured latency of compressed models on this CPU (ONNX Runtime and OpenVINO)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
) -> dict[str, float]:
    import openvino as ov

    # fp32 means fp32: CPUs with bf16 units otherwise run float layers in bf16
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(model), "CPU", config)
    request = compiled.create_infer_request()
    return measure(lambda f: request.infer(dict(f)), feeds, warmup, repeats)
