"""Classical despeckling, deconvolution and NLLR: speed and quality on simulated images.

Run: ``python benchmarks/processing_despeckle.py`` (``--quick`` for a smoke run).

Despeckling: ``sonoedge.synth.speckle.simulate_bmode`` (L11-5v, cyst/random phantoms, [0, 1]
log images) gives speckled inputs and speckle-free targets; PSNR/SSIM against the target, gCNR
between the darkest 10 % and the middle 40-60 % of target pixels, and ms per image.
Enhancement: the target is degraded by ``sonoedge.synth.degradation.degrade`` (Gaussian PSF +
Gaussian noise, severity ``heavy``); Wiener and Richardson-Lucy get the true PSF, alone and
followed by NLM; NLLR denoises. Baseline parameters (Wiener NSR, RL iterations, NLM strength) are
tuned for PSNR on the first image against its ground truth, then fixed. Point targets measure
the FWHM gain of deconvolution.
Writes docs/results/processing_despeckle.json and .png.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: stable timings on a shared CPU

import argparse
import math
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from processing_common import time_call

from sonoedge.bench.results import write_result
from sonoedge.metrics import gcnr, point_fwhm, psnr, ssim
from sonoedge.processing.deconvolution import gaussian_psf, richardson_lucy, wiener
from sonoedge.processing.despeckle import bilateral, median, nlm, srad
from sonoedge.processing.nllr import nllr
from sonoedge.synth.degradation import degrade
from sonoedge.synth.speckle import simulate_bmode
from sonoedge.synth.transducer import get_preset

Filter = Callable[[np.ndarray], np.ndarray]
DESPECKLE: dict[str, Filter] = {
    "srad": srad,
    "nlm": nlm,
    "median": median,
    "bilateral": bilateral,
    "nllr": nllr,
}
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


NSR_GRID = (0.01, 0.03, 0.1, 0.3)
RL_ITER_GRID = (3, 5, 10, 20)
NLM_H_GRID = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 80.0)


def enhancers(sigma_px: tuple[float, float], tuned: dict[str, float]) -> dict[str, Filter]:
    """Deconvolution baselines with the true PSF; parameters from ``tuned`` (see :func:`tune`)."""
    psf = gaussian_psf((sigma_px[0] * FWHM_PER_SIGMA, sigma_px[1] * FWHM_PER_SIGMA))

    def wien(img: np.ndarray, nsr: float = tuned["nsr"]) -> np.ndarray:
        return wiener(img, psf, nsr)

    def rl(img: np.ndarray, n_iter: float = tuned["rl_iter"]) -> np.ndarray:
        return richardson_lucy(np.clip(img, 0, None), psf, int(n_iter))  # negatives clipped

    return {
        "wiener": wien,
        "richardson_lucy": rl,
        "wiener+nlm": lambda img: nlm(wien(img), h=tuned["h_wiener"]),
        "richardson_lucy+nlm": lambda img: nlm(rl(img), h=tuned["h_rl"]),
        "nlm": lambda img: nlm(img, h=tuned["h_nlm"]),
        "nllr": nllr,
    }


def tune(
    degraded: np.ndarray, clean: np.ndarray, sigma_px: tuple[float, float]
) -> dict[str, float]:
    """Best PSNR parameters of each baseline on one image (grid search on the ground truth)."""

    def best(grid: tuple[float, ...], run: Callable[[float], np.ndarray]) -> float:
        return max(grid, key=lambda v: psnr(clean, run(v), 1.0))

    psf = gaussian_psf((sigma_px[0] * FWHM_PER_SIGMA, sigma_px[1] * FWHM_PER_SIGMA))
    nsr = best(NSR_GRID, lambda v: wiener(degraded, psf, v))
    rl_iter = best(RL_ITER_GRID, lambda v: richardson_lucy(np.clip(degraded, 0, None), psf, int(v)))
    w = wiener(degraded, psf, nsr)
    r = richardson_lucy(np.clip(degraded, 0, None), psf, int(rl_iter))
    return {
        "nsr": nsr,
        "rl_iter": rl_iter,
        "h_wiener": best(NLM_H_GRID, lambda h: nlm(w, h=h)),
        "h_rl": best(NLM_H_GRID, lambda h: nlm(r, h=h)),
        "h_nlm": best(NLM_H_GRID, lambda h: nlm(degraded, h=h)),
    }


def regions(clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, mid_a, mid_b = np.percentile(clean, [10, 40, 60])
    return clean <= lo, (clean >= mid_a) & (clean <= mid_b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = 96 if args.quick else args.size
    n_images = 1 if args.quick else args.images
    probe = get_preset("L11-5v")
    phantoms = ("cyst", "random")
    desp: dict[str, dict[str, list[float]]] = {
        m: {"psnr_db": [], "ssim": [], "gcnr": []} for m in ["input", *DESPECKLE]
    }
    enh: dict[str, dict[str, list[float]]] = {}
    desp_time: dict[str, dict[str, float]] = {}
    enh_time: dict[str, dict[str, float]] = {}
    example: dict[str, np.ndarray] = {}
    for k in range(n_images):
        sample = simulate_bmode(probe, size, size, seed=args.seed + k, phantom=phantoms[k % 2])
        clean, speckled = sample.clean, sample.speckled
        target, background = regions(clean)
        outputs = {"input": speckled, **{m: fn(speckled) for m, fn in DESPECKLE.items()}}
        for m, out in outputs.items():
            desp[m]["psnr_db"].append(psnr(clean, out, 1.0))
            desp[m]["ssim"].append(ssim(clean, out, 1.0))
            desp[m]["gcnr"].append(gcnr(out, target, background))
        if k == 0:
            example.update(clean=clean, speckled=speckled, srad=outputs["srad"], nlm=outputs["nlm"])
            for m, fn in DESPECKLE.items():
                desp_time[m] = time_call(partial(fn, speckled), repeats=5 if m != "nllr" else 2)
        degraded, info = degrade(clean, seed=args.seed + k, severity="heavy")
        if k == 0:
            tuned = tune(degraded, clean, info["blur_sigma_px"])
            print(f"tuned on image 0: {tuned}", flush=True)
        methods = enhancers(info["blur_sigma_px"], tuned)
        for m, fn in {"input": lambda img: img, **methods}.items():
            out = fn(degraded)
            scores = enh.setdefault(m, {"psnr_db": [], "ssim": []})
            scores["psnr_db"].append(psnr(clean, out, 1.0))
            scores["ssim"].append(ssim(clean, out, 1.0))
            if k == 0 and m != "input":
                enh_time[m] = time_call(partial(fn, degraded), repeats=3 if "nllr" not in m else 2)
        print(f"image {k} ({phantoms[k % 2]}, blur sigma {info['blur_sigma_px']}) done", flush=True)

    point = np.zeros((64, 64), np.float32)
    point[32, 32] = 1.0
    sigma = (2.0, 2.0)
    blurred = cv2.GaussianBlur(point, (0, 0), sigmaX=sigma[1], sigmaY=sigma[0])
    fwhm = {"blurred": point_fwhm(blurred, (1.0, 1.0))}
    sharp = {"nsr": 1e-3, "rl_iter": 50, "h_wiener": 0, "h_rl": 0, "h_nlm": 0}  # noise-free
    for m in ("wiener", "richardson_lucy"):
        fwhm[m] = point_fwhm(enhancers(sigma, sharp)[m](blurred), (1.0, 1.0))

    def mean(table: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        return {m: {k: float(np.mean(v)) for k, v in per.items()} for m, per in table.items()}

    metrics: dict[str, Any] = {
        "data": {
            "probe": "L11-5v",
            "pixels": [size, size],
            "images": n_images,
            "phantoms": list(phantoms),
            "degradation": "gaussian blur + gaussian noise, severity heavy",
        },
        "despeckle": mean(desp),
        "despeckle_time_s": desp_time,
        "enhance": mean(enh),
        "enhance_time_s": enh_time,
        "enhance_tuned_parameters": tuned,
        "point_fwhm_px": {m: list(v) for m, v in fwhm.items()},
    }
    print("\ndespeckle (mean over images): PSNR dB / SSIM / gCNR / median ms")
    for m, v in metrics["despeckle"].items():
        ms = desp_time[m]["median_s"] * 1e3 if m in desp_time else float("nan")
        print(f"  {m:<10} {v['psnr_db']:6.2f}  {v['ssim']:.3f}  {v['gcnr']:.3f}  {ms:8.1f}")
    print("enhance (heavy degradation): PSNR dB / SSIM / median ms")
    for m, v in metrics["enhance"].items():
        ms = enh_time[m]["median_s"] * 1e3 if m in enh_time else float("nan")
        gain = v["psnr_db"] - metrics["enhance"]["input"]["psnr_db"]
        print(f"  {m:<20} {v['psnr_db']:6.2f} ({gain:+.2f})  {v['ssim']:.3f}  {ms:8.1f}")
    print("point FWHM (px): " + ", ".join(f"{m} {v[0]:.2f}x{v[1]:.2f}" for m, v in fwhm.items()))
    name = "processing_despeckle_quick" if args.quick else "processing_despeckle"
    command = "python benchmarks/processing_despeckle.py" + (" --quick" if args.quick else "")
    baselines = {"input": "the speckled or degraded image itself"}
    threads = os.environ["OPENBLAS_NUM_THREADS"]
    path = write_result(name, metrics, baselines, command, blas_threads=threads)
    plot(example, path.with_suffix(".png"))
    print(f"wrote {path}")


def plot(example: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(example), figsize=(3 * len(example), 3.2))
    for ax, (name, img) in zip(axes, example.items(), strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(name)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
