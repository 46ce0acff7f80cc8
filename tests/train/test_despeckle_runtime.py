"""Torch-free runtime of the MK despeckling student (sonoedge.zoo.despeckle)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sonoedge import zoo
from sonoedge.errors import ConfigError, DataError
from sonoedge.zoo import despeckle as zd


@pytest.fixture(scope="module")
def model(despeckle_run: Path) -> zd.DespeckleModel:
    return zd.load(despeckle_run / "despeckle-mk.onnx")


@pytest.fixture(scope="session")
def despeckle_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick run (shared with test_train_despeckle when both run in one session)."""
    from typer.testing import CliRunner

    from sonoedge.cli import app

    out = tmp_path_factory.mktemp("runs") / "despeckle-rt"
    cache = tmp_path_factory.mktemp("despeckle-rt-cache")
    args = ["train", "despeckle", "--quick", "--out", str(out), "--cache", str(cache)]
    (out.parent / "noab.toml").write_text("[train]\nablations = false\n", encoding="utf-8")
    args += ["-c", str(out.parent / "noab.toml"), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (h, w)).astype(np.float32)


def test_runtime_matches_torch_and_pads_odd_sizes(
    despeckle_run: Path, model: zd.DespeckleModel
) -> None:
    from sonoedge.train import despeckle

    net, _ = despeckle.load_weights(despeckle_run / "student.pt")
    img = _img(48, 40)
    np.testing.assert_allclose(model.despeckle(img), despeckle.predict(net, img), atol=1e-4)
    odd = model.despeckle(_img(45, 37).astype(np.float64))
    assert odd.shape == (45, 37) and odd.dtype == np.float32
    assert np.all(np.isfinite(odd)) and odd.min() >= 0 and odd.max() <= 1
    assert model.despeckle(_img(32, 32)[None]).shape == (32, 32)  # a 1-frame stack
    assert zoo.load_despeckle(despeckle_run / "despeckle-mk.onnx").min_size == model.min_size


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ((_img(32, 32) * 255).astype(np.uint8), "dtype uint8"),
        (_img(32, 32) * 3.0, "expected a log-compressed image in \\[0, 1\\]"),
        (_img(32, 32) - 0.5, "expected a log-compressed image"),
        (np.where(_img(32, 32) > 0.5, np.nan, 0.2).astype(np.float32), "NaN/Inf"),
        (np.full((32, 32), np.inf, np.float32), "NaN/Inf"),
        (_img(8, 64), "receptive field"),
        (np.zeros((4, 32, 32), np.float32), "expected a 2-D"),
        (np.zeros((2, 3, 4, 5), np.float32), "expected a 2-D"),
    ],
)
def test_runtime_refuses_bad_input(model: zd.DespeckleModel, image: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        model.despeckle(image)


def test_registry_method_and_wrong_models(despeckle_run: Path, tmp_path: Path) -> None:
    from sonoedge.processing.registry import METHODS, get_method

    onnx = despeckle_run / "despeckle-mk.onnx"
    try:
        zd.register("mk_test", onnx)
        out = get_method("despeckle", "mk_test")(_img(40, 40))
        assert out.shape == (40, 40)
    finally:
        METHODS["despeckle"].pop("mk_test", None)
    sonic_like = tmp_path / "x.onnx"
    sonic_like.write_bytes(onnx.read_bytes())
    sonic_like.with_suffix(".json").write_text('{"task": "sonic", "input": {}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="'sonic' model"):
        zd.load(sonic_like)
    with pytest.raises(ConfigError, match="not found"):
        zd.load(tmp_path / "missing.onnx")


def test_shipped_student_loads_without_torch() -> None:
    if "despeckle-mk" not in zoo.available():
        pytest.skip("no shipped despeckle-mk in this checkout")
    code = (
        "import sys, numpy as np\n"
        "from sonoedge.zoo import despeckle\n"
        "m = despeckle.register()\n"
        "from sonoedge.processing.registry import get_method\n"
        "img = np.random.default_rng(0).uniform(0.2, 0.8, (64, 72)).astype(np.float32)\n"
        "out = get_method('despeckle', 'mk_student')(img)\n"
        "assert out.shape == (64, 72) and out.std() < img.std()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, encoding="utf-8"
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr
    shipped = Path(zd.__file__).with_name("despeckle-mk.onnx")
    assert shipped.stat().st_size <= 5 * 1024 * 1024
