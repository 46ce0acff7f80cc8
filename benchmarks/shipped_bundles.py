"""Latency of the shipped signed bundles: int8 against fp32 of each student, side by side.

Usage: python benchmarks/shipped_bundles.py [--quick]  → docs/results/bundles.json + .png

OpenVINO bundles run on the OpenVINO runtime (``openvino-cpu``); Jetson bundles run here on the
ONNX Runtime CPU EP (their fallback on a machine without a GPU), so the Jetson pair measures ONNX
Runtime fp32 against QDQ int8. Inputs: despeckling and enhancement 256×256, SONIC 128×128 (2
feature channels per frame), the ULM localiser a batch of 32 frames 128×128 (one ensemble).
fp32 and int8 alternate over rounds (each times a model for ~0.3 s) so machine load hits both
alike; medians of the per-round medians are reported with p99 over all runs. SONIC inputs lie
in channels-last memory, as :class:`sonoedge.zoo.sonic.SonicModel` feeds them.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sonoedge import zoo
from sonoedge.bench.results import RESULTS_DIR, write_result
from sonoedge.devices import load_bundle
from sonoedge.devices.latency import measure

SHAPES = {
    "despeckle": (1, 1, 256, 256),
    "enhance": (1, 1, 256, 256),
    "sonic": (1, 32, 128, 128),
    "ulm": (32, 1, 128, 128),
}
CHANNELS_LAST = {"sonic"}
"""Tasks whose runtime feeds the network channels-last memory (:func:`ensemble_features_nhwc`)."""
TARGET_DEVICE = {"openvino-cpu": "openvino-cpu", "jetson-orin-nano": "cpu"}


def main() -> None:
    quick = "--quick" in sys.argv
    rounds, round_s = (1, 0.02) if quick else (6, 0.3)
    command = " ".join(["python benchmarks/shipped_bundles.py", *sys.argv[1:]])
    index = json.loads((zoo.BUNDLE_DIR / "index.json").read_text(encoding="utf-8"))["bundles"]
    shipped = zoo.shipped_bundles()
    pairs: dict[str, Any] = {}
    for file, entry in index.items():
        name = Path(file).stem
        if entry["precision"] != "int8":
            continue
        student = entry["model"].removesuffix("-int8")
        fp32 = f"{student}-fp32-{entry['target']}"
        if fp32 not in shipped:
            continue
        device = TARGET_DEVICE[entry["target"]]
        shape = list(SHAPES[entry["task"]])
        runners = {k: load_bundle(shipped[k], device, threads=2) for k in (fp32, name)}
        shape[1] = int(runners[fp32].inputs[0]["shape"][1])  # channels (SONIC: 2 x frames)
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        if entry["task"] in CHANNELS_LAST:  # as the student's feature builder lays it out
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        try:
            feeds = {k: {r.inputs[0]["name"]: x} for k, r in runners.items()}
            for k, r in runners.items():
                r.prepare(feeds[k])  # a stream's steady state: compiled for its frame shape
            # each round times each model for about round_s (at least 30 inferences)
            probe = measure(runners[fp32].run, feeds[fp32], warmup=3, repeats=5)["median_ms"]
            repeats = max(5 if quick else 30, int(1e3 * round_s / probe))
            per_round: dict[str, list[dict[str, float]]] = {k: [] for k in runners}
            for _ in range(rounds):
                for k, r in runners.items():
                    per_round[k].append(measure(r.run, feeds[k], warmup=3, repeats=repeats))
            backend = {k: r.backend_name for k, r in runners.items()}
        finally:
            for r in runners.values():
                r.close()
        med = {k: statistics.median(m["median_ms"] for m in v) for k, v in per_round.items()}
        p99 = {k: max(m["p99_ms"] for m in v) for k, v in per_round.items()}
        pairs[f"{student} on {backend[name]}"] = {
            "fp32_bundle": fp32,
            "int8_bundle": name,
            "input_shape": shape,
            "input_memory": "channels-last" if entry["task"] in CHANNELS_LAST else "contiguous",
            "fp32_ms": {"median": round(med[fp32], 3), "p99": round(p99[fp32], 3)},
            "int8_ms": {"median": round(med[name], 3), "p99": round(p99[name], 3)},
            "int8_speedup": round(med[fp32] / med[name], 2),
            "int8_metric_drop": entry["vs_fp32"],
            "int8_bytes": entry["bytes"],
        }
    not_shipped = json.loads((zoo.BUNDLE_DIR / "index.json").read_text(encoding="utf-8"))[
        "not_shipped"
    ]
    metrics = {"pairs": pairs, "not_shipped": not_shipped, "rounds": rounds, "round_s": round_s}
    write_result("bundles", metrics, {"target_openvino_int8_speedup": 2.5}, command=command)

    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.7 * max(1, len(pairs))))
    names = list(pairs)
    y = np.arange(len(names))
    ax.barh(y - 0.2, [pairs[n]["fp32_ms"]["median"] for n in names], height=0.4, label="fp32")
    ax.barh(y + 0.2, [pairs[n]["int8_ms"]["median"] for n in names], height=0.4, label="int8")
    ax.set_yticks(y, [f"{n} ({pairs[n]['int8_speedup']}×)" for n in names], fontsize=8)
    ax.set_xlabel("median latency (ms), 2 threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = Path(RESULTS_DIR) / "bundles.png"
    fig.savefig(png, dpi=110)
    for n, p in pairs.items():
        print(
            f"{n}: fp32 {p['fp32_ms']['median']} ms, int8 {p['int8_ms']['median']} ms "
            f"({p['int8_speedup']}×), drop {p['int8_metric_drop']}"
        )
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
