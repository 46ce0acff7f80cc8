"""sweep2vol on a sonoedge HDF5 recording of a simulated fan sweep (frames + IMU batches)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sonoedge.cli import app
from sonoedge.synth.sweeps import simulate_sweep
from sonoedge.types import BmodeFrame, ImuBatch, ProbeInfo

pytest.importorskip("h5py")


def _record(path: Path, probe: ProbeInfo) -> int:
    from sonoedge.firmware_bridge.payloads import encode_parts
    from sonoedge.firmware_bridge.wire import Message
    from sonoedge.io.recording import RecordingWriter

    sweep = simulate_sweep(
        probe, "fan", seed=2, n_frames=20, frame_rate_hz=10.0, spacing_m=(0.5e-3, 0.5e-3)
    )
    assert sweep.imu is not None
    items: list[tuple[float, object]] = []
    for i, (frame, t) in enumerate(zip(sweep.frames, sweep.timestamps_s, strict=True)):
        items.append(
            (t, BmodeFrame(spacing_m=sweep.spacing_m, timestamp_s=t, frame_index=i, image=frame))
        )
    imu = sweep.imu
    for s in range(0, len(imu), 20):
        sl = slice(s, s + 20)
        items.append(
            (imu.times_s[sl][-1], ImuBatch(imu.times_s[sl], imu.gyro_dps[sl], imu.accel_g[sl]))
        )
    items.sort(key=lambda x: x[0])
    with RecordingWriter(path, source="test", info=probe) as writer:
        for seq, (t, obj) in enumerate(items):
            msg_type, parts = encode_parts(obj)  # type: ignore[arg-type]
            payload = b"".join(bytes(p) for p in parts)
            writer.write(Message(int(msg_type), 0, seq, round(t * 1e6), payload), t + 100.0)
    return len(sweep.frames)


def test_sweep2vol_reads_recordings(tmp_path: Path, small_probe: Callable[..., ProbeInfo]) -> None:
    rec = tmp_path / "sweep.h5"
    n = _record(rec, small_probe())
    result = CliRunner().invoke(
        app, ["sweep2vol", str(tmp_path), "-o", str(tmp_path / "out"), "--spacing", "0.5"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "sweep_quality.json").read_text(encoding="utf-8"))
    assert report["n_frames"] == n and report["n_valid_poses"] == n
    assert report["frame_interval_ms"]["median"] == pytest.approx(100.0, abs=1.0)
    assert (tmp_path / "out" / "sweep.nrrd").stat().st_size > 0
    assert np.isfinite(report["heading_drift_dps"])
