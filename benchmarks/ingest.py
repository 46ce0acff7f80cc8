"""Ingest benchmark → docs/results/ingest.json and ingest.png.

Usage: python benchmarks/ingest.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sonoedge.bench import ingest
from sonoedge.bench.results import RESULTS_DIR, write_result


def main() -> None:
    quick = "--quick" in sys.argv
    result = ingest.run(quick=quick, repeats=3 if quick else 7)
    metrics, baselines = result["metrics"], result["baselines"]
    assert isinstance(metrics, dict) and isinstance(baselines, dict)
    command = "python benchmarks/ingest.py" + (" --quick" if quick else "")
    path = write_result("ingest", metrics, baselines, command=command)
    for key in ("decode_mb_s", "imu_msgs_s", "valid_lost", "corrupt_accepted"):
        print(f"{key:>18}: {metrics[key]}")
    print(f"decode / CRC-32-only ratio: {baselines['decode_vs_crc32_ratio']}")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].bar(
        ["decoder", "decoder+typed", "CRC-32 only", "target"],
        [metrics["decode_mb_s"], metrics["decode_typed_mb_s"], baselines["crc32_only_mb_s"], 400],
        color=["tab:blue", "tab:cyan", "tab:gray", "tab:red"],
    )
    axes[0].set_ylabel("MB/s (2 MB ensemble messages)")
    axes[1].bar(
        ["decoder", "decoder+typed", "target"],
        [metrics["imu_msgs_s"], metrics["imu_typed_msgs_s"], 200_000],
        color=["tab:blue", "tab:cyan", "tab:red"],
    )
    axes[1].set_ylabel("IMU messages/s")
    fig.suptitle(
        f"ingest, one core: {metrics['robustness_messages']:,} messages with "
        f"{metrics['robustness_corrupted']:,} corrupted → lost {metrics['valid_lost']}, "
        f"corrupt accepted {metrics['corrupt_accepted']}",
        fontsize=9,
    )
    fig.tight_layout()
    png = Path(RESULTS_DIR) / "ingest.png"
    fig.savefig(png, dpi=110)
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
