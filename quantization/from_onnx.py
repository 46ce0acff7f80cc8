"""A sonoedge student's PyTorch network rebuilt from its exported ONNX model, so that the shipped
students (``sdk/zoo/*.onnx``, which ship without training checkpoints) can be pruned.

The card's ``architecture`` names the network and its sizes; the ONNX initializers carry its
weights under the deploy graph's own parameter names. Training-only layers that the export drops
(SONIC's deep-supervision heads) keep their initial values. The rebuilt network is accepted only
if it reproduces the ONNX model's output on a random input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonoedge.errors import ConfigError

TOLERANCE = 1e-4
"""Largest absolute difference allowed between the rebuilt network and the ONNX model."""


def _families() -> dict[str, tuple[Callable[[dict[str, Any]], nn.Module], type[nn.Module]]]:
    """Architecture-name prefix → (builder, deploy wrapper)."""
    from sonoedge.models import despeckle, enhance, sonic, ulm_localizer

    return {
        "sonic": (sonic.build, sonic.SonicDeploy),
        "enhance": (enhance.build, enhance.EnhanceDeploy),
        "despeckle": (despeckle.build, despeckle.DespeckleDeploy),
        "ulm-localizer": (ulm_localizer.build, ulm_localizer.LocalizerDeploy),
    }


def torch_from_onnx(model: Path, card: dict[str, Any]) -> nn.Module:
    """The deploy graph of the sonoedge student exported as ``model`` (card: ``card``)."""
    import onnx
    from onnx import numpy_helper

    arch = card.get("architecture")
    name = str(arch.get("name", "")) if isinstance(arch, dict) else ""
    family = next((f for f in _families().items() if name.startswith(f[0])), None)
    if family is None or not isinstance(arch, dict):
        raise ConfigError(
            f"{model} is not a sonoedge student (its card names no known architecture): "
            "pruning and quantization-aware fine-tuning need its PyTorch network",
            hint="pass the network's .pt (torch.save(model)), or drop --prune / --qat-steps",
        )
    build, deploy_cls = family[1]
    deploy = deploy_cls(build(arch))
    try:
        graph = onnx.load(str(model))
    except Exception as err:  # onnx raises several types for a bad file
        raise ConfigError(f"cannot read {model}: {err}") from None
    weights = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    state = deploy.state_dict()
    found = 0
    for key, value in state.items():
        if key in weights:
            if tuple(weights[key].shape) != tuple(value.shape):
                raise ConfigError(
                    f"{model}: weight {key} has shape {weights[key].shape}, architecture "
                    f"{name} expects {tuple(value.shape)}",
                    hint="the card and the ONNX model do not belong together",
                )
            state[key] = torch.from_numpy(weights[key].copy())
            found += 1
    if found == 0:
        raise ConfigError(f"{model} holds none of the weights of architecture {name}")
    deploy.load_state_dict(state)
    deploy.eval()
    _check_same_output(model, graph, deploy, card)
    return deploy


def _check_same_output(model: Path, graph: Any, deploy: nn.Module, card: dict[str, Any]) -> None:
    import onnxruntime as ort

    from sonoedge.devices.package import example_side

    dims = graph.graph.input[0].type.tensor_type.shape.dim
    channels = dims[1].dim_value or 1
    card_in = card.get("input", {})
    side = example_side(int(card_in.get("min_size", 0)), int(card_in.get("size_multiple", 1)))
    x = np.random.default_rng(0).random((1, channels, side, side), dtype=np.float32)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        got = deploy(torch.from_numpy(x)).numpy()
    diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    if diff > TOLERANCE:
        raise ConfigError(
            f"the network rebuilt from {model} differs from it (max |difference| {diff:.3g}, "
            f"shapes {got.shape} vs {want.shape})",
            hint="prune from the training weights (.pt) instead",
        )
