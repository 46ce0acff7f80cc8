"""Torch-free runtime of exported SONIC students (sonoedge.zoo): refusals, resampling, parity."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sonoedge import zoo
from sonoedge.errors import ConfigError, DataError


def _iq(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, h, w)) + 1j * rng.standard_normal((n, h, w))).astype(
        np.complex64
    )


@pytest.fixture(scope="module")
def model(quick_run: Path) -> zoo.sonic.SonicModel:
    return zoo.load(quick_run / "sonic-8.onnx")


def test_runtime_matches_torch(quick_run: Path, model: zoo.sonic.SonicModel) -> None:
    from sonoedge.train import sonic

    net, _ = sonic.load_weights(quick_run / "student.pt")
    iq = _iq(8, 32, 32)
    ref = sonic.predict_unit(net, iq)
    got = model.predict_unit(iq[None])[0]
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_power_doppler_shapes_padding_resampling_and_windows(model: zoo.sonic.SonicModel) -> None:
    spacing = model.spacing_m
    prf = model.prf_range_hz[0]
    pd = model.power_doppler(_iq(8, 32, 32), prf, spacing)
    assert pd.shape == (32, 32) and pd.dtype == np.float32 and pd.max() == 0.0
    odd = model.power_doppler(_iq(8, 30, 37), prf, spacing)  # padded to a multiple of 4
    assert odd.shape == (30, 37) and np.all(np.isfinite(odd))
    fine = (spacing[0] / 2, spacing[1] / 2)  # resampled to the trained grid and back
    assert model.power_doppler(_iq(8, 64, 64), prf, fine).shape == (64, 64)
    long = _iq(24, 32, 32)  # three windows of 8 frames, averaged
    assert model.power_doppler(long, prf, spacing).shape == (32, 32)


@pytest.mark.parametrize(
    ("iq", "prf", "spacing", "match"),
    [
        (_iq(4, 32, 32), 1000.0, "ok", "at least 8"),
        (np.zeros((8, 32, 32), np.float32), 1000.0, "ok", "complex"),
        (_iq(8, 32, 32)[0], 1000.0, "ok", "expected \\(frames"),
        (_iq(8, 8, 32), 1000.0, "ok", "16..2048"),
        (_iq(8, 32, 32), None, "ok", "prf_hz is missing"),
        (_iq(8, 32, 32), 50_000.0, "ok", "outside what"),
        (_iq(8, 32, 32), 1000.0, None, "spacing_m is missing"),
        (_iq(8, 32, 32), 1000.0, (-1.0, 1e-3), "positive"),
        (_iq(8, 32, 32), 1000.0, (1e-4, 1e-4), "resampling"),
    ],
)
def test_runtime_refuses_what_it_cannot_handle(
    model: zoo.sonic.SonicModel, iq: np.ndarray, prf: float | None, spacing: object, match: str
) -> None:
    sp = model.spacing_m if spacing == "ok" else spacing
    with pytest.raises(DataError, match=match):
        model.power_doppler(iq, prf, sp)


def test_loader_refuses_mismatched_card_and_unknown_models(quick_run: Path, tmp_path: Path) -> None:
    shutil.copy(quick_run / "sonic-8.onnx", tmp_path / "m.onnx")
    card = json.loads((quick_run / "sonic-8.json").read_text(encoding="utf-8"))
    card["input"]["n_frames"] = 16
    (tmp_path / "m.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ConfigError, match="another architecture"):
        zoo.load(tmp_path / "m.onnx")
    card["task"] = "ulm"
    (tmp_path / "m.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ConfigError, match="'ulm' model"):
        zoo.load(tmp_path / "m.onnx")
    (tmp_path / "m.json").unlink()
    with pytest.raises(ConfigError, match="no model card"):
        zoo.load(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="not found"):
        zoo.load("sonic-999")


def test_runtime_never_imports_torch(quick_run: Path) -> None:
    target = "sonic-16" if "sonic-16" in zoo.available() else str(quick_run / "sonic-8.onnx")
    code = (
        "import sys, numpy as np\n"
        "from sonoedge import zoo\n"
        "import sonoedge.zoo.sonic\n"
        f"m = zoo.load({target!r})\n"
        "rng = np.random.default_rng(0)\n"
        "iq = (rng.standard_normal((m.n_frames, 32, 32)) + 1j).astype(np.complex64)\n"
        "pd = m.power_doppler(iq, m.prf_range_hz[0], m.spacing_m)\n"
        "assert pd.shape == (32, 32)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.skipif("sonic-16" not in zoo.available(), reason="no shipped sonic-16")
def test_shipped_student_is_small_and_documented() -> None:
    onnx_path = zoo.ZOO_DIR / "sonic-16.onnx"
    assert onnx_path.stat().st_size <= 5 * 1024 * 1024
    m = zoo.load("sonic-16")
    assert m.n_frames == 16
    card = m.card
    assert card["opset"] >= 17 and card["provenance"]["command"].startswith("sonoedge train")
    assert card["provenance"]["commit"] and card["provenance"]["data_spec"]["n_scenes"] > 0
    arch = card["architecture"]
    assert (2 * arch["n_filters"]) % 8 == 0 and arch["width"] % 8 == 0
    import hashlib

    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() == card["sha256"]
    assert (zoo.ZOO_DIR / "sonic-16.md").exists()


def test_registry_method_needs_prf_and_spacing(model: zoo.sonic.SonicModel) -> None:
    fn = model.as_method()
    iq = _iq(8, 32, 32)
    assert fn(iq, prf_hz=model.prf_range_hz[0], spacing_m=model.spacing_m).shape == (32, 32)
    with pytest.raises(DataError, match="prf_hz is missing"):
        fn(iq)
