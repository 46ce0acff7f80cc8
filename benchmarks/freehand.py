"""Freehand 3D benchmark: PLUS parity, splatting throughput, IMU fan sweeps, 3D power Doppler.

Run: ``.venv/bin/python benchmarks/freehand.py`` (about 2-4 minutes on 2 cores). Writes
``docs/results/freehand.json`` and ``docs/results/freehand.png``.

1. PLUS parity — NwirePhantomFreehand with its PLUS config (LINEAR, MEAN, clip rectangle) against
   NwirePhantomFreehandReconstructed.mha: origin/extent, NCC, voxels within ±2 grey levels, for
   float accumulators and for PLUS's own rounding arithmetic (``plus_arithmetic``).
2. Throughput on one thread — input pixels pasted per second, nearest and trilinear, numba
   kernels (ours) against the vectorised-numpy path (baseline), measured side by side.
3. Simulated fan sweeps with IMU (seeds 0..N-1) — tilt error, phantom geometry error (bright lesion
   centroid) against true poses, image/IMU clock offset error, heading drift.
4. Freehand power Doppler — SVD-filtered slices compounded by MAXIMUM vs MEAN; vessel Dice.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from sonoedge.bench.results import write_result
from sonoedge.freehand import _kernels
from sonoedge.freehand import quaternion as quat
from sonoedge.freehand.doppler import power_doppler_slices, slices_to_uint8
from sonoedge.freehand.poses import SweepPoses, pixel_to_world
from sonoedge.freehand.reconstruct import ClipRectangle, OutputGrid, VolumeReconstructor
from sonoedge.freehand.sweep import estimate_poses, reconstruct, reconstruct_sweep
from sonoedge.freehand.tracked import tracked_pixel_to_world
from sonoedge.io.plus import read_plus_config, read_sequence
from sonoedge.io.volume import mips, read_volume
from sonoedge.synth.sweeps import (
    EARTH_FROM_WORLD,
    default_phantom,
    doppler_ensembles,
    simulate_sweep,
)
from sonoedge.types import ProbeInfo

PLUS = Path(os.environ.get("SONOEDGE_PLUS_DATA", "/work/shared/data/plus"))


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def plus_parity() -> tuple[dict, dict]:
    seq = read_sequence(PLUS / "NwirePhantomFreehand.igs.mha")
    cfg = read_plus_config(
        PLUS / "PlusDeviceSet_NwirePhantomFreehand_vtkVolumeReconstructorTest2.xml"
    )
    rc = cfg.reconstruction
    assert rc is not None
    p2w, valid = tracked_pixel_to_world(seq, cfg.transforms, rc.image_frame, rc.reference_frame)
    clip = ClipRectangle(rc.clip_rectangle_origin, rc.clip_rectangle_size)
    spacing = tuple(v * 1e-3 for v in rc.output_spacing_mm)
    grid = OutputGrid.covering(p2w, seq.frames.shape[1:], spacing, valid, clip)
    ref = read_volume(PLUS / "NwirePhantomFreehandReconstructed.mha")
    rec = VolumeReconstructor(grid, "linear", "mean", clip=clip)
    rec.add_frames(seq.frames, p2w, valid)
    ours = rec.volume(np.uint8).data
    diff = np.abs(ours.astype(int) - ref.data.astype(int))
    metrics = {
        "same_extent": list(grid.shape) == list(ref.data.shape),
        "origin_diff_mm": float(np.abs(np.subtract(grid.origin_m, ref.origin_m)).max() * 1e3),
        "ncc": ncc(ours, ref.data),
        "within_2_fraction": float(np.mean(diff <= 2)),
        "mean_abs_diff": float(diff.mean()),
    }
    if _kernels.AVAILABLE:
        exact = VolumeReconstructor(grid, "linear", "mean", clip=clip, plus_arithmetic=True)
        start = time.perf_counter()
        exact.add_frames(seq.frames, p2w, valid)
        metrics["plus_arithmetic_seconds"] = time.perf_counter() - start
        same = exact.volume(np.uint8).data
        metrics["plus_arithmetic_ncc"] = ncc(same, ref.data)
        metrics["plus_arithmetic_identical_fraction"] = float(np.mean(same == ref.data))
        metrics["plus_arithmetic_within_2_fraction"] = float(
            np.mean(np.abs(same.astype(int) - ref.data.astype(int)) <= 2)
        )
    images = {"plus_ref": ref.data, "plus_ours": ours}
    return metrics, {
        "metrics": metrics,
        "images": images,
        "seq": seq,
        "p2w": p2w,
        "valid": valid,
        "clip": clip,
        "grid": grid,
    }


def throughput(seq, p2w, valid, clip, grid, repeats: int) -> dict:  # type: ignore[no-untyped-def]
    """Input pixels per second over the whole sweep; per-frame latency median and p99.

    ``*_mpix_s`` divides by wall time; ``*_mpix_cpu_s`` by this thread's CPU time, which is the
    one-thread rate when other processes share the cores (see ``load_average`` in the JSON);
    ``*_best`` is the best repeat (least disturbed by other processes), median otherwise.
    """
    out: dict = {}
    engines = ["numba", "numpy"] if _kernels.AVAILABLE else ["numpy"]
    for interp in ("nearest", "linear"):
        for engine in engines:
            rec = VolumeReconstructor(grid, interp, "mean", clip=clip, engine=engine)
            rec.add_frames(seq.frames[:3], p2w[:3])  # warm up (numba compiles here)
            per_frame: list[float] = []
            rates = []
            cpu_rates = []
            for _ in range(repeats):
                rec = VolumeReconstructor(grid, interp, "mean", clip=clip, engine=engine)
                total = 0
                start = time.perf_counter()
                cpu_start = time.thread_time()
                for i in range(len(seq.frames)):
                    t0 = time.perf_counter()
                    total += rec.add_frame(seq.frames[i], p2w[i])
                    per_frame.append(time.perf_counter() - t0)
                rates.append(total / (time.perf_counter() - start) / 1e6)
                cpu_rates.append(total / (time.thread_time() - cpu_start) / 1e6)
            out[f"{interp}_{engine}_mpix_s"] = float(np.median(rates))
            out[f"{interp}_{engine}_mpix_cpu_s"] = float(np.median(cpu_rates))
            out[f"{interp}_{engine}_mpix_cpu_s_best"] = float(np.max(cpu_rates))
            out[f"{interp}_{engine}_frame_ms_median"] = float(np.median(per_frame) * 1e3)
            out[f"{interp}_{engine}_frame_ms_p99"] = float(np.percentile(per_frame, 99) * 1e3)
        if "numba" in engines:
            out[f"{interp}_speedup_vs_numpy"] = (
                out[f"{interp}_numba_mpix_cpu_s"] / out[f"{interp}_numpy_mpix_cpu_s"]
            )
    return out


def lesion_error_mm(volume, sphere) -> float:  # type: ignore[no-untyped-def]
    d = volume.data
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in d.shape], indexing="ij")
    pts = np.stack([xx, yy, zz], -1) * np.array(volume.spacing_m) + np.array(volume.origin_m)
    near = np.linalg.norm(pts - np.array(sphere.center_m), axis=-1) < 1.6 * sphere.radius_m
    bright = near & (d > 200)
    return float(np.linalg.norm(pts[bright].mean(axis=0) - sphere.center_m) * 1e3)


def fan_sweeps(n_seeds: int) -> tuple[dict, dict]:
    calib = np.eye(4)
    calib[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    calib[:3, 3] = [0.0, -0.04, 0.0]
    probe = ProbeInfo(imu_to_image=calib)
    tilt, geo_imu, geo_true, offset_err, drift_est, drift_true = [], [], [], [], [], []
    example: dict = {}
    for seed in range(n_seeds):
        offset = 0.02 * (seed % 3) - 0.02
        sweep = simulate_sweep(
            probe,
            "fan",
            seed=seed,
            n_frames=60,
            spacing_m=(0.3e-3, 0.3e-3),
            angle_deg=30.0,
            imu_time_offset_s=offset,
        )
        assert sweep.poses is not None and sweep.imu is not None
        est = estimate_poses(sweep, "fan")
        rel_true = np.linalg.inv(sweep.poses[0]) @ sweep.poses
        r = np.swapaxes(est.poses[:, :3, :3], 1, 2) @ rel_true[:, :3, :3]
        err = np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
        tilt.append(float(err.max()))
        anchored = SweepPoses(sweep.poses[0] @ est.poses, est.valid)
        sphere = default_phantom(probe, seed).spheres[0]
        vol = reconstruct_sweep(sweep, anchored, spacing_m=0.3e-3).volume
        geo_imu.append(lesion_error_mm(vol, sphere))
        truth = reconstruct_sweep(sweep, SweepPoses(sweep.poses, est.valid), 0.3e-3).volume
        geo_true.append(lesion_error_mm(truth, sphere))
        offset_err.append(abs(est.time_offset_s - offset) * 1e3)
        drift_est.append(est.heading_drift_dps or 0.0)
        # True heading error at the last frame: yaw of estimated vs true image orientation.
        assert est.q_image is not None
        q_true = quat.from_matrix(EARTH_FROM_WORLD @ sweep.poses[:, :3, :3])
        rel = quat.multiply(quat.conjugate(q_true[0]), q_true[-1])
        rel_est = quat.multiply(quat.conjugate(est.q_image[0]), est.q_image[-1])
        e = quat.to_matrix(quat.multiply(quat.conjugate(rel), rel_est))
        drift_true.append(float(np.degrees(abs(np.arctan2(e[1, 0], e[0, 0])))))
        if seed == 0:
            example = {"volume": vol, "tilt_err": err, "lesion": sphere}
    metrics = {
        "n_sweeps": n_seeds,
        "tilt_error_deg_max": float(np.max(tilt)),
        "tilt_error_deg_median": float(np.median(tilt)),
        "geometry_error_mm_max": float(np.max(geo_imu)),
        "geometry_error_mm_median": float(np.median(geo_imu)),
        "time_offset_error_ms_max": float(np.max(offset_err)),
        "heading_drift_dps_reported_median": float(np.median(drift_est)),
        "heading_error_deg_end_of_sweep_max": float(np.max(drift_true)),
    }
    baselines = {"geometry_error_mm_true_poses_median": float(np.median(geo_true))}
    return {"metrics": metrics, "baselines": baselines}, example


def power_doppler_3d() -> tuple[dict, dict]:
    probe = ProbeInfo(n_elements=96, depth_range_m=(0.0, 0.03))
    sweep = simulate_sweep(probe, "fan", seed=7, n_frames=40, spacing_m=(0.3e-3, 0.3e-3))
    assert sweep.poses is not None
    phantom = default_phantom(probe, 7)
    t0 = time.perf_counter()
    slices = slices_to_uint8(power_doppler_slices(doppler_ensembles(sweep, phantom, 16, seed=7)))
    p2w = pixel_to_world(sweep.poses, sweep.spacing_m)
    out = {}
    vols = {}
    for mode in ("max", "mean"):
        vol = reconstruct(slices, p2w, None, 0.3e-3, "linear", mode).volume
        d = vol.data
        zz, yy, xx = np.meshgrid(*[np.arange(n) for n in d.shape], indexing="ij")
        pts = (np.stack([xx, yy, zz], -1) * np.array(vol.spacing_m) + vol.origin_m).reshape(-1, 3)
        truth = phantom.blood_mask(pts).reshape(d.shape)
        covered = reconstruct(np.ones_like(slices), p2w, None, 0.3e-3).volume.data > 0
        seg = d > 255 * 0.6  # -16 dB
        t, s = truth & covered, seg & covered
        out[f"vessel_dice_{mode}"] = float(2 * (t & s).sum() / max(t.sum() + s.sum(), 1))
        vols[mode] = vol
    out["seconds"] = time.perf_counter() - t0
    return out, vols


def figure(path: Path, parity: dict, fan: dict, doppler: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(13, 8))
    ref, ours = parity["images"]["plus_ref"], parity["images"]["plus_ours"]
    k = ref.shape[0] // 2
    ax[0, 0].imshow(ref[k], cmap="gray")
    ax[0, 0].set_title(f"PLUS reconstruction (slice k={k})")
    ax[0, 1].imshow(ours[k], cmap="gray")
    ax[0, 1].set_title(f"sonoedge, NCC {parity['metrics']['ncc']:.3f}")
    ax[0, 2].imshow(ours[k].astype(int) - ref[k].astype(int), cmap="coolwarm", vmin=-10, vmax=10)
    ax[0, 2].set_title("sonoedge - PLUS (float accumulators)")
    vol, lesion = fan["volume"], fan["lesion"]
    j = round((lesion.center_m[1] - vol.origin_m[1]) / vol.spacing_m[1])
    ax[1, 0].imshow(vol.data[:, j, :], cmap="gray", aspect="auto")
    ax[1, 0].set_title(
        f"fan sweep, IMU poses: elevation x lateral at {lesion.center_m[1] * 1e3:.0f} mm"
    )
    ax[1, 0].set_ylabel("elevation")
    ax[1, 1].plot(fan["tilt_err"])
    ax[1, 1].set_xlabel("frame")
    ax[1, 1].set_ylabel("orientation error (°)")
    ax[1, 1].set_title("IMU orientation error vs truth")
    ax[1, 2].imshow(mips(doppler["max"])[0], cmap="hot")
    ax[1, 2].set_title("freehand power Doppler, MAX compounding (MIP)")
    for a in (*ax[0], ax[1, 0], ax[1, 2]):
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    metrics: dict = {}
    baselines: dict = {}
    parity_metrics, parity = plus_parity()
    metrics["plus_parity"] = parity_metrics
    print("PLUS parity:", parity_metrics)
    tp = throughput(
        parity["seq"], parity["p2w"], parity["valid"], parity["clip"], parity["grid"], args.repeats
    )
    metrics["throughput_one_thread"] = {k: v for k, v in tp.items() if "numpy" not in k}
    baselines["throughput_numpy"] = {k: v for k, v in tp.items() if "numpy" in k}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for interp in ("nearest", "linear"):
        line = f"{interp} (Mpix per CPU-second / wall-second): numba "
        line += f"{tp.get(f'{interp}_numba_mpix_cpu_s', float('nan')):.1f} / "
        line += f"{tp.get(f'{interp}_numba_mpix_s', float('nan')):.1f}, numpy "
        line += f"{tp[f'{interp}_numpy_mpix_cpu_s']:.1f} / {tp[f'{interp}_numpy_mpix_s']:.1f}"
        line += f"; best numba repeat {tp.get(f'{interp}_numba_mpix_cpu_s_best', float('nan')):.1f}"
        if f"{interp}_speedup_vs_numpy" in tp:
            line += f" (x{tp[f'{interp}_speedup_vs_numpy']:.2f})"
        print(line)
    fan, fan_example = fan_sweeps(args.seeds)
    metrics["fan_sweeps"] = fan["metrics"]
    baselines["fan_sweeps"] = fan["baselines"]
    print("fan sweeps:", fan["metrics"], "| true poses:", fan["baselines"])
    pd, pd_vols = power_doppler_3d()
    metrics["power_doppler_3d"] = pd
    print("power Doppler 3D:", pd)
    metrics["targets"] = {
        "plus_same_origin": parity_metrics["origin_diff_mm"] < 1e-3,
        "plus_ncc_ge_0.98": parity_metrics["ncc"] >= 0.98,
        "nn_ge_100_mpix_cpu_s_best": tp.get("nearest_numba_mpix_cpu_s_best", 0.0) >= 100,
        "linear_ge_50_mpix_cpu_s_best": tp.get("linear_numba_mpix_cpu_s_best", 0.0) >= 50,
        "nn_ge_100_mpix_cpu_s_median": tp.get("nearest_numba_mpix_cpu_s", 0.0) >= 100,
        "linear_ge_50_mpix_cpu_s_median": tp.get("linear_numba_mpix_cpu_s", 0.0) >= 50,
        "tilt_error_le_1_deg": fan["metrics"]["tilt_error_deg_max"] <= 1.0,
        "geometry_error_le_1_mm": fan["metrics"]["geometry_error_mm_max"] <= 1.0,
    }
    print("targets:", metrics["targets"])
    out = Path("docs/results")
    out.mkdir(parents=True, exist_ok=True)
    write_result(
        "freehand",
        metrics,
        baselines,
        command="python benchmarks/freehand.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        load_average=os.getloadavg(),
    )
    figure(out / "freehand.png", parity, fan_example, pd_vols)


if __name__ == "__main__":
    main()
