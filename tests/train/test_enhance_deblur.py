"""The enhancement student's blind inverse-filter stage (``student.deblur``): the filters invert
the blur they are made for, the stage starts as the identity on a trained student, picks an
inverse when told, exports, rebuilds from ONNX, survives pruning and int8, and old cards load."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sonoedge.errors import ConfigError
from sonoedge.models.enhance import (
    DEBLUR_SIGMAS_PX,
    DEBLUR_TAPS,
    EnhanceArch,
    EnhanceDeploy,
    InverseFilterBank,
    build,
    macs_per_pixel,
    wiener_taps,
)
from sonoedge.train import enhance

PLAIN = EnhanceArch("student", 16, 2, full_depth=2, context=True, space_to_depth=True)
DEBLUR = EnhanceArch("student", 16, 2, full_depth=2, context=True, space_to_depth=True, deblur=True)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def _texture(size: int = 96, seed: int = 0) -> np.ndarray:
    """A speckle-like image with detail at every scale."""
    img = np.random.default_rng(seed).uniform(0, 1, (size, size)).astype(np.float32)
    return np.asarray(cv2.GaussianBlur(img, (0, 0), 0.8), np.float32)


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Blur by a continuous Gaussian of ``sigma_px`` (its exact frequency response, as the bank's
    filters assume; periodic, so compare away from the borders)."""
    fz, fx = np.meshgrid(np.fft.fftfreq(img.shape[0]), np.fft.fftfreq(img.shape[1]), indexing="ij")
    h = np.exp(-2 * (np.pi * sigma_px) ** 2 * (fz**2 + fx**2))
    return np.real(np.fft.ifft2(np.fft.fft2(img) * h)).astype(np.float32)


INNER = (slice(16, -16), slice(16, -16))


def _pick(bank: InverseFilterBank, sigma_px: float) -> None:
    """Make ``bank`` choose the filter for ``sigma_px`` on both axes whatever the image."""
    last = bank.select[2]
    assert isinstance(last, torch.nn.Linear)
    k = len(DEBLUR_SIGMAS_PX)
    logits = torch.full((2, k + 1), -10.0)
    logits[:, DEBLUR_SIGMAS_PX.index(sigma_px)] = 10.0
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(logits.view(-1))


def test_each_filter_inverts_its_blur_with_unit_gain() -> None:
    for sigma in DEBLUR_SIGMAS_PX:
        taps = wiener_taps(sigma)
        assert taps.shape == (DEBLUR_TAPS,) and taps.sum() == pytest.approx(1.0)
        clean = _texture()
        blurred = _blur(clean, sigma)
        restored = cv2.sepFilter2D(blurred, -1, taps, taps, borderType=cv2.BORDER_REFLECT)
        gain = _psnr(restored[INNER], clean[INNER]) - _psnr(blurred[INNER], clean[INNER])
        assert gain > 2.0, (sigma, gain)


def test_stage_sharpens_when_it_picks_an_inverse_and_is_near_identity_at_start() -> None:
    bank = InverseFilterBank().eval()
    clean = _texture()
    blurred = _blur(clean, 0.7)
    x = torch.from_numpy(blurred)[None, None]
    with torch.no_grad():
        start = bank(x)[0, 0].numpy()
        assert np.abs(start - blurred).max() < 0.05  # identity weight ~0.985
        beta, gamma = bank.weights(x)
        assert float(beta[0, -1]) > 0.98 and float(gamma[0, -1]) > 0.98
        _pick(bank, 0.7)
        sharp = bank(x)[0, 0].numpy()
    assert _psnr(sharp[INNER], clean[INNER]) > _psnr(blurred[INNER], clean[INNER]) + 3.0
    assert bank.features(x).shape == (1, 8) and torch.isfinite(bank.features(x)).all()


