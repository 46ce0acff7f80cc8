"""Blind enhancement task: quick training, resume, config checks, export parity, the torch-free
runtime and its input contract, eval output."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from sonoedge.cli import app
from sonoedge.errors import ConfigError, DataError
from sonoedge.models.enhance import EnhanceArch, build, load_state, macs_per_pixel
from sonoedge.train import config as cfgmod
from sonoedge.train import enhance, get_task
from sonoedge.zoo import enhance as ze


@pytest.fixture(scope="session")
def enhance_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("enhance-cache")


@pytest.fixture(scope="session")
def enhance_run(tmp_path_factory: pytest.TempPathFactory, enhance_cache: Path) -> Path:
    """``sonoedge train enhance --quick`` through the real CLI, uninterrupted."""
    out = tmp_path_factory.mktemp("runs") / "enhance-quick"
    args = ["train", "enhance", "--quick", "--out", str(out), "--cache", str(enhance_cache)]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def quick_model(enhance_run: Path) -> ze.EnhanceModel:
    return ze.load(enhance_run / "enhance-student.onnx")


def _train_quick(config_toml: str, out: Path, cache: Path, name: str = "run.toml") -> Result:
    """``sonoedge train enhance --quick`` with ``config_toml`` (written beside ``out``) into
    ``out``, through the real CLI."""
    cfg = out.parent / name
    cfg.write_text(config_toml, encoding="utf-8")
    args = ["train", "enhance", "--quick", "--config", str(cfg), "--out", str(out)]
    return CliRunner().invoke(app, [*args, "--cache", str(cache), "--no-progress"])


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (h, w)).astype(np.float32)


def test_quick_run_writes_weights_card_and_onnx(enhance_run: Path) -> None:
    names = {p.name for p in enhance_run.iterdir()}
    assert {"teacher.pt", "student.pt", "config.json", "data_spec.json", "metrics.json"} <= names
    card = json.loads((enhance_run / "enhance-student.json").read_text(encoding="utf-8"))
    assert card["task"] == "enhance" and card["opset"] >= 17 and card["name"] == "enhance-student"
    assert card["input"]["min_size"] == EnhanceArch("student", 8, 1).receptive_field
    assert card["provenance"]["command"].startswith("sonoedge train enhance --quick")
    assert card["provenance"]["seed"] == 0 and card["provenance"]["data_spec"]["split"] == "train"
    assert card["metrics"]["export_parity_max_abs"] < 1e-4
    assert card["teacher"]["macs_per_pixel"] > card["macs_per_pixel"] > 0
    assert card["teacher"]["architecture"]["kind"] == "teacher"
    assert (
        (enhance_run / "enhance-student.md")
        .read_text(encoding="utf-8")
        .startswith("# enhance-student")
    )
    hist = torch.load(enhance_run / "student.ckpt", weights_only=False)["history"]
    assert len(hist) == 4 and all(np.isfinite(h["loss"]) for h in hist)
    assert {"l1", "ssim", "psnr", "kd_out", "kd_feat"} <= set(hist[0])
    t_hist = torch.load(enhance_run / "teacher.ckpt", weights_only=False)["history"]
    assert len(t_hist) == 3 and "kd_out" not in t_hist[0]


def test_interrupted_run_resumes_to_the_same_weights(
    enhance_run: Path, enhance_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    args = ["train", "enhance", "--quick", "--out", str(out), "--cache", str(enhance_cache)]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--no-progress", "--stop-after", "2"])
    assert first.exit_code == 3, first.output
    assert (out / "teacher.ckpt").exists() and not (out / "teacher.pt").exists()
    second = runner.invoke(app, [*args, "--no-progress"])
    assert second.exit_code == 0, second.output
    for name in ("teacher.pt", "student.pt"):
        ref = torch.load(enhance_run / name, weights_only=False)["state"]
        got = torch.load(out / name, weights_only=False)["state"]
        for key, value in ref.items():
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6)


def test_config_refuses_unknown_keys_types_and_ranges(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[degrade]\nfourier_prb = 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"degrade\.fourier_prb"):
        cfgmod.load("enhance", bad)
    bad.write_text("[degrade]\nseverity = [0.5, 1.5]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"degrade\.severity"):
        enhance.check_config(cfgmod.load("enhance", bad))
    bad.write_text("[teacher]\ncrop = 48\n", encoding="utf-8")  # not a multiple of 4 windows
    with pytest.raises(ConfigError, match=r"teacher\.crop"):
        enhance.check_config(cfgmod.load("enhance", bad))
    bad.write_text("[student]\nwidth = 12\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="multiple of 8"):
        enhance.check_config(cfgmod.load("enhance", bad))
    bad.write_text("[teacher]\nhead_dim = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="head_dim"):
        enhance.check_config(cfgmod.load("enhance", bad))
    bad.write_text("[data]\nzoom = [0.5]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.zoom.*expected 2 numbers"):
        cfgmod.load("enhance", bad)
    bad.write_text("[data]\nphantoms = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.phantoms"):
        cfgmod.load("enhance", bad)
    bad.write_text('[data]\nphantoms = ["points", 3]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data\.phantoms"):
        cfgmod.load("enhance", bad)
    bad.write_text("[eval]\nself_ensemble = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="self_ensemble=3"):
        enhance.check_config(cfgmod.load("enhance", bad))
    assert get_task("enhance") is enhance
    enhance.check_config(cfgmod.load("enhance"))
    mix = tmp_path / "mix.toml"  # a phantom mix of any length (weights by repetition)
    mix.write_text('[data]\nphantoms = ["points", "points", "cyst"]\n', encoding="utf-8")
    assert enhance.check_config(cfgmod.load("enhance", mix))["data"]["phantoms"][1] == "points"


def test_shipped_config_student_is_at_most_an_eighth_of_the_teacher() -> None:
    cfg = cfgmod.load("enhance")
    teacher = macs_per_pixel(build(enhance.arch(cfg, "teacher")))
    student = macs_per_pixel(build(enhance.arch(cfg, "student")))
    assert teacher >= 8 * student
    # the student has no attention or normalisation: only convs and ReLU
    kinds = {type(m).__name__ for m in build(enhance.arch(cfg, "student")).modules()}
    assert kinds <= {"EnhanceStudent", "Sequential", "Conv2d", "ConvTranspose2d", "ReLU"}


def test_shifted_window_attention_does_not_wrap_around() -> None:
    from sonoedge.models.enhance import WindowAttention

    torch.manual_seed(0)
    x = torch.rand(1, 8, 8, 4)
    y = x.clone()
    y[0, 0, 0] += 1.0
    with torch.no_grad():
        shifted = WindowAttention(4, 4, 4, shift=True).eval()
        with torch.no_grad():
            shifted.bias.normal_()
        d = (shifted(y) - shifted(x)).abs().sum(-1)[0]
        plain = WindowAttention(4, 4, 4, shift=False).eval()
        p = (plain(y) - plain(x)).abs().sum(-1)[0]
    # shifted by 2: (0, 0) and (7, 7) share a window only through the wrapped border: masked
    assert float(d[7, 7]) < 1e-6 and float(d[0, 1]) > 1e-4
    # unshifted: (0, 0) and (3, 3) share the top-left window, (4, 4) is in another one
    assert float(p[3, 3]) > 1e-4 and float(p[4, 4]) < 1e-6


def test_export_matches_torch_and_refuses_foreign_weights(
    enhance_run: Path, tmp_path: Path
) -> None:
    net, _ = enhance.load_weights(enhance_run / "student.pt", "student")
    sample = _img(36, 44)[None, None]
    assert enhance.export_onnx(net, tmp_path / "s.onnx", sample=sample) < 1e-4
    with pytest.raises(ConfigError, match="another architecture"):
        load_state(build(EnhanceArch("student", 16, 2)), net.state_dict())
    with pytest.raises(ConfigError, match="expected 'teacher'"):
        enhance.load_weights(enhance_run / "student.pt", "teacher")
    torch.save({"something": 1}, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="not a sonoedge weights file"):
        enhance.load_weights(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="not an enhance network"):
        build({"name": "despeckle-v1", "kind": "student"})


def test_runtime_matches_torch_and_pads_odd_sizes(
    enhance_run: Path, quick_model: ze.EnhanceModel
) -> None:
    net, _ = enhance.load_weights(enhance_run / "student.pt")
    img = _img(48, 40)
    np.testing.assert_allclose(quick_model.enhance(img), enhance.predict(net, img), atol=1e-4)
    odd = quick_model.enhance(_img(45, 37).astype(np.float64))
    np.testing.assert_allclose(odd, enhance.predict(net, _img(45, 37)), atol=1e-4)
    assert odd.shape == (45, 37) and odd.dtype == np.float32
    assert np.all(np.isfinite(odd)) and odd.min() >= 0 and odd.max() <= 1
    assert quick_model.enhance(_img(40, 40)[None]).shape == (40, 40)  # a 1-frame stack
    fn = quick_model.as_method()
    np.testing.assert_array_equal(fn(img), quick_model.enhance(img))
    teacher, _ = enhance.load_weights(enhance_run / "teacher.pt", "teacher")
    assert enhance.predict(teacher, _img(45, 37)).shape == (45, 37)  # padded to 16, cropped


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ((_img(40, 40) * 255).astype(np.uint8), "dtype uint8"),
        (_img(40, 40).astype(np.float16), "dtype float16"),
        (_img(40, 40) * 3.0, "expected a log-compressed image in \\[0, 1\\]"),
        (_img(40, 40) - 0.5, "expected a log-compressed image"),
        (np.where(_img(40, 40) > 0.5, np.nan, 0.2).astype(np.float32), "NaN/Inf"),
        (np.full((40, 40), np.inf, np.float32), "NaN/Inf"),
        (_img(12, 64), "receptive field"),
        (np.zeros((4, 40, 40), np.float32), "expected a 2-D"),
        (np.zeros((2, 3, 4, 5), np.float32), "expected a 2-D"),
    ],
)
def test_runtime_refuses_bad_input(
    quick_model: ze.EnhanceModel, image: np.ndarray, match: str
) -> None:
    with pytest.raises(DataError, match=match) as info:
        quick_model.enhance(image)
    assert info.value.hint or "receptive field" in str(info.value) or "NaN" in str(info.value)


def test_loader_refuses_other_tasks_and_missing_files(enhance_run: Path, tmp_path: Path) -> None:
    onnx = enhance_run / "enhance-student.onnx"
    other = tmp_path / "x.onnx"
    other.write_bytes(onnx.read_bytes())
    other.with_suffix(".json").write_text('{"task": "despeckle", "input": {}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="'despeckle' model"):
        ze.load(other)
    with pytest.raises(ConfigError, match="not found"):
        ze.load(tmp_path / "missing.onnx")
    from sonoedge import zoo

    assert isinstance(zoo.load_model(onnx), ze.EnhanceModel)


def test_eval_writes_json_and_png(enhance_run: Path, enhance_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["eval", "enhance", "--model", str(enhance_run / "enhance-student.onnx"), "--quick"]
    args += ["--name", "enhance_test", "--results-dir", str(out), "--cache", str(enhance_cache)]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "enhance_test.json").read_text(encoding="utf-8"))
    assert {"command", "commit", "date", "machine", "metrics", "baselines"} <= set(record)
    m = record["metrics"]
    assert set(m["psnr_ssim_per_severity"]) == {"light", "moderate", "heavy"}
    for row in m["psnr_ssim_per_condition"].values():
        assert {"input", "wiener_nlm", "rl_nlm", "teacher", "student"} <= set(row)
        assert {"wiener_nlm_blind", "rl_nlm_blind"} <= set(row)
        assert all(np.isfinite(v["psnr_db"]) and -1 <= v["ssim"] <= 1 for v in row.values())
        made_up = [v["false_bright"] for v in row.values() if "false_bright" in v]
        assert len(made_up) in (0, len(row)) and all(0 <= f <= 1 for f in made_up)
    assert m["point_targets"]["n_targets"] > 0
    assert {"fwhm_mean_px", "peak_gradient"} <= set(m["point_targets"]["degraded"]["student"])
    assert "edge_shift_px" in m["cyst_edges"]["student"]
    lat = m["latency"]
    assert 0 < lat["student"]["median_ms"] <= lat["student"]["p99_ms"]
    assert m["targets"]["onnx_le_5mb"] and isinstance(m["targets"]["heavy_ge_3db_over_input"], bool)
    assert isinstance(m["targets"]["ge_1db_over_blind_wiener_rl_nlm_every_severity"], bool)
    blind = m["blind_baselines_tuned_on_val"]["heavy/gaussian"]["wiener"]
    assert blind["sigma_px"] in enhance.BLIND_SIGMA_GRID[2:4]  # --quick searches two
    assert "student_vs_best_blind_baseline_db" in m["margins_per_severity"]["light"]
    ens = enhance.ENSEMBLE  # the self-ensemble (eval.self_ensemble = 8 by default) beside it
    assert all(ens in row for row in m["psnr_ssim_per_condition"].values())
    assert "ensemble_vs_best_blind_baseline_db" in m["margins_per_severity"]["heavy"]
    assert m["targets"]["ensemble"]["self_ensemble"] == 8 and lat[ens]["median_ms"] > 0
    full = m[
        "full_frames"
    ]  # full-size frames at the simulator's display range (--quick: 2 of 64 px)
    assert full["n_frames"] == 2 and full["size"] == 64
    assert set(full["psnr_db"]) == set(full["false_bright_fraction"]) == {"input", "student", ens}
    assert all(np.isfinite(v) for v in full["psnr_db"].values())
    assert (out / "enhance_test.png").stat().st_size > 5_000


def test_warm_start_deepens_a_student_without_changing_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    small = build(EnhanceArch("student", 8, 1))
    enhance.save_weights(tmp_path / "s.pt", small, {})
    big = build(EnhanceArch("student", 8, 3, full_depth=3, context=True))
    enhance.warm_start(big, tmp_path / "s.pt")
    x = torch.rand(2, 1, 36, 44)
    with torch.no_grad():
        torch.testing.assert_close(big.eval()(x), small.eval()(x), rtol=0, atol=1e-6)
    assert big.arch.receptive_field == small.arch.receptive_field + 16 + 4
    assert macs_per_pixel(big) > macs_per_pixel(small)
    with pytest.raises(ConfigError, match="expected width 16"):
        enhance.warm_start(build(EnhanceArch("student", 16, 3)), tmp_path / "s.pt")
    enhance.save_weights(tmp_path / "b.pt", big, {})
    with pytest.raises(ConfigError, match="depth <= 1"):
        enhance.warm_start(build(EnhanceArch("student", 8, 1)), tmp_path / "b.pt")
    with pytest.raises(ConfigError, match="context = true"):
        enhance.warm_start(build(EnhanceArch("student", 8, 3, full_depth=3)), tmp_path / "b.pt")
    with pytest.raises(ConfigError, match="full_depth"):
        EnhanceArch("teacher", 8, 1, 4, 4, full_depth=2)
    with pytest.raises(ConfigError, match="context"):
        EnhanceArch("teacher", 8, 1, 4, 4, context=True)
    assert EnhanceArch.from_dict(big.arch.to_dict()) == big.arch
    old = {k: v for k, v in small.arch.to_dict().items() if k not in ("full_depth", "context")}
    assert EnhanceArch.from_dict(old) == small.arch  # cards written before these fields


def test_right_angle_patches_are_exact_and_severity_power_skews_mild() -> None:
    img = _img(48, 48)
    for seed in range(8):
        p = enhance.rotated_patch(img, np.random.default_rng(seed), 32, True, right_angles=True)
        assert p.shape == (32, 32) and p.dtype == np.float32
        assert np.isin(p, img).all()  # no resampling: every value is one of the image's
    smooth = enhance.rotated_patch(img, np.random.default_rng(0), 32, True)
    assert not np.isin(smooth, img).all()
    data = enhance.FrameSet(
        img[None], img[None], img[None], img[None], ["L11-5v"], ["random"], {}, Path("x")
    )
    dcfg = {"rotate": True, "right_angles": True, "fourier_prob": 0.0, "severity": [0.0, 1.0]}
    noise = {}
    for power in (1.0, 3.0):
        rng = np.random.default_rng(0)
        x, y = enhance.training_batch(rng, data, 64, 32, {**dcfg, "severity_power": power})
        noise[power] = float((x - y).std())
    assert noise[3.0] < noise[1.0]
    # frames of bright-reflector phantoms can be kept to milder corruption; others are unaffected
    for phantom, capped in (("wires_broad", True), ("random", False)):
        frames = dataclasses.replace(data, phantoms=[phantom])
        err = {}
        for cap in (0.0, 1.0):
            rng = np.random.default_rng(0)
            x, y = enhance.training_batch(
                rng, frames, 64, 32, {**dcfg, "reflector_severity_max": cap}
            )
            err[cap] = float((x - y).abs().mean())
        assert (err[0.0] < 0.5 * err[1.0]) if capped else (err[0.0] == err[1.0])


def test_whole_frame_degradation_spreads_fourier_noise_over_the_frame() -> None:
    # a frame black except for a bright block in its top rows: a patch is cut below the block
    frame = np.zeros((96, 96), np.float32)
    frame[:16] = 0.9
    data = enhance.FrameSet(
        frame[None], frame[None], frame[None], frame[None], ["L11-5v"], ["random"], {}, Path("x")
    )
    dcfg = {"rotate": False, "fourier_prob": 1.0, "severity": [0.5, 0.5]}
    stack = np.stack([frame, 2 * frame])
    cut = enhance.rotated_patch(stack, np.random.default_rng(3), 32, True, True)
    assert np.array_equal(cut[1], 2 * cut[0])  # a stack is cut, rotated and flipped as one
    leaked = {}
    for whole in (False, True):
        rng = np.random.default_rng(0)
        x, y = enhance.training_batch(rng, data, 32, 32, {**dcfg, "whole_frame_prob": float(whole)})
        dark = (y == 0).flatten(1).all(1)  # patches of the black part only
        assert 4 <= int(dark.sum()) < 32
        leaked[whole] = float(x[dark].abs().mean())
    # patch by patch, a black patch stays black; degraded whole, the block's energy reaches it
    assert leaked[False] == 0.0 and leaked[True] > 0.005
    cfg = cfgmod.merge(cfgmod.load("enhance"), {"degrade": {"whole_frame_prob": 0.5}})
    with pytest.raises(ConfigError, match=r"degrade\.whole_frame_prob.*right_angles"):
        enhance.check_config(cfg)
    cfg["degrade"]["right_angles"] = True
    enhance.check_config(cfg)


def test_fine_tune_config_student_is_plain_and_at_most_an_eighth_of_the_teacher(
    enhance_cache: Path, tmp_path: Path
) -> None:
    path = cfgmod.CONFIG_DIR / "enhance-finetune.toml"
    cfg = enhance.check_config(cfgmod.load("enhance", path))
    teacher = macs_per_pixel(build(enhance.arch(cfg, "teacher")))
    net = build(enhance.arch(cfg, "student"))
    assert net.arch.context and teacher >= 8 * macs_per_pixel(net)
    kinds = {type(m).__name__ for m in net.modules()}
    allowed = {"EnhanceStudent", "GlobalContext", "ModuleList", "Sequential", "Conv2d", "ReLU"}
    assert kinds <= {*allowed, "ConvTranspose2d"}
    assert cfg["loss"]["kd_weight"] == cfg["loss"]["kd_feature_weight"] == 0.0
    # without distillation the teacher is not run; the log-MSE term is logged
    quick = cfgmod.load("enhance", quick=True)
    quick = cfgmod.merge(quick, {"loss": {"kd_weight": 0.0, "kd_feature_weight": 0.0}})
    quick = cfgmod.merge(quick, {"loss": {"log_mse_weight": 1.0}, "student": {"context": True}})
    spec = enhance.data_spec(quick, "train", quick["data"]["n_train"])
    data = enhance.build_set(spec, enhance_cache)

    class NoTeacher(torch.nn.Module):
        feature_channels = 8

        def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            raise AssertionError("the teacher ran although every KD weight is 0")

    enhance.train_student(quick, data, NoTeacher(), tmp_path / "s.ckpt", None, None)  # type: ignore[arg-type]
    hist = torch.load(tmp_path / "s.ckpt", weights_only=False)["history"]
    assert "log_mse" in hist[0] and "kd_out" not in hist[0]
    assert all(np.isfinite(h["loss"]) for h in hist)


def test_blind_baselines_find_the_psf_width(monkeypatch: pytest.MonkeyPatch) -> None:
    grids = {"wiener": (0.003, 0.03, 0.3), "richardson_lucy": (3, 10, 30)}
    monkeypatch.setattr(enhance, "BASELINE_GRID", grids)
    monkeypatch.setattr(enhance, "NLM_GRID", (0.0,))
    rng = np.random.default_rng(3)
    targets = np.full((2, 64, 64), 0.1, np.float32)
    for t in targets:  # point scatterers on a dim background: the blur width shows at once
        t[rng.integers(8, 56, 12), rng.integers(8, 56, 12)] = 1.0
    val = type("Val", (), {"spec": {"seed_base": 11}, "targets": targets, "__len__": lambda _: 2})()
    oracle = {
        f"{sev}/{noise}": {k: {"param": v[1], "nlm_h": 0.0} for k, v in grids.items()}
        for sev in enhance.SEVERITIES
        for noise in enhance.NOISES
    }
    degrade = enhance.degrade_patch
    for sigma in (0.5, 1.9):  # every frame blurred by exactly this σ
        monkeypatch.setattr(
            enhance,
            "degrade_patch",
            lambda clean, seed, noise, sev, sigma=sigma: degrade(
                clean, seed, noise, sev, (sigma, sigma)
            ),
        )
        blind = enhance.tune_blind_baselines(val, oracle)
        for kind in grids:
            assert blind["light/fourier"][kind]["sigma_px"] == sigma


def test_distill_from_a_trained_student(
    enhance_run: Path, enhance_cache: Path, tmp_path: Path
) -> None:
    source = enhance_run / "student.pt"
    outs = {}
    for tag, extra in (("teacher", ""), ("student", f'distill_from = "{source}"\n')):
        out = tmp_path / tag
        out.mkdir()
        shutil.copy(enhance_run / "teacher.pt", out / "teacher.pt")  # the same teacher for both
        res = _train_quick(f"[student]\nsteps = 3\n{extra}", out, enhance_cache, f"{tag}.toml")
        assert res.exit_code == 0, res.output
        outs[tag] = enhance.load_weights(out / "student.pt")[0].state_dict()
    assert any(not torch.equal(outs["teacher"][k], outs["student"][k]) for k in outs["teacher"])
    md = (tmp_path / "student" / "enhance-student.md").read_text(encoding="utf-8")
    assert f"distilled from the student {source}" in md
    shutil.copytree(tmp_path / "teacher", tmp_path / "x", ignore=shutil.ignore_patterns("student*"))
    res = _train_quick('[student]\ndistill_from = "nope.pt"\n', tmp_path / "x", enhance_cache)
    assert res.exit_code != 0 and "distill_from" in str(res.exception)


def test_fine_tune_from_an_exported_onnx_needs_no_teacher(
    enhance_run: Path, enhance_cache: Path, tmp_path: Path
) -> None:
    """A shipped student is an .onnx + card (its .pt and teacher may be gone): ``student.init``
    rebuilds it, and a fine-tune without KD trains no teacher, starts from exactly those weights
    and records no teacher scores. A card of another task is refused."""
    onnx = enhance_run / "enhance-student.onnx"
    init = enhance.init_student(onnx)
    trained = enhance.load_weights(enhance_run / "student.pt")[0].state_dict()
    assert all(torch.equal(v, init.state_dict()[k]) for k, v in trained.items())
    out = tmp_path / "ft"
    res = _train_quick(
        f'[student]\nsteps = 2\ninit = "{onnx}"\n'
        "[loss]\nkd_weight = 0.0\nkd_feature_weight = 0.0\n",
        out,
        enhance_cache,
    )
    assert res.exit_code == 0, res.output
    assert not (out / "teacher.pt").exists() and not (out / "teacher.ckpt").exists()
    card = json.loads((out / "enhance-student.json").read_text(encoding="utf-8"))
    assert "val_teacher" not in card["metrics"] and "teacher" not in card["metrics"]["train_s"]
    assert card["teacher"]["macs_per_pixel"] > card["macs_per_pixel"]  # ratio from architecture
    tuned = enhance.load_weights(out / "student.pt")[0].state_dict()
    assert any(not torch.equal(v, tuned[k]) for k, v in trained.items())
    other = tmp_path / "other.onnx"
    shutil.copy(onnx, other)
    card = json.loads((enhance_run / "enhance-student.json").read_text(encoding="utf-8"))
    (tmp_path / "other.json").write_text(json.dumps({**card, "task": "despeckle"}), "utf-8")
    with pytest.raises(ConfigError, match="expected enhance"):
        enhance.init_student(other)


def test_mixed_frame_sizes_draw_whole_frames_from_the_second_pool(
    enhance_run: Path, enhance_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``data.mix_size`` builds a second pool of frames over the same field of view (the
    pipeline's 256 px beside 128-px training frames); ``student.mix_share`` of the steps take
    whole frames of it. Without the pool a share is refused."""
    shapes: list[tuple[int, ...]] = []
    real = enhance.training_batch

    def spy(rng, data, bsz, crop, dcfg, infos=None):  # type: ignore[no-untyped-def]
        x, y = real(rng, data, bsz, crop, dcfg, infos)
        shapes.append(tuple(x.shape))
        return x, y

    monkeypatch.setattr(enhance, "training_batch", spy)
    out = tmp_path / "mix"
    res = _train_quick(
        "[data]\nmix_size = 64\nmix_n_train = 2\n[student]\nsteps = 8\nmix_share = 0.5\n"
        f'init = "{enhance_run / "enhance-student.onnx"}"\n'
        "[loss]\nkd_weight = 0.0\nkd_feature_weight = 0.0\n",
        out,
        enhance_cache,
    )
    assert res.exit_code == 0, res.output
    assert (1, 1, 64, 64) in shapes and (2, 1, 32, 32) in shapes, shapes  # both pools were drawn
    assert set(shapes) == {(1, 1, 64, 64), (2, 1, 32, 32)}
    spec = json.loads((out / "data_spec.json").read_text(encoding="utf-8"))
    assert spec["mix"]["size"] == 64 and spec["mix"]["split"] == "train"
    assert spec["mix"]["seed_base"] == spec["train"]["seed_base"]  # the same draws, finer pixels
    assert "whole 64-px frame" in (out / "enhance-student.md").read_text(encoding="utf-8")
    card = json.loads((out / "enhance-student.json").read_text(encoding="utf-8"))
    assert card["provenance"]["mix_data_spec"] == spec["mix"]
    for body, match in (
        ("[student]\nmix_share = 0.5\n", "mix_share"),
        ("[data]\nmix_size = 62\n[student]\nmix_share = 0.5\n", "mix_size"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(body, encoding="utf-8")
        with pytest.raises(ConfigError, match=match):
            enhance.check_config(cfgmod.load("enhance", bad, quick=True))
