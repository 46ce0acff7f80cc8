"""ONNX Runtime static int8 quantization (QDQ, per-channel weights) with a per-layer error report.

QDQ models run on the CPU EP and on TensorRT (explicit quantization: the TensorRT EP takes
``trt_int8_enable`` and the Q/DQ scales, no calibration table). ``symmetric=True`` makes
activations int8 symmetric, as TensorRT wants; the CPU default is uint8 activations.
Layers whose activations break under int8 (SQNR below ``broken_sqnr_db``), and then the worst
remaining layers until the task metric drop is within ``max_drop``, stay in float.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

QUANTIZABLE = ("Conv", "ConvTranspose", "MatMul", "Gemm")
FLOAT_SCOPES = ("/deblur/",)
"""Exported module scopes that int8 never touches (ONNX Runtime QDQ and NNCF alike): the
enhancement student's inverse-filter stage, whose whole-image statistics go through Log and
Softmax to pick a filter (3 % of its MACs; quantized, it cost 0.7 dB)."""


def in_float_scopes(names: Sequence[str]) -> list[str]:
    """The node names in :data:`FLOAT_SCOPES`."""
    return [n for n in names if any(scope in n for scope in FLOAT_SCOPES)]


FUSED_ACTIVATIONS = ("Relu", "Clip")
Feeds = dict[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class LayerError:
    """Float-vs-int8 error of one layer's output (SQNR in dB; higher is better)."""

    node: str
    op_type: str
    output: str
    own_sqnr_db: float | None  # quantizing this tensor alone (before vs after its Q/DQ pair)
    cumulative_sqnr_db: float | None  # int8 model vs float model at this tensor
    in_float: bool = False


class _Reader:
    """An onnxruntime CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self._feeds = list(feeds)
        self._it: Iterator[Feeds] = iter(self._feeds)

    def get_next(self) -> Feeds | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)

    def __iter__(self) -> Iterator[Feeds]:
        return iter(self._feeds)


def preprocess(fp32: Path, out: Path) -> Path:
    """Shape inference and graph optimisation before quantization (``quant_pre_process``)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    return out


def quantize_qdq(
    fp32: Path,
    out: Path,
    calibration: Sequence[Feeds],
    exclude: Sequence[str] = (),
    symmetric: bool = False,
    per_channel: bool = True,
) -> Path:
    """Static QDQ quantization of an (already preprocessed) model; the layers in ``exclude``
    (and the activations fused into them) stay float."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantize_static(
        str(fp32),
        str(out),
        _Reader(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=_with_activations(fp32, [*exclude, *_scoped(fp32)]),
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
    )
    return out


def quantizable_nodes(model: Path) -> dict[str, tuple[str, str, str | None, str | None]]:
    """``{node name: (op type, quantized output, fused activation type, its node name)}`` for the
    layers int8 applies to. The output is the tensor the Q/DQ pair sits on: after a fused
    Relu/Clip when there is one (the QDQ model then drops the activation and clips through the
    zero point instead)."""
    import onnx

    graph = onnx.load(str(model)).graph
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found: dict[str, tuple[str, str, str | None, str | None]] = {}
    for n in graph.node:
        if n.op_type not in QUANTIZABLE:
            continue
        nxt = consumers.get(n.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type in FUSED_ACTIVATIONS:
            found[n.name] = (n.op_type, nxt[0].output[0], nxt[0].op_type, nxt[0].name)
        else:
            found[n.name] = (n.op_type, n.output[0], None, None)
    return found


def _scoped(model: Path) -> list[str]:
    import onnx

    return in_float_scopes([n.name for n in onnx.load(str(model)).graph.node])


def _with_activations(model: Path, exclude: Sequence[str]) -> list[str]:
    if not exclude:
        return []
    nodes = quantizable_nodes(model)
    fused = [nodes[n][3] for n in exclude if n in nodes and nodes[n][3] is not None]
    return [*exclude, *(f for f in fused if f is not None)]


def layer_report(
    fp32: Path, qdq: Path, feeds: Sequence[Feeds], excluded: Sequence[str] = ()
) -> list[LayerError]:
    """Per quantizable layer: SQNR of its own output quantization and of the whole int8 model
    so far (None where the layer's output carries no Q/DQ pair)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_signal_to_quantization_noice_ratio,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    with tempfile.TemporaryDirectory() as tmp:
        aug_f, aug_q = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        modify_model_output_intermediate_tensors(str(fp32), str(aug_f))
        modify_model_output_intermediate_tensors(str(qdq), str(aug_q))
        cpu = ["CPUExecutionProvider"]
        float_acts = collect_activations(str(aug_f), _Reader(feeds), execution_providers=cpu)
        qdq_acts = collect_activations(str(aug_q), _Reader(feeds), execution_providers=cpu)
    matching = create_activation_matching(qdq_acts, float_acts)
    sqnr = compute_signal_to_quantization_noice_ratio
    report = []
    for name, (op, output, activation, _) in quantizable_nodes(fp32).items():
        own = cumulative = None
        match = matching.get(output)
        if match is not None:
            pre = list(match["pre_qdq"])
            if activation == "Relu":  # the QDQ model clips through the zero point instead
                pre = [np.maximum(a, 0) for a in pre]
            own = round(float(sqnr(pre, match["post_qdq"])), 2)
            if match.get("float"):
                cumulative = round(float(sqnr(match["float"], match["post_qdq"])), 2)
        report.append(LayerError(name, op, output, own, cumulative, name in excluded))
    return report


@dataclass
class Int8Result:
    model: Path
    excluded: list[str]
    report: list[LayerError]
    metric_fp32: float
    metric_int8: float

    @property
    def drop(self) -> float:
        return self.metric_fp32 - self.metric_int8

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model),
            "metric_fp32": round(self.metric_fp32, 4),
            "metric_int8": round(self.metric_int8, 4),
            "drop": round(self.drop, 4),
            "layers_in_float": self.excluded,
            "layers": [asdict(r) for r in self.report],
        }


