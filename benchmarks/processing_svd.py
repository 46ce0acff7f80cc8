"""SVD clutter-filter cost against pixels x frames: full SVD vs Gram+eigh vs block-wise.

Run: ``python benchmarks/processing_svd.py`` (``--quick`` for a smaller grid). Writes
docs/results/processing_svd.json and .png. Every filter keeps components ``N//8 .. N`` so the
three solvers do the same job; block-wise uses 32x32 blocks with 50 % overlap.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: stable timings on a shared CPU

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from processing_common import time_call

from sonoedge.bench.results import write_result
from sonoedge.processing.clutter import svd_filter

FULL = [(128, 16), (128, 64), (128, 128), (256, 16), (256, 64), (256, 128), (256, 256)]
QUICK = [(64, 16), (128, 16), (128, 64)]
FULL_SVD_MAX_WORK = 256 * 256 * 256  # one repeat above 128^3: seconds per call


def ensemble(side: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, side, side)
    tissue = 30 * (rng.standard_normal(shape[1:]) + 1j * rng.standard_normal(shape[1:]))
    drift = np.exp(1j * 0.05 * np.arange(n))[:, None, None]
    noise = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return (tissue[None] * drift + noise).astype(np.complex64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    rows = []
    for side, n in sizes:
        iq = ensemble(side, n, args.seed)
        low = max(1, n // 8)
        row: dict[str, Any] = {"pixels": side * side, "frames": n, "side": side}
        row["gram_eigh"] = time_call(partial(svd_filter, iq, low=low), args.repeats)
        row["blockwise"] = time_call(partial(svd_filter, iq, low=low, block_px=32), args.repeats)
        if side * side * n <= FULL_SVD_MAX_WORK:
            reps = args.repeats if side * side * n <= 128 * 128 * 128 else 1
            row["full_svd"] = time_call(
                partial(svd_filter, iq, low=low, solver="full"), reps, warmup=0
            )
        ratio = ""
        if "full_svd" in row:
            speedup = row["full_svd"]["median_s"] / row["gram_eigh"]["median_s"]
            row["speedup_gram_vs_full"] = speedup
            ratio = f"  full/gram = {speedup:6.1f}x"
        print(
            f"{side:4d}^2 x {n:3d}: gram {row['gram_eigh']['median_s'] * 1e3:8.1f} ms"
            f"  block {row['blockwise']['median_s'] * 1e3:8.1f} ms"
            + (
                f"  full {row['full_svd']['median_s'] * 1e3:9.1f} ms"
                if "full_svd" in row
                else "  full (skipped: too slow)"
            )
            + ratio,
            flush=True,
        )
        rows.append(row)
    speedups = [r["speedup_gram_vs_full"] for r in rows if "speedup_gram_vs_full" in r]
    metrics = {
        "sizes": rows,
        "median_speedup_gram_vs_full": float(np.median(speedups)) if speedups else None,
    }
    baselines = {"full_svd": "numpy.linalg.svd of the Casorati matrix (complex64)"}
    name = "processing_svd_quick" if args.quick else "processing_svd"
    command = "python benchmarks/processing_svd.py" + (" --quick" if args.quick else "")
    path = write_result(
        name, metrics, baselines, command=command, blas_threads=os.environ["OPENBLAS_NUM_THREADS"]
    )
    plot(rows, path.with_suffix(".png"))
    print(f"wrote {path}")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    work = np.array([r["pixels"] * r["frames"] for r in rows], float)
    curves = (
        ("full_svd", "full SVD"),
        ("gram_eigh", "Gram + eigh"),
        ("blockwise", "block-wise (32 px, 50 % overlap)"),
    )
    for key, label in curves:
        pts = sorted((w, r[key]["median_s"]) for w, r in zip(work, rows, strict=True) if key in r)
        if pts:
            x, y = zip(*pts, strict=True)
            ax.loglog(x, y, "o-", label=label)
    ax.set_xlabel("pixels x frames")
    ax.set_ylabel("median time per ensemble (s)")
    ax.set_title("SVD clutter filter cost (one BLAS thread, shared CPU)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
