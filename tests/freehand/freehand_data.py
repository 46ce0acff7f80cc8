"""Paths and small builders shared by the freehand tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sonoedge.types import ProbeInfo

PLUS_DATA = Path(os.environ.get("SONOEDGE_PLUS_DATA", "/work/shared/data/plus"))
NWIRE = PLUS_DATA / "NwirePhantomFreehand.igs.mha"
NWIRE_CONFIG = PLUS_DATA / "PlusDeviceSet_NwirePhantomFreehand_vtkVolumeReconstructorTest2.xml"
NWIRE_RECON = PLUS_DATA / "NwirePhantomFreehandReconstructed.mha"


def small_probe(imu_to_image: np.ndarray | None = None) -> ProbeInfo:
    return ProbeInfo(
        n_elements=64,
        pitch_m=0.3e-3,
        depth_range_m=(0.0, 0.02),
        imu_to_image=np.eye(4) if imu_to_image is None else imu_to_image,
    )


def tilted_calibration() -> np.ndarray:
    """IMU axes turned 90° about the elevation axis, 4 cm above the contact point."""
    calib = np.eye(4)
    calib[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    calib[:3, 3] = [0.0, -0.04, 0.0]
    return calib
