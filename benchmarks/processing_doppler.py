"""Power-Doppler quality of the classical SVD filters against ensemble length (simulated data).

Run: ``python benchmarks/processing_doppler.py`` (``--quick`` for a smoke run). Scenes come from
``sonoedge.synth.doppler.simulate_doppler`` (L11-5v, handheld motion, vessel trees); each method
sees the first N frames. Vessel Dice/IoU use two threshold policies: ``best`` (the threshold that
maximises Dice, an upper bound) and ``p85`` (the top 15 % of pixels, a fixed rule). ``oracle``
is the fixed cutoff with the best Dice per scene and N (what tuning could reach). Writes
docs/results/processing_doppler.json and .png: the curve the SONIC student must beat.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: stable timings on a shared CPU

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from processing_common import time_call

from sonoedge.bench.results import write_result
from sonoedge.metrics import vessel_scores
from sonoedge.processing.clutter import gram_eig, power_doppler, svd_filter
from sonoedge.synth.doppler import simulate_doppler
from sonoedge.synth.transducer import get_preset

METHODS = {
    "svd_fixed": partial(svd_filter, cutoff="fixed"),
    "svd_energy": partial(svd_filter, cutoff="energy"),
    "svd_ssm": partial(svd_filter, cutoff="ssm"),
    "svd_block": partial(svd_filter, cutoff="ssm", block_px=32),
}
ORACLE_LOWS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
PERCENTILE = 85.0


def oracle(iq: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    """Best best-threshold Dice over fixed low cutoffs (one Gram decomposition, many bands)."""
    n = iq.shape[0]
    s = iq.reshape(n, -1).T
    _, v = gram_eig(s)
    best = (-1.0, 1)
    for low in (lo for lo in ORACLE_LOWS if lo < n):
        vk = v[:, low:]
        filtered = (s @ (vk @ vk.conj().T).astype(np.complex64)).T.reshape(iq.shape)
        score = vessel_scores(power_doppler(filtered), mask).dice
        best = max(best, (score, low))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lengths = (8, 16, 32) if args.quick else (8, 16, 32, 64, 128, 256)
    size = 64 if args.quick else args.size
    scenes = 1 if args.quick else args.scenes
    probe = get_preset("L11-5v")
    prf_hz = 1000.0
    names = [*METHODS, "oracle_fixed"]
    dice: dict[str, dict[int, list[float]]] = {m: {n: [] for n in lengths} for m in names}
    dice_p: dict[str, dict[int, list[float]]] = {m: {n: [] for n in lengths} for m in METHODS}
    iou: dict[str, dict[int, list[float]]] = {m: {n: [] for n in lengths} for m in METHODS}
    timing: dict[str, dict[int, float]] = {m: {} for m in METHODS}
    oracle_lows: dict[int, list[int]] = {n: [] for n in lengths}
    for k in range(scenes):
        start = time.perf_counter()
        scene = simulate_doppler(probe, max(lengths), prf_hz, size, size, seed=args.seed + k)
        print(
            f"scene {k}: {size}x{size}x{max(lengths)}, blood {scene.blood_db:.1f} dB, "
            f"noise {scene.noise_db:.1f} dB, vessels {scene.vessel_mask.mean():.1%} "
            f"({time.perf_counter() - start:.1f} s to simulate)",
            flush=True,
        )
        for n in lengths:
            iq = scene.iq[:n]
            for name, fn in METHODS.items():
                pd = power_doppler(fn(iq))
                best = vessel_scores(pd, scene.vessel_mask, "best")
                fixed = vessel_scores(pd, scene.vessel_mask, "percentile", PERCENTILE)
                dice[name][n].append(best.dice)
                iou[name][n].append(best.iou)
                dice_p[name][n].append(fixed.dice)
                if k == 0:
                    timing[name][n] = time_call(partial(fn, iq), repeats=3)["median_s"]
            score, low = oracle(iq, scene.vessel_mask)
            dice["oracle_fixed"][n].append(score)
            oracle_lows[n].append(low)
            line = "  ".join(f"{m} {dice[m][n][-1]:.3f}" for m in names)
            print(f"  N={n:3d}: Dice(best thr)  {line}", flush=True)

    def mean(table: dict[str, dict[int, list[float]]]) -> dict[str, dict[str, float]]:
        return {m: {str(n): float(np.mean(v)) for n, v in per.items()} for m, per in table.items()}

    metrics: dict[str, Any] = {
        "scene": {
            "probe": "L11-5v",
            "pixels": [size, size],
            "prf_hz": prf_hz,
            "scenes": scenes,
            "seeds": [args.seed + k for k in range(scenes)],
        },
        "dice_best_threshold": mean(dice),
        "dice_percentile_85": mean(dice_p),
        "iou_best_threshold": mean(iou),
        "oracle_fixed_low": {str(n): v for n, v in oracle_lows.items()},
        "time_per_ensemble_s": {
            m: {str(n): t for n, t in per.items()} for m, per in timing.items()
        },
    }
    long_n, short_n = max(lengths), 16 if 16 in lengths else min(lengths)
    ref = metrics["dice_best_threshold"]["svd_ssm"]
    metrics["student_targets"] = {
        f"svd_ssm_dice_at_{long_n}": ref[str(long_n)],
        f"svd_ssm_dice_at_{short_n}_plus_0.10": ref[str(short_n)] + 0.10,
    }
    print("\nmean Dice (best threshold) by N:")
    for m in names:
        print(f"  {m:<13}" + "  ".join(f"{n}:{np.mean(dice[m][n]):.3f}" for n in lengths))
    print("time per ensemble (ms), scene 0:")
    for m in METHODS:
        print(f"  {m:<13}" + "  ".join(f"{n}:{timing[m][n] * 1e3:.1f}" for n in lengths))
    name = "processing_doppler_quick" if args.quick else "processing_doppler"
    command = "python benchmarks/processing_doppler.py" + (" --quick" if args.quick else "")
    baselines = {"oracle_fixed": "fixed SVD cutoff tuned per scene on the ground truth"}
    path = write_result(
        name, metrics, baselines, command=command, blas_threads=os.environ["OPENBLAS_NUM_THREADS"]
    )
    plot(metrics, lengths, path.with_suffix(".png"))
    print(f"wrote {path}")


def plot(metrics: dict[str, Any], lengths: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, per in metrics["dice_best_threshold"].items():
        style = "k--" if name.startswith("oracle") else "o-"
        ax.semilogx([int(n) for n in per], list(per.values()), style, label=name, base=2)
    ax.set_xticks(list(lengths), [str(n) for n in lengths])
    ax.set_xlabel("ensemble length N (frames)")
    ax.set_ylabel("vessel Dice (best threshold)")
    ax.set_title("Classical power Doppler vs ensemble length (simulated L11-5v)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
