"""Memory over a long stream: the Doppler preset on the virtual probe for N minutes.

Usage: python benchmarks/pipeline_soak.py [MINUTES]   (default 10) → docs/results/pipeline_soak.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import sonoedge
from sonoedge.bench.pipeline import rss_mb
from sonoedge.bench.results import RESULTS_DIR, write_result
from sonoedge.pipeline import Pipeline


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    url = "emulator://?preset=doppler&ensemble_rate_hz=20"
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    next_sample = t0
    with sonoedge.open_probe(url) as probe, Pipeline.from_preset("doppler") as pipeline:
        for _ in pipeline.run(probe, seconds=minutes * 60):
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - t0, rss_mb()))
                next_sample += 5.0
        stats = pipeline.stats()
    t, rss = np.array(samples).T
    warm = rss[t >= min(60.0, t[-1] / 4)]  # after the first minute (allocator warm-up)
    # Flatness: the median over the first and the last fifth after warm-up (queues and the
    # allocator make single samples jump; a leak shows as a trend between the two).
    fifth = max(len(warm) // 5, 1)
    early, late = float(np.median(warm[:fifth])), float(np.median(warm[-fifth:]))
    metrics = {
        "minutes": minutes,
        "results": stats.results,
        "fps": round(stats.fps, 2),
        "input_dropped": stats.input_dropped,
        "rss_mb_start": round(float(rss[0]), 1),
        "rss_mb_after_warmup_min": round(float(warm.min()), 1),
        "rss_mb_after_warmup_max": round(float(warm.max()), 1),
        "rss_mb_early_median": round(early, 1),
        "rss_mb_late_median": round(late, 1),
        "rss_trend_percent": round((late - early) / early * 100, 2),
        "end_to_end_p99_ms": round(stats.end_to_end_ms["p99"], 2),
    }
    write_result(
        "pipeline_soak",
        metrics,
        {"target_rss_trend_percent": 5.0},
        command=f"python benchmarks/pipeline_soak.py {minutes:g}",
    )
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(t / 60, rss)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(
        f"doppler preset, {stats.fps:.1f} fps: RSS trend after warm-up "
        f"{metrics['rss_trend_percent']} %",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(Path(RESULTS_DIR) / "pipeline_soak.png", dpi=110)
    print(metrics)


if __name__ == "__main__":
    main()
