"""The CLI of the probe link: real processes, real exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SONOEDGE = str(Path(sys.executable).with_name("sonoedge"))


def run(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SONOEDGE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        encoding="utf-8",
    )


def test_help_lists_the_commands() -> None:
    out = run("--help")
    assert out.returncode == 0
    for command in ("probe", "stream", "demo", "bench"):
        assert command in out.stdout


def test_stream_json_and_record(tmp_path: Path) -> None:
    rec = tmp_path / "s.h5"
    out = run(
        "stream",
        "emulator://?preset=bmode&bmode_shape=32x32",
        "--seconds",
        "1",
        "--json",
        "--record",
        str(rec),
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["samples"]["BmodeFrame"] >= 15
    assert summary["rejected"] == {} and summary["sequence_lost"] == 0
    replay = run("stream", f"file://{rec}?speed=max", "--json")
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["samples"]["BmodeFrame"] >= summary["samples"]["BmodeFrame"]


def test_probe_info() -> None:
    out = run("probe", "info", "emulator://?preset=doppler")
    assert out.returncode == 0, out.stderr
    assert "virtual-L7" in out.stdout and "7.50 MHz" in out.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["stream", "/dev/ttyNOPE0"], "no probe at /dev/ttyNOPE0", 1),
        (["stream", "gopher://x"], "unsupported probe URL scheme", 2),
        (["stream", "not-a-recording.h5"], "does not exist", 1),
        (["probe", "emulate", "--preset", "mri"], "unknown emulator preset", 2),
    ],
)
def test_errors_are_clear_and_without_traceback(args: list[str], message: str, code: int) -> None:
    out = run(*args)
    assert out.returncode == code
    assert message in out.stderr and "hint:" in out.stderr
    assert "Traceback" not in out.stderr


def test_emulate_on_a_pty_then_stream_through_pyserial(tmp_path: Path) -> None:
    link = tmp_path / "ttyVIRTUAL"
    emulator = subprocess.Popen(
        [
            SONOEDGE,
            "probe",
            "emulate",
            "--link",
            str(link),
            "--seconds",
            "20",
            "-o",
            "bmode_shape=32x32",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        for _ in range(100):
            if link.exists():
                break
            time.sleep(0.05)
        out = run("stream", str(link), "--seconds", "1", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["samples"]["BmodeFrame"] >= 15
    finally:
        emulator.terminate()
        emulator.wait(5)


def test_bench_ingest_quick_json() -> None:
    out = run("bench", "ingest", "--quick", "--json", "--repeats", "1")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("decode_mb_s", "imu_msgs_s", "valid_lost", "corrupt_accepted"):
        assert key in result
    assert result["valid_lost"] == 0 and result["corrupt_accepted"] == 0
    assert result["decode_mb_s"] > 0


def test_demo(tmp_path: Path) -> None:
    out = run("demo", "--seconds", "1", cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    demo_dir = tmp_path / "sonoedge-demo"
    assert "report:" in out.stdout and (demo_dir / "index.html").exists()
    assert (demo_dir / "recording.h5").stat().st_size > 0
    page = (demo_dir / "index.html").read_text(encoding="utf-8")
    assert (demo_dir / "sweep_volume.nrrd").stat().st_size > 0
    figures = (
        "bmode_input.png",
        "bmode_despeckle.png",
        "doppler_power.png",
        "bmode-students_despeckle.png",  # the shipped MK student
        "doppler-sonic_power.png",  # the shipped SONIC student
        "sweep_mips.png",
    )
    for figure in figures:
        assert figure in page and (demo_dir / figure).exists()
    assert "doppler-sonic (sonic-16)" in page


def test_stream_with_a_pipeline_preset(tmp_path: Path) -> None:
    out = run(
        "stream",
        "emulator://?preset=doppler&iq_shape=32x32&ensemble_rate_hz=20",
        "--preset",
        "doppler",
        "--seconds",
        "1.2",
        "--json",
        "--record",
        str(tmp_path / "p.h5"),
        "--video",
        str(tmp_path / "p.mp4"),
    )
    assert out.returncode == 0, out.stderr
    pipeline = json.loads(out.stdout)["pipeline"]
    assert pipeline["results"] >= 5 and pipeline["errors"] == 0
    assert (
        pipeline["sinks"]["recording"]["written"] >= 5 and pipeline["sinks"]["video"]["failed"] == 0
    )


def test_show_without_a_display_says_what_to_do() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run(
        [SONOEDGE, "stream", "emulator://", "--preset", "bmode", "--show", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        encoding="utf-8",
    )
    assert out.returncode == 2 and "needs a window" in out.stderr and "Traceback" not in out.stderr


def test_bench_pipeline_quick_json() -> None:
    out = run("bench", "pipeline", "--preset", "bmode", "--quick", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["fps"] > 0 and set(result["stages"]) == {"bmode", "despeckle", "enhance"}
    assert result["baselines"]["sequential_fps"] > 0
    # the paced stream's first second is reported apart from the steady-state latency
    assert result["startup_results"] > 0
    assert result["startup_end_to_end_max_ms"] > 0
    assert 0 < result["end_to_end_p50_ms"] <= result["end_to_end_p99_ms"]


def test_bench_overview_compares_students_with_classical_presets() -> None:
    out = run("bench", "--quick", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    pipelines = result["pipelines"]
    assert {"bmode", "bmode-students", "doppler", "doppler-sonic"} <= set(pipelines)
    assert pipelines["doppler-sonic"]["baselines"]["versus"]["preset"] == "doppler"
    assert pipelines["bmode-students"]["baselines"]["fps_vs_bmode"] > 0
    assert result["ingest"]["metrics"]["decode_mb_s"] > 0
