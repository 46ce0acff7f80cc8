"""Ingest benchmark: decoder throughput, IMU message rate and robustness to corruption.

Everything is measured side by side in one run: the decoder against the CRC-32 ceiling (the
cheapest possible check of the same bytes), and the decoder with and without turning payloads
into typed numpy views.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sonoedge.firmware_bridge import payloads as pl
from sonoedge.firmware_bridge.decoder import Decoder
from sonoedge.firmware_bridge.wire import HEADER, HEADER_SIZE, MAGIC, VERSION, Encoder, crc32
from sonoedge.types import BmodeFrame, ImuBatch, IQEnsemble, ProbeStatus

CORRUPTIONS = (
    "header_bit_flip",
    "payload_bit_flip",
    "truncated",
    "garbage_inserted",
    "huge_length",
    "wrong_version",
    "unknown_type",
)


def ensemble_messages(n: int, frames: int = 16, shape: tuple[int, int] = (128, 128)) -> list[bytes]:
    """``n`` IQ-ensemble messages of ``frames``×H×W complex64 (16×128×128 is 2 MiB)."""
    rng = np.random.default_rng(0)
    iq = (
        rng.standard_normal((frames, *shape)) + 1j * rng.standard_normal((frames, *shape))
    ).astype(np.complex64)
    enc = Encoder()
    out = []
    for i in range(n):
        ens = IQEnsemble(spacing_m=(1e-4, 2e-4), frame_index=i, iq=iq, prf_hz=1000.0)
        msg_type, parts = pl.encode_parts(ens)
        out.append(enc.encode(msg_type, parts, 1000 * i))
    return out


def imu_messages(n: int, samples: int = 10) -> list[bytes]:
    """``n`` IMU-batch messages of ``samples`` samples each (328-byte payloads by default)."""
    rng = np.random.default_rng(1)
    gyro = rng.standard_normal((samples, 3)).astype(np.float32)
    accel = rng.standard_normal((samples, 3)).astype(np.float32)
    batch = ImuBatch(times_s=np.zeros(samples), gyro_dps=gyro, accel_g=accel)
    enc = Encoder()
    out = []
    for i in range(n):
        msg_type, parts = pl.encode_parts(batch, np.arange(samples, dtype=np.uint64) + 10 * i)
        out.append(enc.encode(msg_type, parts, i))
    return out


def mixed_messages(n: int, seed: int = 0) -> list[bytes]:
    """A realistic mix of small messages: IMU batches, status, small B-mode frames."""
    rng = np.random.default_rng(seed)
    enc = Encoder()
    gyro = rng.standard_normal((10, 3)).astype(np.float32)
    image = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    status = ProbeStatus("streaming", "bmode", 0.04, 1000.0, 0.0, 30.0, 0, 0)
    kinds = rng.choice(3, size=n, p=[0.7, 0.05, 0.25])
    out = []
    for i, kind in enumerate(kinds.tolist()):
        if kind == 0:
            obj: pl.Decoded = ImuBatch(times_s=np.zeros(10), gyro_dps=gyro, accel_g=gyro)
            msg_type, parts = pl.encode_parts(obj, np.arange(10, dtype=np.uint64) + i)
        elif kind == 1:
            msg_type, parts = pl.encode_parts(status)
        else:
            frame = BmodeFrame(spacing_m=(1e-4, 1e-4), frame_index=i, image=image)
            msg_type, parts = pl.encode_parts(frame)
        out.append(enc.encode(msg_type, parts, i))
    return out


def corrupt(msg: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """Damage one message in the named way (see ``CORRUPTIONS``).

    ``garbage_inserted`` damages the stream, not the message: the message itself stays valid.
    """
    data = bytearray(msg)
    if kind == "header_bit_flip":
        bit = int(rng.integers(0, HEADER_SIZE * 8))
        data[bit // 8] ^= 1 << (bit % 8)
    elif kind == "payload_bit_flip":
        bit = int(rng.integers(HEADER_SIZE * 8, len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
    elif kind == "truncated":
        data = data[: int(rng.integers(1, len(data)))]
    elif kind == "garbage_inserted":
        junk = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        if rng.random() < 0.5:
            junk += MAGIC + junk[:20]  # a fake start of message inside the garbage
        data = bytearray(junk) + data
    elif kind in ("huge_length", "wrong_version", "unknown_type"):
        fields = list(HEADER.unpack_from(data))
        if kind == "huge_length":
            fields[5] = int(rng.integers(1 << 28, 1 << 32))
        elif kind == "wrong_version":
            fields[1] = VERSION + int(rng.integers(1, 200))
        else:
            fields[2] = 0xEE
        head = HEADER.pack(*fields)
        data[: HEADER.size] = head
        data[HEADER.size : HEADER_SIZE] = zlib.crc32(head).to_bytes(4, "little")
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    return bytes(data)


@dataclass
class RobustnessResult:
    messages: int
    corrupted: int
    valid_lost: int
    corrupt_accepted: int
    rejected: dict[str, int]


def robustness(
    n_messages: int, corrupt_fraction: float = 0.01, seed: int = 0, chunk_bytes: int = 4096
) -> RobustnessResult:
    """Decode a stream where ``corrupt_fraction`` of the messages were damaged in varied ways.

    ``valid_lost`` counts undamaged messages the decoder did not deliver; ``corrupt_accepted``
    counts delivered messages that are not byte-identical to an undamaged original.
    """
    rng = np.random.default_rng(seed)
    originals = mixed_messages(n_messages, seed)
    damaged = rng.random(n_messages) < corrupt_fraction
    kinds = rng.choice(len(CORRUPTIONS), size=n_messages)
    stream = bytearray()
    for msg, bad, kind in zip(originals, damaged.tolist(), kinds.tolist(), strict=True):
        stream += corrupt(msg, CORRUPTIONS[kind], rng) if bad else msg
    decoder = Decoder()
    received: list[bytes] = []
    view = memoryview(stream)
    for start in range(0, len(stream), chunk_bytes):
        received.extend(m.to_bytes() for m in decoder.feed(view[start : start + chunk_bytes]))
    received.extend(m.to_bytes() for m in decoder.flush())
    broken = damaged & (kinds != CORRUPTIONS.index("garbage_inserted"))
    valid = {msg for msg, bad in zip(originals, broken.tolist(), strict=True) if not bad}
    got = set(received)
    return RobustnessResult(
        messages=n_messages,
        corrupted=int(broken.sum()),
        valid_lost=len(valid - got),
        corrupt_accepted=sum(1 for m in received if m not in valid),
        rejected=dict(decoder.stats),
    )


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _feed_all(stream: bytes, chunk: int, typed: bool) -> int:
    decoder = Decoder()
    view = memoryview(stream)
    n = 0
    for start in range(0, len(stream), chunk):
        for msg in decoder.feed(view[start : start + chunk]):
            if typed:
                pl.decode(msg, 0.0)
            n += 1
    return n


def run(quick: bool = False, repeats: int = 5) -> dict[str, object]:
    """Run every ingest measurement; returns ``{"metrics": ..., "baselines": ...}``."""
    n_ens = 10 if quick else 50
    n_imu = 20_000 if quick else 200_000
    n_robust = 20_000 if quick else 1_000_000
    ens_stream = b"".join(ensemble_messages(n_ens))
    imu_stream = b"".join(imu_messages(n_imu))
    mb = len(ens_stream) / 1e6
    chunk = 1 << 20  # what a USB bulk reader typically hands over

    t_decode = _timed(lambda: _feed_all(ens_stream, chunk, typed=False), repeats)
    t_typed = _timed(lambda: _feed_all(ens_stream, chunk, typed=True), repeats)
    t_crc = _timed(lambda: crc32(ens_stream), repeats)
    t_imu = _timed(lambda: _feed_all(imu_stream, 65536, typed=False), repeats)
    t_imu_typed = _timed(lambda: _feed_all(imu_stream, 65536, typed=True), repeats)
    robust = robustness(n_robust, 0.01, seed=0)

    def rate(total: float, times: list[float]) -> dict[str, float]:
        arr = np.asarray(times)
        return {
            "median": float(total / np.median(arr)),
            "p99_time_rate": float(total / np.percentile(arr, 99)),
        }

    decode = rate(mb, t_decode)
    crc = rate(mb, t_crc)
    imu = rate(n_imu, t_imu)
    metrics: dict[str, object] = {
        "decode_mb_s": round(decode["median"], 1),
        "decode_mb_s_p99": round(decode["p99_time_rate"], 1),
        "decode_typed_mb_s": round(rate(mb, t_typed)["median"], 1),
        "ensemble_message_bytes": len(ens_stream) // n_ens,
        "imu_msgs_s": round(imu["median"]),
        "imu_msgs_s_p99": round(imu["p99_time_rate"]),
        "imu_typed_msgs_s": round(rate(n_imu, t_imu_typed)["median"]),
        "robustness_messages": robust.messages,
        "robustness_corrupted": robust.corrupted,
        "valid_lost": robust.valid_lost,
        "corrupt_accepted": robust.corrupt_accepted,
        "rejected_by_reason": robust.rejected,
        "repeats": repeats,
    }
    baselines: dict[str, object] = {
        "crc32_only_mb_s": round(crc["median"], 1),
        "decode_vs_crc32_ratio": round(decode["median"] / crc["median"], 3),
        "target_decode_mb_s": 400,
        "target_imu_msgs_s": 200_000,
    }
    return {"metrics": metrics, "baselines": baselines}
