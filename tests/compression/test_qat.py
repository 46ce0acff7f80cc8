"""Quantization-aware fine-tuning for OpenVINO int8 (NNCF's PyTorch backend), the step between
post-training int8 and keeping layers in float."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_student import TinyUNet

from sonoedge.quantization import data
from sonoedge.quantization.distill import Recipe, distill, mse_loss
from sonoedge.quantization.export import export_onnx


def test_a_missed_max_drop_is_answered_by_fine_tuning_with_every_layer_int8(
    tmp_path: Path,
) -> None:
    pytest.importorskip("nncf")
    import openvino as ov

    from sonoedge.quantization import nncf_int8
    from sonoedge.quantization.qat import QatPlan

    torch.manual_seed(0)
    net = TinyUNet().eval()
    train, rest = data.speckle(72, size=32, seed=6).split(48)
    distill(net, TinyUNet(), train.inputs, train.targets, 100, lr=3e-3, kd_weight=0.0)
    path = tmp_path / "student.onnx"
    export_onnx(net, torch.rand(1, 1, 32, 32), path, "image", "despeckled")
    feeds = [{"image": x} for x in rest.inputs]
    assert rest.targets is not None
    truth = rest.targets[12:]

    def score(outs: list[np.ndarray]) -> float:
        return data.mean_psnr_db(truth, outs)

    plain = nncf_int8.quantize_openvino(path, tmp_path / "plain.xml", feeds[:12], feeds[12:], score)
    assert plain.metric_fp32 is not None and plain.metric_int8 is not None
    max_drop = (plain.metric_fp32 - plain.metric_int8) / 2  # post-training int8 misses it
    assert max_drop > 0
    plan = QatPlan(net, train.inputs, train.targets, Recipe(mse_loss, 3e-3), steps=150)
    made = nncf_int8.quantize_openvino(
        path, tmp_path / "qat.xml", feeds[:12], feeds[12:], score, max_drop, plan
    )
    assert made.qat_steps == 150 and made.to_dict()["quantization_aware_steps"] == 150
    assert made.metric_fp32 is not None and made.metric_int8 is not None
    assert made.metric_fp32 - made.metric_int8 <= max_drop
    assert made.tried["quantization-aware"] == made.metric_int8 > plain.metric_int8
    assert not made.float_for_accuracy and not made.accuracy_control
    assert nncf_int8.quantized_ops(made.model) >= nncf_int8.quantized_ops(plain.model)
    ir = ov.Core().read_model(str(made.model))
    assert ir.inputs[0].get_any_name() == "image" and ir.outputs[0].get_any_name() == "despeckled"
    fp32_shape = ov.Core().read_model(str(path)).inputs[0].get_partial_shape()
    assert ir.inputs[0].get_partial_shape() == fp32_shape  # channels static, sides dynamic
    assert ir.inputs[0].get_partial_shape()[1].get_length() == 1
    saved = nncf_int8.openvino_metric(feeds[12:], score)(made.model)
    assert saved == pytest.approx(made.metric_int8, abs=1e-3)


def test_fine_tuning_refuses_networks_of_several_inputs(tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    from sonoedge.errors import ConfigError
    from sonoedge.quantization import nncf_int8
    from sonoedge.quantization.qat import QatPlan

    class TwoInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.conv(a) + b

    torch.manual_seed(0)
    net = TwoInputs().eval()
    path = tmp_path / "two.onnx"
    x = torch.rand(1, 1, 16, 16)
    torch.onnx.export(net, (x, x), str(path), input_names=["a", "b"], dynamo=False)
    rng = np.random.default_rng(0)
    feeds = [{k: rng.random((1, 1, 16, 16), dtype=np.float32) for k in "ab"} for _ in range(6)]
    plan = QatPlan(net, [f["a"] for f in feeds], None, steps=1)
    with pytest.raises(ConfigError, match="one-input networks"):
        nncf_int8.quantize_openvino(
            path, tmp_path / "q.xml", feeds[:3], feeds[3:], lambda outs: -1.0, -1.0, plan
        )
