"""Clock mapping and the bounded queue."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sonoedge.ingest.clock import ClockSync
from sonoedge.ingest.queue import BoundedQueue


def test_clock_recovers_offset_and_drift_despite_jitter() -> None:
    rng = np.random.default_rng(0)
    clock = ClockSync()
    drift = 80e-6
    offset_s = 1_700_000_000.0
    acquired = np.arange(0, 60, 0.01)  # 100 messages/s for a minute of true (host) time
    probe_us = (3.0 + acquired * (1 - drift)) * 1e6  # probe counter runs slow by 80 ppm
    latency = 0.002 + rng.exponential(0.004, acquired.size)
    for p, t, lat in zip(probe_us.astype(np.int64), acquired, latency, strict=True):
        clock.update(int(p), offset_s + t + lat)
    mapped = clock.to_host_array(probe_us.astype(np.int64)) - offset_s
    err = mapped[-1000:] - acquired[-1000:]
    assert abs(clock.drift_ppm - 80) < 10
    assert np.abs(err).max() < 0.004  # within the minimum transfer latency + 2 ms


def test_clock_resets_when_the_probe_counter_jumps_back() -> None:
    clock = ClockSync()
    for i in range(100):
        clock.update(10_000_000 + i * 10_000, 100.0 + i * 0.01)
    clock.update(5_000, 101.5)
    assert clock.updates == 1
    assert clock.to_host(5_000) == pytest.approx(101.5)


def test_queue_policies() -> None:
    oldest: BoundedQueue[int] = BoundedQueue(2, "drop_oldest")
    newest: BoundedQueue[int] = BoundedQueue(2, "drop_newest")
    for i in range(5):
        oldest.put(i)
        newest.put(i)
    assert [oldest.get(0), oldest.get(0)] == [3, 4] and oldest.dropped == 3
    assert [newest.get(0), newest.get(0)] == [0, 1] and newest.dropped == 3


def test_blocking_queue_loses_nothing() -> None:
    q: BoundedQueue[int] = BoundedQueue(3, "block")
    got: list[int] = []

    def consume() -> None:
        while (item := q.get(1.0)) is not None:
            got.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(500):
        q.put(i)
    q.close()
    consumer.join(5)
    assert got == list(range(500)) and q.dropped == 0


def test_queue_bounded_by_bytes() -> None:
    q: BoundedQueue[bytes] = BoundedQueue(100, "drop_oldest", max_bytes=10, size_of=len)
    for chunk in (b"aaaa", b"bbbb", b"cccc", b"dd"):
        q.put(chunk)
    assert q.queued_bytes <= 10 and q.dropped == 1
    assert [q.get(0), q.get(0), q.get(0)] == [b"bbbb", b"cccc", b"dd"]
    big: BoundedQueue[bytes] = BoundedQueue(100, "drop_newest", max_bytes=10, size_of=len)
    big.put(b"x" * 50)  # an item larger than the bound still passes when the queue is empty
    assert big.put(b"y") is False and big.get(0) == b"x" * 50
