"""Compression of the MK despeckling student and the ULM localiser: their weights files, the
``despeckle`` and ``ulm`` data sets and the localisation metric, and an int8 ULM bundle as the
pipeline's ``ulm`` stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sonoedge import zoo
from sonoedge.errors import ConfigError
from sonoedge.quantization import data
from sonoedge.quantization.compress import Options, compress, load_torch, read_card

pytest.importorskip("torch_pruning")
pytest.importorskip("onnx")


def _perfect_maps(bubbles: np.ndarray, size: int) -> np.ndarray:
    """Localiser maps (1, 3, size, size) that decode exactly to ``bubbles``."""
    maps = np.zeros((1, 3, size, size), np.float32)
    for z, x in bubbles:
        rz, rx = round(z), round(x)
        maps[0, :, rz, rx] = (1.0, z - rz, x - rx)
    return maps


def test_ulm_set_is_seeded_and_scored_by_localisation() -> None:
    a, b = data.load("ulm", 6, size=32, seed=1), data.ulm(6, size=32, seed=1)
    assert a.bubbles is not None and b.bubbles is not None and a.targets is None
    np.testing.assert_array_equal(a.inputs[5], b.inputs[5])
    assert a.inputs[0].shape == (1, 1, 32, 32)
    assert all(np.all((p > -0.5) & (p < 31.5)) for p in a.bubbles)  # only findable bubbles
    assert sum(len(p) for p in a.bubbles) > 0
    _, rest = a.split(4)
    assert rest.bubbles is not None and rest.bubbles[0] is a.bubbles[4]
    found = data.task_metric(a)
    assert found is not None
    name, score = found
    assert name == "jaccard_0.25"
    assert score([_perfect_maps(p, 32) for p in a.bubbles]) == 1.0
    assert score([np.zeros((1, 3, 32, 32), np.float32) for _ in a.bubbles]) == 0.0
    # a bubble found 0.3 wavelengths (1.2 px) away is a miss at lambda/4
    moved = [p + np.where(p > 16, -1.2, 1.2) * [0, 1] for p in a.bubbles]
    shifted = data.ulm_scores(a.bubbles, [_perfect_maps(p, 32) for p in moved])
    assert shifted["jaccard"] < 0.5
    assert not np.array_equal(a.inputs[0], data.ulm(1, size=32, seed=2).inputs[0])


def test_despeckle_set_is_the_students_training_data() -> None:
    a, b = data.load("despeckle", 2, size=32, seed=0), data.despeckle(2, size=32, seed=0)
    assert a.targets is not None and b.targets is not None
    np.testing.assert_array_equal(a.inputs[1], b.inputs[1])
    assert a.inputs[0].shape == a.targets[0].shape == (1, 1, 32, 32)
    assert all(0 <= x.min() <= x.max() <= 1 for x in a.inputs)
    assert data.mean_psnr_db(a.targets, a.inputs) < 30  # speckle is a real degradation
    found = data.task_metric(a)
    assert found is not None and found[0] == "psnr_db"


def test_training_weights_load_as_their_deploy_graphs(tmp_path: Path) -> None:
    from sonoedge.models import despeckle as dm
    from sonoedge.models import ulm_localizer as um
    from sonoedge.train.despeckle import save_weights as save_despeckle
    from sonoedge.train.ulm import save_weights as save_localizer

    torch.manual_seed(0)
    x = torch.rand(1, 1, 16, 16)
    student = dm.build(dm.DespeckleArch("student", 8, 1)).eval()
    save_despeckle(tmp_path / "student.pt", student, {})
    deploy = load_torch(tmp_path / "student.pt")
    assert isinstance(deploy, dm.DespeckleDeploy)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), student(x).clamp(0, 1))
    arch = um.LocalizerArch(8, 1)
    localizer = um.build(arch).eval()
    save_localizer(tmp_path / "localizer.pt", localizer, arch.to_dict(), {})
    deploy = load_torch(tmp_path / "localizer.pt")
    assert isinstance(deploy, um.LocalizerDeploy)
    with torch.no_grad():
        assert deploy(x).shape == (1, 3, 16, 16) and float(deploy(x)[:, 0].min()) >= 0
    torch.save({"arch": {"name": "other-v1"}, "state": {}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="despeckling and ULM localiser"):
        load_torch(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="does not exist"):
        read_card(tmp_path / "localizer.pt", tmp_path / "missing.json")


def test_pruned_ulm_localizer_keeps_its_card_and_is_scored_by_jaccard(tmp_path: Path) -> None:
    from sonoedge.models import ulm_localizer as um
    from sonoedge.train.ulm import save_weights

    torch.manual_seed(0)
    arch = um.LocalizerArch(16, 1)
    save_weights(tmp_path / "localizer.pt", um.build(arch), arch.to_dict(), {})
    card = zoo.resolve("ulm-localizer").with_suffix(".json")
    opts = Options(
        prune=0.5,
        int8=True,
        openvino=False,
        data="ulm",
        size=32,
        n_train=16,
        n_calib=4,
        n_val=4,
        kd_steps=3,
        latency_repeats=0,
    )
    with pytest.raises(ConfigError, match="no ULM localiser model card"):
        compress(tmp_path / "localizer.pt", tmp_path / "out", opts)
    guided = json.loads(card.read_text(encoding="utf-8"))
    guided["input"]["params"] = {"name": "params", "names": ["f_number"]}
    (tmp_path / "guided.json").write_text(json.dumps(guided), encoding="utf-8")
    with pytest.raises(ConfigError, match="physics-guided localiser"):
        compress(
            tmp_path / "localizer.pt", tmp_path / "out", opts, card_path=tmp_path / "guided.json"
        )
    report = compress(tmp_path / "localizer.pt", tmp_path / "out", opts, card_path=card)
    assert report["metric"] == "jaccard_0.25"
    assert report["pruned"]["params"] < 0.5 * report["dense"]["params"]
    int8_card = json.loads(
        (tmp_path / "out" / "ulm-localizer-int8.json").read_text(encoding="utf-8")
    )
    assert int8_card["task"] == "ulm" and int8_card["decode"]["threshold"] == 0.5
    assert int8_card["input"]["name"] == "frames" and int8_card["pruning_ratio"] == 0.5
    assert "jaccard_0.25" in int8_card["metrics"]["vs_fp32"]


@pytest.mark.parametrize("target", ["cpu", "openvino-cpu"])
def test_int8_ulm_bundle_runs_as_the_ulm_stage(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped localiser quantized on the ``ulm`` set (NNCF for OpenVINO, QDQ for the CPU
    EP), packaged and signed, localises isolated bubbles as the fp32 network does."""
    from sonoedge.devices import signing
    from sonoedge.devices.package import package
    from sonoedge.pipeline.stages import OpStage
    from sonoedge.train import ulm_data as ud

    if target == "openvino-cpu":
        pytest.importorskip("nncf")
    monkeypatch.setenv("SONOEDGE_KEYS_DIR", str(tmp_path / "trusted"))
    monkeypatch.setenv("SONOEDGE_CACHE_DIR", str(tmp_path / "cache"))
    onnx = tmp_path / "ulm-localizer.onnx"  # a copy: compress writes beside nothing shipped
    shutil.copyfile(zoo.resolve("ulm-localizer"), onnx)
    shutil.copyfile(zoo.resolve("ulm-localizer").with_suffix(".json"), onnx.with_suffix(".json"))
    opts = Options(
        int8=True,
        openvino=target != "cpu",
        max_drop=0.05,
        data="ulm",
        size=32,
        n_train=1,
        n_calib=8,
        n_val=8,
        latency_repeats=0,
    )
    out = tmp_path / "int8"
    report = compress(onnx, out, opts)
    model = out / ("ulm-localizer-int8.onnx" if target == "cpu" else "ulm-localizer-int8-ov.xml")
    key = "int8_onnxruntime" if target == "cpu" else "int8_openvino"
    assert report["variants"]["fp32"]["jaccard_0.25"] - report["variants"][key]["jaccard_0.25"] <= (
        0.05 + 1e-9
    )
    private, public = signing.generate_keypair(tmp_path / "keys", "test")
    (tmp_path / "trusted").mkdir()
    (tmp_path / "trusted" / public.name).write_bytes(public.read_bytes())
    bundle = package(model, target, tmp_path / "ulm-int8.zip", private, name="ulm-localizer-int8")

    stage = OpStage("ulm", str(bundle), device=target)
    truth = np.array([[9.3, 10.6], [12.8, 36.2], [30.4, 22.5], [37.7, 8.1], [36.1, 39.4]])
    params = ud.FrameParams(snr_db=30.0, clutter_db=-30.0, f_number=1.5)
    renderer = ud.Renderer(params, (48, 48))
    iq = np.stack([renderer.render(truth, np.ones(len(truth)), seed=k) for k in range(4)])
    lam = params.wavelength_m
    spacing = (lam / 4, lam / 4)
    res = stage.fn(iq, spacing, lam, 500.0, svd_low=0, min_track_length=2)
    assert res.density.sum() > 0 and len(res.tracks_m) == len(truth)
    int8 = zoo.load_model(bundle, device=target)
    fp32 = zoo.load_model("ulm-localizer")
    for got, ref in zip(int8.localize(iq), fp32.localize(iq), strict=True):
        assert len(got) == len(ref)
        d = np.linalg.norm(got[:, None] - ref[None], axis=2)
        assert np.all(d.min(axis=0) < 0.25)  # within a sixteenth of a wavelength


