"""``sonoedge keys``, ``package``, ``verify``, ``devices`` and ``bench model`` through the
console entry point (errors must come as one line, without a traceback)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sonoedge.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["sonoedge", *args])
        for k, v in (env or {}).items():
            mp.setitem(os.environ, k, v)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


def test_keys_package_verify_bench(tmp_path: Path, tiny_model: Path) -> None:
    res = _run("keys", "generate", "-o", str(tmp_path / "k"), "--name", "me", "--trust")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "k" / "me.key").stat().st_mode & 0o777 == 0o600
    bundle = tmp_path / "tiny.zip"
    res = _run(
        "package",
        str(tiny_model),
        "-t",
        "cpu",
        "-o",
        str(bundle),
        "-k",
        str(tmp_path / "k" / "me.key"),
    )
    assert res.returncode == 0 and "signed" in res.stdout, res.stderr
    res = _run("verify", str(bundle))
    assert res.returncode == 0 and res.stdout.startswith("ok: tiny 1.0.0"), res.stderr
    res = _run("bench", "model", str(bundle), "--device", "cpu", "--repeats", "5", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["backend"] == "cpu" and out["input_shapes"] == {"x": [1, 8, 16, 16]}
    assert 0 < out["median_ms"] <= out["p99_ms"] <= out["max_ms"] and out["cold_start_s"] > 0


def test_signing_key_from_the_environment(tmp_path: Path, tiny_model: Path) -> None:
    assert _run("keys", "generate", "-o", str(tmp_path), "--name", "ci").returncode == 0
    env = {"SONOEDGE_SIGNING_KEY": str(tmp_path / "ci.key")}
    res = _run("package", str(tiny_model), "-o", str(tmp_path / "b"), env=env)
    assert res.returncode == 0 and "(signed)" in res.stdout, res.stderr
    res = _run("verify", str(tmp_path / "b"), "--key", str(tmp_path / "ci.pub"), "--json")
    assert json.loads(res.stdout)["manifest"]["target"] == "cpu"


def test_errors_are_one_line_without_traceback(tmp_path: Path, tiny_model: Path) -> None:
    res = _run("package", str(tiny_model), "-o", str(tmp_path / "b"))
    assert res.returncode != 0 and "error: no signing key" in res.stderr
    res = _run("package", str(tiny_model), "--unsigned", "-o", str(tmp_path / "u"))
    assert res.returncode == 0 and "unsigned" in res.stdout
    for args in (
        ("verify", str(tmp_path / "u")),
        ("verify", str(tmp_path / "missing.zip")),
        ("bench", "model", str(tmp_path / "u")),
        ("package", str(tiny_model), "-t", "tpu", "--unsigned", "-o", str(tmp_path / "x")),
    ):
        res = _run(*args)
        assert res.returncode != 0 and res.stderr.startswith("error: "), (args, res.stderr)
        assert "Traceback" not in res.stderr
    res = _run("bench", "model", str(tmp_path / "u"), "--allow-unsigned", "--repeats", "2")
    assert res.returncode == 0 and "latency median" in res.stdout


def test_bench_model_at_a_given_shape(tmp_path: Path, tiny_model: Path) -> None:
    assert _run("package", str(tiny_model), "--unsigned", "-o", str(tmp_path / "u")).returncode == 0
    args = ("bench", "model", str(tmp_path / "u"), "--allow-unsigned", "--repeats", "2")
    res = _run(*args, "--shape", "2,8,20,12", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["input_shapes"] == {"x": [2, 8, 20, 12]}
    for shape, message in (
        ("1,3,16,16", "error: "),
        ("1,8,a", "error: --shape '1,8,a' is invalid"),
    ):
        res = _run(*args, "--shape", shape)
        assert res.returncode != 0 and res.stderr.startswith(message), res.stderr
        assert "Traceback" not in res.stderr


def test_devices_reports_this_machine() -> None:
    res = _run("devices", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert "CPUExecutionProvider" in info["onnxruntime_providers"]
    assert info["targets"]["cpu"]["available"] and info["auto"] in info["targets"]
    assert info["targets"]["jetson-orin-nano"]["backends"][0] == "tensorrt"
