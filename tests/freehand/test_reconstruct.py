"""Compounding known answers, masks, engines, incremental = batch, and refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand import _kernels
from sonoedge.freehand.reconstruct import (
    ClipRectangle,
    FanMask,
    OutputGrid,
    VolumeReconstructor,
)
from sonoedge.freehand.sweep import reconstruct

ENGINES = ["numpy", "numba"] if _kernels.AVAILABLE else ["numpy"]


def _plane(z_index: float, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Pixel (col, row) → world metres: 1 mm pixels on the plane z = z_index mm."""
    m = np.diag([1e-3, 1e-3, 1e-3, 1.0])
    m[:3, 3] = [shift[0] * 1e-3, shift[1] * 1e-3, z_index * 1e-3]
    return m


GRID = OutputGrid((0.0, 0.0, 0.0), (1e-3, 1e-3, 1e-3), (4, 6, 8))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("interp", ["nearest", "linear"])
def test_frame_on_voxel_plane_is_copied(engine: str, interp: str) -> None:
    img = np.arange(48, dtype=np.uint8).reshape(6, 8)
    rec = VolumeReconstructor(GRID, interp, "mean", engine=engine)  # type: ignore[arg-type]
    assert rec.add_frame(img, _plane(2)) == 48
    vol = rec.volume(np.uint8).data
    np.testing.assert_array_equal(vol[2], img)
    assert not vol[[0, 1, 3]].any()
    np.testing.assert_allclose(rec.weights().data[2], 1.0)


@pytest.mark.parametrize("engine", ENGINES)
def test_trilinear_splat_weights(engine: str) -> None:
    img = np.full((1, 1), 100, np.uint8)
    rec = VolumeReconstructor(GRID, "linear", "mean", engine=engine)  # type: ignore[arg-type]
    rec.add_frame(img, _plane(1.5, (2.25, 3.0)))  # pixel at (x, y, z) = (2.25, 3, 1.5) voxels
    w = rec.weights().data
    assert w.sum() == pytest.approx(1.0)
    assert w[1, 3, 2] == pytest.approx(0.75 * 0.5) and w[2, 3, 3] == pytest.approx(0.25 * 0.5)
    got = rec.volume(np.float32).data
    assert set(np.unique(got[w > 0])) == {100.0}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("mode", "expected"), [("mean", 60), ("max", 100), ("latest", 20)])
def test_compounding_modes(engine: str, mode: str, expected: int) -> None:
    rec = VolumeReconstructor(GRID, "nearest", mode, engine=engine)  # type: ignore[arg-type]
    rec.add_frame(np.full((6, 8), 100, np.uint8), _plane(1))
    rec.add_frame(np.full((6, 8), 20, np.uint8), _plane(1))
    rec.add_frame(np.full((6, 8), 50, np.uint8), _plane(3))
    vol = rec.volume(np.uint8).data
    assert np.all(vol[1] == expected) and np.all(vol[3] == 50)


@pytest.mark.parametrize("engine", ENGINES)
def test_clip_fan_importance_and_threshold(engine: str) -> None:
    img = np.full((6, 8), 80, np.uint8)
    img[0, 0] = 5
    clip = ClipRectangle((1, 2), (3, 2))  # PLUS: columns 1..4, rows 2..4 inclusive
    rec = VolumeReconstructor(GRID, "nearest", clip=clip, engine=engine)  # type: ignore[arg-type]
    assert rec.add_frame(img, _plane(0)) == 12
    fan = FanMask(origin_px=(3.5, -2.0), angles_deg=(-20.0, 20.0), radius_stop_px=6.0)
    rec = VolumeReconstructor(GRID, "nearest", fan=fan, engine=engine)  # type: ignore[arg-type]
    n_fan = rec.add_frame(img, _plane(0))
    assert n_fan == int(fan.mask((6, 8)).sum()) and 0 < n_fan < 48
    importance = np.ones((6, 8), np.float32)
    importance[:, :4] = 0.0
    rec = VolumeReconstructor(
        GRID, "nearest", importance=importance, pixel_rejection_threshold=10, engine=engine
    )  # type: ignore[arg-type]
    assert rec.add_frame(img, _plane(0)) == 24


