"""The enhancement task's physics-guided degradation model and its training batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonoedge.metrics import fwhm
from sonoedge.train import config as cfgmod
from sonoedge.train import enhance


def _blob(size: int = 64, sigma: float = 2.0) -> np.ndarray:
    """A point target: a Gaussian blob (σ px) of height 0.6 on a 0.2 background."""
    zz, xx = np.mgrid[0:size, 0:size] - size // 2
    return (0.2 + 0.6 * np.exp(-(zz**2 + xx**2) / (2 * sigma**2))).astype(np.float32)


def test_blur_widens_a_point_anisotropically() -> None:
    img = _blob()
    out, info = enhance.degrade_patch(img, 0, "gaussian", 0.0, blur_sigma_px=(3.0, 1.0))
    again, _ = enhance.degrade_patch(img, 0, "gaussian", 0.0, blur_sigma_px=(3.0, 1.0))
    np.testing.assert_array_equal(out, again)  # same seed, same result
    assert info["blur_sigma_px"] == (3.0, 1.0) and info["gaussian_sigma"] == pytest.approx(0.01)
    c = 32
    # Gaussian blur adds variances: FWHM = 2.355 sqrt(2^2 + s^2)
    axial, lateral = fwhm(out[:, c] - 0.2), fwhm(out[c, :] - 0.2)
    assert fwhm(img[:, c] - 0.2) == pytest.approx(2.355 * 2.0, rel=0.05)
    assert axial == pytest.approx(2.355 * np.sqrt(13.0), rel=0.1)
    assert lateral == pytest.approx(2.355 * np.sqrt(5.0), rel=0.1)
    assert out.max() < 0.5  # energy spread, peak lowered
    # random anisotropic widths grow with severity
    light = [enhance.degrade_patch(img, s, "gaussian", "light")[1] for s in range(20)]
    heavy = [enhance.degrade_patch(img, s, "gaussian", "heavy")[1] for s in range(20)]
    assert max(max(i["blur_sigma_px"]) for i in light) <= 1.0 + 1e-9
    assert max(max(i["blur_sigma_px"]) for i in heavy) > 1.5
    assert any(abs(i["blur_sigma_px"][0] - i["blur_sigma_px"][1]) > 0.5 for i in heavy)


def test_fourier_perturbation_keeps_the_mean_and_perturbs_magnitude_and_phase() -> None:
    rng = np.random.default_rng(3)
    img = (0.5 + 0.05 * rng.standard_normal((64, 64))).astype(np.float32)
    out, info = enhance.degrade_patch(img, 7, "fourier", "light", blur_sigma_px=(0.0, 0.0))
    assert info["noise"] == "fourier" and out.min() > 0 and out.max() < 1  # no clipping here
    assert float(out.mean()) == pytest.approx(float(img.mean()), abs=1e-5)  # DC kept
    a, b = np.fft.fft2(img), np.fft.fft2(out)
    keep = np.ones(a.shape, bool)
    keep[0, 0] = False
    # the real part of the inverse symmetrises the perturbation of k and -k: the magnitude ratio
    # and the phase change spread by about sigma / sqrt(2) around 1 and 0
    ratio = np.abs(b[keep]) / np.abs(a[keep])
    dphase = np.angle(b[keep] / a[keep])
    s_m, s_p = info["magnitude_sigma"], info["phase_sigma_rad"]
    assert np.std(ratio) == pytest.approx(s_m / np.sqrt(2), rel=0.3)
    assert np.std(dphase) == pytest.approx(s_p / np.sqrt(2), rel=0.3)
    heavy, hinfo = enhance.degrade_patch(img, 7, "fourier", "heavy", blur_sigma_px=(0.0, 0.0))
    assert hinfo["magnitude_sigma"] > s_m
    assert np.abs(heavy - img).mean() > 2 * np.abs(out - img).mean()


def test_degradation_is_clipped_and_gaussian_noise_has_its_sigma() -> None:
    img = np.full((64, 64), 0.5, np.float32)
    out, info = enhance.degrade_patch(img, 1, "gaussian", "moderate", blur_sigma_px=(1.0, 1.0))
    assert np.std(out - img) == pytest.approx(info["gaussian_sigma"], rel=0.1)
    bright, _ = enhance.degrade_patch(np.ones((64, 64), np.float32), 1, "gaussian", "heavy")
    assert bright.max() <= 1.0 and bright.min() >= 0.0 and bright.dtype == np.float32


def test_rotated_patches_and_batches_are_seeded() -> None:
    img = np.random.default_rng(0).uniform(0, 1, (96, 96)).astype(np.float32)
    a = enhance.rotated_patch(img, np.random.default_rng(5), 32)
    b = enhance.rotated_patch(img, np.random.default_rng(5), 32)
    c = enhance.rotated_patch(img, np.random.default_rng(6), 32)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 32) and not np.array_equal(a, c)
    plain = enhance.rotated_patch(img, np.random.default_rng(5), 32, rotate=False)
    # without rotation the patch is an exact (possibly flipped) crop of the frame
    windows = np.lib.stride_tricks.sliding_window_view(img, (32, 32))
    match = (windows == plain).all(axis=(2, 3)) | (windows == plain[:, ::-1]).all(axis=(2, 3))
    assert match.any()
    # a horizontal stripe comes out at another angle when rotated
    stripe = np.zeros((96, 96), np.float32)
    stripe[46:50] = 1.0
    rows = [enhance.rotated_patch(stripe, np.random.default_rng(s), 32) for s in range(8)]
    assert any((r.sum(axis=1) > 0.5).sum() > 12 for r in rows)  # spread over many rows


def test_training_batches_come_from_nllr_targets_not_clean_images(tmp_path) -> None:
    cfg = cfgmod.load("enhance", quick=True)
    spec = enhance.data_spec(cfg, "train", 2)
    data = enhance.build_set(spec, tmp_path)
    again = enhance.build_set(spec, tmp_path)  # from the cache
    np.testing.assert_array_equal(data.targets, again.targets)
    fresh = enhance._simulate(spec, 1)
    np.testing.assert_array_equal(fresh["target"], data.targets[1])  # seeded simulation + NLLR
    assert not np.allclose(data.targets, data.clean, atol=1e-3)
    assert np.abs(data.targets - data.frames).mean() > 0.01  # NLLR removed speckle
    # a frame target with no rotation, no flip and severity 0 gives a patch of the target
    dcfg = {"rotate": False, "severity": [0.0, 0.0], "fourier_prob": 0.0}
    x, y = enhance.training_batch(np.random.default_rng(0), data, 2, 32, dcfg)
    x2, _ = enhance.training_batch(np.random.default_rng(0), data, 2, 32, dcfg)
    torch.testing.assert_close(x, x2, rtol=0, atol=0)
    assert x.shape == y.shape == (2, 1, 32, 32)
    windows = np.lib.stride_tricks.sliding_window_view(data.targets[0], (32, 32))
    y0 = y[0, 0].numpy()
    flipped = y0[:, ::-1]
    hits = [
        ((np.lib.stride_tricks.sliding_window_view(t, (32, 32)) == p).all(axis=(2, 3))).any()
        for t in data.targets
        for p in (y0, flipped)
    ]
    assert any(hits) and windows.shape[0] > 0
    assert float((x - y).abs().mean()) > 0.002  # degraded (blur >= 0.3 px and noise)
    assert float(x.min()) >= 0 and float(x.max()) <= 1


def test_independent_blur_decouples_blur_from_noise_and_gradient_loss_sees_sharpness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``independent_blur`` a patch can be strongly blurred at light noise (as the point
    targets of the evaluation are); the gradient loss is zero on a match and grows with blur."""
    img = np.random.default_rng(0).uniform(0, 1, (64, 64)).astype(np.float32)
    data = enhance.FrameSet(img[None], img[None], img[None], img[None], ["p"], ["x"], {}, None)  # type: ignore[arg-type]
    calls: list[tuple[float, float]] = []
    real = enhance.degrade_patch

    def spy(clean, seed, noise, severity, blur_sigma_px=None):  # type: ignore[no-untyped-def]
        out, info = real(clean, seed, noise, severity, blur_sigma_px)
        calls.append((float(severity), max(info["blur_sigma_px"])))
        return out, info

    monkeypatch.setattr(enhance, "degrade_patch", spy)
    dcfg = {"rotate": False, "severity": [0.0, 1.0], "fourier_prob": 0.0}
    for flag in (False, True):
        calls.clear()
        enhance.training_batch(
            np.random.default_rng(3), data, 64, 32, {**dcfg, "independent_blur": flag}
        )
        sev, blur = np.array(calls).T
        coupled = bool(np.all(blur <= 0.5 + 2.5 * sev + 1e-6))
        assert coupled != flag  # independent: some blur beyond what the noise severity allows
    t = torch.from_numpy(_blob(32, 1.0))[None, None]
    assert float(enhance.gradient_l1(t, t)) == 0.0
    soft = torch.from_numpy(_blob(32, 2.0))[None, None]
    assert float(enhance.gradient_l1(soft, t)) > 0.0
    loss_cfg = {"l1_weight": 1.0, "ssim_weight": 0.0, "grad_weight": 1.0}
    loss, parts = enhance.task_loss(soft, t, loss_cfg)
    assert parts["grad"] > 0 and float(loss) == pytest.approx(parts["l1"] + parts["grad"], rel=1e-5)