def test_warm_start_from_a_student_without_the_stage_keeps_its_function(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = build(PLAIN).eval()
    enhance.save_weights(tmp_path / "plain.pt", plain, {})
    net = build(DEBLUR)
    enhance.warm_start(net, tmp_path / "plain.pt")
    x = torch.from_numpy(_texture(64))[None, None]
    with torch.no_grad():
        assert (net.eval()(x) - plain(x)).abs().max() < 0.02
    enhance.save_weights(tmp_path / "deblur.pt", net, {})
    with pytest.raises(ConfigError, match="deblur = true"):
        enhance.warm_start(build(PLAIN), tmp_path / "deblur.pt")
    with pytest.raises(ConfigError, match="student option"):
        EnhanceArch("teacher", 16, 1, 4, 4, deblur=True)
    assert EnhanceArch.from_dict(DEBLUR.to_dict()) == DEBLUR
    old = {k: v for k, v in DEBLUR.to_dict().items() if k != "deblur"}
    assert EnhanceArch.from_dict(old) == PLAIN
    assert DEBLUR.receptive_field == PLAIN.receptive_field + 2 * (DEBLUR_TAPS - 1)
    teacher = build(EnhanceArch("teacher", 24, 2, 8, 6))
    assert macs_per_pixel(build(DEBLUR)) - macs_per_pixel(build(PLAIN)) == pytest.approx(
        2 * len(DEBLUR_SIGMAS_PX) * DEBLUR_TAPS,
        abs=1.0,  # + the selector MLP, once per image
    )
    assert macs_per_pixel(build(DEBLUR)) < macs_per_pixel(teacher) / 8


def test_exports_rebuilds_from_onnx_prunes_and_quantizes(tmp_path: Path) -> None:
    import json

    from sonoedge.quantization import nncf_int8, pruning
    from sonoedge.quantization.export import export_onnx
    from sonoedge.quantization.from_onnx import torch_from_onnx

    torch.manual_seed(0)
    net = build(DEBLUR).eval()
    _pick(net.get_submodule("deblur"), 0.55)  # type: ignore[arg-type]
    sample = _texture(48)[None, None]
    assert enhance.export_onnx(net, tmp_path / "s.onnx", sample=sample) < 1e-4
    card = {"architecture": DEBLUR.to_dict(), "input": {"min_size": 16, "size_multiple": 8}}
    (tmp_path / "s.json").write_text(json.dumps(card), encoding="utf-8")
    rebuilt = torch_from_onnx(tmp_path / "s.onnx", card)  # checks onnxruntime against torch
    x = torch.from_numpy(sample)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), EnhanceDeploy(net)(x), rtol=0, atol=1e-5)

    deploy = EnhanceDeploy(net).eval()
    bank_before = [m.weight.shape for m in (net.deblur.axial, net.deblur.lateral)]  # type: ignore[union-attr]
    pruning.prune_channels(deploy, torch.rand(1, 1, 32, 32), 0.5)
    assert [m.weight.shape for m in (net.deblur.axial, net.deblur.lateral)] == bank_before  # type: ignore[union-attr]
    assert deploy(torch.rand(1, 1, 48, 64)).shape == (1, 1, 48, 64)
    export_onnx(deploy, torch.rand(1, 1, 32, 32), tmp_path / "p.onnx")
    calib = [{"input": np.random.default_rng(i).uniform(0, 1, (1, 1, 32, 32)).astype(np.float32)}
             for i in range(2)]  # fmt: skip
    result = nncf_int8.quantize_openvino(tmp_path / "p.onnx", tmp_path / "p-int8.xml", calib)
    assert nncf_int8.quantized_ops(result.model) > 0
    assert any("/deblur/" in name for name in result.in_float)  # the stage stays float

    from sonoedge.quantization import ort_int8

    feeds = [{"input": c["input"]} for c in calib]
    qdq = ort_int8.quantize_qdq(tmp_path / "p.onnx", tmp_path / "p-qdq.onnx", feeds)
    import onnx

    graph = onnx.load(str(qdq)).graph
    quantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    stage = [n for n in convs if "/deblur/" in n.name]
    assert stage and not any(i in quantized for n in stage for i in n.input)
    assert any(i in quantized for n in convs if n not in stage for i in n.input)


def test_selector_target_follows_the_degradation() -> None:
    k = len(DEBLUR_SIGMAS_PX)
    infos = [
        {"blur_sigma_px": (0.55, 0.2), "noise": "fourier"},
        {"blur_sigma_px": (0.7, 2.5), "noise": "gaussian"},
        {"blur_sigma_px": (0.7, 3.0), "noise": "fourier"},
        {"blur_sigma_px": None, "noise": "fourier"},
    ]
    t = enhance.deblur_target(infos).numpy()
    assert t.shape == (4, 2, k + 1) and np.allclose(t.sum(axis=2), 1.0)
    assert t[0, 0, DEBLUR_SIGMAS_PX.index(0.55)] == 1.0  # on the grid: that filter
    assert t[0, 1, k] == pytest.approx(0.5) and t[0, 1, 0] == pytest.approx(0.5)  # 0.2: id / 0.4
    assert (t[1, :, k] == 1.0).all()  # Gaussian noise: the identity
    assert t[2, 1, k - 1] == 1.0  # past the grid: the widest inverse
    assert np.allclose(t[3], 1.0 / (k + 1))  # axes unknown: no preference

    torch.manual_seed(0)
    net = build(DEBLUR)
    x = torch.from_numpy(_blur(_texture(64), 0.55))[None, None]
    both = [{"blur_sigma_px": (0.55, 0.55), "noise": "fourier"}]
    start = float(enhance.deblur_target_loss(net, x, both).detach())
    _pick(net.get_submodule("deblur"), 0.55)  # type: ignore[arg-type]
    assert float(enhance.deblur_target_loss(net, x, both).detach()) < 0.01 < start
    with pytest.raises(ConfigError, match="deblur = true"):
        enhance.deblur_target_loss(build(PLAIN), x, infos[:1])


