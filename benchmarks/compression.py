"""Compression benchmark → docs/results/compression.json and compression.png.

For each student: OpenVINO fp32 vs NNCF int8 latency and PSNR loss, 50% channel pruning with
KD fine-tuning (speedup and loss), ONNX Runtime fp32/int8 alongside, and signed bundle sizes.
Latency is measured on this CPU at the deployment input size, warm (10 runs), 60 timed runs per
round, rounds interleaved across variants to spread the noise of a shared machine; the figure of
record is the median over rounds of each round's median.

Students: ``--sonic STUDENT.pt`` benchmarks the SONIC Doppler student at 128×128 (→
compression_sonic.json/.png); ``--enhance STUDENT.pt`` the enhancement student (``sonoedge train
enhance`` weights) on degraded B-mode at 256×256 (→ compression_enhance.json/.png); without them, a
representative student-shaped network is used (→ compression.json/.png): a two-level despeckling
U-Net (3×3 convs, ReLU, a strided conv down, a transposed conv up, a skip connection, channels
32/64, the layer types our students use), trained here on simulated speckle for a fixed number of
steps.

Usage: python benchmarks/compression.py [--quick] [--sonic|--enhance STUDENT.pt] [--kd-steps N]
(default 800 distillation steps after pruning).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from sonoedge.bench.results import RESULTS_DIR, write_result
from sonoedge.devices import signing
from sonoedge.devices.package import package
from sonoedge.quantization import data, nncf_int8, ort_int8, pruning
from sonoedge.quantization.distill import distill
from sonoedge.quantization.export import export_onnx
from sonoedge.quantization.measure import openvino_latency, ort_latency


class DespeckleStudent(nn.Module):
    """Representative student: 2-level U-Net, residual output, channels multiples of 8."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.enc = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU()
        )
        self.down = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU())
        self.mid = nn.Sequential(
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
        )
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * w, w, 2, stride=2), nn.ReLU())
        self.dec = nn.Sequential(
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)
        return x + self.head(self.dec(self.up(self.mid(self.down(e))) + e))


def train(net: nn.Module, ds: data.DataSet, steps: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(np.concatenate(ds.inputs))
    y_all = torch.from_numpy(np.concatenate(ds.targets or []))
    optim = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, steps)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (16,), generator=gen)
        loss = nn.functional.mse_loss(net(x_all[idx]), y_all[idx])
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
    net.eval()


def latency_rounds(models: dict[str, tuple[str, Path]], feeds: dict, rounds: int) -> dict:
    """Interleaved rounds; per model the median of round medians, p99 over all runs."""
    per: dict[str, list[dict[str, float]]] = {k: [] for k in models}
    for _ in range(rounds):
        for key, (runtime, path) in models.items():
            fn = openvino_latency if runtime == "openvino" else ort_latency
            per[key].append(fn(path, feeds, warmup=10, repeats=60))
    return {
        k: {
            "median_ms": round(float(np.median([r["median_ms"] for r in v])), 3),
            "p99_ms": round(float(np.max([r["p99_ms"] for r in v])), 3),
            "round_medians_ms": [r["median_ms"] for r in v],
        }
        for k, v in per.items()
    }


