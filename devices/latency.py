"""Latency of a loaded bundle: warm-up, then median/p99/max per inference, and throughput."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt


def measure(
    run: Callable[[Mapping[str, npt.NDArray[Any]]], object],
    inputs: Mapping[str, npt.NDArray[Any]],
    warmup: int = 5,
    repeats: int = 50,
) -> dict[str, float]:
    """Run ``warmup`` untimed, then ``repeats`` timed inferences one after another."""
    for _ in range(warmup):
        run(inputs)
    times = np.empty(repeats)
    start = time.perf_counter()
    for i in range(repeats):
        t0 = time.perf_counter()
        run(inputs)
        times[i] = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {
        "median_ms": round(float(np.median(times)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 3),
        "max_ms": round(float(times.max()) * 1e3, 3),
        "throughput_per_s": round(repeats / total, 2),
        "repeats": repeats,
    }
