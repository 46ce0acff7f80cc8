"""Shipped students' PyTorch networks rebuilt from their ONNX models and cards (for pruning)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("torch_pruning")

from sonoedge import zoo
from sonoedge.errors import ConfigError
from sonoedge.quantization.compress import Options, compress, load_torch

STUDENTS = ("sonic-16", "sonic-8", "despeckle-mk", "enhance-student", "ulm-localizer")


@pytest.mark.parametrize("name", STUDENTS)
def test_shipped_student_rebuilds_from_its_onnx(name: str) -> None:
    import onnxruntime as ort

    path = zoo.resolve(name)
    net = load_torch(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    channels = spec.shape[1] if isinstance(spec.shape[1], int) else 1
    x = np.random.default_rng(1).random((2, channels, 128, 128), dtype=np.float32)
    (want,) = session.run(None, {spec.name: x})
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_card_that_does_not_fit_the_onnx_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "despeckle-mk.onnx"
    shutil.copy(zoo.resolve("despeckle-mk"), model)
    card = zoo.read_card(zoo.resolve("despeckle-mk"))
    card["architecture"]["width"] = 24
    model.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ConfigError, match="expects"):
        load_torch(model)
    del card["architecture"]
    model.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ConfigError, match="not a sonoedge student"):
        load_torch(model)


def test_a_shipped_student_can_be_pruned(tmp_path: Path) -> None:
    opts = Options(prune=0.5, data="despeckle", size=32, n_train=8, n_calib=4, n_val=4, kd_steps=3)
    report = compress(zoo.resolve("despeckle-mk"), tmp_path / "out", opts, command="pytest")
    assert report["pruned"]["macs"] < 0.35 * report["dense"]["macs"]
    assert (tmp_path / "out" / "despeckle-mk-fp32.onnx").is_file()