def test_training_batches_report_each_sample_degradation() -> None:
    frames = np.stack([_texture(64, seed) for seed in range(3)])
    data = enhance.FrameSet(frames, frames, frames, frames, ["L11-5v"] * 3, ["random"] * 3, {},
                            Path("unused"))  # fmt: skip
    dcfg = {"rotate": True, "right_angles": True, "fourier_prob": 0.5, "severity": [0.0, 1.0]}
    infos: list[dict] = []
    x, y = enhance.training_batch(np.random.default_rng(0), data, 4, 32, dcfg, infos)
    assert x.shape == y.shape == (4, 1, 32, 32) and len(infos) == 4
    assert all(
        len(i["blur_sigma_px"]) == 2 and i["noise"] in ("gaussian", "fourier") for i in infos
    )
    again = enhance.training_batch(np.random.default_rng(0), data, 4, 32, dcfg)  # same draws
    torch.testing.assert_close(again[0], x)


def test_shipped_deblur_student_sharpens_light_blur_with_fourier_noise() -> None:
    """The opt-in shipped ``enhance-student-deblur`` runs under onnxruntime and, on lightly
    blurred frames with Fourier-domain noise (one of each validation phantom), beats both its
    input and the default v12 on average."""
    from sonoedge import zoo
    from sonoedge.synth.degradation import degrade
    from sonoedge.zoo import enhance as zoo_enhance

    if "enhance-student-deblur" not in zoo.available():
        pytest.skip("no shipped enhance-student-deblur in this checkout")
    deblur = zoo_enhance.load("enhance-student-deblur")
    assert zoo.read_card(zoo.resolve("enhance-student-deblur"))["architecture"]["deblur"] is True
    from sonoedge.train import config as cfgmod

    spec = enhance.data_spec(cfgmod.load("enhance"), "val", 6)
    gains = []
    for i in range(6):
        clean = enhance._simulate(spec, i)["target"]  # an NLLR target, as in training
        x, _ = degrade(clean, 5 + i, blur_sigma_px=(0.8, 0.8), noise="fourier", severity="light")
        x = np.clip(x, 0.0, 1.0)
        out = deblur.enhance(x)
        assert out.shape == x.shape and out.dtype == np.float32
        gains.append((_psnr(out, clean) - _psnr(x, clean),
                      _psnr(out, clean) - _psnr(zoo_enhance.load().enhance(x), clean)))  # fmt: skip
    over_input, over_v12 = np.mean(gains, axis=0)
    assert over_input > 1.0 and over_v12 > 0.3, gains


def test_refit_of_the_stage_alone_learns_its_target_and_leaves_the_network(tmp_path: Path) -> None:
    """``student.trainable = "deblur"``: only the selector moves, towards the σ target (scaled by
    ``loss.deblur_target_sigma_scale``); the config refuses the refit without what it needs."""
    from sonoedge.train import config as cfgmod

    t = enhance.deblur_target([{"blur_sigma_px": (1.1, 0.8), "noise": "fourier"}], 0.5)
    assert t[0, 0, DEBLUR_SIGMAS_PX.index(0.55)] == 1.0 and t[0, 1, 0] == 1.0  # 0.4 of 0.8

    cfg = cfgmod.merge(
        cfgmod.load("enhance", quick=True),
        {
            "data": {"size": 64},
            "student": {"width": 16, "depth": 1, "context": True, "space_to_depth": True,
                        "deblur": True, "trainable": "deblur", "steps": 60, "batch_size": 8,
                        "ema_decay": 0.9,
                        "lr": 0.01, "init": str(tmp_path / "init.pt")},
            "loss": {"kd_weight": 0.0, "kd_feature_weight": 0.0, "deblur_target_weight": 1.0,
                     "deblur_target_sigma_scale": 0.85},
            "degrade": {"right_angles": True},
        },
    )  # fmt: skip
    enhance.check_config(cfg)
    for bad, match in (
        ({"student": {"trainable": "body"}}, "'all', 'deblur' or 'none'"),
        ({"student": {"init": ""}}, "refits the inverse-filter stage"),
        ({"loss": {"deblur_target_weight": 0.0}}, "refits the inverse-filter stage"),
    ):
        with pytest.raises(ConfigError, match=match):
            enhance.check_config(cfgmod.merge(cfg, bad))

    torch.manual_seed(0)
    start = build(enhance.arch(cfg, "student"))
    enhance.save_weights(tmp_path / "init.pt", start, {"config": cfg})
    frames = np.stack([_texture(64, seed) for seed in range(4)])
    data = enhance.FrameSet(frames, frames, frames, frames, ["L11-5v"] * 4, ["random"] * 4, {},
                            Path("unused"))  # fmt: skip

    class NoTeacher(torch.nn.Module):
        feature_channels = 8

        def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            raise AssertionError("the teacher ran in a refit of the stage")

    rng = np.random.default_rng(5)
    infos: list[dict] = []
    x, _ = enhance.training_batch(rng, data, 16, 64, cfg["degrade"], infos)
    before = float(enhance.deblur_target_loss(start, x, infos, 0.85).detach())
    net = enhance.train_student(cfg, data, NoTeacher(), tmp_path / "s.ckpt", None, None)  # type: ignore[arg-type]
    after = float(enhance.deblur_target_loss(net, x, infos, 0.85).detach())
    assert after < 0.8 * before, (before, after)
    moved = {
        name for name, p in net.state_dict().items() if not torch.equal(p, start.state_dict()[name])
    }
    assert moved and all(name.startswith("deblur.select.") for name in moved), moved


