"""Fixtures: PLUS sample data (skipped when absent), small probes and a simulated fan sweep.

The PLUS files are looked up in ``$SONOEDGE_PLUS_DATA`` (default ``/work/shared/data/plus``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sonoedge.synth.sweeps import simulate_sweep
from sonoedge.types import ProbeInfo, Sweep

PLUS_DATA = Path(os.environ.get("SONOEDGE_PLUS_DATA", "/work/shared/data/plus"))


@dataclass(frozen=True)
class PlusFiles:
    nwire: Path
    config: Path
    recon: Path


@pytest.fixture(scope="session")
def plus_data() -> PlusFiles:
    files = PlusFiles(
        PLUS_DATA / "NwirePhantomFreehand.igs.mha",
        PLUS_DATA / "PlusDeviceSet_NwirePhantomFreehand_vtkVolumeReconstructorTest2.xml",
        PLUS_DATA / "NwirePhantomFreehandReconstructed.mha",
    )
    if not all(p.exists() for p in (files.nwire, files.config, files.recon)):
        pytest.skip(f"PLUS sample data not found at {PLUS_DATA} (set SONOEDGE_PLUS_DATA)")
    return files


def _small_probe(imu_to_image: np.ndarray | None = None) -> ProbeInfo:
    return ProbeInfo(
        n_elements=64,
        pitch_m=0.3e-3,
        depth_range_m=(0.0, 0.02),
        imu_to_image=np.eye(4) if imu_to_image is None else imu_to_image,
    )


@pytest.fixture(scope="session")
def small_probe() -> Callable[..., ProbeInfo]:
    """A 19.2 mm wide, 20 mm deep linear probe (optionally with an IMU calibration)."""
    return _small_probe


@pytest.fixture(scope="session")
def tilted_calibration() -> np.ndarray:
    """IMU axes turned 90° about the elevation axis, 4 cm above the contact point."""
    calib = np.eye(4)
    calib[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    calib[:3, 3] = [0.0, -0.04, 0.0]
    return calib


@pytest.fixture(scope="session")
def fan_sweep(tilted_calibration: np.ndarray) -> Sweep:
    return simulate_sweep(
        _small_probe(tilted_calibration),
        "fan",
        seed=3,
        n_frames=40,
        frame_rate_hz=20.0,
        spacing_m=(0.4e-3, 0.4e-3),
        imu_time_offset_s=0.03,
    )
