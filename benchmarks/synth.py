"""Benchmark and validate the physics-guided simulators (sonoedge.synth).

Measures, in one run on one core:
- speckle statistics (envelope mean/std, log-envelope std) vs the Rayleigh values 1.91 / 5.57 dB,
  for the diffuse model and for discrete scatterers at increasing density;
- PSF axial/lateral FWHM for the L11-5v preset at receive F# 1, 1.5, 2 vs PyMUST (SIMUS + DAS)
  and vs the textbook formulas;
- microbubble frames vs PyMUST frames of the same bubbles and parameters (SSIM);
- IQ rendering speed at 128×128 with 10k and 20k moving scatterers per frame (frames/s, median
  and p99 latency), next to PyMUST's time for one frame of 1k scatterers;
- LiveScene streaming rates (B-mode 256×256, 16×128×128 ensembles) and dataset throughput.

Writes docs/results/synth.json and docs/results/synth.png.

    python benchmarks/synth.py            # full run (a few minutes)
    python benchmarks/synth.py --quick    # smaller sizes, no PyMUST speed run
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sonoedge.bench.results import write_result
from sonoedge.synth import transducer as T
from sonoedge.synth.datasets import DatasetSpec, write_dataset
from sonoedge.synth.doppler import simulate_doppler
from sonoedge.synth.imaging import Grid, Imager
from sonoedge.synth.live import LiveScene
from sonoedge.synth.speckle import simulate_bmode

L11 = T.get_preset("L11-5v")
F_NUMBERS = (1.0, 1.5, 2.0)


def timed(fn: Any, repeats: int, warmup: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and process CPU seconds of each call (CPU time = cost on one core, robust
    to other processes sharing the machine)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return np.asarray(wall), np.asarray(cpu)


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean structural similarity of two images in [0, 1] (Gaussian window)."""
    c1, c2 = 0.01**2, 0.03**2
    a, b = a.astype(np.float64), b.astype(np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), sigma)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def speckle_stats(n_seeds: int, size: int, discrete_size: int) -> dict[str, Any]:
    ratios, log_stds = [], []
    for seed in range(n_seeds):
        s = simulate_bmode(L11, size, size, seed=seed, phantom="homogeneous")
        env = np.abs(s.iq[16:-16, 16:-16]).astype(np.float64).ravel()
        ratios.append(env.mean() / env.std())
        log_stds.append(np.std(20 * np.log10(env)))
    discrete = {}
    for per_cell in (3.0, 10.0, 30.0, 100.0):
        s = simulate_bmode(
            L11, discrete_size, discrete_size, 0, "homogeneous", scatterers_per_cell=per_cell
        )
        env = np.abs(s.iq[16:-16, 16:-16]).astype(np.float64).ravel()
        discrete[f"{per_cell:g}_per_cell"] = {
            "mean_over_std": float(env.mean() / env.std()),
            "log_std_db": float(np.std(20 * np.log10(env))),
        }
    return {
        "diffuse_mean_over_std": float(np.mean(ratios)),
        "diffuse_log_std_db": float(np.mean(log_stds)),
        "target_mean_over_std": "1.91 ± 0.05",
        "target_log_std_db": "5.57 ± 0.2",
        "discrete_scatterers": discrete,
        "seeds": n_seeds,
        "size": size,
    }


def pymust_or_none() -> Any:
    try:
        import pymust
    except ImportError:
        return None
    return pymust


def pymust_point_image(
    pymust: Any, x: np.ndarray, z: np.ndarray, xs: np.ndarray, zs: np.ndarray, cfg: dict[str, float]
) -> np.ndarray:
    """Envelope of PyMUST SIMUS (plane wave) + DAS at receive F# for point scatterers."""
    p = pymust.getparam("L11-5v")
    p.fc = cfg["fc"]
    p.bandwidth = 100 * cfg["bw"]
    p.TXnow = cfg["cycles"]
    p.fs = 4 * p.fc
    tx = np.zeros((1, 128))
    p.TXdelay = tx
    rf, _ = pymust.simus(x, z, np.ones_like(x), tx, p)
    iq = pymust.rf2iq(rf, p.fs, p.fc)
    xg, zg = np.meshgrid(xs, zs)
    p.fnumber = cfg["fnum"]
    m = pymust.dasmtx(iq, xg, zg, p)
    return np.abs((m @ iq.flatten(order="F")).reshape(xg.shape, order="F"))


