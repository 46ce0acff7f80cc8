"""A tiny ONNX model (built with onnx.helper, no torch) and throwaway signing keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonoedge.devices import signing


def write_tiny_onnx(path: Path, channels: int = 8) -> Path:
    """x [N, C, H, W] → relu(conv3x3(x)) + x, dynamic batch and size, opset 17."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((channels, channels, 3, 3)) * 0.1).astype(np.float32)
    b = np.zeros(channels, np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Add", ["r", "x"], ["y"]),
    ]
    dims = ["batch", channels, "height", "width"]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    card = {
        "name": "tiny",
        "task": "denoise",
        "input": {
            "layout": "NCHW",
            "normalisation": "none",
            "range": [-1.0, 1.0],
            "example_shape": [1, channels, 16, 16],
        },
        "output": {"layout": "NCHW", "range": None, "meaning": "test output"},
        "provenance": {"command": "pytest", "commit": "test", "seed": 0, "data_spec": None},
        "metrics": {"vs_fp32": {"psnr_db_drop": 0.0}, "vs_baseline": {}},
    }
    path.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _isolated_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user key directory, signing key or caches from the machine leak into tests."""
    monkeypatch.setenv("SONOEDGE_KEYS_DIR", str(tmp_path / "trusted"))
    monkeypatch.setenv("SONOEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SONOEDGE_SIGNING_KEY", raising=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway key pair (never the project key)."""
    return signing.generate_keypair(tmp_path_factory.mktemp("keys"), "test")
