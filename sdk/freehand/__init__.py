"""Freehand 3D: IMU orientation, time alignment, pose models, compounding and hole filling."""
