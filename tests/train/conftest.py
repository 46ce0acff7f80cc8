"""Shared fixtures: one quick SONIC run (tiny model, tiny data) for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sonic-cache")


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """``sonoedge train sonic --quick`` through the real CLI, uninterrupted."""
    from sonoedge.cli import app

    out = tmp_path_factory.mktemp("runs") / "quick"
    args = ["train", "sonic", "--quick", "--out", str(out), "--cache", str(cache_dir)]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    return out
