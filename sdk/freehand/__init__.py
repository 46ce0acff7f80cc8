"""Freehand 3D: IMU orientation, time alignment, pose models, compounding and hole filling.

The usual path is :func:`estimate_poses` (IMU or tracked poses per frame) then
:func:`reconstruct_sweep` (a :class:`~sonoedge.types.Volume` plus its accumulation volume);
:class:`VolumeReconstructor` pastes frames one by one for live use. PLUS sequence files and
configs are read by :mod:`sonoedge.io.plus`; volumes are written by :mod:`sonoedge.io.volume`.
"""

from sonoedge.freehand.holes import fill_holes
from sonoedge.freehand.poses import OutOfPlaneEstimator, SweepPoses, pixel_to_world
from sonoedge.freehand.quality import sweep_quality
from sonoedge.freehand.reconstruct import ClipRectangle, FanMask, OutputGrid, VolumeReconstructor
from sonoedge.freehand.sweep import (
    ReconstructionResult,
    estimate_poses,
    reconstruct,
    reconstruct_sweep,
)

__all__ = [
    "ClipRectangle",
    "FanMask",
    "OutOfPlaneEstimator",
    "OutputGrid",
    "ReconstructionResult",
    "SweepPoses",
    "VolumeReconstructor",
    "estimate_poses",
    "fill_holes",
    "pixel_to_world",
    "reconstruct",
    "reconstruct_sweep",
    "sweep_quality",
]
