"""SONIC student: held-out evaluation and the loss ablation (task / +DS / +KD / both).

Run (after ``sonoedge train sonic --out runs/sonic``):

- ``python benchmarks/sonic.py eval [--model sonic-16] [--extra-model runs/sonic-8]`` →
  docs/results/sonic.json and sonic.png (same as ``sonoedge eval sonic``);
- ``python benchmarks/sonic.py ablation --run runs/sonic --steps 600`` →
  docs/results/sonic_ablation.json: four students trained on the same cached data with the same
  teacher and step budget, scored on the held-out in-range set (Dice, best threshold).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: stable timings on a shared CPU

import argparse
import json
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ev = sub.add_parser("eval", help="held-out evaluation of the shipped student")
    ev.add_argument("--model", default="sonic-16")
    ev.add_argument("--extra-model", action="append", default=[])
    ev.add_argument("--teacher", default=None)
    ev.add_argument("--quick", action="store_true")
    ab = sub.add_parser("ablation", help="task / +DS / +KD / both at a small budget")
    ab.add_argument("--run", type=Path, default=Path("runs/sonic"))
    ab.add_argument("--steps", type=int, default=600)
    ab.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/sonic.py", *sys.argv[1:]])

    from sonoedge.bench.results import write_result
    from sonoedge.train import config as cfgmod
    from sonoedge.train import sonic
    from sonoedge.train.loop import make_progress

    progress = make_progress()
    progress.start()
    try:
        if args.what == "eval":
            metrics = sonic.evaluate(
                [args.model, *args.extra_model],
                None,
                Path("docs/results"),
                name="sonic" if not args.quick else "sonic_quick",
                quick=args.quick,
                command=command,
                progress=progress,
                teacher_path=args.teacher,
            )
            print(sonic.summarize(metrics))
            return 0
        cfg = json.loads((args.run / "config.json").read_text(encoding="utf-8"))
        if args.quick:
            cfg = cfgmod.merge(cfg, {"eval": {"n_scenes": 2}})
        table = sonic.ablation(cfg, args.run, args.steps, progress)
    finally:
        progress.stop()
    both, task_only = table["both"]["dice_mean"], table["task only"]["dice_mean"]
    metrics = {
        "table": table,
        "steps_per_student": args.steps,
        "batch_size": cfg["student"]["batch_size"],
        "n_train_scenes": cfg["data"]["n_train"],
        "n_eval_scenes": cfg["eval"]["n_scenes"],
        "student_frames": cfg["student"]["n_frames"],
        "dice_gain_both_vs_task_only": round(both - task_only, 4),
        "note": "same cached data, same teacher, same seed and step budget for every row",
    }
    path = write_result(
        "sonic_ablation" if not args.quick else "sonic_ablation_quick", metrics, command=command
    )
    for label, row in table.items():
        print(f"{label:<20} Dice {row['dice_mean']:.3f} ± {row['dice_std']:.3f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