def test_shipped_deblur_selector_follows_the_blur_under_fourier_noise() -> None:
    """v15's refitted selector picks a wider inverse for a wider blur under Fourier-domain noise
    (v13's end-to-end one: 0.17 and 0.77 px for 0.4 and 1.0) and the identity under
    Gaussian noise."""
    from sonoedge import zoo
    from sonoedge.synth.degradation import degrade
    from sonoedge.train import config as cfgmod

    if "enhance-student-deblur" not in zoo.available():
        pytest.skip("no shipped enhance-student-deblur in this checkout")
    net = enhance.init_student(zoo.resolve("enhance-student-deblur"))
    stage = net.get_submodule("deblur")
    assert isinstance(stage, InverseFilterBank)
    grid = torch.tensor((*DEBLUR_SIGMAS_PX, 0.0))
    spec = enhance.data_spec(cfgmod.load("enhance"), "val", 3)
    clean = [enhance._simulate(spec, i)["target"] for i in range(3)]

    def chosen_sigma_px(sigma_px: float, noise: str) -> float:
        picks = []
        for i, y in enumerate(clean):
            x, _ = degrade(y, 11 + i, blur_sigma_px=(sigma_px, sigma_px), noise=noise,  # type: ignore[arg-type]
                           severity="light")  # fmt: skip
            with torch.no_grad():
                beta, gamma = stage.weights(torch.from_numpy(np.clip(x, 0, 1))[None, None])
            picks += [
                float((beta[0, :, 0, 0] * grid).sum()),
                float((gamma[0, :, 0, 0] * grid).sum()),
            ]
        return float(np.mean(picks))

    narrow, wide = chosen_sigma_px(0.4, "fourier"), chosen_sigma_px(1.0, "fourier")
    assert 0.2 < narrow < 0.6 and 0.85 < wide < 1.3, (narrow, wide)  # target: 0.85 x sigma
    assert chosen_sigma_px(1.0, "gaussian") < 0.15


def test_shipped_deblur_student_narrows_point_targets_by_a_fifth(tmp_path: Path) -> None:
    """Point targets blurred and under light Gaussian noise, as in ``eval enhance``'s point
    protocol (where the stage keeps the identity): the shipped ``enhance-student-deblur`` narrows
    them by at least 20 % in mean FWHM (v15, before the weight average with v12, by 19.5 %)."""
    from sonoedge import zoo
    from sonoedge.train import config as cfgmod
    from sonoedge.zoo import enhance as zoo_enhance

    if "enhance-student-deblur" not in zoo.available():
        pytest.skip("no shipped enhance-student-deblur in this checkout")
    model = zoo_enhance.load("enhance-student-deblur")
    cfg = cfgmod.merge(cfgmod.load("enhance"), {"seed": 3, "eval": {"size": 128}})
    points = enhance.build_set(enhance.data_spec(cfg, "points", 6), tmp_path)
    widths: dict[str, list[float]] = {"input": [], "student": []}
    for s in range(len(points)):
        x, _ = enhance.degrade_patch(points.clean[s], 90_001 + s, "gaussian", "light",
                                     enhance.POINT_BLUR_PX)  # fmt: skip
        images = {"input": x, "student": model.enhance(np.clip(x, 0.0, 1.0))}
        for peak in enhance._peaks(points.clean[s]):
            for who, im in images.items():
                sc = enhance.point_scores(im, peak)
                widths[who].append((sc["fwhm_axial_px"] + sc["fwhm_lateral_px"]) / 2)
    change = np.mean(widths["student"]) / np.mean(widths["input"]) - 1.0
    assert len(widths["input"]) >= 20 and change <= -0.20, (len(widths["input"]), change)
