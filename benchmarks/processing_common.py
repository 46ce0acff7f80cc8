"""Timing helpers shared by the processing benchmarks (warm-up, repeats, median and p99)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def time_call(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; seconds as median, p99, min.

    The minimum is the least disturbed run when other work shares the CPU.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    arr = np.asarray(times)
    return {
        "median_s": float(np.median(arr)),
        "p99_s": float(np.percentile(arr, 99)),
        "min_s": float(arr.min()),
        "repeats": repeats,
    }
