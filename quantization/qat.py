"""Quantization-aware fine-tuning (QAT) for OpenVINO int8, with NNCF's PyTorch backend.

Post-training int8 can cost more than ``--max-drop`` even with the best activation ranges: the
4000-step despeckling student lost 0.65 dB all-int8 on the compression benchmark's frames.
Keeping its output convolution in float brings that within 0.5 dB but costs speed (2.40× instead
of ~3×). QAT keeps every layer in int8: NNCF inserts its FakeQuantize ops into the PyTorch
network (ranges from the same calibration setting as the post-training model), then the network
and the quantizer ranges are fine-tuned by distillation from the float network on the task's
loss, and the result is converted to an OpenVINO IR whose FakeQuantize ops OpenVINO runs as int8.

The task loss does most of the work (distilling only the float output left the despeckler at
0.52 dB), so the result is a retrained student: it can score above its float network on the
task's data and differ from it more elsewhere. The shipped bundles therefore stay post-training.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from torch import nn

from sonoedge.quantization.distill import DEFAULT_RECIPE, Recipe, distill

EXTENSION_LOAD_TIMEOUT_ENV = "NNCF_EXTENSION_LOAD_TIMEOUT"
EXTENSION_LOAD_TIMEOUT_S = 900
"""Seconds NNCF may take to build and load its PyTorch extension (NNCF's default is 60)."""

DEFAULT_STEPS = 2000
"""Fine-tuning steps of the compression benchmark. The despeckling student's all-int8 drop (24
frames of 256×256) went from 0.68 to 0.16 dB with 2000 steps at its training rate, 3e-3 (to
0.31 dB at 1e-3, 0.47 dB at 3e-4): 2.76× faster than fp32 on OpenVINO."""


@dataclass(frozen=True)
class QatPlan:
    """What quantization-aware fine-tuning trains: the float network (also the distillation
    teacher), its training inputs and targets (None: distillation only) and the recipe."""

    net: nn.Module
    inputs: Sequence[npt.NDArray[np.float32]]
    targets: Sequence[npt.NDArray[np.float32]] | None
    recipe: Recipe = DEFAULT_RECIPE
    steps: int = DEFAULT_STEPS
    seed: int = 0


def fine_tune_int8(
    plan: QatPlan,
    calibration: Sequence[npt.NDArray[np.float32]],
    advanced_parameters: Any,
    input_name: str,
    output_name: str,
    input_shape: Any,
) -> Any:
    """The OpenVINO model (``openvino.Model``, FakeQuantize ops in place) of ``plan.net``
    quantized by NNCF (mixed preset, CPU; ranges from ``calibration`` with
    ``advanced_parameters``) and fine-tuned ``plan.steps`` steps. Its input and output are named
    ``input_name`` and ``output_name`` and its input has the partial shape ``input_shape``
    (static channels, dynamic batch and sides), as in the float model's ONNX: a conversion
    from PyTorch would leave every dimension dynamic."""
    # NNCF builds its PyTorch C++ extension on first use and gives up after 60 s by default,
    # which a busy 2-core machine can exceed; a user's own setting wins
    os.environ.setdefault(EXTENSION_LOAD_TIMEOUT_ENV, str(EXTENSION_LOAD_TIMEOUT_S))
    import nncf
    import openvino as ov
    import torch

    examples = [torch.from_numpy(x) for x in calibration]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(
            copy.deepcopy(plan.net).eval(),
            nncf.Dataset(examples),
            preset=nncf.QuantizationPreset.MIXED,
            target_device=nncf.TargetDevice.CPU,
            subset_size=len(examples),
            advanced_parameters=advanced_parameters,
        )
        distill(
            quantized,
            plan.net,  # the teacher: NNCF quantized a copy
            plan.inputs,
            plan.targets,
            plan.steps,
            seed=plan.seed,
            **plan.recipe._asdict(),
        )
        model = ov.convert_model(quantized.eval(), example_input=examples[0])
    model.reshape(input_shape)
    model.inputs[0].get_tensor().set_names({input_name})
    model.outputs[0].get_tensor().set_names({output_name})
    return model
