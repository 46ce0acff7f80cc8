"""PLUS parity on the NwirePhantomFreehand sweep with its own config (skipped without the data)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sonoedge.freehand import _kernels
from sonoedge.freehand.reconstruct import ClipRectangle, OutputGrid, VolumeReconstructor
from sonoedge.freehand.tracked import split_transform_name, tracked_pixel_to_world
from sonoedge.io.plus import read_plus_config, read_sequence
from sonoedge.io.volume import read_volume


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_split_transform_name() -> None:
    assert split_transform_name("ProbeToTracker") == ("Probe", "Tracker")
    assert split_transform_name("ImageToReference") == ("Image", "Reference")
    assert split_transform_name("Timestamp") is None


def test_matches_plus_reconstruction(plus_data: Any) -> None:
    seq = read_sequence(plus_data.nwire)
    cfg = read_plus_config(plus_data.config)
    rc = cfg.reconstruction
    assert rc is not None
    p2w, valid = tracked_pixel_to_world(seq, cfg.transforms, rc.image_frame, rc.reference_frame)
    assert valid.all()
    clip = ClipRectangle(rc.clip_rectangle_origin, rc.clip_rectangle_size)
    spacing = tuple(v * 1e-3 for v in rc.output_spacing_mm)
    grid = OutputGrid.covering(p2w, seq.frames.shape[1:], spacing, valid, clip)
    ref = read_volume(plus_data.recon)
    assert grid.shape == ref.data.shape
    np.testing.assert_allclose(grid.origin_m, ref.origin_m, atol=1e-6)  # within 1 µm
    rec = VolumeReconstructor(grid, "linear", "mean", clip=clip)
    rec.add_frames(seq.frames, p2w, valid)
    ours = rec.volume(np.uint8).data
    assert _ncc(ours, ref.data) >= 0.98
    assert np.mean(np.abs(ours.astype(int) - ref.data.astype(int)) <= 2) > 0.98
    if _kernels.AVAILABLE:  # PLUS's own rounding arithmetic: nearly every voxel identical
        exact = VolumeReconstructor(grid, "linear", "mean", clip=clip, plus_arithmetic=True)
        exact.add_frames(seq.frames, p2w, valid)
        same = exact.volume(np.uint8).data == ref.data
        assert same.mean() > 0.999


def test_missing_calibration_is_a_clear_error(plus_data: Any) -> None:
    seq = read_sequence(plus_data.nwire)
    with pytest.raises(Exception, match="ImageToReference"):
        tracked_pixel_to_world(seq, {}, "Image", "Reference")
