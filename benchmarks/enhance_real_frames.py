"""The shipped enhancement student on real B-mode frames (PLUS sample sequences), no reference.

Run: ``python benchmarks/enhance_real_frames.py [--quick] [--model ONNX] [--name NAME]`` →
docs/results/enhance_real_frames.json (NAME.json) and .png. ``SONOEDGE_PLUS_DATA`` overrides
the folder of the PLUS files (default /work/shared/data/plus).

Real frames have no ground truth, so the scores are no-reference
(:func:`sonoedge.metrics.no_reference_scores`): estimated white-noise σ, mean gradient magnitude,
mean of the brightest 0.1 % of pixels (bright reflectors) and mean absolute change, each a mean
over evenly spaced frames, central 256×256 crops. Two sequences: the N-wire phantom in water of
``sonoedge eval enhance`` and the probe-rotation sequence (wires and walls in water). Methods:
the student (onnxruntime, one pass and its 8-copy self-ensemble) and, as the classical
comparison, Richardson–Lucy (isotropic σ = 1 px PSF, 1 iteration) + NLM (h = 20): the blind
baseline that `eval enhance` picked for light Gaussian noise on the large set's validation
frames. The real PSF and noise are unknown, so no method is tuned here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from sonoedge.bench.results import RESULTS_DIR, write_result
from sonoedge.io.plus import sample_frames
from sonoedge.metrics import no_reference_scores
from sonoedge.processing.deconvolution import deconvolve_nlm
from sonoedge.zoo import enhance

PLUS = Path(os.environ.get("SONOEDGE_PLUS_DATA", "/work/shared/data/plus"))
SEQUENCES = {
    "nwire": "NwirePhantomFreehand.igs.mha",
    "probe_rotation": "USTC_FrameGrabber_ProbeRotationData.igs.mha",
}
FloatArray = npt.NDArray[np.float32]
Method = Callable[[FloatArray], FloatArray]


def rl_nlm(image: FloatArray) -> FloatArray:
    """Blind RL (σ = 1 px, 1 iteration) + NLM (h = 20)."""
    return deconvolve_nlm("richardson_lucy", image, (1.0, 1.0), 1, 20.0)


def score(images: list[FloatArray], methods: dict[str, Method]) -> tuple[dict[str, Any], Any]:
    """Mean no-reference scores per method (and the input), the change of the brightest 0.1 %
    relative to the input's, and the outputs on the middle frame (for the figure)."""
    rows: dict[str, list[dict[str, float]]] = {}
    middle: dict[str, FloatArray] = {}
    for k, img in enumerate(images):
        outs = {"input": img, **{name: fn(img) for name, fn in methods.items()}}
        for name, out in outs.items():
            rows.setdefault(name, []).append(no_reference_scores(out, img))
        if k == len(images) // 2:
            middle = outs
    table: dict[str, Any] = {}
    for name, scores in rows.items():
        table[name] = {m: round(float(np.mean([s[m] for s in scores])), 6) for m in scores[0]}
    bright_in = table["input"]["bright_targets_mean"]
    for name in table:
        table[name]["bright_change"] = round(table[name]["bright_targets_mean"] / bright_in - 1, 4)
    return table, middle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 frames of 128x128 (smoke run)")
    ap.add_argument("--model", default="enhance-student", help="shipped name or .onnx + card")
    ap.add_argument("--name", default="enhance_real_frames", help="result file stem")
    args = ap.parse_args()
    command = " ".join(["python benchmarks/enhance_real_frames.py", *sys.argv[1:]])
    n_frames, size = (2, 128) if args.quick else (6, 256)
    model = enhance.load(args.model)
    methods: dict[str, Method] = {
        "student": model.enhance,
        "student_self_ensemble_8": lambda im: model.enhance(im, self_ensemble=8),
        "rl_nlm_blind": rl_nlm,
    }
    results: dict[str, Any] = {}
    panels: dict[str, dict[str, FloatArray]] = {}
    for key, name in SEQUENCES.items():
        path = PLUS / name
        if not path.is_file():
            sys.exit(f"{path} not found: set SONOEDGE_PLUS_DATA to the folder of the PLUS files")
        sample = sample_frames(path, n_frames, size)
        table, panels[key] = score(sample.frames, methods)
        results[key] = {"file": name, "frames": sample.indices, "crop_px": size, "scores": table}
        for method, row in table.items():
            print(
                f"{key:15s} {method:24s} noise σ {row['noise_sigma']:.5f}  gradient "
                f"{row['mean_gradient']:.5f}  brightest 0.1 % {row['bright_targets_mean']:.4f} "
                f"({row['bright_change']:+.1%})  |change| {row['mean_abs_change']:.5f}"
            )
    results["note"] = (
        "No reference: lower noise σ with kept or higher gradient and brightest-0.1 % means "
        "denoised without blurring or dimming the reflectors; bright_change is relative to the "
        "input."
    )
    write_result(args.name, results, command=command, model=str(args.model))

    cols = ["input", *methods]
    fig, axes = plt.subplots(len(panels), len(cols) + 1, figsize=(2.3 * (len(cols) + 1), 2.5 * 2))
    for r, (key, outs) in enumerate(panels.items()):
        for c, name in enumerate(cols):
            axes[r, c].imshow(outs[name], cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(f"{key}: {name}" if c == 0 else name, fontsize=7)
        diff = axes[r, -1].imshow(outs["student"] - outs["input"], cmap="bwr", vmin=-0.2, vmax=0.2)
        axes[r, -1].set_title("student − input", fontsize=7)
        fig.colorbar(diff, ax=axes[r, -1], fraction=0.046)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    png = Path(RESULTS_DIR) / f"{args.name}.png"
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
