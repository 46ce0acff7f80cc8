"""ULM localisers on frames of an independent simulator (PyMUST): does what they learnt from
our simulator carry over?

Run: ``python benchmarks/ulm_pymust.py [--quick] [--model NAME|ONNX ...] [--psf-fit]
[--name NAME]`` →
docs/results/ulm_pymust.json (NAME.json) and .png. Needs PyMUST (``pip install
'sonoedge[validation]'``).

The scenes are the held-out sequences of ``sonoedge eval ulm`` (``sdk/train/configs/ulm.toml``:
the same parameter vectors, vessel trees and bubbles, every SNR × concentration cell), imaged
twice: by PyMUST (:mod:`sonoedge.synth.pymust_bubbles`: SIMUS plane wave, delay-and-sum) and
by our simulator, both without tissue clutter, so the two columns differ only in the simulator.
The networks were trained on our simulator's frames and are not retuned; the conventional
localisers' thresholds and windows are tuned for Jaccard on PyMUST validation sequences.
RMSE (λ), Jaccard, precision and recall at 0.25 λ, as in ``eval ulm``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sonoedge import zoo
from sonoedge.bench.results import RESULTS_DIR, write_result
from sonoedge.synth.microbubbles import simulate_bubbles
from sonoedge.synth.pymust_bubbles import import_pymust, simulate_bubbles_pymust
from sonoedge.train import config as cfgmod
from sonoedge.train import ulm as ulm_train
from sonoedge.zoo.ulm import UlmLocalizer

NO_CLUTTER_DB = -80.0
SIMULATORS = {"pymust": simulate_bubbles_pymust, "ours": simulate_bubbles}


def score_grid(
    cfg: dict[str, Any], fns: dict[str, Any], snrs: list[float], densities: list[float]
) -> dict[str, Any]:
    """Scores of every localiser per cell, on PyMUST's and on our frames of the same scenes."""
    e = cfg["eval"]
    cells: dict[str, Any] = {}
    for snr in snrs:
        for density in densities:
            row: dict[str, Any] = {"snr_db": snr, "density_per_lambda2": density}
            for sim, render in SIMULATORS.items():
                seqs = ulm_train.eval_sequences(
                    cfg, snr, density, 2, int(e["n_sequences"]), None, render, NO_CLUTTER_DB
                )
                row[sim] = ulm_train.score_cell(fns, seqs)
            cells[f"snr{snr:g}_d{density:g}"] = row
            print(
                f"{snr:4g} dB {density:5g}/lambda^2  "
                + "  ".join(
                    f"{k}: {row['pymust'][k]['rmse_lambda']:.3f}/{row['pymust'][k]['jaccard']:.3f}"
                    f" (ours {row['ours'][k]['rmse_lambda']:.3f}/{row['ours'][k]['jaccard']:.3f})"
                    for k in fns
                ),
                flush=True,
            )
    return cells


