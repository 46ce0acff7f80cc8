"""``sonoedge compress`` end to end, then package + verify + run the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("torch_pruning")
pytest.importorskip("onnx")

from sonoedge.cli import app
from sonoedge.quantization.compress import Options, compress


def test_prune_int8_report_and_bundle(tiny_unet: torch.nn.Module, tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    model = tmp_path / "student.pt"
    torch.save(tiny_unet, model)
    opts = Options(
        prune=0.5,
        int8=True,
        size=32,
        n_train=32,
        n_calib=8,
        n_val=8,
        kd_steps=30,
        latency_repeats=3,
    )
    report = compress(model, tmp_path / "out", opts, command="pytest")
    assert report["pruned"]["macs"] < 0.35 * report["dense"]["macs"]
    assert report["pruned"]["importance"] == "taylor"  # "auto" with targets
    variants = report["variants"]
    assert set(variants) == {"fp32", "int8_onnxruntime", "int8_openvino"}
    assert all(v["size_bytes"] < 5e6 for v in variants.values())
    layers = report["int8_layers"]["layers"]
    assert len(layers) == 6 and all("own_sqnr_db" in r for r in layers)
    card = json.loads((tmp_path / "out" / "student-int8.json").read_text(encoding="utf-8"))
    assert card["precision"] == "int8" and card["pruning_ratio"] == 0.5
    assert card["input"]["example_shape"] == [1, 1, 32, 32]

    from sonoedge.devices import load_bundle, signing
    from sonoedge.devices.package import package

    priv, pub = signing.generate_keypair(tmp_path / "keys", "t")
    bundle = package(
        tmp_path / "out" / "student-int8-ov.xml", "openvino-cpu", tmp_path / "b.zip", priv
    )
    with load_bundle(bundle, "openvino-cpu", keys=[pub]) as runner:
        assert runner.manifest["precision"] == "int8"
        assert runner.run(np.zeros((1, 1, 32, 32), np.float32))["output"].shape == (1, 1, 32, 32)


def test_cli_onnx_int8_only_and_errors(tiny_unet: torch.nn.Module, tmp_path: Path) -> None:
    from sonoedge.quantization.export import export_onnx

    onnx_path = tmp_path / "s.onnx"
    export_onnx(tiny_unet, torch.rand(1, 1, 64, 64), onnx_path)
    runner = CliRunner()
    res = runner.invoke(
        app, ["compress", str(onnx_path), "--prune", "0.5", "-o", str(tmp_path / "o")]
    )
    assert res.exit_code != 0 and "need its PyTorch network" in str(res.exception)
    (tmp_path / "not.pt").write_bytes(b"junk")
    res = runner.invoke(app, ["compress", str(tmp_path / "not.pt"), "-o", str(tmp_path / "o")])
    assert res.exit_code != 0 and "cannot load" in str(res.exception)
    np.savez(tmp_path / "no-targets.npz", inputs=np.random.default_rng(0).random((6, 1, 32, 32)))
    args = ["compress", str(onnx_path), "--int8", "--max-drop", "0.3", "-o", str(tmp_path / "o")]
    res = runner.invoke(app, [*args, "--data", str(tmp_path / "no-targets.npz")])
    assert res.exit_code != 0 and "has no targets" in str(res.exception)
    res = runner.invoke(app, [*args[:3], "--qat-steps", "10", "-o", str(tmp_path / "o")])
    assert res.exit_code != 0 and "--qat-steps needs --int8 and --max-drop" in str(res.exception)
    res = runner.invoke(app, [*args, "--qat-steps", "10"])
    assert res.exit_code != 0 and "need its PyTorch network" in str(res.exception)
    res = runner.invoke(app, [*args, "--size", "32", "--crop", "48"])
    assert res.exit_code != 0 and "--crop 48 is invalid: expected 1..32" in str(res.exception)
    res = runner.invoke(app, [*args, "--importance", "l1"])
    assert res.exit_code != 0 and "--importance 'l1' is invalid" in str(res.exception)


def test_auto_importance_is_taylor_with_targets_and_l2_without() -> None:
    from sonoedge.errors import ConfigError
    from sonoedge.quantization.compress import prune_importance
    from sonoedge.quantization.data import DataSet

    x = [np.zeros((1, 1, 8, 8), np.float32)]
    assert prune_importance("auto", DataSet(x, x)) == "taylor"
    assert prune_importance("auto", DataSet(x, None)) == "l2"
    assert prune_importance("l2", DataSet(x, x)) == "l2"
    with pytest.raises(ConfigError, match="needs targets"):
        prune_importance("taylor", DataSet(x, None))
    with pytest.raises(ConfigError, match="is invalid"):
        prune_importance("l1", DataSet(x, x))


def test_round_to_lets_eight_channel_layers_be_halved(tmp_path: Path) -> None:
    torch.manual_seed(0)
    narrow = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)
    )
    model = tmp_path / "narrow.pt"
    torch.save(narrow, model)
    args = ["compress", str(model), "--prune", "0.5", "--kd-steps", "5", "-o"]
    res = CliRunner().invoke(app, [*args, str(tmp_path / "r8")])
    assert res.exit_code != 0 and "removed none" in str(res.exception)
    assert "--round-to" in str(getattr(res.exception, "hint", ""))
    res = CliRunner().invoke(app, [*args, str(tmp_path / "r4"), "--round-to", "4"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r4" / "report.json").read_text(encoding="utf-8"))
    assert report["pruned"]["params"] < 0.6 * report["dense"]["params"]


def test_an_int8_model_with_every_layer_back_in_float_is_not_labelled_int8(
    tiny_unet: torch.nn.Module, tmp_path: Path
) -> None:
    model = tmp_path / "s.pt"
    torch.save(tiny_unet, model)
    opts = Options(
        int8=True,
        openvino=False,
        max_drop=-100.0,  # unreachable: the gate returns every layer to float
        size=32,
        n_train=8,
        n_calib=8,
        n_val=8,
        latency_repeats=0,
    )
    report = compress(model, tmp_path / "o", opts)
    assert all(r["in_float"] for r in report["int8_layers"]["layers"])
    assert set(report["variants"]) == {"fp32"}
    assert "every layer went back to float" in report["int8_onnxruntime_skipped"]
    assert not (tmp_path / "o" / "s-int8.onnx").exists()


def test_pruning_fine_tunes_with_the_tasks_recipe(
    tiny_unet: torch.nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--data degraded`` (the enhancement student) learns the unpruned network alone, 16
    windows per step; other data keep half of the MSE on the targets, 8 per step."""
    from sonoedge.quantization import compress as compress_mod

    seen: list[dict] = []
    real = compress_mod.distill

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(compress_mod, "distill", spy)
    model = tmp_path / "s.pt"
    torch.save(tiny_unet, model)
    for data, out in (("degraded", "d"), ("speckle", "s")):
        opts = Options(
            prune=0.5, int8=False, data=data, size=32, n_train=4, n_calib=2, n_val=2, kd_steps=2
        )
        compress(model, tmp_path / out, opts)
    assert [(k["kd_weight"], k["batch"]) for k in seen] == [(1.0, 16), (0.5, 8)]
