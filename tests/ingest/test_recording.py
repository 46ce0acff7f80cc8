"""HDF5 recording and replay: equality, damage tolerance, clear errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from sonoedge import open_probe
from sonoedge.errors import RecordingError
from sonoedge.io.recording import RecordingReader
from sonoedge.types import BmodeFrame, ImuBatch, IQEnsemble

URL = "emulator://?preset=doppler&iq_shape=16x16&ensemble_frames=8&ensemble_rate_hz=20"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[object]]:
    path = tmp_path_factory.mktemp("rec") / "session.h5"
    with open_probe(URL, record=path, overflow="block") as probe:
        live = list(probe.samples(seconds=0.8))
    return path, live


def test_replay_equals_live(recorded: tuple[Path, list[object]]) -> None:
    path, live = recorded
    with open_probe(f"file://{path}?speed=max") as replay:
        assert replay.info is not None and replay.info.model == "virtual-L7"
        replayed = list(replay)
    # The reader thread records each message as it arrives, so the recording also keeps what came
    # in after the caller's last read and before close: what the caller read is its prefix.
    assert len(live) <= len(replayed) <= len(live) + 16
    replayed = replayed[: len(live)]
    assert [type(s) for s in replayed] == [type(s) for s in live]
    for a, b in zip(live, replayed, strict=True):
        if isinstance(a, IQEnsemble):
            assert isinstance(b, IQEnsemble)
            np.testing.assert_array_equal(a.iq, b.iq)
            assert a.timestamp_s == pytest.approx(b.timestamp_s, abs=1e-6)
        elif isinstance(a, ImuBatch):
            assert isinstance(b, ImuBatch)
            np.testing.assert_array_equal(a.gyro_dps, b.gyro_dps)
            np.testing.assert_allclose(a.times_s, b.times_s, atol=1e-6)


def test_replay_at_recorded_speed_takes_the_recorded_time(
    recorded: tuple[Path, list[object]],
) -> None:
    import time

    path, _ = recorded
    with RecordingReader(path) as reader:
        duration = reader.duration_s
        counts = reader.type_counts()
    assert counts["IQ_ENSEMBLE"] >= 8 and counts["ACK"] >= 1
    t0 = time.monotonic()
    with open_probe(str(path)) as replay:
        n = sum(1 for _ in replay)
    assert n > 0 and time.monotonic() - t0 >= 0.9 * duration


def test_reader_survives_a_write_cut_short(
    recorded: tuple[Path, list[object]], tmp_path: Path
) -> None:
    path, _ = recorded
    damaged = tmp_path / "cut.h5"
    damaged.write_bytes(path.read_bytes())
    with h5py.File(damaged, "r+") as f:  # the index was flushed, the payload was not
        payload = f["messages/payload"]
        payload.resize((payload.shape[0] - 1000,))
    with RecordingReader(damaged) as reader, RecordingReader(path) as whole:
        assert 0 < reader.damaged_messages < 5
        assert reader.n_messages == whole.n_messages - reader.damaged_messages
        assert sum(1 for _ in reader.samples()) > 0


def test_truncated_and_foreign_files_are_clear_errors(
    recorded: tuple[Path, list[object]], tmp_path: Path
) -> None:
    path, _ = recorded
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(RecordingError, match="not a readable HDF5 file"):
        RecordingReader(truncated)
    text = tmp_path / "notes.h5"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(RecordingError, match="not a readable HDF5 file"):
        open_probe(str(text))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(RecordingError, match="not a sonoedge recording"):
        RecordingReader(other)
    with pytest.raises(RecordingError, match="does not exist"):
        open_probe("file:///nonexistent/rec.h5")


def test_recording_keeps_what_was_received_when_the_consumer_stops_early(tmp_path: Path) -> None:
    path = tmp_path / "early.h5"
    probe = open_probe("emulator://?preset=bmode&bmode_shape=16x16", record=path)
    frames = [s for s in probe.samples(seconds=0.4) if isinstance(s, BmodeFrame)]
    probe.close()
    with RecordingReader(path) as reader:
        assert reader.type_counts()["BMODE_FRAME"] >= len(frames)
