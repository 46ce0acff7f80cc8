"""HDF5 recordings of a probe link: every accepted message with its arrival time.

Layout (``format = "sonoedge-recording"``, ``format_version = 1``)::

    /                       attrs: format, format_version, protocol_version, sonoedge_version,
                                   created_utc, source, probe_descriptor (JSON, when known)
    /messages/type          uint8[n]    wire message type
    /messages/flags         uint16[n]
    /messages/sequence      uint32[n]
    /messages/probe_time_us uint64[n]   probe clock
    /messages/host_time_s   float64[n]  arrival on the host clock
    /messages/offset        uint64[n]   start of the payload in /messages/payload
    /messages/length        uint32[n]
    /messages/payload       uint8[...]  payloads back to back
    /processed/<stage>/data         float32[n, H, W]  pipeline outputs (when a pipeline records)
    /processed/<stage>/timestamp_s  float64[n]        acquisition time of the input sample
    /processed/<stage>/frame_index  int64[n]          the pipeline's frame counter

Payloads are stored exactly as received, so a replay runs the same decoding path as the live
link. The writer flushes at least every ``flush_interval_s`` so a crash loses at most that much;
the reader tolerates a file whose last flush was cut short.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge import __version__
from sonoedge.errors import ProtocolError, RecordingError
from sonoedge.firmware_bridge import payloads as pl
from sonoedge.firmware_bridge.wire import VERSION, Message, MessageType
from sonoedge.ingest.clock import ClockSync
from sonoedge.resources import Closeable
from sonoedge.types import ProbeInfo, Sample

FORMAT = "sonoedge-recording"
FORMAT_VERSION = 1
_INDEX = {
    "type": np.uint8,
    "flags": np.uint16,
    "sequence": np.uint32,
    "probe_time_us": np.uint64,
    "host_time_s": np.float64,
    "offset": np.uint64,
    "length": np.uint32,
}


def _h5py() -> Any:
    import h5py

    return h5py


def info_to_json(info: ProbeInfo) -> str:
    fields = asdict(info)
    fields["imu_to_image"] = np.asarray(info.imu_to_image).tolist()
    return json.dumps(fields)


def info_from_json(text: str) -> ProbeInfo:
    fields = json.loads(text)
    fields["depth_range_m"] = tuple(fields["depth_range_m"])
    fields["imu_to_image"] = np.asarray(fields["imu_to_image"], dtype=np.float64)
    return ProbeInfo(**fields)


class RecordingWriter(Closeable):
    """Append messages to a new HDF5 recording."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        source: str = "",
        info: ProbeInfo | None = None,
        flush_interval_s: float = 0.5,
        flush_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        h5py = _h5py()
        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "w")
        except OSError as err:
            raise RecordingError(
                f"cannot create recording {self.path}: {err}",
                hint="check that the folder exists and is writable",
            ) from err
        f = self._file
        f.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            protocol_version=VERSION,
            sonoedge_version=__version__,
            created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            source=source,
        )
        group = f.create_group("messages")
        for name, dtype in _INDEX.items():
            group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
        group.create_dataset(
            "payload", shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(1 << 20,)
        )
        self._group = group
        self._rows: dict[str, list[float | int]] = {k: [] for k in _INDEX}
        self._payloads: list[bytes] = []
        self._pending_bytes = 0
        self._payload_end = 0
        self.n_messages = 0
        self.flush_interval_s = flush_interval_s
        self.flush_bytes = flush_bytes
        self._last_flush = time.monotonic()
        self.closed = False
        self._lock = threading.RLock()
        if info is not None:
            self.set_info(info)

    def set_info(self, info: ProbeInfo) -> None:
        self._file.attrs["probe_descriptor"] = info_to_json(info)

    def write(self, msg: Message, host_time_s: float) -> None:
        """Append one message."""
        with self._lock:
            self._append(msg, host_time_s)

    def _append(self, msg: Message, host_time_s: float) -> None:
        rows = self._rows
        rows["type"].append(msg.type)
        rows["flags"].append(msg.flags)
        rows["sequence"].append(msg.sequence)
        rows["probe_time_us"].append(msg.timestamp_us)
        rows["host_time_s"].append(host_time_s)
        rows["offset"].append(self._payload_end + self._pending_bytes)
        rows["length"].append(len(msg.payload))
        self._payloads.append(msg.payload)
        self._pending_bytes += len(msg.payload)
        if msg.type == MessageType.PROBE_DESCRIPTOR:
            with contextlib.suppress(ProtocolError):
                self.set_info(pl.unpack_descriptor(msg.payload))
        if (
            self._pending_bytes >= self.flush_bytes
            or time.monotonic() - self._last_flush >= self.flush_interval_s
        ):
            self._flush()

    def write_processed(
        self, name: str, image: np.ndarray, timestamp_s: float, frame_index: int
    ) -> None:
        """Append one processed image to ``/processed/<name>`` (``data``, ``timestamp_s``,
        ``frame_index``); thread-safe with :meth:`write`."""
        arr = np.asarray(image, dtype=np.float32)
        with self._lock:
            group = self._file.require_group("processed").require_group(name)
            if "data" not in group:
                group.create_dataset(
                    "data",
                    shape=(0, *arr.shape),
                    maxshape=(None, *arr.shape),
                    dtype=np.float32,
                    chunks=(1, *arr.shape),
                    compression="lzf",
                )
                for key, dtype in (("timestamp_s", np.float64), ("frame_index", np.int64)):
                    group.create_dataset(
                        key, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(1024,)
                    )
            data = group["data"]
            if data.shape[1:] != arr.shape:
                raise ValueError(f"processed output {name} changed shape to {arr.shape}")
            n = data.shape[0]
            for key, value in (
                ("data", arr),
                ("timestamp_s", timestamp_s),
                ("frame_index", frame_index),
            ):
                ds = group[key]
                ds.resize((n + 1, *ds.shape[1:]))
                ds[n] = value

    def flush(self) -> None:
        """Write buffered messages to disk (payload first, then the index that points at it)."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        n_new = len(self._rows["type"])
        if not n_new:
            return
        payload = self._group["payload"]
        if self._pending_bytes:
            payload.resize((self._payload_end + self._pending_bytes,))
            payload[self._payload_end :] = np.frombuffer(b"".join(self._payloads), np.uint8)
        for name, values in self._rows.items():
            ds = self._group[name]
            ds.resize((self.n_messages + n_new,))
            ds[self.n_messages :] = np.asarray(values, dtype=_INDEX[name])
            values.clear()
        self._payloads.clear()
        self._payload_end += self._pending_bytes
        self._pending_bytes = 0
        self.n_messages += n_new
        self._file.attrs["n_messages"] = self.n_messages
        self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self._flush()
            self._file.close()
            self.closed = True


class RecordingReader(Closeable):
    """Read a recording back: raw messages, or typed samples on the recorded host clock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        h5py = _h5py()
        self.path = Path(path)
        if not self.path.exists():
            raise RecordingError(
                f"recording {self.path} does not exist",
                hint="check the path; record one with `sonoedge stream URL --record FILE.h5`",
            )
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise RecordingError(
                f"{self.path} is not a readable HDF5 file (truncated or another format): {err}",
                hint="recordings are written by `sonoedge stream URL --record FILE.h5`",
            ) from err
        f = self._file
        if f.attrs.get("format") != FORMAT or "messages" not in f:
            self._file.close()
            raise RecordingError(
                f"{self.path} is an HDF5 file but not a sonoedge recording",
                hint="recordings are written by `sonoedge stream URL --record FILE.h5`",
            )
        if int(f.attrs.get("format_version", 0)) > FORMAT_VERSION:
            self._file.close()
            raise RecordingError(
                f"{self.path} has recording format {f.attrs['format_version']}, newer than "
                f"this sonoedge reads ({FORMAT_VERSION})",
                hint="upgrade sonoedge",
            )
        group = f["messages"]
        try:
            index = {name: group[name][()] for name in _INDEX}
            self._payload = group["payload"]
            payload_len = self._payload.shape[0]
        except (KeyError, OSError) as err:
            self._file.close()
            raise RecordingError(f"{self.path} is damaged: {err}") from err
        n = min(len(v) for v in index.values())
        ends = index["offset"][:n].astype(np.int64) + index["length"][:n]
        valid = int(np.count_nonzero(ends <= payload_len))  # ends increase: a cut-off tail fails
        self.damaged_messages = n - valid + (max(len(v) for v in index.values()) - n)
        self._index = {k: v[:valid] for k, v in index.items()}
        self.n_messages = valid
        self.source = str(f.attrs.get("source", ""))
        text = f.attrs.get("probe_descriptor")
        self.probe_info: ProbeInfo | None = info_from_json(text) if text else None

    @property
    def duration_s(self) -> float:
        t = self._index["host_time_s"]
        return float(t[-1] - t[0]) if len(t) > 1 else 0.0

    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for value, count in zip(*np.unique(self._index["type"], return_counts=True), strict=True):
            name = (
                MessageType(int(value)).name
                if int(value) in MessageType._value2member_map_
                else str(value)
            )
            counts[name] = int(count)
        return counts

    def messages(self, chunk_bytes: int = 64 * 1024 * 1024) -> Iterator[tuple[Message, float]]:
        """Every recorded message with its arrival time, in order (payloads read in chunks)."""
        idx = {k: v.tolist() for k, v in self._index.items()}
        offsets, lengths = idx["offset"], idx["length"]
        start = 0
        while start < self.n_messages:
            base = offsets[start]
            stop = start + 1
            while stop < self.n_messages and offsets[stop] + lengths[stop] - base <= chunk_bytes:
                stop += 1
            block = self._payload[base : offsets[stop - 1] + lengths[stop - 1]].tobytes()
            for i in range(start, stop):
                off = offsets[i] - base
                msg = Message(
                    idx["type"][i],
                    idx["flags"][i],
                    idx["sequence"][i],
                    idx["probe_time_us"][i],
                    block[off : off + lengths[i]],
                )
                yield msg, idx["host_time_s"][i]
            start = stop

    def samples(self) -> Iterator[Sample]:
        """Typed samples (frames, ensembles, IMU, status, faults) timed on the host clock.

        Timestamps come from the same online clock fit the live link uses, applied to the
        recorded arrival times, so live and replayed timestamps agree.
        """
        clock = ClockSync()
        for msg, arrival in self.messages():
            if msg.flags & 1:
                clock.reset()
            clock.update(msg.timestamp_us, arrival)
            if msg.type in (MessageType.PROBE_DESCRIPTOR, MessageType.ACK, MessageType.COMMAND):
                continue
            try:
                obj = pl.decode(msg, clock.to_host(msg.timestamp_us), clock.to_host_array)
            except ProtocolError:
                continue
            yield obj  # type: ignore[misc]

    def processed_names(self) -> list[str]:
        """Names of the pipeline outputs stored in this recording."""
        return sorted(self._file["processed"]) if "processed" in self._file else []

    def processed(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A pipeline output: ``(images [n, H, W], timestamps_s [n])``."""
        if name not in self.processed_names():
            raise RecordingError(
                f"{self.path} has no processed output {name!r}",
                hint=f"it has: {', '.join(self.processed_names()) or 'none'}",
            )
        group = self._file["processed"][name]
        n = min(group["data"].shape[0], group["timestamp_s"].shape[0])
        return group["data"][:n], group["timestamp_s"][:n]

    def close(self) -> None:
        self._file.close()
