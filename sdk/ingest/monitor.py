"""Live rates and latency of a sample stream (what ``sonoedge stream`` shows)."""

from __future__ import annotations

import time
from collections import Counter, deque

import numpy as np

from sonoedge.ingest.clock import host_now
from sonoedge.types import BmodeFrame, ImuBatch, IQEnsemble, IQFrame, LinkGap, Sample


class StreamMonitor:
    """Counts samples by kind and keeps acquisition→consumer latencies of image data."""

    def __init__(self, window: int = 2000) -> None:
        self.started = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.bytes_by_kind: Counter[str] = Counter()
        self.latencies_s: deque[float] = deque(maxlen=window)
        self.gaps: list[LinkGap] = []
        self.imu_samples = 0

    def add(self, sample: Sample) -> None:
        kind = type(sample).__name__
        self.counts[kind] += 1
        if isinstance(sample, BmodeFrame):
            self.bytes_by_kind[kind] += sample.image.nbytes
        elif isinstance(sample, IQFrame | IQEnsemble):
            self.bytes_by_kind[kind] += sample.iq.nbytes
        elif isinstance(sample, ImuBatch):
            self.imu_samples += len(sample)
        elif isinstance(sample, LinkGap):
            self.gaps.append(sample)
        if isinstance(sample, BmodeFrame | IQFrame | IQEnsemble):
            self.latencies_s.append(host_now() - sample.timestamp_s)

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def rates_hz(self) -> dict[str, float]:
        return {k: n / self.elapsed_s for k, n in sorted(self.counts.items())}

    def latency_ms(self) -> dict[str, float]:
        if not self.latencies_s:
            return {}
        arr = np.asarray(self.latencies_s) * 1e3
        return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}

    def summary(self) -> dict[str, object]:
        return {
            "elapsed_s": round(self.elapsed_s, 3),
            "samples": dict(self.counts),
            "rates_hz": {k: round(v, 2) for k, v in self.rates_hz().items()},
            "data_mb_s": round(sum(self.bytes_by_kind.values()) / self.elapsed_s / 1e6, 3),
            "imu_samples": self.imu_samples,
            "latency_ms": {k: round(v, 2) for k, v in self.latency_ms().items()},
            "gaps": [
                {"start_s": g.start_s, "duration_s": round(g.duration_s, 3), "reason": g.reason}
                for g in self.gaps
            ],
        }
