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


@pytest.fixture(scope="session")
def ulm_pg_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick physics-guided localiser (``localizer.physics_guided``) whose generator frames
    come from the shipped generator (``localizer.generator``): no generator is trained."""
    from sonoedge.cli import app

    root = tmp_path_factory.mktemp("runs-pg")
    config = root / "pg.toml"
    config.write_text(
        '[localizer]\nphysics_guided = true\ngenerator = "ulm-generator"\n'
        "accepted_pitch_wavelengths = [0.25, 2.0]\n",
        encoding="utf-8",
    )
    out, cache = root / "ulm-pg", tmp_path_factory.mktemp("ulm-pg-cache")
    args = ["train", "ulm", "--quick", "--config", str(config), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--cache", str(cache), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out
