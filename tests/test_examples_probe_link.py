"""The embedding examples run as users would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_minimal_probe_app() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "minimal_probe_app.py"),
            "emulator://?preset=doppler&iq_shape=32x32",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "ensemble (16, 32, 32)" in out and " 0 rejected" in out


def test_recorder(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "recorder.py"),
            str(tmp_path / "r.h5"),
            "emulator://?preset=bmode&bmode_shape=32x32",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "BMODE_FRAME" in out and "IMU_BATCH" in out
