"""MK despeckling student against its teacher, its ablations, DnCNN, NLM and SRAD.

Run: ``python benchmarks/despeckle_student.py`` after ``sonoedge train despeckle --out
runs/despeckle`` (the teacher and the comparison networks are read from the run directory; the
student from the shipped ``despeckle-mk`` unless ``--model`` is given). ``--quick`` for a smoke run.

Scores: PSNR/SSIM on held-out simulated images (disjoint seeds), CNR/gCNR/ENL and edge width on
cyst phantoms, no-reference scores on real PLUS frames, 256×256 latency on 2 threads.
Writes docs/results/despeckle.json and .png (``despeckle_quick`` with ``--quick``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: stable timings on a shared CPU

import argparse
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="despeckle-mk", help="shipped name or .onnx")
    parser.add_argument("--run", type=Path, default=Path("runs/despeckle"), help="run directory")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    command = " ".join(
        shlex.quote(a) for a in ["python", "benchmarks/despeckle_student.py", *sys.argv[1:]]
    )

    from sonoedge.train import despeckle

    model = args.model
    teacher = args.run / "teacher.pt"
    name = "despeckle_quick" if args.quick else "despeckle"
    # the comparisons live in the run directory: evaluate its export when no model is named
    if model == "despeckle-mk" and (args.run / "despeckle-mk.onnx").exists():
        model = str(args.run / "despeckle-mk.onnx")
    m = despeckle.evaluate(
        [model],
        None,
        args.results_dir,
        name=name,
        quick=args.quick,
        command=command,
        cache_dir=args.cache,
        teacher_path=str(teacher) if teacher.exists() else None,
    )
    syn = m["psnr_ssim_heldout"]
    st = syn["student"]
    print(f"{'method':<20} {'PSNR dB':>8} {'SSIM':>7}")
    for key, row in syn.items():
        print(f"{key:<20} {row['psnr_db']:8.2f} {row['ssim']:7.3f}")
    for key in ("teacher", "dncnn", "nlm", "srad"):
        if key in syn:
            print(
                f"student - {key}: {st['psnr_db'] - syn[key]['psnr_db']:+.2f} dB, "
                f"SSIM {st['ssim'] - syn[key]['ssim']:+.3f}"
            )
    lat = m["latency"]
    print(
        f"256x256 on 2 threads: student {lat['student_ms']} ms, NLM {lat['nlm_ms']} ms "
        f"({lat['student_speedup_vs_nlm']}x), SRAD {lat['srad_ms']} ms "
        f"({lat['student_speedup_vs_srad']}x)"
    )
    print(f"teacher/student MACs: {m['teacher_over_student_macs']}x; targets: {m['targets']}")
    print(f"wrote {args.results_dir / (name + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
