"""Weight averaging of two enhancement students (``student.average_with``) with
``student.trainable = "none"``: the exported network is the interpolation, the inverse-filter
stage only one of them has stays, and the config refuses what cannot be averaged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sonoedge.cli import app
from sonoedge.errors import ConfigError
from sonoedge.models.enhance import EnhanceArch, build
from sonoedge.train import config as cfgmod
from sonoedge.train import enhance
from sonoedge.zoo import enhance as ze


def _student(path: Path, seed: int, deblur: bool, width: int = 8) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build(EnhanceArch("student", width, 1, deblur=deblur))
    with torch.no_grad():  # a stage that does something, so that keeping it is visible
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    enhance.save_weights(path, net, {"config": {}})
    return net


def test_kept_student_averaged_with_another_through_the_cli(tmp_path: Path) -> None:
    a = _student(tmp_path / "a.pt", 0, deblur=True)
    b = _student(tmp_path / "b.pt", 1, deblur=False)
    toml = tmp_path / "average.toml"
    toml.write_text(
        f'[student]\nwidth = 8\ndepth = 1\ndeblur = true\ntrainable = "none"\n'
        f'init = "{tmp_path / "a.pt"}"\naverage_with = "{tmp_path / "b.pt"}"\n'
        "average_weight = 0.25\n[loss]\nkd_weight = 0.0\nkd_feature_weight = 0.0\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    args = ["train", "enhance", "--quick", "--config", str(toml), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert result.exit_code == 0, result.output
    net = enhance.load_weights(out / "student.pt", "student")[0]
    sa, sb, got = a.state_dict(), b.state_dict(), net.state_dict()
    for name, value in got.items():
        if name.startswith("deblur."):
            assert torch.equal(value, sa[name]), name  # only a has the stage: a's
        else:
            assert torch.allclose(value, 0.75 * sa[name] + 0.25 * sb[name], atol=1e-6), name
    assert not (out / "teacher.pt").exists()  # no distillation, no training: no teacher
    card = json.loads((out / "enhance-student.json").read_text(encoding="utf-8"))
    assert card["provenance"]["config"]["student"]["average_weight"] == 0.25
    md = (out / "enhance-student.md").read_text(encoding="utf-8")
    assert "Weight average: 0.75 x these weights + 0.25 x those of" in md
    assert "not trained in this run" in md and "- Training" not in md
    img = np.random.default_rng(3).uniform(0, 1, (64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(img)[None, None])[0, 0].clamp(0, 1).numpy()
    np.testing.assert_allclose(ze.load(out / "enhance-student.onnx").enhance(img), expected,
                               atol=1e-4)  # fmt: skip

    missing = toml.read_text(encoding="utf-8").replace(str(tmp_path / "b.pt"), "nowhere.pt")
    toml.write_text(missing, encoding="utf-8")
    args[-1] = str(tmp_path / "run2")
    result = CliRunner().invoke(app, [*args, "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert result.exit_code != 0 and "no such file" in str(result.exception)


def test_average_refuses_other_layouts_and_half_given_settings(tmp_path: Path) -> None:
    a = _student(tmp_path / "a.pt", 0, deblur=True)
    wide = _student(tmp_path / "w.pt", 1, deblur=True, width=16)
    with pytest.raises(ConfigError, match=r"another layout .*width 16 vs 8"):
        enhance.average_students(a, wide, 0.5)
    cfg = cfgmod.load("enhance", quick=True)
    for bad, match in (
        ({"student": {"average_with": "b.pt"}}, "go together"),
        ({"student": {"average_weight": 0.5}}, "go together"),
        ({"student": {"average_with": "b.pt", "average_weight": 1.5}}, "average_weight"),
        ({"student": {"trainable": "none"}}, "takes student.init as it is"),
    ):
        with pytest.raises(ConfigError, match=match):
            enhance.check_config(cfgmod.merge(cfg, bad))
