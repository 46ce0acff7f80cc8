"""Compression benchmark → docs/results/compression.json and compression.png.

For each student: OpenVINO fp32 vs NNCF int8 latency and PSNR loss, 50% channel pruning with
KD fine-tuning (speedup and loss), ONNX Runtime fp32/int8 alongside, and signed bundle sizes.
Latency is measured on this CPU at the deployment input size, warm (10 runs), 60 timed runs per
round, rounds interleaved across variants to spread the noise of a shared machine; the figure of
record is the median over rounds of each round's median.

Without a shipped student (``--sonic`` not given), a representative student-shaped network is
used: a two-level despeckling U-Net (3×3 convs, ReLU, a strided conv down, a transposed conv up,
a skip connection, channels 32/64, the layer types our students use), trained here on simulated
speckle for a fixed number of steps.

Usage: python benchmarks/compression.py [--quick]
"""

from __future__ import annotations

import copy
import json
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


def main() -> None:
    quick = "--quick" in sys.argv
    torch.manual_seed(0)
    torch.set_num_threads(2)
    size = 256  # B-mode despeckling runs at 256×256
    train_set = data.speckle(64 if quick else 512, size=64, seed=0)
    calib = data.speckle(16 if quick else 32, size=size, seed=1)
    val = data.speckle(8 if quick else 24, size=size, seed=2)
    steps, kd_steps = (50, 50) if quick else (800, 800)
    t0 = time.time()
    net = DespeckleStudent()
    train(net, train_set, steps)
    dense = copy.deepcopy(net)
    example = torch.from_numpy(val.inputs[0])
    counts = {"dense": pruning.count(dense, example)}
    pruned = copy.deepcopy(net)
    pruning.prune_channels(pruned, example, 0.5)
    counts["pruned"] = pruning.count(pruned, example)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        feeds_val = [{"input": x} for x in val.inputs]
        feeds_cal = [{"input": x} for x in calib.inputs]
        assert val.targets is not None
        targets = val.targets

        def score(outs: list[np.ndarray]) -> float:
            return data.mean_psnr_db(targets, outs)

        export_onnx(pruned, example, tmp / "pruned-nokd.onnx")
        psnr_before_kd = ort_int8.onnx_metric(feeds_val, score)(tmp / "pruned-nokd.onnx")
        distill(pruned, dense, train_set.inputs, train_set.targets, steps=kd_steps, seed=0)
        train(dense, train_set, kd_steps, seed=1)  # same training budget for the dense student
        models: dict[str, tuple[str, Path]] = {}
        psnr: dict[str, float] = {}
        layers: dict[str, Any] = {}
        for tag, m in (("dense", dense), ("pruned", pruned)):
            fp32 = tmp / f"{tag}-fp32.onnx"
            export_onnx(m, example, fp32)
            ir = nncf_int8.to_openvino_ir(fp32, tmp / f"{tag}-fp32.xml")
            ov8 = nncf_int8.quantize_openvino(fp32, tmp / f"{tag}-int8.xml", feeds_cal)
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
        lat = latency_rounds(models, {"input": val.inputs[0]}, rounds=2 if quick else 4)
        priv, _ = signing.generate_keypair(tmp / "keys", "bench")  # throwaway key
        sizes = {}
        for key, (runtime, path) in models.items():
            target = "openvino-cpu" if runtime == "openvino" else "cpu"
            bundle = package(path, target, tmp / f"{key}.zip", priv, openvino_ir=False)
            sizes[key] = bundle.stat().st_size
    noisy = psnr["onnxruntime_fp32_dense"]
    m = lambda k: lat[k]["median_ms"]  # noqa: E731
    metrics = {
        "student": "representative despeckling U-Net (no SONIC student shipped yet)",
        "input_shape": [1, 1, size, size],
        "params": counts,
        "psnr_db": {k: round(v, 3) for k, v in psnr.items()},
        "psnr_db_pruned_before_kd": round(psnr_before_kd, 3),
        "latency": lat,
        "bundle_bytes": sizes,
        "openvino_int8_speedup": round(m("openvino_fp32_dense") / m("openvino_int8_dense"), 2),
        "openvino_int8_psnr_loss_db": round(
            psnr["openvino_fp32_dense"] - psnr["openvino_int8_dense"], 3
        ),
        "pruning50_speedup_openvino_fp32": round(
            m("openvino_fp32_dense") / m("openvino_fp32_pruned"), 2
        ),
        "pruning50_speedup_openvino_int8": round(
            m("openvino_int8_dense") / m("openvino_int8_pruned"), 2
        ),
        "pruning50_psnr_loss_db": round(
            psnr["openvino_fp32_dense"] - psnr["openvino_fp32_pruned"], 3
        ),
        "onnxruntime_int8_speedup": round(
            m("onnxruntime_fp32_dense") / m("onnxruntime_int8_dense"), 2
        ),
        "onnxruntime_int8_psnr_loss_db": round(
            psnr["onnxruntime_fp32_dense"] - psnr["onnxruntime_int8_dense"], 3
        ),
        "max_bundle_mb": round(max(sizes.values()) / 1e6, 3),
        "int8_layer_report_dense": layers["dense"],
        "train_steps": steps,
        "kd_steps": kd_steps,
        "wall_s": round(time.time() - t0, 1),
    }
    baselines = {
        "targets": {
            "openvino_int8_speedup": ">= 2.5",
            "openvino_int8_psnr_loss_db": "<= 0.5",
            "pruning50_further_speedup": ">= 1.5",
            "pruning50_psnr_loss_db": "<= 0.3",
            "bundle_mb": "<= 5",
        },
        "input_psnr_db": round(data.mean_psnr_db(targets, val.inputs), 3),
        "fp32_student_psnr_db": round(noisy, 3),
    }
    command = "python benchmarks/compression.py" + (" --quick" if quick else "")
    write_result("compression", metrics, baselines, command=command)
    print(
        json.dumps({k: v for k, v in metrics.items() if k != "int8_layer_report_dense"}, indent=1)
    )
    plot(metrics, RESULTS_DIR / "compression.png")


def plot(metrics: dict[str, Any], path: Path) -> None:
    lat, psnr = metrics["latency"], metrics["psnr_db"]
    keys = list(lat)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = ["tab:blue" if "fp32" in k else "tab:orange" for k in keys]
    axes[0].barh(keys, [lat[k]["median_ms"] for k in keys], color=colors)
    axes[0].set_xlabel("median latency, ms (1×1×256×256, this CPU)")
    axes[1].barh(keys, [psnr[k] for k in keys], color=colors)
    axes[1].set_xlim(min(psnr.values()) - 0.5, max(psnr.values()) + 0.3)
    axes[1].set_xlabel("PSNR vs clean, dB")
    axes[1].set_yticklabels([])
    loss = metrics["openvino_int8_psnr_loss_db"]
    fig.suptitle(
        f"OpenVINO int8 {metrics['openvino_int8_speedup']}× ({loss:+.2f} dB loss), "
        f"50% pruning {metrics['pruning50_speedup_openvino_fp32']}× fp32 / "
        f"{metrics['pruning50_speedup_openvino_int8']}× int8"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
