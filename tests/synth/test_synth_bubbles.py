"""Microbubbles: ground-truth positions and tracks, localisation known answer, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sonoedge.errors import ConfigError
from sonoedge.synth.microbubbles import BubbleParams, simulate_bubbles


def test_frames_and_ground_truth_shapes() -> None:
    params = BubbleParams(concentration_per_mm2=2.0)
    b = simulate_bubbles(params, 6, 64, 64, seed=0)
    assert b.frames.shape == (6, 64, 64) and b.frames.dtype == np.float32
    assert b.iq.dtype == np.complex64
    assert len(b.positions_m) == len(b.track_ids) == 6
    h_m, w_m = 63 * params.spacing_m[0], 63 * params.spacing_m[1]
    for pos, ids in zip(b.positions_m, b.track_ids, strict=True):
        assert pos.shape == (len(ids), 2)
        assert np.all((pos >= 0) & (pos <= [h_m, w_m]))
        assert len(np.unique(ids)) == len(ids)
    assert sum(len(p) for p in b.positions_m) > 0


def test_tracks_move_smoothly_along_the_flow() -> None:
    params = BubbleParams(concentration_per_mm2=1.0, frame_rate_hz=1000.0)
    b = simulate_bubbles(params, 5, 64, 64, seed=3)
    max_step_m = 0.05 / params.frame_rate_hz + 1e-9  # 50 mm/s at most
    for k in range(4):
        common, i, j = np.intersect1d(b.track_ids[k], b.track_ids[k + 1], return_indices=True)
        assert len(common) > 0
        step = np.linalg.norm(b.positions_m[k + 1][j] - b.positions_m[k][i], axis=1)
        assert np.all(step <= max_step_m)


def test_an_isolated_bubble_peaks_at_its_true_position() -> None:
    params = BubbleParams(concentration_per_mm2=0.05, snr_db=60.0, clutter_db=-80.0)
    b = simulate_bubbles(params, 1, 96, 96, seed=11)
    frame, pos = b.frames[0], b.positions_m[0]
    dz, dx = params.spacing_m
    checked = 0
    for z, x in pos:
        iz, ix = round(z / dz), round(x / dx)
        if not (6 <= iz < 90 and 6 <= ix < 90):
            continue
        others = np.delete(pos, checked, axis=0) if len(pos) > 1 else np.zeros((0, 2))
        if len(others) and np.min(np.hypot(*(others - [z, x]).T)) < 20 * dz:
            checked += 1
            continue
        patch = frame[iz - 5 : iz + 6, ix - 5 : ix + 6]
        pz, px = np.unravel_index(np.argmax(patch), patch.shape)
        assert abs(pz - 5) <= 1 and abs(px - 5) <= 1
        checked += 1
    assert checked > 0


def test_parameter_vector_and_random_splits() -> None:
    rng = np.random.default_rng(0)
    train = BubbleParams.random(rng)
    held = BubbleParams.random(rng, held_out=True)
    assert train.as_vector().shape == (8,) and train.as_vector().dtype == np.float32
    assert train.center_frequency_hz < 10e6 <= held.center_frequency_hz
    assert BubbleParams.random(rng, snr_db=12.0).snr_db == 12.0
    with pytest.raises(ConfigError, match="not a BubbleParams field"):
        BubbleParams.random(rng, colour=1)


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"concentration_per_mm2.*expected <="):
        simulate_bubbles(BubbleParams(concentration_per_mm2=1e6), 2, 32, 32, seed=0)
    with pytest.raises(ConfigError, match="f_number"):
        BubbleParams(f_number=0.0)
    with pytest.raises(ConfigError, match="center_frequency_hz"):
        BubbleParams(center_frequency_hz=-1e6)
    with pytest.raises(ConfigError, match=r"bandwidth_fraction.*2"):
        BubbleParams(bandwidth_fraction=3.0)
    with pytest.raises(ConfigError, match="n_frames"):
        simulate_bubbles(BubbleParams(), 0, 32, 32, seed=0)
