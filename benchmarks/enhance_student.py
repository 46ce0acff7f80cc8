"""Blind enhancement student against its Swin-Conv U-Net teacher, Wiener + NLM and
Richardson–Lucy + NLM.

Run: ``python benchmarks/enhance_student.py`` after the shipped student's run (``--run``, default
``runs/enhance-v3``: ``sonoedge train enhance --config sdk/train/configs/enhance-finetune.toml
--out runs/enhance-v3``; the teacher is read from the run directory; the student is the run's
export, else the shipped ``enhance-student`` or ``--model``). ``--quick`` for a smoke run.

Scores: PSNR/SSIM on held-out degraded frames per severity (light/moderate/heavy) and noise kind
(Gaussian, Fourier), point-target FWHM and peak gradient, cyst edge position, no-reference scores
on real PLUS frames, 256×256 latency (median, p99) on 2 threads, MACs and ONNX size.
Writes docs/results/enhance.json and .png (``enhance_quick`` with ``--quick``).
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
    parser.add_argument("--model", default="enhance-student", help="shipped name or .onnx")
    parser.add_argument("--run", type=Path, default=Path("runs/enhance-v3"), help="run directory")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    command = " ".join(
        shlex.quote(a) for a in ["python", "benchmarks/enhance_student.py", *sys.argv[1:]]
    )

    from sonoedge.train import enhance

    model = args.model
    teacher = args.run / "teacher.pt"
    name = "enhance_quick" if args.quick else "enhance"
    if model == "enhance-student" and (args.run / "enhance-student.onnx").exists():
        model = str(args.run / "enhance-student.onnx")
    m = enhance.evaluate(
        [model],
        None,
        args.results_dir,
        name=name,
        quick=args.quick,
        command=command,
        cache_dir=args.cache,
        teacher_path=str(teacher) if teacher.exists() else None,
    )
    print(f"{'severity':<10} {'method':<12} {'PSNR dB':>8} {'SSIM':>7}")
    for sev, rows in m["psnr_ssim_per_severity"].items():
        for key, row in rows.items():
            print(f"{sev:<10} {key:<12} {row['psnr_db']:8.2f} {row['ssim']:7.3f}")
    for sev, row in m["margins_per_severity"].items():
        print(f"margins {sev}: {row}")
    pts = m["point_targets"]["degraded"]
    for key in ("input", "wiener_nlm", "rl_nlm", "teacher", "student"):
        if key in pts:
            print(
                f"point targets {key:<12} FWHM {pts[key]['fwhm_mean_px']:.2f} px "
                f"({pts[key]['fwhm_change_vs_input']:+.1%}), peak gradient "
                f"{pts[key]['peak_gradient_change_vs_input']:+.1%}"
            )
    lat = m["latency"]
    print(
        f"256x256 on 2 threads (median / p99 ms): student {lat['student']['median_ms']} / "
        f"{lat['student']['p99_ms']}, Wiener+NLM {lat['wiener_nlm']['median_ms']} "
        f"({lat['student_speedup_vs_wiener_nlm']}x), RL+NLM {lat['rl_nlm']['median_ms']} "
        f"({lat['student_speedup_vs_rl_nlm']}x)"
    )
    print(f"teacher/student MACs: {m['teacher_over_student_macs']}x; targets: {m['targets']}")
    print(f"wrote {args.results_dir / (name + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
