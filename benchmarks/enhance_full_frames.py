"""Enhancement students side by side on full-size simulated frames (PSNR, made-up structure).

Run: ``python benchmarks/enhance_full_frames.py [--quick] [--model NAME=ONNX ...] [--frames N]
[--seed S] [--name NAME]`` → docs/results/enhance_full_frames.json (NAME.json) and .png.

`sonoedge eval enhance` scores 128-px frames over the training display ranges. Deployed, a
student sees larger frames at the simulator's own display range, with more anechoic area. A
candidate once matched its predecessor on the 128-px sets while turning noise blotches in
anechoic regions of such frames into bright blobs. This benchmark scores every ``--model`` on the
same frames (:func:`sonoedge.train.enhance.full_frame_scores`): mean PSNR, the PSNR difference to
the first model per frame (mean ± standard error), and the share of the target's dark pixels
(< 0.05) a model shows above 0.25. The figure shows the frame where the models differ most.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sonoedge.bench.results import RESULTS_DIR, write_result
from sonoedge.train.enhance import full_frame_scores
from sonoedge.zoo import enhance

DEFAULT_SEED = 7_000_000
"""Disjoint from the compression harness (0–2), the shipped-student test (5) and `eval enhance`'s
full-size frames (5 000 000 + 10 007 · config seed)."""


def parse_models(specs: list[str]) -> dict[str, str]:
    """``NAME=ONNX`` (or a shipped name alone) → {name: model}."""
    models: dict[str, str] = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if name in models:
            sys.exit(f"--model {spec}: the name {name!r} is given twice")
        models[name] = path or name
    return models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 frames of 64x64 (smoke run)")
    ap.add_argument(
        "--model",
        action="append",
        default=None,
        help="NAME=ONNX (with its card) or a shipped name; repeat to compare; the first is the "
        "reference of the differences (default: enhance-student)",
    )
    ap.add_argument("--frames", type=int, default=48, help="frames (default 48)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="frame seed")
    ap.add_argument("--name", default="enhance_full_frames", help="result file stem")
    args = ap.parse_args()
    if args.frames < 2:
        sys.exit(f"--frames {args.frames}: expected >= 2 (differences need a standard error)")
    command = " ".join(["python benchmarks/enhance_full_frames.py", *sys.argv[1:]])
    n_frames, size = (4, 64) if args.quick else (args.frames, 256)
    specs = parse_models(args.model or ["enhance-student"])
    models = {name: enhance.load(path).enhance for name, path in specs.items()}
    scores, outputs = full_frame_scores(models, n_frames, size, args.seed)

    per_frame = {k: np.asarray(v) for k, v in scores["psnr_db_per_frame"].items()}
    first = next(iter(models))
    diffs: dict[str, Any] = {}
    for name in models:
        d = per_frame[name] - per_frame[first]
        diffs[name] = {
            "mean_db": round(float(d.mean()), 3),
            "standard_error_db": round(float(d.std(ddof=1) / np.sqrt(d.size)), 3),
            "worst_frame_db": round(float(d.min()), 3),
        }
    scores["psnr_db_vs_first_model"] = diffs
    scores["models"] = specs
    for name in ["input", *models]:
        line = f"{name:16s} PSNR {scores['psnr_db'][name]:6.2f} dB"
        made_up = scores["false_bright_fraction"][name]
        line += "  false-bright " + ("n/a (no dark pixel)" if made_up is None else f"{made_up:.5f}")
        if name in diffs:
            dd = diffs[name]
            line += f"  vs {first}: {dd['mean_db']:+.3f} +/- {dd['standard_error_db']:.3f} dB"
            line += f" (worst frame {dd['worst_frame_db']:+.2f})"
        print(line)
    write_result(args.name, scores, command=command)

    spread = np.max([per_frame[m] for m in models], 0) - np.min([per_frame[m] for m in models], 0)
    k = int(np.argmax(spread))
    cols = ["input", "target", *models]
    fig, axes = plt.subplots(1, len(cols), figsize=(2.4 * len(cols), 2.7), squeeze=False)
    for ax, name in zip(axes[0], cols, strict=True):
        ax.imshow(outputs[name][k], cmap="gray", vmin=0, vmax=1)
        title = name if name == "target" else f"{name}\n{per_frame[name][k]:.2f} dB"
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"frame {k} (largest PSNR spread between the models)", fontsize=8)
    fig.tight_layout()
    png = Path(RESULTS_DIR) / f"{args.name}.png"
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
