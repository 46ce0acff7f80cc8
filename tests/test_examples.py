"""The embedding examples run as users would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sonoedge

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        encoding="utf-8",
    ).stdout


def test_minimal_probe_app() -> None:
    out = run_example("minimal_probe_app.py", "emulator://?preset=doppler&iq_shape=32x32", "1")
    assert "ensemble (16, 32, 32)" in out and " 0 rejected" in out


def test_recorder(tmp_path: Path) -> None:
    out = run_example(
        "recorder.py", str(tmp_path / "r.h5"), "emulator://?preset=bmode&bmode_shape=32x32", "1"
    )
    assert "BMODE_FRAME" in out and "IMU_BATCH" in out


def test_custom_stage() -> None:
    out = run_example("custom_stage.py", "emulator://?preset=doppler&iq_shape=32x32", "1.5")
    assert "% vessel" in out and "results at" in out


def test_batch_processor(tmp_path: Path) -> None:
    rec_dir = tmp_path / "recs"
    rec_dir.mkdir()
    url = "emulator://?preset=doppler&iq_shape=32x32&ensemble_rate_hz=20"
    with sonoedge.open_probe(url, record=rec_dir / "a.h5") as probe:
        sum(1 for _ in probe.samples(seconds=0.6))
    out = run_example("batch_processor.py", str(rec_dir), str(tmp_path / "out"))
    assert "a.h5:" in out and (tmp_path / "out" / "a_doppler.mp4").stat().st_size > 0
