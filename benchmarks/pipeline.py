"""Pipeline benchmark → docs/results/pipeline_<preset>.json and pipeline.png.

Usage: python benchmarks/pipeline.py [--quick] [--device D] [PRESET ...]
(default presets: bmode bmode-students doppler doppler-sonic; device: auto, the best backend here).
Student presets are also measured against their classical counterpart in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sonoedge.bench import pipeline as bench_pipeline
from sonoedge.bench.results import RESULTS_DIR, write_result


def main() -> None:
    from sonoedge.devices.targets import resolve_device

    args = sys.argv[1:]
    quick = "--quick" in args
    device = "auto"
    if "--device" in args:
        device = args[args.index("--device") + 1]
        args.remove("--device")
        args.remove(device)
    device = resolve_device(device)
    defaults = ["bmode", "bmode-students", "doppler", "doppler-sonic"]
    presets = [a for a in args if not a.startswith("--")] or defaults
    command = " ".join(["python benchmarks/pipeline.py", *sys.argv[1:]])
    fig, axes = plt.subplots(1, len(presets), figsize=(4.2 * len(presets), 3.6), squeeze=False)
    for ax, preset in zip(axes[0], presets, strict=True):
        result = bench_pipeline.run(preset, count=40 if quick else 300, quick=quick, device=device)
        m, b = result["metrics"], result["baselines"]
        write_result(f"pipeline_{preset}", m, b, command=command)
        print(
            f"{preset}: {m['fps']} fps ({b['pipelined_vs_sequential']}× sequential, "
            f"{b['pipelined_vs_default_blas']}× default-BLAS loop), "
            f"end to end p50/p99 {m['end_to_end_p50_ms']}/{m['end_to_end_p99_ms']} ms"
            + (
                f"; vs {b['versus']['preset']}: {b['versus']['fps']} fps, "
                f"ratio {b['versus']['fps_ratio']}×"
                if "versus" in b
                else ""
            )
        )
        names = list(m["stages"])
        p50 = [m["stages"][n]["p50_ms"] for n in names]
        p99 = [m["stages"][n]["p99_ms"] for n in names]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], p50, width=0.4, label="p50")
        ax.bar([i + 0.2 for i in x], p99, width=0.4, label="p99")
        ax.set_xticks(list(x), names)
        ax.set_ylabel("stage latency (ms)")
        ax.set_title(
            f"{preset} ({device}): {m['fps']} fps, e2e p99 {m['end_to_end_p99_ms']} ms", fontsize=8
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    png = Path(RESULTS_DIR) / "pipeline.png"
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