def figure(
    path: Path, cells: dict[str, Any], methods: list[str], example: dict[str, Any], snr: float
) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, sim in zip(axes[:2], ("ours", "pymust"), strict=True):
        ax.imshow(20 * np.log10(example[sim] / example[sim].max() + 1e-6), cmap="gray", vmin=-40)
        t = example["truth"]
        ax.plot(t[:, 1], t[:, 0], "g+", ms=8, label="truth")
        d = example[f"{sim}_found"]
        ax.plot(d[:, 1], d[:, 0], "rx", ms=6, label=example["method"])
        ax.set_title(f"{'our simulator' if sim == 'ours' else 'PyMUST'} ({snr:g} dB)")
        ax.axis("off")
    axes[0].legend(loc="lower right", fontsize=7)
    rows = [c for c in cells.values() if c["snr_db"] == snr]
    dens = [c["density_per_lambda2"] for c in rows]
    for ax, key, label in (
        (axes[2], "rmse_lambda", "RMSE (λ)"),
        (axes[3], "jaccard", "Jaccard at 0.25 λ"),
    ):
        for k, m in enumerate(methods):
            colour = f"C{k}"
            ax.plot(dens, [c["pymust"][m][key] for c in rows], "o-", color=colour, label=m)
            ax.plot(dens, [c["ours"][m][key] for c in rows], "s--", color=colour, alpha=0.6)
        ax.set_xlabel("bubbles / λ²  (solid: PyMUST, dashed: our simulator)")
        ax.set_title(f"{label} at {snr:g} dB")
    axes[2].axhline(0.1, color="k", lw=0.5)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def example_frames(
    cfg: dict[str, Any], model: UlmLocalizer, snr: float, density: float
) -> dict[str, Any]:
    """One frame of one scene from both simulators, with the truth and the network's finds."""
    from sonoedge.zoo.ulm import generator_parameters

    out: dict[str, Any] = {"method": "network"}
    for sim, render in SIMULATORS.items():
        b = ulm_train.eval_sequences(cfg, snr, density, 2, 1, None, render, NO_CLUTTER_DB)[0]
        found = model.localize(
            b.frames[:1],
            b.spacing_m,
            1540.0 / b.params.center_frequency_hz,
            params=generator_parameters(b.params),
        )
        out[sim], out[f"{sim}_found"] = b.frames[0], found[0]
        out["truth"] = b.positions_m[0] / np.asarray(b.spacing_m)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="ulm_quick.toml's tiny grid (smoke run)")
    ap.add_argument(
        "--model",
        action="append",
        help="localiser (shipped name or .onnx); repeat to score several; the first is "
        "`network` (default: ulm-localizer-pg, then ulm-localizer)",
    )
    ap.add_argument(
        "--psf-fit",
        action="store_true",
        help="also score the first network refined by the joint PSF fit in IQ "
        "(`network_psf_fit`; its PSF model is our simulator's transducer, not PyMUST's)",
    )
    ap.add_argument("--name", default="ulm_pymust", help="result name (NAME.json, NAME.png)")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = ap.parse_args()
    import_pymust()  # a clear error before any work when PyMUST is missing
    cfg = cfgmod.load("ulm", quick=args.quick)
    e = cfg["eval"]
    snrs = [30.0] if args.quick else [float(s) for s in e["snr_db"]]
    densities = [float(d) for d in e["density"]]
    names = args.model or ["ulm-localizer-pg", "ulm-localizer"]
    model, *others = [zoo.load_task(p, "ulm", UlmLocalizer, threads=1) for p in names]
    t0 = time.perf_counter()
    val = [
        s
        for snr in (20.0, 30.0)
        for s in ulm_train.eval_sequences(
            cfg, snr, float(np.median(densities)), 1, 1, None, simulate_bubbles_pymust,
            NO_CLUTTER_DB,
        )
    ]  # fmt: skip
    tuned = ulm_train.tune_conventional(val)
    fns = ulm_train.localizer_fns(model, tuned, others)
    if args.psf_fit:
        fns["network_psf_fit"] = ulm_train.psf_fit_fn(model)
    cells = score_grid(cfg, fns, snrs, densities)
    example = example_frames(cfg, model, 30.0, densities[len(densities) // 2])
    at30 = [c for c in cells.values() if c["snr_db"] == 30.0]
    methods = list(fns)
    metrics: dict[str, Any] = {
        "models": {"network": model.name, **{f"network_{m.name}": m.name for m in others}},
        "cells": cells,
        "rmse_lambda_at_30db": {
            sim: {m: [c[sim][m]["rmse_lambda"] for c in at30] for m in methods}
            for sim in SIMULATORS
        },
        "jaccard_at_30db": {
            sim: {m: [c[sim][m]["jaccard"] for c in at30] for m in methods} for sim in SIMULATORS
        },
        "densities_per_lambda2": densities,
        "frames": {
            "size": int(e["size"]),
            "per_sequence": int(e["n_frames"]),
            "sequences": int(e["n_sequences"]),
        },
        "tolerance_lambda": 0.25,
        "conventional_tuned_on_pymust_val": tuned,
        "seconds": round(time.perf_counter() - t0, 1),
        "definition": "the held-out scenes of `sonoedge eval ulm` (same seeds and parameter "
        "vectors), imaged by PyMUST (SIMUS plane wave from a 128-element array of the vector's "
        "pitch, centre frequency, bandwidth and cycles; delay-and-sum at its F-number on the λ/4 "
        "grid) and by sonoedge.synth.microbubbles, both without tissue clutter; networks as "
        "shipped, conventional localisers tuned on PyMUST validation sequences",
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    figure(args.results_dir / f"{args.name}.png", cells, methods, example, 30.0)
    path = write_result(args.name, metrics, {"conventional": tuned}, results_dir=args.results_dir)
    print(f"wrote {path} ({metrics['seconds']} s)")


if __name__ == "__main__":
    main()
