"""MK despeckle task: quick training, exact resume, config checks, export parity, eval output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sonoedge.cli import app
from sonoedge.errors import ConfigError
from sonoedge.models.despeckle import DespeckleArch, build, load_state, macs_per_pixel
from sonoedge.train import config as cfgmod
from sonoedge.train import despeckle, get_task


@pytest.fixture(scope="session")
def despeckle_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("despeckle-cache")


@pytest.fixture(scope="session")
def despeckle_run(tmp_path_factory: pytest.TempPathFactory, despeckle_cache: Path) -> Path:
    """``sonoedge train despeckle --quick`` through the real CLI, uninterrupted."""
    out = tmp_path_factory.mktemp("runs") / "despeckle-quick"
    args = ["train", "despeckle", "--quick", "--out", str(out), "--cache", str(despeckle_cache)]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def test_quick_run_writes_all_networks_card_and_onnx(despeckle_run: Path) -> None:
    names = {p.name for p in despeckle_run.iterdir()}
    assert {"teacher.pt", "student.pt", "config.json", "data_spec.json", "metrics.json"} <= names
    assert {"student_no_metric.pt", "student_no_kd.pt", "dncnn.pt"} <= names
    card = json.loads((despeckle_run / "despeckle-mk.json").read_text(encoding="utf-8"))
    assert card["task"] == "despeckle" and card["opset"] >= 17
    assert card["input"]["min_size"] == DespeckleArch("student", 8, 1).receptive_field
    assert card["provenance"]["command"].startswith("sonoedge train despeckle --quick")
    assert card["metrics"]["export_parity_max_abs"] < 1e-4
    assert card["teacher"]["macs_per_pixel"] > card["macs_per_pixel"] > 0
    hist = torch.load(despeckle_run / "student.ckpt", weights_only=False)["history"]
    assert len(hist) == 6 and all(np.isfinite(h["loss"]) for h in hist)
    assert {"l1", "ssim", "psnr", "kd_out", "kd_feat"} <= set(hist[0])
    no_kd = torch.load(despeckle_run / "student_no_kd.ckpt", weights_only=False)["history"]
    assert "kd_out" not in no_kd[0] and "ssim" in no_kd[0]
    no_metric = torch.load(despeckle_run / "student_no_metric.ckpt", weights_only=False)
    assert "ssim" not in no_metric["history"][0] and "kd_out" in no_metric["history"][0]


def test_interrupted_run_resumes_to_the_same_weights(
    despeckle_run: Path, despeckle_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    cfg = tmp_path / "noablation.toml"
    cfg.write_text("[train]\nablations = false\n", encoding="utf-8")
    args = ["train", "despeckle", "--quick", "--out", str(out), "--cache", str(despeckle_cache)]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "-c", str(cfg), "--no-progress", "--stop-after", "3"])
    assert first.exit_code == 3, first.output
    assert "resume" in first.output and (out / "teacher.ckpt").exists()
    assert not (out / "teacher.pt").exists() and not (out / "student.pt").exists()
    second = runner.invoke(app, [*args, "-c", str(cfg), "--no-progress"])
    assert second.exit_code == 0, second.output
    assert not (out / "dncnn.pt").exists()
    ref = torch.load(despeckle_run / "student.pt", weights_only=False)["state"]
    got = torch.load(out / "student.pt", weights_only=False)["state"]
    for key, value in ref.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6)


def test_config_refuses_unknown_keys_types_and_ranges(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[loss]\nssim_weigth = 1.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"loss\.ssim_weigth"):
        cfgmod.load("despeckle", bad)
    bad.write_text('[student]\nwidth = "16"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"student\.width"):
        cfgmod.load("despeckle", bad)
    bad.write_text("[data]\nzoom = [1.5, 0.6]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.zoom"):
        despeckle.check_config(cfgmod.load("despeckle", bad))
    bad.write_text('[data]\nprobes = ["L11-5v", "nope"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="nope"):
        despeckle.check_config(cfgmod.load("despeckle", bad))
    bad.write_text("[student]\nwidth = 12\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="multiple of 8"):
        despeckle.check_config(cfgmod.load("despeckle", bad))
    assert get_task("despeckle") is despeckle
    cfg = despeckle.check_config(cfgmod.load("despeckle"))
    assert cfg["student"]["width"] % 8 == 0 and cfg["teacher"]["width"] % 8 == 0


def test_shipped_sizes_student_is_at_most_an_eighth_of_the_teacher() -> None:
    cfg = cfgmod.load("despeckle")
    teacher = macs_per_pixel(build(despeckle.arch(cfg, "teacher")))
    student = macs_per_pixel(build(despeckle.arch(cfg, "student")))
    dncnn = macs_per_pixel(build(despeckle.arch(cfg, "dncnn")))
    assert teacher >= 8 * student
    assert abs(dncnn / student - 1) < 0.15  # the DnCNN baseline is the student's size


def test_differentiable_ssim_matches_the_metric() -> None:
    from sonoedge.metrics import psnr, ssim

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (40, 36)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    ta, tb = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    assert float(despeckle.ssim_torch(tb, ta)[0]) == pytest.approx(ssim(a, b, 1.0), abs=1e-3)
    assert float(despeckle.psnr_torch(tb, ta)[0]) == pytest.approx(psnr(a, b, 1.0), abs=1e-3)


def test_export_matches_torch_and_refuses_foreign_weights(
    despeckle_run: Path, tmp_path: Path
) -> None:
    for name in ("student", "dncnn", "teacher"):
        net, _ = despeckle.load_weights(despeckle_run / f"{name}.pt")
        sample = np.random.default_rng(1).uniform(0, 1, (1, 1, 36, 44)).astype(np.float32)
        assert despeckle.export_onnx(net, tmp_path / f"{name}.onnx", sample=sample) < 1e-4
    net, _ = despeckle.load_weights(despeckle_run / "student.pt")
    with pytest.raises(ConfigError, match="another architecture"):
        load_state(build(DespeckleArch("student", 16, 2)), net.state_dict())
    with pytest.raises(ConfigError, match="expected 'teacher'"):
        despeckle.load_weights(despeckle_run / "student.pt", "teacher")
    torch.save({"something": 1}, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="not a sonoedge weights file"):
        despeckle.load_weights(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="not a despeckle network"):
        build({"name": "sonic-v1", "n_frames": 8})


def test_lesion_masks_and_edge_width() -> None:
    zz, xx = np.mgrid[0:96, 0:96]
    r = np.hypot(zz - 48, xx - 48)
    echo = np.where(r <= 15, -60.0, 0.0).astype(np.float32)
    target, bg, centre, radius = despeckle.lesion_masks(echo)
    assert target.sum() > 300 and bg.sum() > 1000 and not (target & bg).any()
    assert abs(radius - 15) < 1 and abs(centre[0] - 48) < 0.5
    sharp = (0.2 + 0.6 / (1 + np.exp(-(r - 15) / 0.5))).astype(np.float32)
    soft = (0.2 + 0.6 / (1 + np.exp(-(r - 15) / 2.0))).astype(np.float32)
    w_sharp = despeckle.edge_width_px(sharp, centre, radius)
    w_soft = despeckle.edge_width_px(soft, centre, radius)
    assert 0 < w_sharp < w_soft and w_soft == pytest.approx(2 * 2.0 * np.log(9), rel=0.15)


def test_eval_writes_json_and_png(
    despeckle_run: Path, despeckle_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "despeckle",
            "--model",
            str(despeckle_run / "despeckle-mk.onnx"),
            "--quick",
            "--name",
            "despeckle_test",
            "--results-dir",
            str(out),
            "--cache",
            str(despeckle_cache),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "despeckle_test.json").read_text(encoding="utf-8"))
    assert {"command", "commit", "date", "machine", "metrics", "baselines"} <= set(record)
    m = record["metrics"]
    syn = m["psnr_ssim_heldout"]
    assert {"input", "student", "teacher", "dncnn", "student_no_kd", "nlm", "srad"} <= set(syn)
    assert all(np.isfinite(v["psnr_db"]) and -1 <= v["ssim"] <= 1 for v in syn.values())
    assert {"cnr", "gcnr", "enl_intensity", "edge_width_px"} <= set(m["lesion_phantoms"]["student"])
    assert m["latency"]["student_ms"] > 0 and m["latency"]["nlm_ms"] > 0
    assert m["targets"]["onnx_le_5mb"]
    assert (out / "despeckle_test.png").stat().st_size > 5_000
