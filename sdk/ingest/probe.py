"""A connected probe: a reader thread turns link bytes into typed, host-timed samples.

The reader thread reads the transport, decodes and verifies messages, maps probe timestamps to
host time, records raw messages when asked, answers command acknowledgements and puts samples
into a bounded queue. Consumers iterate (``for sample in probe``), poll (``probe.read()``) or
register callbacks. When a serial device disappears the reader waits for it to come back,
reconnects, restarts streaming and reports the outage as a :class:`~sonoedge.types.LinkGap`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sonoedge.errors import (
    CommandRejectedError,
    CommandTimeoutError,
    ConfigError,
    ProbeConnectionError,
    ProtocolError,
    SonoedgeError,
)
from sonoedge.firmware_bridge import payloads as pl
from sonoedge.firmware_bridge.decoder import REJECT_REASONS, Decoder
from sonoedge.firmware_bridge.wire import Encoder, Flags, Message, MessageType
from sonoedge.ingest.clock import ClockSync, host_now
from sonoedge.ingest.queue import BoundedQueue, OverflowPolicy
from sonoedge.ingest.transport import LinkLostError, Transport
from sonoedge.io.recording import RecordingReader, RecordingWriter
from sonoedge.resources import Closeable
from sonoedge.types import (
    PROBE_MODES,
    BmodeFrame,
    ImuBatch,
    IQEnsemble,
    IQFrame,
    LinkGap,
    ProbeInfo,
    ProbeMode,
    Sample,
)

log = logging.getLogger(__name__)

Callback = Callable[[Sample], None]
_SEQ_MASK = 0xFFFFFFFF


def sample_nbytes(sample: Sample) -> int:
    """Bytes of array data a sample holds (what a queue of them costs in memory)."""
    if isinstance(sample, BmodeFrame):
        return int(sample.image.nbytes)
    if isinstance(sample, IQFrame | IQEnsemble):
        return int(sample.iq.nbytes)
    if isinstance(sample, ImuBatch):
        return int(sample.gyro_dps.nbytes * 4)
    return 64


@dataclass
class LinkStats:
    """A snapshot of what the link has done since it opened."""

    url: str
    connected: bool
    ended: bool
    elapsed_s: float
    bytes_received: int
    messages: dict[str, int]
    rejected: dict[str, int]
    garbage_bytes: int
    sequence_lost: int
    queue_dropped: int
    callback_errors: int
    gaps: list[LinkGap] = field(default_factory=list)
    silent_s: float = 0.0
    """How long the probe has sent nothing, once past the silence timeout (else 0)."""
    clock_offset_s: float = 0.0
    clock_drift_ppm: float = 0.0

    @property
    def total_messages(self) -> int:
        return sum(self.messages.values())

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


class Probe(Closeable):
    """A probe link (live or replayed). Create it with :func:`sonoedge.open_probe`."""

    def __init__(
        self,
        url: str,
        opener: Callable[[], Transport] | None = None,
        replay: RecordingReader | None = None,
        *,
        queue_size: int = 256,
        queue_bytes: int = 64 * 1024 * 1024,
        overflow: OverflowPolicy = "drop_oldest",
        reconnect: bool = True,
        reconnect_timeout_s: float = 30.0,
        watch_path: str | None = None,
        replay_speed: float = 1.0,
        max_payload_bytes: int | None = None,
        silence_timeout_s: float = 3.0,
    ) -> None:
        if (opener is None) == (replay is None):
            raise ValueError("give exactly one of opener and replay")
        self.url = url
        self._opener = opener
        self._replay = replay
        self._transport: Transport | None = None
        self._queue: BoundedQueue[Sample] = BoundedQueue(
            queue_size, overflow, max_bytes=queue_bytes, size_of=sample_nbytes
        )
        self._reconnect = reconnect
        self._reconnect_timeout_s = reconnect_timeout_s
        self._watch_path = watch_path
        self._replay_speed = replay_speed
        self._decoder = Decoder(max_payload_bytes) if max_payload_bytes else Decoder()
        self._encoder = Encoder()
        self._clock = ClockSync()
        self._callbacks: list[Callback] = []
        self._recorder: RecordingWriter | None = None
        self._record_lock = threading.Lock()
        self._pending: dict[int, list[threading.Event | pl.Ack | None]] = {}
        self._command_lock = threading.Lock()
        self._info: ProbeInfo | None = replay.probe_info if replay else None
        self._info_event = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts: Counter[int] = Counter()
        self._extra_rejects: Counter[str] = Counter()
        self._bytes = 0
        self._sequence_lost = 0
        self._expected_seq: int | None = None
        self._callback_errors = 0
        self._gaps: list[LinkGap] = []
        self._connected = False
        self._ended = False
        self._started = False
        self._opened_s = host_now()
        self.error: SonoedgeError | None = None
        self.silence_timeout_s = silence_timeout_s  # the protocol's heartbeat is ≥ 1 Hz
        self._silent_since: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def open(self, start: bool = True, timeout_s: float = 2.0) -> Probe:
        """Connect, start the reader thread and (for live links) start streaming."""
        if self._opener is not None:
            self._transport = self._opener()
            self._connected = True
        self._thread = threading.Thread(
            target=self._run, name=f"probe-reader {self.url}", daemon=True
        )
        self._thread.start()
        if self._opener is not None and start:
            try:
                self.start(timeout_s=timeout_s)
                self.wait_info(timeout_s)
            except SonoedgeError:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Stop streaming (best effort), stop the reader and close any recording."""
        if self._closing.is_set():
            return
        if self._started and self._connected and self._transport is not None:
            with contextlib.suppress(SonoedgeError):
                self._send(pl.Command(pl.CommandCode.STOP))
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._transport is not None:
            self._transport.close()
        self._queue.close()
        self.stop_recording()
        if self._replay is not None:
            self._replay.close()

    @property
    def info(self) -> ProbeInfo | None:
        """The probe's descriptor, once received."""
        return self._info

    def wait_info(self, timeout_s: float = 2.0) -> ProbeInfo:
        """Wait for the probe descriptor."""
        if self._info is None and not self._info_event.wait(timeout_s):
            raise ProbeConnectionError(
                f"{self.url} sent no probe descriptor within {timeout_s} s",
                hint="is this a sonoedge probe? check with `sonoedge probe info URL`",
            )
        assert self._info is not None
        return self._info

    @property
    def ended(self) -> bool:
        """True once a replay finished or the link failed for good."""
        return self._ended

    # --- consuming ---------------------------------------------------------------------------

    def read(self, timeout_s: float | None = None) -> Sample | None:
        """The next sample, or None on timeout or when the stream has ended."""
        return self._queue.get(timeout_s)

    def __iter__(self) -> Iterator[Sample]:
        return self.samples()

    def samples(self, seconds: float | None = None, count: int | None = None) -> Iterator[Sample]:
        """Iterate for at most ``seconds`` and/or ``count`` samples."""
        deadline = None if seconds is None else time.monotonic() + seconds
        n = 0
        while (count is None or n < count) and not (self._ended and len(self._queue) == 0):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            item = self._queue.get(0.1 if remaining is None else min(0.1, remaining))
            if item is not None:
                n += 1
                yield item
            elif self._closing.is_set():
                return

    def add_callback(self, callback: Callback) -> None:
        """Call ``callback(sample)`` on the reader thread for every sample (keep it quick)."""
        self._callbacks.append(callback)

    # --- recording ---------------------------------------------------------------------------

    def record(self, path: str | os.PathLike[str]) -> RecordingWriter:
        """Record every message from now on to an HDF5 file (see :mod:`sonoedge.io.recording`)."""
        writer = RecordingWriter(path, source=self.url, info=self._info)
        with self._record_lock:
            if self._recorder is not None:
                writer.close()
                raise ConfigError("this probe is already recording", hint="stop_recording() first")
            self._recorder = writer
        return writer

    @property
    def recorder(self) -> RecordingWriter | None:
        """The active recording, if any (pipelines add their outputs to it)."""
        return self._recorder

    def stop_recording(self) -> Path | None:
        with self._record_lock:
            writer, self._recorder = self._recorder, None
        if writer is None:
            return None
        writer.close()
        return writer.path

    # --- commands ----------------------------------------------------------------------------

    def command(self, cmd: pl.Command, timeout_s: float = 0.5, retries: int = 2) -> pl.Ack:
        """Send a command and wait for its acknowledgement (resending up to ``retries`` times)."""
        if self._opener is None:
            raise ConfigError("a replayed recording does not take commands")
        for _ in range(retries + 1):
            with self._command_lock:
                seq = self._encoder.sequence
                slot: list[threading.Event | pl.Ack | None] = [threading.Event(), None]
                self._pending[seq] = slot
                self._send(cmd)
            event = slot[0]
            assert isinstance(event, threading.Event)
            answered = event.wait(timeout_s)
            self._pending.pop(seq, None)
            if answered:
                ack = slot[1]
                assert isinstance(ack, pl.Ack)
                if ack.result != pl.AckResult.OK:
                    raise CommandRejectedError(
                        f"probe rejected {cmd.code.name} (value {cmd.value:g}): {ack.result.name}; "
                        f"in force: {ack.applied_value:g}"
                    )
                return ack
        raise CommandTimeoutError(
            f"{self.url} did not acknowledge {cmd.code.name} within {timeout_s} s "
            f"({retries + 1} tries)",
            hint="check the probe is powered and speaks sonoedge protocol v1",
        )

    def _send(self, cmd: pl.Command) -> None:
        transport = self._transport
        if transport is None or not self._connected:
            raise ProbeConnectionError(f"{self.url} is not connected")
        frame = self._encoder.encode(MessageType.COMMAND, [pl.pack_command(cmd)], 0)
        try:
            transport.write(frame)
        except LinkLostError as err:
            raise ProbeConnectionError(str(err)) from err

    def start(self, timeout_s: float = 0.5) -> pl.Ack:
        ack = self.command(pl.Command(pl.CommandCode.START), timeout_s)
        self._started = True
        return ack

    def stop(self) -> pl.Ack:
        ack = self.command(pl.Command(pl.CommandCode.STOP))
        self._started = False
        return ack

    def set_mode(self, mode: ProbeMode) -> pl.Ack:
        if mode not in PROBE_MODES:
            raise ConfigError(f"mode {mode!r} is not one of {PROBE_MODES}")
        return self.command(pl.Command(pl.CommandCode.SET_MODE, arg=PROBE_MODES.index(mode)))

    def set_depth(self, depth_m: float) -> pl.Ack:
        return self.command(pl.Command(pl.CommandCode.SET_DEPTH, value=depth_m))

    def set_prf(self, prf_hz: float) -> pl.Ack:
        return self.command(pl.Command(pl.CommandCode.SET_PRF, value=prf_hz))

    def set_gain(self, gain_db: float) -> pl.Ack:
        return self.command(pl.Command(pl.CommandCode.SET_GAIN, value=gain_db))

    def request_descriptor(self) -> pl.Ack:
        return self.command(pl.Command(pl.CommandCode.REQUEST_DESCRIPTOR))

    # --- statistics --------------------------------------------------------------------------

    def stats(self) -> LinkStats:
        rejected = {r: self._decoder.stats[r] for r in REJECT_REASONS if self._decoder.stats[r]}
        rejected.update(self._extra_rejects)
        names = {int(t): t.name.lower() for t in MessageType}
        return LinkStats(
            url=self.url,
            connected=self._connected,
            ended=self._ended,
            elapsed_s=host_now() - self._opened_s,
            bytes_received=self._bytes,
            messages={names.get(t, hex(t)): n for t, n in sorted(self._counts.items())},
            rejected=rejected,
            garbage_bytes=self._decoder.stats["garbage_bytes"],
            sequence_lost=self._sequence_lost,
            queue_dropped=self._queue.dropped,
            callback_errors=self._callback_errors,
            gaps=list(self._gaps),
            silent_s=0.0 if self._silent_since is None else host_now() - self._silent_since,
            clock_offset_s=self._clock.offset_s,
            clock_drift_ppm=self._clock.drift_ppm,
        )

    # --- reader thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._replay is not None:
                self._run_replay(self._replay)
            else:
                self._run_link()
        except SonoedgeError as err:
            self.error = err
        except Exception as err:  # a bug must not hang consumers: report it and end
            log.exception("probe reader crashed")
            self.error = SonoedgeError(f"probe reader crashed: {err!r}")
        finally:
            self._ended = True
            self._queue.close()
            with self._record_lock:
                if self._recorder is not None:
                    self._recorder.flush()

    def _run_link(self) -> None:
        last_message_s = host_now()
        silent = False
        while not self._closing.is_set():
            transport = self._transport
            assert transport is not None
            try:
                data = transport.read()
            except LinkLostError as err:
                if not self._reconnect_after(err):
                    return
                last_message_s, silent = host_now(), False
                continue
            now = host_now()
            messages = self._decoder.feed(data) if data else []
            self._bytes += len(data)
            if messages:
                if silent:  # a probe that went quiet is back: report how long
                    gap = LinkGap(last_message_s, now, "probe sent nothing (silent)")
                    self._gaps.append(gap)
                    self._queue.put(gap)
                    log.warning("%s is sending again after %.1f s", self.url, gap.duration_s)
                last_message_s, silent = now, False
                for msg in messages:
                    self._on_message(msg, now)
            elif not silent and now - last_message_s > self.silence_timeout_s:
                silent = True
                log.warning("%s has sent nothing for %.1f s", self.url, now - last_message_s)
            self._silent_since = last_message_s if silent else None
        for msg in self._decoder.flush():
            self._on_message(msg, host_now())

    def _reconnect_after(self, err: LinkLostError) -> bool:
        lost_s = host_now()
        self._connected = False
        log.warning("%s", err)
        assert self._transport is not None and self._opener is not None
        self._transport.close()
        self._decoder.reset()
        self._expected_seq = None
        if not self._reconnect:
            self.error = err
            return False
        deadline = time.monotonic() + self._reconnect_timeout_s
        while not self._closing.is_set() and time.monotonic() < deadline:
            if self._watch_path and not os.path.exists(self._watch_path):
                time.sleep(0.05)
                continue
            try:
                self._transport = self._opener()
            except ProbeConnectionError:
                time.sleep(0.1)
                continue
            self._connected = True
            gap = LinkGap(lost_s, host_now(), str(err))
            self._gaps.append(gap)
            self._queue.put(gap)
            log.warning("%s reconnected after %.2f s", self.url, gap.duration_s)
            if self._started:
                # The reader thread cannot wait for its own ACK: fire and forget.
                try:
                    self._send(pl.Command(pl.CommandCode.START))
                except ProbeConnectionError:
                    continue
            return True
        if not self._closing.is_set():
            self.error = ProbeConnectionError(
                f"{self.url}: link lost and not back within {self._reconnect_timeout_s:g} s",
                hint="check the cable; everything received before the loss was delivered",
            )
        return False

    def _run_replay(self, reader: RecordingReader) -> None:
        speed = self._replay_speed
        wall0 = time.monotonic()
        first: float | None = None
        for msg, arrival in reader.messages():
            if self._closing.is_set():
                return
            if speed > 0:
                if first is None:
                    first = arrival
                delay = (arrival - first) / speed - (time.monotonic() - wall0)
                if delay > 0 and self._closing.wait(delay):
                    return
            self._on_message(msg, arrival)

    def _on_message(self, msg: Message, arrival_s: float) -> None:
        recorder = self._recorder
        if recorder is not None:
            with self._record_lock:
                if self._recorder is not None:
                    self._recorder.write(msg, arrival_s)
        self._counts[msg.type] += 1
        if self._expected_seq is not None and msg.sequence != self._expected_seq:
            delta = (msg.sequence - self._expected_seq) & _SEQ_MASK
            if delta < 1 << 31:
                self._sequence_lost += delta
        self._expected_seq = (msg.sequence + 1) & _SEQ_MASK
        if msg.flags & Flags.CLOCK_RESET:
            self._clock.reset()
        self._clock.update(msg.timestamp_us, arrival_s)
        msg_type = msg.type
        try:
            if msg_type == MessageType.ACK:
                ack = pl.unpack_ack(msg.payload)
                slot = self._pending.get(ack.sequence)
                if slot is not None:
                    slot[1] = ack
                    event = slot[0]
                    assert isinstance(event, threading.Event)
                    event.set()
                return
            if msg_type == MessageType.PROBE_DESCRIPTOR:
                self._info = pl.unpack_descriptor(msg.payload)
                self._info_event.set()
                return
            if msg_type == MessageType.COMMAND:
                self._extra_rejects["unexpected_command"] += 1
                return
            sample = pl.decode(
                msg, self._clock.to_host(msg.timestamp_us), self._clock.to_host_array
            )
        except ProtocolError as err:
            self._extra_rejects["bad_payload"] += 1
            log.debug("%s: %s", self.url, err)
            return
        for callback in self._callbacks:
            try:
                callback(sample)  # type: ignore[arg-type]
            except Exception:
                self._callback_errors += 1
                log.exception("sample callback failed")
        self._queue.put(sample)  # type: ignore[arg-type]