@pytest.mark.parametrize("interp", ["nearest", "linear"])
def test_incremental_equals_batch_and_is_deterministic(interp: str) -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (5, 6, 8), dtype=np.uint8)
    mats = np.stack([_plane(0.7 * i + 0.3, (0.3 * i, 0.1)) for i in range(5)])
    mats[:, :3, :3] = mats[:, :3, :3] @ np.array([[1, 0, 0], [0, 0.9, -0.4], [0, 0.4, 0.9]])
    batch = VolumeReconstructor(GRID, interp, engine="numpy")  # type: ignore[arg-type]
    batch.add_frames(frames, mats)
    live = VolumeReconstructor(GRID, interp, engine="numpy")  # type: ignore[arg-type]
    for f, m in zip(frames, mats, strict=True):
        live.add_frame(f, m)
    np.testing.assert_array_equal(batch.value, live.value)
    np.testing.assert_array_equal(batch.weight, live.weight)
    if _kernels.AVAILABLE:
        fast = VolumeReconstructor(GRID, interp, engine="numba")  # type: ignore[arg-type]
        fast.add_frames(frames, mats)
        np.testing.assert_allclose(fast.weight, batch.weight, atol=1e-4)
        solid = (batch.weight > 1e-3).reshape(GRID.shape)  # tiny weights: boundary round-off
        np.testing.assert_allclose(fast.volume().data[solid], batch.volume().data[solid], atol=0.05)


def test_plus_grid_from_clip_corners() -> None:
    mats = np.stack([_plane(0), _plane(2.6, (0.5, 0.0))])
    grid = OutputGrid.covering(mats, (6, 8), 1e-3, clip=ClipRectangle((1, 1), (4, 3)))
    assert grid.origin_m == pytest.approx((1e-3, 1e-3, 0.0))
    assert grid.shape == (3, 4, 5)  # extents int(2.6)=2, int(3)=3, int(4.5)=4 → +1
    rounded = OutputGrid.covering(
        mats, (6, 8), 1e-3, clip=ClipRectangle((1, 1), (4, 3)), plus_extent=False
    )
    assert rounded.shape == (5, 5, 7)  # half a voxel of margin each side, rounded up
    assert rounded.origin_m == pytest.approx((0.5e-3, 0.5e-3, -0.5e-3))


def test_refusals() -> None:
    with pytest.raises(ConfigError, match="would need"):
        VolumeReconstructor(OutputGrid((0, 0, 0), (1e-5,) * 3, (5000, 5000, 5000)))
    with pytest.raises(ConfigError, match="interpolation"):
        VolumeReconstructor(GRID, "cubic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="spacing"):
        OutputGrid((0, 0, 0), (0.0, 1e-3, 1e-3), (1, 1, 1))
    rec = VolumeReconstructor(GRID)
    with pytest.raises(DataError, match="NaN"):
        rec.add_frame(np.zeros((6, 8)), np.full((4, 4), np.nan))
    with pytest.raises(DataError, match="2D"):
        rec.add_frame(np.zeros((6,)), _plane(0))


def test_batch_reconstruct_bad_sweeps() -> None:
    frames = np.full((3, 6, 8), 90, np.uint8)
    mats = np.stack([_plane(0), _plane(1), _plane(2)])
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        res = reconstruct(frames, mats, [True, False, True], 1e-3)
    assert res.n_frames_skipped == 1 and res.volume.data.shape == (4, 7, 9)  # half-voxel margins
    with pytest.raises(DataError, match="none of the 3"):
        reconstruct(frames, mats, [False] * 3, 1e-3)
    with pytest.warns(UserWarning, match="single slice"):
        reconstruct(frames[:1], mats[:1], None, 1e-3)
    with pytest.warns(UserWarning, match="one plane"):
        flat = reconstruct(frames, np.stack([_plane(1)] * 3), None, 1e-3)
    assert flat.volume.data.max() == 90  # still a real (single-slice) volume
    with pytest.raises(ConfigError, match="would need"):
        reconstruct(frames, mats * np.array([1e3, 1e3, 1e3, 1.0])[:, None], None, 1e-5)
    nan_mats = mats.copy()
    nan_mats[1, 0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert reconstruct(frames, nan_mats, None, 1e-3).n_frames_skipped == 1


@pytest.mark.skipif(not _kernels.AVAILABLE, reason="PLUS arithmetic needs numba")
@pytest.mark.parametrize("interp", ["nearest", "linear"])
def test_plus_arithmetic_running_average(interp: str) -> None:
    rec = VolumeReconstructor(GRID, interp, "mean", plus_arithmetic=True)  # type: ignore[arg-type]
    for value in (10, 21, 30):
        rec.add_frame(np.full((6, 8), value, np.uint8), _plane(1))
    got = rec.volume(np.uint8).data[1]
    # PLUS: (21·256 + 10·256) // 512 = 15, then (30·256 + 15·512) // 768 = 20 (nearest truncates;
    # linear rounds: 15.5 → 16, then (30 + 2·16) / 3 = 20.67 → 21).
    assert np.all(got == (20 if interp == "nearest" else 21))
    assert rec.weights().data[1, 0, 0] == pytest.approx(768)
    with pytest.raises(ConfigError, match="MEAN"):
        VolumeReconstructor(GRID, interp, "max", plus_arithmetic=True)  # type: ignore[arg-type]