def run_student(
    dense: nn.Module,
    train_set: data.DataSet,
    calib: data.DataSet,
    val: data.DataSet,
    kd_steps: int,
    extra_dense_steps: int,
    rounds: int,
) -> dict[str, Any]:
    """OpenVINO and ONNX Runtime, fp32 and int8, dense and 50 % pruned + KD: PSNR, latency,
    signed bundle sizes."""
    example = torch.from_numpy(val.inputs[0])
    counts = {"dense": pruning.count(dense, example)}
    pruned = copy.deepcopy(dense)
    pruning.prune_channels(pruned, example, 0.5)
    counts["pruned"] = pruning.count(pruned, example)
    assert val.targets is not None
    targets = val.targets

    def score(outs: list[np.ndarray]) -> float:
        return data.mean_psnr_db(targets, outs)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        feeds_val = [{"input": x} for x in val.inputs]
        feeds_cal = [{"input": x} for x in calib.inputs]
        export_onnx(pruned, example, tmp / "pruned-nokd.onnx")
        psnr_before_kd = ort_int8.onnx_metric(feeds_val, score)(tmp / "pruned-nokd.onnx")
        distill(pruned, dense, train_set.inputs, train_set.targets, steps=kd_steps, seed=0)
        if extra_dense_steps:
            train(dense, train_set, extra_dense_steps, seed=1)  # same training budget
        models: dict[str, tuple[str, Path]] = {}
        psnr: dict[str, float] = {}
        layers: dict[str, Any] = {}
        for tag, m in (("dense", dense), ("pruned", pruned)):
            fp32 = tmp / f"{tag}-fp32.onnx"
            export_onnx(m, example, fp32)
            ir = nncf_int8.to_openvino_ir(fp32, tmp / f"{tag}-fp32.xml")
            ov8 = nncf_int8.quantize_openvino(
                fp32, tmp / f"{tag}-int8.xml", feeds_cal, feeds_val, score
            ).model
            q = ort_int8.quantize_gated(
                fp32, tmp / f"{tag}-int8.onnx", feeds_cal, ort_int8.onnx_metric(feeds_val, score)
            )
            layers[tag] = q.to_dict()["layers"]
            models.update(
                {
                    f"openvino_fp32_{tag}": ("openvino", ir),
                    f"openvino_int8_{tag}": ("openvino", ov8),
                    f"onnxruntime_fp32_{tag}": ("onnxruntime", fp32),
                    f"onnxruntime_int8_{tag}": ("onnxruntime", q.model),
                }
            )
            ov_metric = nncf_int8.openvino_metric(feeds_val, score)
            psnr[f"openvino_fp32_{tag}"] = ov_metric(ir)
            psnr[f"openvino_int8_{tag}"] = ov_metric(ov8)
            psnr[f"onnxruntime_fp32_{tag}"] = q.metric_fp32
            psnr[f"onnxruntime_int8_{tag}"] = q.metric_int8
        lat = latency_rounds(models, {"input": val.inputs[0]}, rounds=rounds)
        priv, _ = signing.generate_keypair(tmp / "keys", "bench")  # throwaway key
        sizes = {}
        for key, (runtime, path) in models.items():
            target = "openvino-cpu" if runtime == "openvino" else "cpu"
            bundle = package(path, target, tmp / f"{key}.zip", priv, openvino_ir=False)
            sizes[key] = bundle.stat().st_size

    def m(k: str) -> float:
        return float(lat[k]["median_ms"])

    def loss(a: str, b: str) -> float:
        return round(psnr[a] - psnr[b], 3)

    return {
        "input_shape": list(val.inputs[0].shape),
        "params": counts,
        "psnr_db": {k: round(v, 3) for k, v in psnr.items()},
        "psnr_db_pruned_before_kd": round(psnr_before_kd, 3),
        "input_psnr_db": round(data.mean_psnr_db(targets, val.inputs), 3)
        if val.inputs[0].shape == targets[0].shape
        else None,
        "latency": lat,
        "bundle_bytes": sizes,
        "openvino_int8_speedup": round(m("openvino_fp32_dense") / m("openvino_int8_dense"), 2),
        "openvino_int8_psnr_loss_db": loss("openvino_fp32_dense", "openvino_int8_dense"),
        "pruning50_speedup_openvino_fp32": round(
            m("openvino_fp32_dense") / m("openvino_fp32_pruned"), 2
        ),
        "pruning50_speedup_openvino_int8": round(
            m("openvino_int8_dense") / m("openvino_int8_pruned"), 2
        ),
        "pruning50_psnr_loss_db": loss("openvino_fp32_dense", "openvino_fp32_pruned"),
        "pruning50_int8_psnr_loss_db": loss("openvino_fp32_dense", "openvino_int8_pruned"),
        "onnxruntime_int8_speedup": round(
            m("onnxruntime_fp32_dense") / m("onnxruntime_int8_dense"), 2
        ),
        "onnxruntime_int8_psnr_loss_db": loss("onnxruntime_fp32_dense", "onnxruntime_int8_dense"),
        "max_bundle_mb": round(max(sizes.values()) / 1e6, 3),
        "int8_layer_report_dense": layers["dense"],
    }