def quantize_gated(
    fp32: Path,
    out: Path,
    calibration: Sequence[Feeds],
    metric: Callable[[Path], float],
    max_drop: float | None = None,
    broken_sqnr_db: float = 12.0,
    symmetric: bool = False,
) -> Int8Result:
    """Quantize, keep broken layers in float, then move the worst layers (lowest own SQNR) back
    to float one at a time until ``metric(fp32) - metric(int8) <= max_drop``."""
    with tempfile.TemporaryDirectory() as tmp:
        prep = preprocess(fp32, Path(tmp) / "prep.onnx")
        base = metric(prep)
        probe = quantize_qdq(prep, Path(tmp) / "all.onnx", calibration, symmetric=symmetric)
        report = layer_report(prep, probe, calibration[: min(8, len(calibration))])
        excluded = [r.node for r in report if _own(r) < broken_sqnr_db]
        if excluded:
            log.warning("int8 breaks %s (SQNR < %s dB): kept in float", excluded, broken_sqnr_db)
        ranked = [r.node for r in sorted(report, key=_own) if r.node not in excluded]
        while True:
            quantize_qdq(prep, out, calibration, exclude=excluded, symmetric=symmetric)
            score = metric(out)
            if max_drop is None or base - score <= max_drop or not ranked:
                break
            excluded.append(ranked.pop(0))
            log.info(
                "int8 drop %.3f > %.3f: keeping %s in float", base - score, max_drop, excluded[-1]
            )
        final = layer_report(prep, out, calibration[: min(8, len(calibration))], excluded)
    return Int8Result(out, excluded, final, base, score)


def _own(r: LayerError) -> float:
    return float("inf") if r.own_sqnr_db is None else r.own_sqnr_db


def onnx_metric(
    data_inputs: Sequence[Feeds],
    score: Callable[[list[npt.NDArray[np.float32]]], float],
    threads: int | None = None,
) -> Callable[[Path], float]:
    """A metric over a validation set: run the model on every input, score the outputs."""
    import onnxruntime as ort

    def run(model: Path) -> float:
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        return score([np.asarray(session.run(None, feeds)[0]) for feeds in data_inputs])

    return run
