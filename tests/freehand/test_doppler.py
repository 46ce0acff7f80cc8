"""Freehand power Doppler: SVD slices show vessels; the example builds a vessel volume."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.freehand.doppler import power_doppler_slices, slices_to_uint8
from sonoedge.synth.sweeps import default_phantom, doppler_ensembles, simulate_sweep
from sonoedge.types import ProbeInfo

ROOT = Path(__file__).resolve().parents[2]


def test_vessels_stand_out_in_power_doppler() -> None:
    probe = ProbeInfo(n_elements=64, depth_range_m=(0.0, 0.02))
    sweep = simulate_sweep(probe, "fan", seed=4, n_frames=3, spacing_m=(0.4e-3, 0.4e-3))
    phantom = default_phantom(probe, 4)
    slices = power_doppler_slices(doppler_ensembles(sweep, phantom, 12, seed=4))
    assert slices.shape == sweep.frames.shape and slices.max() == 0.0
    rows, cols = sweep.frames.shape[1:]
    jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    plane = np.stack([ii.ravel() * 0.4e-3, jj.ravel() * 0.4e-3, 0 * ii.ravel(), 1 + 0 * ii.ravel()])
    assert sweep.poses is not None
    blood = phantom.blood_mask((sweep.poses[1] @ plane)[:3].T).reshape(rows, cols)
    assert slices[1][blood].mean() > slices[1][~blood].mean() + 10  # dB
    assert slices_to_uint8(np.array([[-40.0, -20.0, 0.0]])).tolist() == [[0, 127, 255]]
    with pytest.raises(DataError):
        power_doppler_slices(np.zeros((2, 8, 4, 4)))
    with pytest.raises(ConfigError):
        power_doppler_slices(np.zeros((1, 4, 4, 4), np.complex64), floor_db=3)


def test_example_writes_vessel_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = ROOT / "examples" / "freehand_doppler.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--out", str(tmp_path), "--frames", "6"])
    runpy.run_path(str(script), run_name="__main__")
    assert (tmp_path / "vessels.nrrd").stat().st_size > 0
    assert (tmp_path / "vessels_mip.png").exists()
