"""End-to-end links: in-process emulator, pty through pyserial, TCP, reconnect, bad ports."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sonoedge import open_probe
from sonoedge.errors import (
    CommandRejectedError,
    ConfigError,
    ProbeNotFoundError,
    ProbePermissionError,
)
from sonoedge.firmware_bridge.emulator import PtyEmulator, TcpEmulator
from sonoedge.firmware_bridge.virtual_probe import EmulatorConfig, VirtualProbe
from sonoedge.types import BmodeFrame, ImuBatch, IQEnsemble, IQFrame, LinkGap, ProbeStatus

SMALL = dict(bmode_shape=(32, 32), iq_shape=(16, 16), ensemble_frames=8)


def kinds(samples: list[object]) -> set[type]:
    return {type(s) for s in samples}


def test_emulator_url_streams_every_kind_and_answers_commands() -> None:
    with open_probe("emulator://?preset=bmode&bmode_shape=32x32&iq_shape=16x16") as probe:
        assert probe.info is not None and probe.info.model == "virtual-L7"
        got = list(probe.samples(seconds=0.5))
        assert {BmodeFrame, ImuBatch, ProbeStatus} <= kinds(got)
        assert probe.set_prf(2500.4).applied_value == 2500.0  # the probe rounds to 1 Hz
        with pytest.raises(CommandRejectedError, match="OUT_OF_RANGE"):
            probe.set_depth(5.0)
        probe.set_mode("doppler")
        ensembles = [s for s in probe.samples(seconds=0.6) if isinstance(s, IQEnsemble)]
        assert (
            ensembles and ensembles[-1].prf_hz == 2500.0 and ensembles[-1].iq.shape[1:] == (16, 16)
        )
        probe.set_mode("iq")
        assert any(isinstance(s, IQFrame) for s in probe.samples(seconds=0.3))
        stats = probe.stats()
    assert stats.total_rejected == 0 and stats.sequence_lost == 0
    times = [s.timestamp_s for s in got if isinstance(s, BmodeFrame)]
    assert times == sorted(times) and abs(time.time() - times[-1]) < 5


def test_pty_end_to_end_through_pyserial() -> None:
    emulator = PtyEmulator(VirtualProbe(EmulatorConfig(**SMALL)))  # type: ignore[arg-type]
    with emulator, open_probe(emulator.path) as probe:
        frames = [s for s in probe.samples(seconds=0.6) if isinstance(s, BmodeFrame)]
        stats = probe.stats()
    assert len(frames) >= 8
    assert frames[-1].image.shape == (32, 32)
    assert stats.total_rejected == 0 and stats.sequence_lost == 0 and stats.bytes_received > 0


def test_tcp_socket_url() -> None:
    server = TcpEmulator(VirtualProbe(EmulatorConfig(mode="doppler", **SMALL)))  # type: ignore[arg-type]
    with server, open_probe(server.url) as probe:
        ensembles = [s for s in probe.samples(seconds=0.5) if isinstance(s, IQEnsemble)]
    assert ensembles and ensembles[0].iq.shape == (8, 16, 16)


def test_unplug_and_replug_reports_a_gap_and_resumes(tmp_path: Path) -> None:
    link = tmp_path / "ttyPROBE"
    emulator = PtyEmulator(VirtualProbe(EmulatorConfig(**SMALL)), link=link).start()  # type: ignore[arg-type]
    try:
        with open_probe(str(link), reconnect_timeout_s=10) as probe:
            before = [s for s in probe.samples(seconds=0.3) if isinstance(s, BmodeFrame)]
            emulator.unplug()
            time.sleep(0.3)
            emulator.replug()
            after = list(probe.samples(seconds=1.5))
            stats = probe.stats()
    finally:
        emulator.stop()
    gaps = [s for s in after if isinstance(s, LinkGap)]
    assert before and len(gaps) == 1 and gaps[0].duration_s >= 0.25
    resumed = [
        s for s in after if isinstance(s, BmodeFrame) and s.timestamp_s > gaps[0].end_s - 0.1
    ]
    assert resumed, "streaming did not resume after the probe came back"
    assert stats.gaps == gaps


def test_missing_port_is_a_clear_error() -> None:
    with pytest.raises(ProbeNotFoundError, match="does not exist") as err:
        open_probe("serial:///dev/ttyDOES_NOT_EXIST")
    assert err.value.hint and "probe list" in err.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root may open any device")
def test_forbidden_port_is_a_clear_error(tmp_path: Path) -> None:
    device = tmp_path / "ttyLOCKED"
    device.write_bytes(b"")
    device.chmod(0)
    with pytest.raises(ProbePermissionError, match="not allowed"):
        open_probe(str(device))


def test_nothing_listening_on_tcp() -> None:
    with pytest.raises(ProbeNotFoundError, match="nothing is listening"):
        open_probe("socket://127.0.0.1:1")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://probe", "unsupported probe URL scheme"),
        ("emulator://?preset=ct", "unknown emulator preset"),
        ("emulator://?frobnicate=1", "unknown emulator option"),
        ("emulator://?bmode_fps=fast", "not a valid value"),
    ],
)
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_probe(url)


class _QuietTransport:
    """Sends a status message, goes quiet for a while, then sends again."""

    description = "quiet"

    def __init__(self, quiet_s: float) -> None:
        from sonoedge.firmware_bridge import Encoder
        from sonoedge.firmware_bridge import payloads as pl
        from sonoedge.types import ProbeStatus

        status = ProbeStatus("idle", "bmode", 0.04, 1000.0, 0.0, 30.0, 0, 0)
        encoder = Encoder()
        self._message = lambda: encoder.encode(*pl.encode_parts(status), timestamp_us=0)
        self._t0 = time.monotonic()
        self._quiet_s = quiet_s
        self._sent = 0

    def read(self, max_bytes: int = 1 << 20) -> bytes:
        time.sleep(0.02)
        elapsed = time.monotonic() - self._t0
        if self._sent == 0 or elapsed > self._quiet_s:
            self._sent += 1
            return self._message()
        return b""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_silent_probe_is_reported_and_its_return_is_a_gap() -> None:
    from sonoedge.ingest import Probe

    probe = Probe("quiet://", opener=lambda: _QuietTransport(0.6), silence_timeout_s=0.3)
    with probe.open(start=False):
        time.sleep(0.45)
        assert probe.stats().silent_s > 0.3
        samples = list(probe.samples(seconds=0.6))
    gaps = [s for s in samples if isinstance(s, LinkGap)]
    assert len(gaps) == 1 and "silent" in gaps[0].reason and gaps[0].duration_s >= 0.5
    assert probe.stats().silent_s == 0.0