def main() -> None:
    quick = "--quick" in sys.argv
    sonic_path = Path(sys.argv[sys.argv.index("--sonic") + 1]) if "--sonic" in sys.argv else None
    enhance_path = (
        Path(sys.argv[sys.argv.index("--enhance") + 1]) if "--enhance" in sys.argv else None
    )
    torch.manual_seed(0)
    torch.set_num_threads(2)
    t0 = time.time()
    load_start = round(os.getloadavg()[0], 2)  # other jobs share these 2 cores
    rounds = 2 if quick else 4
    results: dict[str, Any] = {}
    kd_steps = 50 if quick else 800
    if "--kd-steps" in sys.argv:
        kd_steps = int(sys.argv[sys.argv.index("--kd-steps") + 1])
    if enhance_path is not None:  # the enhancement student, at the B-mode pipeline's 256×256
        from sonoedge.quantization.compress import load_torch

        results["enhance"] = {
            "about": f"enhancement student {enhance_path}, KD {kd_steps} steps, degraded B-mode",
            **run_student(
                load_torch(enhance_path),
                data.degraded(64 if quick else 512, size=64, seed=0),
                data.degraded(16 if quick else 32, size=256, seed=1),
                data.degraded(8 if quick else 24, size=256, seed=2),
                kd_steps,
                0,
                rounds,
            ),
        }
    elif sonic_path is None:  # representative student: despeckling at the B-mode pipeline's 256×256
        train_set = data.speckle(64 if quick else 512, size=64, seed=0)
        steps = 50 if quick else 800
        net = DespeckleStudent()
        train(net, train_set, steps)
        results["despeckle-unet"] = {
            "about": "representative student-shaped network (pruning needs torch weights; the "
            f"shipped despeckler keeps only ONNX): 2-level U-Net, channels 32/64, trained {steps} "
            f"+ {kd_steps} steps on simulated speckle",
            **run_student(
                net,
                train_set,
                data.speckle(16 if quick else 32, size=256, seed=1),
                data.speckle(8 if quick else 24, size=256, seed=2),
                kd_steps,
                kd_steps,
                rounds,
            ),
        }
    else:  # the SONIC student, at the Doppler pipeline's 128×128
        from sonoedge.quantization.compress import load_torch

        sonic = load_torch(sonic_path)
        first = next(m for m in sonic.modules() if isinstance(m, nn.Conv2d))
        frames = first.in_channels // 2
        sonic_train = data.sonic(32 if quick else 160, frames, size=64, seed=0)
        results["sonic"] = {
            "about": f"SONIC student {sonic_path} ({frames} frames), KD {kd_steps} steps",
            **run_student(
                sonic,
                sonic_train,
                data.sonic(8 if quick else 24, frames, size=128, seed=1),
                data.sonic(8 if quick else 16, frames, size=128, seed=2),
                kd_steps,
                0,
                rounds,
            ),
        }
    metrics = {
        "students": results,
        "wall_s": round(time.time() - t0, 1),
        "load_average_1min_start_end": [load_start, round(os.getloadavg()[0], 2)],
    }
    baselines = {
        "targets": {
            "openvino_int8_speedup": ">= 2.5",
            "openvino_int8_psnr_loss_db": "<= 0.5",
            "pruning50_further_speedup": ">= 1.5",
            "pruning50_psnr_loss_db": "<= 0.3",
            "bundle_mb": "<= 5",
        },
        "fp32_student_psnr_db": {
            k: v["psnr_db"]["onnxruntime_fp32_dense"] for k, v in results.items()
        },
    }
    command = " ".join(["python benchmarks/compression.py", *sys.argv[1:]])
    result_name = (
        "compression_enhance"
        if enhance_path is not None
        else ("compression" if sonic_path is None else "compression_sonic")
    )
    write_result(result_name, metrics, baselines, command=command)
    for student, r in results.items():
        summary = {k: v for k, v in r.items() if k not in ("int8_layer_report_dense", "latency")}
        print(student, json.dumps(summary, indent=1))
    plot(results, RESULTS_DIR / f"{result_name}.png")


def plot(results: dict[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False)
    for row, (name, r) in zip(axes, results.items(), strict=True):
        lat, psnr = r["latency"], r["psnr_db"]
        keys = list(lat)
        colors = ["tab:blue" if "fp32" in k else "tab:orange" for k in keys]
        row[0].barh(keys, [lat[k]["median_ms"] for k in keys], color=colors)
        shape = "×".join(str(d) for d in r["input_shape"])
        row[0].set_xlabel(f"median latency, ms ({shape}, this CPU)")
        row[1].barh(keys, [psnr[k] for k in keys], color=colors)
        row[1].set_xlim(min(psnr.values()) - 0.5, max(psnr.values()) + 0.3)
        row[1].set_xlabel("PSNR vs ground truth, dB")
        row[1].set_yticklabels([])
        row[0].set_title(
            f"{name}: OpenVINO int8 {r['openvino_int8_speedup']}× "
            f"({r['openvino_int8_psnr_loss_db']:+.2f} dB loss)",
            fontsize=10,
        )
        row[1].set_title(
            f"50% pruning + KD: {r['pruning50_speedup_openvino_fp32']}× fp32, "
            f"{r['pruning50_speedup_openvino_int8']}× int8 ({r['pruning50_psnr_loss_db']:+.2f} dB)",
            fontsize=10,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
