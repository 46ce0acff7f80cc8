"""Benchmark results go to docs/results, or where SONOEDGE_RESULTS_DIR says, with their record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WRITE = (
    "from sonoedge.bench.results import write_result; "
    "print(write_result('probe', {'x': 1}, command='probe'))"
)


def test_results_dir_follows_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "SONOEDGE_RESULTS_DIR": str(tmp_path / "out")}
    run = subprocess.run(
        [sys.executable, "-c", WRITE], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    written = Path(run.stdout.strip())
    assert written == tmp_path / "out" / "probe.json"
    record = json.loads(written.read_text(encoding="utf-8"))
    assert record["command"] == "probe" and record["metrics"] == {"x": 1}
    assert record["commit"] == "unknown"  # tmp_path is not a git checkout
    env.pop("SONOEDGE_RESULTS_DIR")
    run = subprocess.run(
        [sys.executable, "-c", WRITE], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert Path(run.stdout.strip()) == Path("docs/results/probe.json")
    assert (tmp_path / "docs" / "results" / "probe.json").is_file()


def test_eval_writes_where_the_environment_says(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`sonoedge eval` without --results-dir follows SONOEDGE_RESULTS_DIR like the benchmarks."""
    from typer.testing import CliRunner

    from sonoedge.bench import results
    from sonoedge.cli import app
    from sonoedge.train import get_task

    seen: list[Path] = []
    module = get_task("enhance")

    def evaluate(model, cfg, results_dir, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(Path(results_dir))
        return {}

    monkeypatch.setattr(module, "evaluate", evaluate)
    monkeypatch.setattr(module, "summarize", lambda metrics: "ok")
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path / "env")
    runner = CliRunner()
    args = ["eval", "enhance", "--model", "enhance-student", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--results-dir", str(tmp_path / "flag")]).exit_code == 0
    assert seen == [tmp_path / "env", tmp_path / "flag"]