def psf_widths(pymust: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    dx = L11.wavelength_m / 16
    xs = np.arange(-1.5e-3, 1.5e-3, dx)
    zs = np.arange(0.0195, 0.0205, dx)
    for f in F_NUMBERS:
        k = T.psf(L11, (dx, dx), f_number=f)
        h, w = k.shape
        ours = (T.measure_fwhm(k[:, w // 2], dx), T.measure_fwhm(k[h // 2, :], dx))
        analytic = T.analytic_fwhm_m(L11, f)
        row: dict[str, Any] = {
            "ours_axial_mm": ours[0] * 1e3,
            "ours_lateral_mm": ours[1] * 1e3,
            "analytic_axial_mm": analytic[0] * 1e3,
            "analytic_lateral_mm": analytic[1] * 1e3,
        }
        if pymust is not None:
            cfg = {"fc": L11.center_frequency_hz, "bw": L11.bandwidth_fraction, "cycles": 1.0}
            img = pymust_point_image(
                pymust, np.array([0.0]), np.array([0.02]), xs, zs, {**cfg, "fnum": f}
            )
            i, j = np.unravel_index(np.argmax(img), img.shape)
            ref = (T.measure_fwhm(img[:, j], dx), T.measure_fwhm(img[i, :], dx))
            row.update(
                pymust_axial_mm=ref[0] * 1e3,
                pymust_lateral_mm=ref[1] * 1e3,
                axial_ratio_ours_over_pymust=ours[0] / ref[0],
                lateral_ratio_ours_over_pymust=ours[1] / ref[1],
                within_10_percent=bool(abs(ours[0] / ref[0] - 1) <= 0.1)
                and bool(abs(ours[1] / ref[1] - 1) <= 0.1),
            )
            row["profiles"] = {
                "x_mm": (xs * 1e3).tolist(),
                "pymust_lateral": (img[i, :] / img[i, :].max()).tolist(),
                "ours_lateral": np.abs(T.lateral_profile(L11, xs, f, n_cycles=1.0)).tolist(),
            }
        out[f"F{f:g}"] = row
    return out


BUBBLE_CONFIGS = (
    {"fc": 7.6e6, "bw": 0.77, "cycles": 1.0, "fnum": 1.5},
    {"fc": 7.6e6, "bw": 0.6, "cycles": 2.0, "fnum": 2.0},
    {"fc": 5.0e6, "bw": 0.7, "cycles": 1.0, "fnum": 1.0},
)


def bubble_ssim(pymust: Any, size: int, n_bubbles: int) -> dict[str, Any]:
    """SSIM between our and PyMUST's envelope frames of the same random bubbles."""
    rng = np.random.default_rng(7)
    out: dict[str, Any] = {}
    for idx, cfg in enumerate(BUBBLE_CONFIGS):
        probe = T.get_preset("L11-5v")
        probe = type(probe)(
            model="bubble-check",
            center_frequency_hz=cfg["fc"],
            bandwidth_fraction=cfg["bw"],
            pitch_m=0.3e-3,
            sampling_frequency_hz=4 * cfg["fc"],
        )
        lam = probe.wavelength_m
        d = lam / 4
        grid = Grid((size, size), (d, d), (0.010 - d * (size - 1) / 2, -d * (size - 1) / 2))
        z0, z1, x0, x1 = grid.extent_m()
        z = rng.uniform(z0 + 2 * lam, z1 - 2 * lam, n_bubbles)
        x = rng.uniform(x0 + 2 * lam, x1 - 2 * lam, n_bubbles)
        imager = Imager(probe, grid, f_number=cfg["fnum"], n_cycles=cfg["cycles"])
        ours = np.abs(imager.render(z, x, np.ones(n_bubbles)))
        zs, xs = grid.centres_m()
        ref = pymust_point_image(pymust, x, z, xs, zs, cfg)
        ours_n, ref_n = ours / ours.max(), ref / ref.max()
        out[f"set{idx}"] = {
            **cfg,
            "ssim": ssim(ours_n, ref_n),
            "ssim_intensity": ssim(ours_n**2, ref_n**2),
        }
        if idx == 0:
            out["_images"] = (ours_n, ref_n)
    return out


def render_speed(n_scatterers: int, repeats: int, batch: int) -> dict[str, float]:
    grid = Grid((128, 128), (0.3e-3, 0.3e-3), (0.0, -0.3e-3 * 63.5))
    imager = Imager(L11, grid, transmit="focused")
    rng = np.random.default_rng(0)
    z0, z1, x0, x1 = imager.field_extent_m()
    z = rng.uniform(z0, z1, n_scatterers)
    x = rng.uniform(x0, x1, n_scatterers)
    v = rng.normal(0, 0.02, (2, n_scatterers))
    amp = rng.standard_normal(n_scatterers)
    t = np.arange(batch)[:, None] / 1000.0

    def run() -> None:
        imager.render(z + v[0] * t, x + v[1] * t, amp)

    wall, cpu = timed(run, repeats)
    wall, cpu = wall / batch, cpu / batch
    return {
        "frames_per_s": float(1.0 / np.median(wall)),
        "frames_per_cpu_s": float(1.0 / np.median(cpu)),
        "median_ms_per_frame": float(np.median(wall) * 1e3),
        "p99_ms_per_frame": float(np.percentile(wall, 99) * 1e3),
        "batch": batch,
    }


def pymust_speed(pymust: Any, n_scatterers: int) -> float:
    rng = np.random.default_rng(0)
    p = pymust.getparam("L11-5v")
    p.fs = 4 * p.fc
    tx = np.zeros((1, 128))
    x = rng.uniform(-19e-3, 19e-3, n_scatterers)
    z = rng.uniform(1e-3, 39e-3, n_scatterers)
    start = time.perf_counter()
    pymust.simus(x, z, np.ones(n_scatterers), tx, p)
    return time.perf_counter() - start


def live_speed(repeats: int) -> dict[str, float]:
    big = LiveScene(L11, seed=0, height=256, width=256)
    small = LiveScene(L11, seed=0, height=128, width=128)
    k = iter(range(10**6))
    b, b_cpu = timed(lambda: big.bmode(next(k) / 30.0), repeats)
    e, e_cpu = timed(lambda: small.iq_ensemble(next(k) * 0.05, 16, 1000.0), max(repeats // 3, 5))
    return {
        "bmode_256_fps": float(1 / np.median(b)),
        "bmode_256_fps_per_cpu_s": float(1 / np.median(b_cpu)),
        "bmode_256_p99_ms": float(np.percentile(b, 99) * 1e3),
        "ensemble_16x128x128_per_s": float(1 / np.median(e)),
        "ensemble_16x128x128_per_cpu_s": float(1 / np.median(e_cpu)),
        "ensemble_p99_ms": float(np.percentile(e, 99) * 1e3),
    }


def dataset_speed(n: int) -> dict[str, float]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, os.cpu_count() or 1):
            spec = DatasetSpec("bmode", n=n, seed=0, size=128)
            start = time.perf_counter()
            write_dataset(spec, Path(tmp) / f"w{workers}.h5", workers=workers)
            out[f"bmode128_samples_per_s_{workers}_workers"] = n / (time.perf_counter() - start)
    return out


def figure(path: Path, psf: dict[str, Any], bubbles: dict[str, Any] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5))
    s = simulate_bmode(L11, 256, 256, seed=3, phantom="random")
    axes[0, 0].imshow(np.hstack([s.speckled, s.clean]), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("speckled | clean target (L11-5v)")
    c = simulate_bmode(T.get_preset("convex-3.5"), 256, 256, seed=3, phantom="random")
    axes[0, 1].imshow(c.speckled, cmap="gray", vmin=0, vmax=1)
    axes[0, 1].set_title("convex-3.5, scan-converted")
    d = simulate_doppler(L11, 64, 1000.0, 128, 128, seed=1, spacing_m=(0.1e-3, 0.15e-3))
    axes[0, 2].imshow(10 * np.log10(d.blood_power + 1e-6), cmap="hot", vmin=-50, vmax=-20)
    axes[0, 2].contour(d.vessel_mask, levels=[0.5], colors="c", linewidths=0.5)
    axes[0, 2].set_title("Doppler: blood power (dB) + vessel mask")
    for f, row in psf.items():
        if "profiles" in row:
            prof = row["profiles"]
            line = axes[1, 0].plot(prof["x_mm"], prof["pymust_lateral"], "--", label=f"PyMUST {f}")
            color = line[0].get_color()
            axes[1, 0].plot(prof["x_mm"], prof["ours_lateral"], color=color, label=f"ours {f}")
    axes[1, 0].set_xlim(-1.2, 1.2)
    axes[1, 0].set_xlabel("lateral (mm)")
    axes[1, 0].set_title("L11-5v lateral PSF at 20 mm (plane wave, DAS)")
    axes[1, 0].legend(fontsize=7)
    if bubbles is not None:
        ours, ref = bubbles["_images"]
        axes[1, 1].imshow(np.hstack([ours, ref]), cmap="gray")
        axes[1, 1].set_title(
            f"bubbles: ours | PyMUST (envelope SSIM {bubbles['set0']['ssim']:.3f})"
        )
    else:
        axes[1, 1].set_title("PyMUST not installed")
    from sonoedge.synth.degradation import degrade

    deg, info = degrade(s.speckled, seed=0, noise="fourier", severity="heavy")
    axes[1, 2].imshow(np.hstack([s.speckled, np.clip(deg, 0, 1)]), cmap="gray", vmin=0, vmax=1)
    axes[1, 2].set_title(f"degradation: heavy Fourier noise ({info['psnr_db']:.1f} dB PSNR)")
    for ax in (axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 1], axes[1, 2]):
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--out-dir", default="docs/results", help="where synth.json/png go")
    args = parser.parse_args()
    quick = args.quick
    pymust = pymust_or_none()

    print("speckle statistics ...", flush=True)
    speckle = speckle_stats(2 if quick else 6, 128 if quick else 256, 96 if quick else 256)
    print(
        f"  envelope mean/std {speckle['diffuse_mean_over_std']:.3f} (target 1.91 ± 0.05), "
        f"log std {speckle['diffuse_log_std_db']:.3f} dB (target 5.57 ± 0.2)"
    )
    for key, v in speckle["discrete_scatterers"].items():
        print(f"  discrete {key}: mean/std {v['mean_over_std']:.3f}, log std {v['log_std_db']:.2f}")

    print("PSF widths ...", flush=True)
    psf = psf_widths(pymust)
    for f, row in psf.items():
        text = f"  {f}: ours ax {row['ours_axial_mm']:.3f} lat {row['ours_lateral_mm']:.3f} mm"
        if "pymust_axial_mm" in row:
            text += (
                f" | PyMUST ax {row['pymust_axial_mm']:.3f} lat {row['pymust_lateral_mm']:.3f}"
                f" | ratio ax {row['axial_ratio_ours_over_pymust']:.3f}"
                f" lat {row['lateral_ratio_ours_over_pymust']:.3f}"
            )
        print(text)

    bubbles = None
    if pymust is not None:
        print("bubble frames vs PyMUST ...", flush=True)
        bubbles = bubble_ssim(pymust, 48 if quick else 96, 6 if quick else 15)
        for key, row in bubbles.items():
            if not key.startswith("_"):
                print(
                    f"  {key}: SSIM envelope {row['ssim']:.3f}, intensity "
                    f"{row['ssim_intensity']:.3f} (fc {row['fc'] / 1e6:g} MHz, bw {row['bw']}, "
                    f"{row['cycles']:g} cycles, F# {row['fnum']})"
                )

    print("IQ rendering speed (one core) ...", flush=True)
    repeats = 5 if quick else 30
    speed = {f"{n // 1000}k_scatterers": render_speed(n, repeats, 8) for n in (10_000, 20_000)}
    single = render_speed(10_000, repeats, 1)
    for key, row in speed.items():
        print(
            f"  {key}: {row['frames_per_s']:.0f} frames/s wall, {row['frames_per_cpu_s']:.0f} per "
            f"CPU-second (batch {row['batch']}), p99 {row['p99_ms_per_frame']:.2f} ms/frame"
        )
    print(
        f"  10k, one frame at a time: {single['frames_per_s']:.0f} frames/s wall, "
        f"{single['frames_per_cpu_s']:.0f} per CPU-second"
    )
    baselines: dict[str, Any] = {}
    if pymust is not None and not quick:
        pm_s = pymust_speed(pymust, 1000)
        baselines["pymust_simus_s_per_frame_1k_scatterers"] = pm_s
        ratio = pm_s * speed["10k_scatterers"]["frames_per_s"]
        baselines["speedup_ours_10k_vs_pymust_1k"] = ratio
        print(
            f"  PyMUST SIMUS, 1k scatterers (RF only, no beamforming): {pm_s:.2f} s/frame "
            f"-> ours with 10x the scatterers is {ratio:.0f}x faster"
        )

    print("LiveScene ...", flush=True)
    live = live_speed(10 if quick else 60)
    print(
        f"  B-mode 256x256 {live['bmode_256_fps']:.0f} fps wall, "
        f"{live['bmode_256_fps_per_cpu_s']:.0f} per CPU-second (target 30); 16x128x128 ensembles "
        f"{live['ensemble_16x128x128_per_s']:.1f}/s wall, "
        f"{live['ensemble_16x128x128_per_cpu_s']:.1f} per CPU-second (target 10)"
    )

    print("dataset throughput ...", flush=True)
    ds = dataset_speed(4 if quick else 24)
    for key, value in ds.items():
        print(f"  {key}: {value:.1f}")

    metrics = {
        "speckle": speckle,
        "psf_fwhm": {
            f: {k: v for k, v in row.items() if k != "profiles"} for f, row in psf.items()
        },
        "bubbles_vs_pymust": (
            {k: v for k, v in bubbles.items() if not k.startswith("_")} if bubbles else None
        ),
        "render_speed_128x128": {**speed, "10k_scatterers_single_frame": single},
        "live_scene": live,
        "datasets": ds,
        "pymust_available": pymust is not None,
        "quick": quick,
    }
    out_dir = Path(args.out_dir)
    name = "synth_quick" if quick else "synth"
    path = write_result(
        name,
        metrics,
        baselines,
        command=" ".join(["python", *sys.argv]),
        results_dir=out_dir,
    )
    figure(out_dir / f"{name}.png", psf, bubbles)
    print(f"wrote {path} and {out_dir / (name + '.png')}")


if __name__ == "__main__":
    main()
