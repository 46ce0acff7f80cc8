"""Shared fixtures: one quick ULM run (tiny generator and localiser) for the session."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def ulm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sonoedge train ulm --quick`` through the real CLI."""
    from sonoedge.cli import app

    out = tmp_path_factory.mktemp("runs") / "ulm-quick"
    cache = tmp_path_factory.mktemp("ulm-cache")
    args = ["train", "ulm", "--quick", "--out", str(out), "--cache", str(cache), "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out
