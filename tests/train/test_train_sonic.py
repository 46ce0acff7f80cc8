"""SONIC tooling: quick training, exact resume, config validation, export parity, eval output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sonoedge.cli import app
from sonoedge.errors import ConfigError
from sonoedge.models.export import export_onnx
from sonoedge.models.sonic import SonicArch, build, load_state
from sonoedge.train import config as cfgmod
from sonoedge.train import get_task, sonic


def test_quick_run_writes_weights_card_and_onnx(quick_run: Path) -> None:
    names = {p.name for p in quick_run.iterdir()}
    assert {"teacher.pt", "student.pt", "config.json", "data_spec.json", "metrics.json"} <= names
    card = json.loads((quick_run / "sonic-8.json").read_text(encoding="utf-8"))
    assert card["task"] == "sonic" and card["input"]["n_frames"] == 8
    assert card["provenance"]["command"].startswith("sonoedge train sonic --quick")
    assert card["provenance"]["data_spec"]["split"] == "train"
    assert card["metrics"]["export_parity_max_abs"] < 1e-4
    state = torch.load(quick_run / "student.pt", weights_only=False)
    assert state["config"]["student"]["n_frames"] == 8 and state["data_spec"]["n_scenes"] == 3


def test_interrupted_run_resumes_to_the_same_weights(
    quick_run: Path, cache_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    args = ["train", "sonic", "--quick", "--out", str(out), "--cache", str(cache_dir)]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--no-progress", "--stop-after", "2"])
    assert first.exit_code == 3, first.output
    assert "resume" in first.output and (out / "teacher.ckpt").exists()
    assert not (out / "student.pt").exists()
    second = runner.invoke(app, [*args, "--no-progress"])
    assert second.exit_code == 0, second.output
    ref = torch.load(quick_run / "student.pt", weights_only=False)["state"]
    got = torch.load(out / "student.pt", weights_only=False)["state"]
    for key, value in ref.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6)


def test_training_reduces_the_loss(quick_run: Path) -> None:
    hist = torch.load(quick_run / "student.ckpt", weights_only=False)["history"]
    assert len(hist) == 6 and all(np.isfinite(h["loss"]) for h in hist)
    assert {"task", "ds", "kd"} <= set(hist[0])


def test_config_refuses_unknown_keys_types_and_ranges(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[student]\nn_framez = 16\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"student\.n_framez"):
        cfgmod.load("sonic", bad)
    bad.write_text('[student]\nn_frames = "16"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"student\.n_frames"):
        cfgmod.load("sonic", bad)
    bad.write_text("[data]\nprf_hz = [2000.0, 500.0]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.prf_hz"):
        sonic.check_config(cfgmod.load("sonic", bad))
    bad.write_text("[student]\nn_frames = 100\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="long_frames"):
        sonic.check_config(cfgmod.load("sonic", bad))
    with pytest.raises(ConfigError, match="unknown"):
        get_task("nope")
    cfg = sonic.check_config(cfgmod.load("sonic"))
    assert cfg["student"]["n_frames"] == 16 and cfg["data"]["long_frames"] >= 128


def test_cli_reports_bad_config_without_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text("[loss]\nkd_weigth = 1.0\n", encoding="utf-8")
    exe = Path(sys.executable).with_name("sonoedge")
    proc = subprocess.run(
        [str(exe), "train", "sonic", "-c", str(bad), "-o", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=60,
        encoding="utf-8",
    )
    assert proc.returncode == 2, proc.stderr
    assert "loss.kd_weigth" in proc.stderr and "Traceback" not in proc.stderr


def test_export_matches_torch_and_refuses_foreign_weights(quick_run: Path, tmp_path: Path) -> None:
    net, _ = sonic.load_weights(quick_run / "student.pt")
    rng = np.random.default_rng(1)
    sample = rng.standard_normal((1, 16, 36, 44)).astype(np.float32)
    assert export_onnx(net, tmp_path / "s.onnx", sample=sample) < 1e-4
    other = build(SonicArch(16, 4, 8))
    with pytest.raises(ConfigError, match="another architecture"):
        load_state(other, net.state_dict())
    with pytest.raises(ConfigError, match="trained for 8-frame"):
        sonic.load_weights(quick_run / "student.pt", expect_frames=16)
    torch.save({"something": 1}, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="not a sonoedge weights file"):
        sonic.load_weights(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="not a SONIC network"):
        build({"name": "despeckle-v1", "n_frames": 8})


def test_eval_writes_json_and_png(quick_run: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "sonic",
            "--model",
            str(quick_run / "sonic-8.onnx"),
            "--quick",
            "--name",
            "sonic_test",
            "--results-dir",
            str(out),
            "--cache",
            str(cache_dir),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "sonic_test.json").read_text(encoding="utf-8"))
    assert {"command", "commit", "date", "machine", "metrics", "baselines"} <= set(record)
    m = record["metrics"]
    assert 0 <= m["dice_student"] <= 1 and 0 <= m["dice_svd_long_best_policy"] <= 1
    assert m["dice_teacher_long"] is not None  # teacher.pt found beside the model
    assert m["dice_vs_length"]["lengths"] == [8, 16]  # long ensemble of the quick data: 32
    assert m["latency"]["32x32"]["student_ms"] > 0
    assert (out / "sonic_test.png").stat().st_size > 10_000
