"""Fixtures: PLUS sample data (skipped when absent) and a small simulated fan sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from freehand_data import NWIRE, PLUS_DATA, small_probe, tilted_calibration

from sonoedge.synth.sweeps import simulate_sweep
from sonoedge.types import Sweep


@pytest.fixture(scope="session")
def plus_data() -> Path:
    if not NWIRE.exists():
        pytest.skip(f"PLUS sample data not found at {PLUS_DATA} (set SONOEDGE_PLUS_DATA)")
    return PLUS_DATA


@pytest.fixture(scope="session")
def fan_sweep() -> Sweep:
    return simulate_sweep(
        small_probe(tilted_calibration()),
        "fan",
        seed=3,
        n_frames=40,
        frame_rate_hz=20.0,
        spacing_m=(0.4e-3, 0.4e-3),
        imu_time_offset_s=0.03,
    )
