"""Shipped students and signed bundles as pipeline stages, on the CPU and on device backends."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from sonoedge import zoo
from sonoedge.bench.pipeline import make_inputs
from sonoedge.bench.pipeline import run as bench_run
from sonoedge.errors import ConfigError
from sonoedge.pipeline import Pipeline
from sonoedge.pipeline.stages import OpStage
from sonoedge.processing import registry
from sonoedge.types import IQEnsemble


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SONOEDGE_KEYS_DIR", str(tmp_path / "trusted"))
    monkeypatch.setenv("SONOEDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SONOEDGE_SIGNING_KEY", raising=False)


def test_every_shipped_student_is_a_registry_method_of_its_op() -> None:
    shipped = zoo.shipped_methods()
    assert "sonic-16" in shipped["doppler"] and "despeckle-mk" in shipped["despeckle"]
    for op, names in shipped.items():
        for name in names:
            fn = registry.get_method(op, name)
            assert "student" in registry.describe(fn)
    with pytest.raises(ConfigError, match="model bundle"):
        registry.get_method("doppler", "sonic-999")


def test_sonic_stage_gets_prf_and_spacing_from_each_ensemble() -> None:
    (sample,) = make_inputs("doppler", 1, (64, 64))
    assert isinstance(sample, IQEnsemble)
    pipe = Pipeline.from_preset("doppler-sonic", queue_size=4)
    (result,) = [r for r in pipe.run(iter([sample])) if r.processed]
    assert result.error is None, result.error
    want = zoo.load("sonic-16").power_doppler(sample.iq, sample.prf_hz, sample.spacing_m)
    np.testing.assert_allclose(result.image, want, atol=1e-3)
    # an ensemble at a PRF the student was not trained for is refused with the trained range
    odd = IQEnsemble(
        spacing_m=sample.spacing_m, timestamp_s=time.time(), iq=sample.iq, prf_hz=50_000.0
    )
    (bad,) = [r for r in Pipeline.from_preset("doppler-sonic").run(iter([odd])) if r.processed]
    assert bad.error is not None and "500..2000 Hz" in bad.error


def test_student_on_openvino_matches_onnxruntime() -> None:
    pytest.importorskip("openvino")
    image = np.random.default_rng(0).random((64, 48), dtype=np.float32)
    cpu = OpStage("despeckle", "despeckle-mk")
    ov = OpStage("despeckle", "despeckle-mk", device="openvino-cpu")
    assert getattr(ov.fn, "__self__", None) is None  # a plain method, same interface
    np.testing.assert_allclose(ov.fn(image), cpu.fn(image), atol=1e-4)
    assert zoo.load_model("despeckle-mk", device="openvino-cpu").device == "openvino-cpu"


def test_a_signed_bundle_is_a_stage_and_a_wrong_op_is_refused(tmp_path: Path) -> None:
    from sonoedge.devices import signing
    from sonoedge.devices.package import package

    private, public = signing.generate_keypair(tmp_path / "keys", "test")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / public.name).write_bytes(public.read_bytes())
    bundle = package(zoo.resolve("despeckle-mk"), "cpu", tmp_path / "mk.zip", private)
    image = np.random.default_rng(1).random((40, 40), dtype=np.float32)
    stage = OpStage("despeckle", str(bundle), device="cpu")
    np.testing.assert_allclose(
        stage.fn(image), zoo.load_model("despeckle-mk").despeckle(image), atol=1e-5
    )
    with pytest.raises(ConfigError, match="'despeckle' student"):
        OpStage("doppler", str(bundle))
    unsigned = package(zoo.resolve("despeckle-mk"), "cpu", tmp_path / "u.zip", None)
    with pytest.raises(ConfigError, match=r"u\.zip is not signed"):
        OpStage("despeckle", str(unsigned))


def test_bench_compares_a_student_preset_with_its_classical_counterpart() -> None:
    out = bench_run("doppler-sonic", count=8, quick=True)
    vs = out["baselines"]["versus"]
    assert vs["preset"] == "doppler" and vs["methods"] == ["doppler/svd_ssm"]
    assert out["baselines"]["fps_vs_doppler"] == vs["fps_ratio"] > 0
    assert vs["fps"] > 0 and out["metrics"]["methods"] == ["doppler/sonic-16"]
    with pytest.raises(ConfigError, match="different inputs"):
        bench_run("doppler-sonic", count=4, quick=True, versus="bmode")


def test_process_cli_runs_a_student_with_the_files_prf_and_spacing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sonoedge.cli import app

    (sample,) = make_inputs("doppler", 1, (48, 48))
    assert isinstance(sample, IQEnsemble)
    src = tmp_path / "ens.npz"
    z = np.arange(48) * sample.spacing_m[0]
    x = np.arange(48) * sample.spacing_m[1]
    np.savez(src, iq=sample.iq, prf_hz=sample.prf_hz, z_m=z, x_m=x)
    out = tmp_path / "pd.npz"
    args = ["process", str(src), "--op", "doppler", "--method", "sonic-16", "-o", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    want = zoo.load("sonic-16").power_doppler(sample.iq, sample.prf_hz, sample.spacing_m)
    np.testing.assert_allclose(np.load(out)["power_db"], want, atol=1e-3)
    np.savez(src, iq=sample.iq, z_m=z, x_m=x)  # no PRF in the file: the student says so
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "prf_hz is missing" in str(res.exception or res.output)


def test_image_student_stage_takes_a_self_ensemble() -> None:
    """``params = { self_ensemble = N }`` reaches the student, on onnxruntime and on OpenVINO
    (8 copies of a non-square frame: two input shapes); a bad N is a ConfigError."""
    image = np.random.default_rng(1).random((64, 48), dtype=np.float32)
    model = zoo.load_model("enhance-student")
    stage = OpStage("enhance", "enhance-student", params={"self_ensemble": 4})
    np.testing.assert_allclose(stage.process(image, None, None), model.enhance(image, 4), atol=1e-6)
    if importlib.util.find_spec("openvino") is not None:
        ov = OpStage("enhance", "enhance-student", {"self_ensemble": 8}, device="openvino-cpu")
        np.testing.assert_allclose(
            ov.process(image, None, None), model.enhance(image, 8), atol=1e-4
        )
    with pytest.raises(ConfigError, match="self_ensemble=3"):
        OpStage("enhance", "enhance-student", params={"self_ensemble": 3}).process(
            image, None, None
        )


def test_process_cli_runs_an_openvino_bundle_on_its_device(tmp_path: Path) -> None:
    """A shipped OpenVINO bundle (an IR, no ONNX) named on the CLI runs on ``--device
    openvino-cpu`` (the method check before reading the input loads it there, not on the CPU)."""
    pytest.importorskip("openvino")
    from typer.testing import CliRunner

    from sonoedge.cli import app

    name = "enhance-student-int8-openvino-cpu"
    if name not in zoo.shipped_bundles():
        pytest.skip(f"no shipped {name} in this checkout")
    rng = np.random.default_rng(2)
    image = np.clip(0.5 + 0.1 * rng.standard_normal((64, 80)), 0, 1).astype(np.float32)
    image[20:40, 30:50] *= 0.2  # speckle-like noise around a dark region
    src, out = tmp_path / "img.npy", tmp_path / "out.npy"
    np.save(src, image)
    args = ["process", str(src), "--op", "enhance", "--method", name, "-o", str(out)]
    res = CliRunner().invoke(app, [*args, "--device", "openvino-cpu"])
    assert res.exit_code == 0, f"{res.output} {res.exception}"
    fp32 = zoo.load_model("enhance-student").enhance(image)
    assert np.abs(np.load(out) - fp32).mean() < 0.01  # int8 against the fp32 student
