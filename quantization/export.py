"""ONNX export of a (pruned) network: opset 17, dynamic batch and spatial size, checked against
PyTorch with onnxruntime."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sonoedge.errors import ConfigError

OPSET = 17


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    input_name: str = "input",
    output_name: str = "output",
    atol: float = 1e-4,
) -> float:
    """Write ``path``; returns the largest |onnxruntime − PyTorch| on ``example``."""
    import onnxruntime as ort

    model.eval()
    axes = {0: "batch", 2: "height", 3: "width"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            opset_version=OPSET,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: axes, output_name: axes},
            dynamo=False,
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(example).numpy()
    (got,) = session.run(None, {input_name: example.numpy()})
    worst = float(np.max(np.abs(np.asarray(got) - ref)))
    if worst > atol:
        raise ConfigError(f"ONNX export of {path} differs from PyTorch by {worst:.2e} > {atol:g}")
    return worst
