"""Bubble frames from PyMUST (sonoedge.synth.pymust_bubbles) and the cross-simulator benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sonoedge.errors import ConfigError
from sonoedge.synth.microbubbles import BubbleParams, simulate_bubbles

LAM = 1540.0 / 7.6e6


def params(**kw: object) -> BubbleParams:
    base: dict[str, object] = {
        "center_frequency_hz": 7.6e6,
        "pitch_m": 0.7 * LAM,
        "spacing_m": (LAM / 4, LAM / 4),
        "concentration_per_mm2": 0.02 / (LAM * 1e3) ** 2,
        "snr_db": 60.0,
    }
    return BubbleParams(**{**base, **kw})  # type: ignore[arg-type]


def test_pymust_images_the_scene_of_our_simulator_where_it_is() -> None:
    """Same seed, same bubbles; every isolated bubble's envelope peak lies within half a pixel
    of its true position (no axial or lateral offset between the simulators' coordinates)."""
    pytest.importorskip("pymust")
    from sonoedge.synth.pymust_bubbles import simulate_bubbles_pymust

    p = params()
    pm = simulate_bubbles_pymust(p, 3, 48, 48, seed=3)
    ours = simulate_bubbles(p, 3, 48, 48, seed=3)
    offsets = []
    for frame, truth, same in zip(pm.frames, pm.positions_m, ours.positions_m, strict=True):
        np.testing.assert_array_equal(truth, same)
        px = truth / (LAM / 4)
        for k, (z, x) in enumerate(px):
            others = np.delete(px, k, axis=0)
            if len(others) and np.min(np.hypot(*(others - (z, x)).T)) < 12:  # 3 wavelengths
                continue
            iz, ix = round(z), round(x)
            if not (3 <= iz < 45 and 3 <= ix < 45):
                continue
            w = frame[iz - 2 : iz + 3, ix - 2 : ix + 3]
            a, b = np.unravel_index(np.argmax(w), w.shape)
            offsets.append((iz - 2 + a - z, ix - 2 + b - x))
    assert len(offsets) >= 3
    assert np.abs(np.asarray(offsets)).max() <= 1.0
    assert np.abs(np.mean(offsets, axis=0)).max() < 0.5


def test_pymust_noise_is_at_the_stated_snr() -> None:
    """Without bubbles a frame is noise of power 10^(-SNR/10) of a median bubble's peak power."""
    pytest.importorskip("pymust")
    from sonoedge.synth.pymust_bubbles import simulate_bubbles_pymust

    b = simulate_bubbles_pymust(params(concentration_per_mm2=0.0, snr_db=20.0), 2, 32, 32, 0)
    assert not any(len(t) for t in b.positions_m)
    assert np.mean(np.abs(b.iq) ** 2) == pytest.approx(0.01, rel=0.1)


def test_missing_pymust_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from sonoedge.synth import pymust_bubbles

    monkeypatch.setitem(sys.modules, "pymust", None)
    with pytest.raises(ConfigError, match="PyMUST is not installed") as err:
        pymust_bubbles.simulate_bubbles_pymust(params(), 1, 32, 32, 0)
    assert err.value.hint is not None and "sonoedge[validation]" in err.value.hint


def test_cross_simulator_benchmark_quick(tmp_path: Path) -> None:
    """`benchmarks/ulm_pymust.py --quick --psf-fit`: both shipped localisers find the bubbles of
    PyMUST's frames, scored beside our simulator's frames of the same scenes, and the guided one
    refined by the PSF fit beside them."""
    pytest.importorskip("pymust")
    script = Path(__file__).parents[2] / "benchmarks" / "ulm_pymust.py"
    args = [sys.executable, str(script), "--quick", "--psf-fit", "--results-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}  # CI's console: the output stays ASCII
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    m = json.loads((tmp_path / "ulm_pymust.json").read_text(encoding="utf-8"))["metrics"]
    assert m["models"] == {"network": "ulm-localizer-pg", "network_ulm-localizer": "ulm-localizer"}
    for sim in ("pymust", "ours"):
        jac = m["jaccard_at_30db"][sim]
        assert len(jac["network"]) == len(m["densities_per_lambda2"])
        assert np.mean(jac["network"]) > 0.3 and np.mean(jac["network_ulm-localizer"]) > 0.3
        assert len(jac["network_psf_fit"]) == len(jac["network"])  # --psf-fit scores the fit
    assert set(m["conventional_tuned_on_pymust_val"]) >= {"gaussian_fit", "weighted_centroid"}
    assert (tmp_path / "ulm_pymust.png").stat().st_size > 5_000


def test_training_renderer_images_bubbles_with_pymust() -> None:
    """`ulm_data.Renderer(engine="pymust")`: bubbles where they were put, on the localiser's
    scale of the physics renders; an unknown engine is refused."""
    pytest.importorskip("pymust")
    from sonoedge.train import ulm_data as ud

    p = ud.FrameParams(snr_db=40.0, clutter_db=-40.0, pitch_wavelengths=0.7)
    truth = np.array([[8.3, 9.6], [22.6, 21.2]])
    iq = ud.Renderer(p, (32, 32), engine="pymust").render(truth, [1.0, 1.0], seed=0)
    for z, x in truth:
        iz, ix = round(z), round(x)
        w = np.abs(iq)[iz - 2 : iz + 3, ix - 2 : ix + 3]
        a, b = np.unravel_index(np.argmax(w), w.shape)
        assert abs(iz - 2 + a - z) <= 1.0 and abs(ix - 2 + b - x) <= 1.0
    pm = ud.render_set(4, (32, 32), 5, "train", (0.05, 0.2), engine="pymust")
    ours = ud.render_set(4, (32, 32), 5, "train", (0.05, 0.2))
    assert [len(q) for q in pm.positions] == [len(q) for q in ours.positions]
    assert abs(float(pm.loc_input.max()) - float(ours.loc_input.max())) < 0.2
    with pytest.raises(ConfigError, match="engine"):
        ud.Renderer(p, (32, 32), engine="field2")


def test_quick_training_with_pymust_frames(tmp_path: Path) -> None:
    """`data.n_pymust` adds PyMUST frames of other bubbles to the training set; the model card
    says so and records their data spec's engine."""
    pytest.importorskip("pymust")
    from typer.testing import CliRunner

    from sonoedge.cli import app

    config = tmp_path / "pm.toml"
    config.write_text("[data]\nn_pymust = 8\n", encoding="utf-8")
    out = tmp_path / "ulm-pm"
    args = ["train", "ulm", "--quick", "--config", str(config), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "8 frames of other bubbles imaged by PyMUST" in (out / "ulm-localizer.md").read_text(
        encoding="utf-8"
    )
    card = json.loads((out / "ulm-localizer.json").read_text(encoding="utf-8"))
    assert card["provenance"]["config"]["data"]["n_pymust"] == 8
    assert len(list((tmp_path / "cache").glob("ulm-pymust-*.npz"))) == 1