def test_release_calibrates_each_student_on_its_own_task() -> None:
    from sonoedge.devices.release import MAX_DROP, NO_INT8, TARGETS, calibration_data

    card = zoo.read_card(zoo.resolve("ulm-localizer"))
    assert calibration_data(card) == "ulm" and MAX_DROP[card["task"]] == 0.01
    assert ("ulm", "openvino-cpu") not in NO_INT8  # the OpenVINO int8 localiser ships
    assert all(target in TARGETS for _, target in NO_INT8)
    # the despeckler is calibrated and scored on the images it was trained for
    assert calibration_data(zoo.read_card(zoo.resolve("despeckle-mk"))) == "despeckle"


def test_fine_tuning_recipes_follow_the_task() -> None:
    from sonoedge.quantization import distill as d

    assert d.task_recipe("ulm").loss_fn is d.localizer_loss
    assert d.task_recipe("despeckle")[:2] == (d.despeckle_loss, 3e-3)
    assert d.task_recipe("sonic:16") == (d.mse_loss, 1e-3, 0.5, 8)
    # the enhancement student learns the unpruned network alone, 16 windows per step
    assert d.task_recipe("degraded") == (d.mse_loss, 1e-3, 1.0, 16)
    teacher = torch.zeros(1, 3, 8, 8)
    teacher[0, :, 3, 4] = torch.tensor([0.9, 0.2, -0.3])
    teacher[0, 1:, 0, 0] = 5.0  # offsets where no bubble is: nothing to learn
    loss = d.localizer_loss
    same = teacher.clone()
    same[0, 1:, 0, 0] = -5.0
    blind = torch.full_like(teacher, 1e-3)
    assert float(loss(same, teacher, None, 0.5)) == pytest.approx(
        float(loss(teacher, teacher, None, 0.5))
    )
    assert float(loss(teacher, teacher, None, 0.5)) < float(loss(blind, teacher, None, 0.5))
    y = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    noisy = (y + 0.1 * torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))).clamp(
        0, 1
    )
    assert float(d.despeckle_loss(y, y, y, 0.5)) < float(d.despeckle_loss(noisy, y, y, 0.5))
    assert float(d.mse_loss(y, y, None, 0.5)) == 0.0
