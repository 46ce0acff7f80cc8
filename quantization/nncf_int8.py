"""int8 post-training quantization for OpenVINO with NNCF: plain, or accuracy-controlled on the
task metric (``nncf.quantize_with_accuracy_control``, absolute drop)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Feeds = dict[str, npt.NDArray[Any]]


def to_openvino_ir(onnx_model: Path, out_xml: Path) -> Path:
    """Convert an fp32 ONNX model to OpenVINO IR (weights kept fp32)."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_model)), str(out_xml), compress_to_fp16=False)
    return out_xml


def quantize_openvino(
    onnx_model: Path,
    out_xml: Path,
    calibration: Sequence[Feeds],
    validation: Sequence[Feeds] = (),
    score: Callable[[list[npt.NDArray[np.float32]]], float] | None = None,
    max_drop: float | None = None,
) -> Path:
    """Quantize with NNCF (performance preset: symmetric int8) and save IR at ``out_xml``.
    With ``max_drop`` and ``score``, layers are reverted to float until the metric drop on
    ``validation`` is at most ``max_drop``."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_model))
    calib = nncf.Dataset(list(calibration))
    common: dict[str, Any] = {
        "preset": nncf.QuantizationPreset.PERFORMANCE,
        "target_device": nncf.TargetDevice.CPU,
        "subset_size": len(calibration),
    }
    if max_drop is None or score is None:
        quantized = nncf.quantize(model, calib, **common)
    else:
        scorer = score

        def validate(compiled: Any, items: Any) -> float:
            return scorer([np.asarray(compiled(item)[0]) for item in items])

        quantized = nncf.quantize_with_accuracy_control(
            model,
            calib,
            nncf.Dataset(list(validation)),
            validate,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            **common,
        )
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return out_xml


def quantized_ops(xml: Path) -> int:
    """How many FakeQuantize operations an IR holds (0: every layer stayed in float)."""
    return op_counts(xml).get("FakeQuantize", 0)


def op_counts(xml: Path) -> dict[str, int]:
    """Operations of an IR by type (e.g. how many convolutions and FakeQuantize ops)."""
    import openvino as ov

    counts: dict[str, int] = {}
    for op in ov.Core().read_model(str(xml)).get_ops():
        counts[op.get_type_name()] = counts.get(op.get_type_name(), 0) + 1
    return counts


def openvino_metric(
    data_inputs: Sequence[Feeds],
    score: Callable[[list[npt.NDArray[np.float32]]], float],
) -> Callable[[Path], float]:
    """A metric over a validation set for an IR or ONNX model run by OpenVINO on the CPU."""
    import openvino as ov

    def run(model: Path) -> float:
        compiled = ov.Core().compile_model(str(model), "CPU")
        return score([np.asarray(compiled(feeds)[0]) for feeds in data_inputs])

    return run
