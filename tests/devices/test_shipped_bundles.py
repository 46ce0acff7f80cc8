"""The signed bundles shipped in the package: trusted by the shipped project key, runnable, and
close to the fp32 students they were made from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonoedge import zoo
from sonoedge.bench.pipeline import make_inputs
from sonoedge.devices import load_bundle
from sonoedge.devices.bundle import open_bundle
from sonoedge.errors import ConfigError
from sonoedge.pipeline.stages import OpStage
from sonoedge.types import IQEnsemble

BUNDLES = zoo.shipped_bundles()


@pytest.fixture(autouse=True)
def _no_user_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the project key shipped in the package is trusted."""
    monkeypatch.setenv("SONOEDGE_KEYS_DIR", str(tmp_path / "trusted"))
    monkeypatch.setenv("SONOEDGE_CACHE_DIR", str(tmp_path / "cache"))


def test_every_shipped_student_has_fp32_and_int8_bundles_for_openvino_and_jetson() -> None:
    index = json.loads((zoo.BUNDLE_DIR / "index.json").read_text(encoding="utf-8"))
    assert set(index["bundles"]) == {f"{n}.zip" for n in BUNDLES}
    students = [n for names in zoo.shipped_methods().values() for n in names]
    assert {"sonic-16", "sonic-8", "despeckle-mk"} <= set(students)
    for student in students:
        # physics-guided students (a second input) are not bundled; the index says why
        guided = bool(zoo.read_card(zoo.resolve(student))["input"].get("params"))
        for target in ("openvino-cpu", "jetson-orin-nano"):
            if guided:
                from sonoedge.devices.release import GUIDED

                assert index["not_shipped"][f"{student}-fp32-{target}.zip"] == GUIDED
            else:
                assert f"{student}-fp32-{target}" in BUNDLES
            name = f"{student}-int8-{target}.zip"
            assert name in index["bundles"] or name in index["not_shipped"]
    for entry in index["bundles"].values():
        assert entry["bytes"] <= 5_000_000
        if entry["precision"] == "int8":
            assert abs(entry["vs_fp32"]["drop"]) <= 0.5


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_shipped_bundle_verifies_with_the_project_key(name: str) -> None:
    bundle = open_bundle(BUNDLES[name])
    try:
        assert bundle.signer is not None and bundle.manifest["task"] in zoo.TASK_OPS
    finally:
        bundle.close()


def test_int8_despeckle_bundle_runs_close_to_the_fp32_student() -> None:
    image = np.random.default_rng(3).random((64, 64), dtype=np.float32) * 0.8
    fp32 = zoo.load_model("despeckle-mk").despeckle(image)
    for name in ("despeckle-mk-int8-jetson-orin-nano", "despeckle-mk-int8-openvino-cpu"):
        out = OpStage("despeckle", name, device="auto").fn(image)
        assert out.shape == image.shape
        assert float(np.mean(np.abs(out - fp32))) < 0.02, name


def test_sonic_bundle_as_a_stage_matches_the_student() -> None:
    (sample,) = make_inputs("doppler", 1, (64, 64))
    assert isinstance(sample, IQEnsemble)
    want = zoo.load("sonic-16").power_doppler(sample.iq, sample.prf_hz, sample.spacing_m)
    stage = OpStage("doppler", "sonic-16-fp32-openvino-cpu", device="cpu")
    got = stage.fn(sample.iq, prf_hz=sample.prf_hz, spacing_m=sample.spacing_m)
    np.testing.assert_allclose(got, want, atol=1e-3)
    with load_bundle(BUNDLES["sonic-16-fp32-jetson-orin-nano"], "auto") as runner:
        assert runner.target != "jetson-orin-nano"  # no Jetson here: the fallback is logged
    with pytest.raises(ConfigError, match="cannot run op"):
        OpStage("despeckle", "sonic-16-fp32-openvino-cpu")


def test_bench_model_takes_a_shipped_bundle_name() -> None:
    from typer.testing import CliRunner

    from sonoedge.cli import app

    args = ["bench", "model", "despeckle-mk-int8-openvino-cpu", "--repeats", "3", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["precision"] == "int8" and out["median_ms"] > 0


def test_bench_model_feeds_sonic_channels_last_on_request() -> None:
    from typer.testing import CliRunner

    from sonoedge.cli import app

    args = ["bench", "model", "sonic-8-int8-openvino-cpu", "--repeats", "3", "--json"]
    for extra, want in (([], []), (["--channels-last"], ["iq"])):
        res = CliRunner().invoke(app, [*args, *extra])
        assert res.exit_code == 0, res.output
        out = json.loads(res.output.strip().splitlines()[-1])
        assert out["channels_last"] == want and out["input_shapes"]["iq"][1] == 16


@pytest.mark.parametrize("name", sorted(n for n in BUNDLES if n.endswith("openvino-cpu")))
def test_shipped_bundle_runs_at_the_example_shape_it_declares(name: str) -> None:
    """``--warmup`` and ``bench model`` run the manifest's example shape: it must be one the
    model accepts (the space-to-depth enhancement student needs sides in multiples of 8)."""
    with load_bundle(BUNDLES[name], "openvino-cpu") as runner:
        assert all("example_shape" in spec for spec in runner.inputs)
        outputs = runner.run(runner.example_inputs())
        assert all(np.isfinite(v).all() for v in outputs.values())


def test_a_process_exits_cleanly_with_a_static_compile_in_flight() -> None:
    """One image through an OpenVINO bundle starts the static-shape compile in the background;
    exiting right after it aborted the process (exit 134) while that thread was a daemon."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from sonoedge.pipeline.stages import OpStage\n"
        "img = np.random.default_rng(3).random((64, 64), dtype=np.float32) * 0.8\n"
        "OpStage('despeckle', 'despeckle-mk-int8-openvino-cpu', device='auto').fn(img)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=120, capture_output=True)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-500:]
