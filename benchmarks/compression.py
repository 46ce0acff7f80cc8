"""Compression benchmark → docs/results/compression.json and compression.png.

For each student: OpenVINO fp32 vs NNCF int8 latency and PSNR loss, 50% channel pruning with
KD fine-tuning (speedup and loss), ONNX Runtime fp32/int8 alongside, and signed bundle sizes.
Latency is measured on this CPU at the deployment input size, warm (10 runs), 60 timed runs per
round, rounds interleaved across variants to spread the noise of a shared machine; the figure of
record is the median over rounds of each round's median.

Students (weights ``.pt``, or a shipped student's ``.onnx`` rebuilt from its card):
``--sonic STUDENT.pt`` benchmarks the SONIC Doppler student at 128×128 (→
compression_sonic.json/.png; the ``sonic-8`` record is kept as compression_sonic8.json);
``--enhance STUDENT.pt`` the enhancement student (``sonoedge train enhance`` weights) on
degraded B-mode at 256×256 (→ compression_enhance.json/.png);
``--despeckle STUDENT.pt`` the MK despeckling student (``sonoedge train despeckle`` weights) on
simulated B-mode at 256×256, PSNR against the speckle-free images (→
compression_despeckle.json/.png); ``--ulm LOCALIZER.pt`` the ULM localiser (``sonoedge train ulm``
weights) on clutter-filtered bubble frames at 128×128 (the live ``ulm`` preset's frames), metric
the detection Jaccard index at λ/4, also scored as the runtime decodes (flip averaging, the
shipped card's threshold; → compression_ulm.json/.png); without them, a representative
student-shaped network is used (→ compression.json/.png): a two-level despeckling U-Net (3×3
convs, ReLU, a strided conv down, a transposed conv up, a skip connection, channels 32/64, the
layer types our students use), trained here on simulated speckle for a fixed number of steps.

Usage: python benchmarks/compression.py [--quick] [--sonic|--enhance|--despeckle|--ulm WEIGHTS]
[--kd-steps N] (default 800 distillation steps after pruning) [--qat-steps N] (default 2000
quantization-aware fine-tuning steps when post-training OpenVINO int8 misses the maximum drop).
Torch (distillation) runs on one thread; the runtimes on their defaults (both cores).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
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
from sonoedge.quantization.compress import prune_for_task
from sonoedge.quantization.distill import distill, task_recipe
from sonoedge.quantization.export import export_onnx
from sonoedge.quantization.measure import openvino_latency, ort_latency
from sonoedge.quantization.qat import DEFAULT_STEPS, QatPlan

Models = dict[str, tuple[str, Path]]
"""Variant key → (runtime, model file)."""


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


def latency_rounds(models: Models, feeds: dict, rounds: int, channels_last: bool = False) -> dict:
    """Interleaved rounds; per model the median of round medians, p99 over all runs.
    ``channels_last``: OpenVINO gets multi-channel inputs in NHWC memory (as the runtime feeds
    SONIC); ONNX Runtime copies them to NCHW anyway."""
    per: dict[str, list[dict[str, float]]] = {k: [] for k in models}
    for _ in range(rounds):
        for key, (runtime, path) in models.items():
            if runtime == "openvino":
                result = openvino_latency(
                    path, feeds, warmup=10, repeats=60, channels_last=channels_last
                )
            else:
                result = ort_latency(path, feeds, warmup=10, repeats=60)
            per[key].append(result)
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
    runtime_scores: Callable[[Models], dict[str, Any]] | None = None,
    latency_batch: int = 1,
    task: str = "",
    dense_same_budget: bool = False,
    round_to: int = 8,
    max_drop: float | None = None,
    channels_last: bool = False,
    qat_steps: int = 0,
    importance: str = "auto",
    crop: int | None = None,
) -> dict[str, Any]:
    """OpenVINO and ONNX Runtime, fp32 and int8, dense and 50 % pruned + KD (the fine-tuning
    recipe of ``compress --data task``): task metric (``data.task_metric(val)``), latency, signed
    bundle sizes. ``runtime_scores(models)`` adds scores of each variant as the student's runtime
    uses it; ``dense_same_budget`` the metric of the unpruned student fine-tuned as long as the
    pruned one. Latency of record: batches of ``latency_batch`` validation inputs (also one
    input alone when that is more than 1). ``max_drop``: as ``compress --int8 --max-drop`` (the
    fewest layers back to float until the OpenVINO int8 drop is within it); None: plain int8.
    ``qat_steps``: as ``compress --qat-steps`` (quantization-aware fine-tuning on ``train_set``
    first, when post-training int8 misses ``max_drop``). ``channels_last``: OpenVINO latency
    with NHWC input memory (SONIC, as its runtime feeds it). ``importance``: the pruning
    importance, as ``compress --importance``; ``crop``: fine-tuning windows of the training
    samples, as ``compress --crop``."""
    example = torch.from_numpy(val.inputs[0])
    counts = {"dense": pruning.count(dense, example)}
    pruned = copy.deepcopy(dense)
    chosen = prune_for_task(pruned, example, 0.5, train_set, task, importance, round_to)
    counts["pruned"] = pruning.count(pruned, example)
    task_metric = data.task_metric(val)
    assert task_metric is not None
    metric, score = task_metric
    loss_key = "psnr_loss_db" if metric == "psnr_db" else f"{metric}_loss"

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        feeds_val = [{"input": x} for x in val.inputs]
        feeds_cal = [{"input": x} for x in calib.inputs]
        export_onnx(pruned, example, tmp / "pruned-nokd.onnx")
        before_kd = ort_int8.onnx_metric(feeds_val, score)(tmp / "pruned-nokd.onnx")
        r = task_recipe(task)
        recipe = {**r._asdict(), "crop": crop}
        distill(pruned, dense, train_set.inputs, train_set.targets, kd_steps, **recipe)
        same_budget = None
        if dense_same_budget:  # the unpruned student fine-tuned just as long, for comparison
            tuned = copy.deepcopy(dense)
            distill(tuned, dense, train_set.inputs, train_set.targets, kd_steps, **recipe)
            export_onnx(tuned, example, tmp / "dense-tuned.onnx")
            same_budget = ort_int8.onnx_metric(feeds_val, score)(tmp / "dense-tuned.onnx")
        if extra_dense_steps:
            train(dense, train_set, extra_dense_steps, seed=1)  # same training budget
        models: Models = {}
        values: dict[str, float] = {}
        layers: dict[str, Any] = {}
        ov_int8: dict[str, Any] = {}
        for tag, m in (("dense", dense), ("pruned", pruned)):
            fp32 = tmp / f"{tag}-fp32.onnx"
            export_onnx(m, example, fp32)
            ir = nncf_int8.to_openvino_ir(fp32, tmp / f"{tag}-fp32.xml")
            qat = (
                QatPlan(m, train_set.inputs, train_set.targets, r, qat_steps) if qat_steps else None
            )
            ov8_result = nncf_int8.quantize_openvino(
                fp32, tmp / f"{tag}-int8.xml", feeds_cal, feeds_val, score, max_drop, qat
            )
            ov8 = ov8_result.model
            ov_int8[tag] = ov8_result.to_dict()
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
            values[f"openvino_fp32_{tag}"] = ov_metric(ir)
            values[f"openvino_int8_{tag}"] = ov_metric(ov8)
            values[f"onnxruntime_fp32_{tag}"] = q.metric_fp32
            values[f"onnxruntime_int8_{tag}"] = q.metric_int8
        runtime = runtime_scores(models) if runtime_scores is not None else None
        load_before = round(os.getloadavg()[0], 2)
        batch = np.concatenate([val.inputs[i % len(val)] for i in range(latency_batch)])
        lat = latency_rounds(models, {"input": batch}, rounds, channels_last)
        single = (
            latency_rounds(models, {"input": val.inputs[0]}, rounds, channels_last)
            if latency_batch > 1
            else None
        )
        load_after = round(os.getloadavg()[0], 2)
        priv, _ = signing.generate_keypair(tmp / "keys", "bench")  # throwaway key
        sizes = {}
        for key, (runtime_name, path) in models.items():
            target = "openvino-cpu" if runtime_name == "openvino" else "cpu"
            bundle = package(path, target, tmp / f"{key}.zip", priv, openvino_ir=False)
            sizes[key] = bundle.stat().st_size

    def median_ms(k: str) -> float:
        return float(lat[k]["median_ms"])

    def loss(a: str, b: str) -> float:
        return round(values[a] - values[b], 4)

    targets = val.targets
    out: dict[str, Any] = {
        "input_shape": list(batch.shape),
        "params": counts,
        "pruning_round_to": round_to,
        "pruning_importance": chosen,
        "pruned_channels": pruning.channel_counts(pruned),
        "fine_tuning_crop": crop,
        "metric": metric,
        metric: {k: round(v, 4) for k, v in values.items()},
        f"{metric}_pruned_before_kd": round(before_kd, 4),
        "input_psnr_db": round(data.mean_psnr_db(targets, val.inputs), 3)
        if targets is not None and val.inputs[0].shape == targets[0].shape
        else None,
        "latency": lat,
        "load_average_1min_latency_start_end": [load_before, load_after],
        "bundle_bytes": sizes,
        "openvino_int8_speedup": round(
            median_ms("openvino_fp32_dense") / median_ms("openvino_int8_dense"), 2
        ),
        f"openvino_int8_{loss_key}": loss("openvino_fp32_dense", "openvino_int8_dense"),
        "pruning50_speedup_openvino_fp32": round(
            median_ms("openvino_fp32_dense") / median_ms("openvino_fp32_pruned"), 2
        ),
        "pruning50_speedup_openvino_int8": round(
            median_ms("openvino_int8_dense") / median_ms("openvino_int8_pruned"), 2
        ),
        f"pruning50_{loss_key}": loss("openvino_fp32_dense", "openvino_fp32_pruned"),
        f"pruning50_int8_{loss_key}": loss("openvino_fp32_dense", "openvino_int8_pruned"),
        "pruned_int8_speedup_vs_dense_fp32_openvino": round(
            median_ms("openvino_fp32_dense") / median_ms("openvino_int8_pruned"), 2
        ),
        "onnxruntime_int8_speedup": round(
            median_ms("onnxruntime_fp32_dense") / median_ms("onnxruntime_int8_dense"), 2
        ),
        f"onnxruntime_int8_{loss_key}": loss("onnxruntime_fp32_dense", "onnxruntime_int8_dense"),
        "max_bundle_mb": round(max(sizes.values()) / 1e6, 3),
        "int8_layer_report_dense": layers["dense"],
        "openvino_int8_max_drop": max_drop,
        "openvino_input_memory": "channels-last (NHWC)" if channels_last else "NCHW",
        "openvino_int8_quantization": ov_int8,
    }
    if same_budget is not None:
        out[f"{metric}_dense_fine_tuned_same_steps"] = round(same_budget, 4)
    if single is not None:
        out["latency_one_input"] = single
        out["openvino_int8_speedup_one_input"] = round(
            single["openvino_fp32_dense"]["median_ms"] / single["openvino_int8_dense"]["median_ms"],
            2,
        )
    if runtime is not None:
        out["runtime_scores"] = runtime
    return out


class _OpenVinoSession:
    """An onnxruntime-session-shaped OpenVINO model (fp32 inference precision) for a student's
    runtime class."""

    def __init__(self, model: Path) -> None:
        import openvino as ov

        self.compiled = ov.Core().compile_model(
            str(model), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
        )

    def get_inputs(self) -> list[Any]:
        from sonoedge.zoo.backend import TensorInfo

        return [TensorInfo(self.compiled.inputs[0].get_any_name(), [])]

    def run(self, _names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(self.compiled(feeds)[0])]


def ulm_runtime_scores(val: data.DataSet, card: dict[str, Any]) -> Callable[[Models], dict]:
    """Scores of each variant as :class:`sonoedge.zoo.ulm.UlmLocalizer` runs it (the card's flip
    averaging, threshold and offset clip): Jaccard, precision, recall, RMSE at λ/4."""
    from sonoedge.zoo.backend import cpu_session
    from sonoedge.zoo.ulm import UlmLocalizer

    assert val.bubbles is not None
    truth = val.bubbles
    frames = np.concatenate([x[:, 0] for x in val.inputs])

    def run(models: Models) -> dict[str, Any]:
        out = {}
        for key, (runtime, path) in models.items():
            session = _OpenVinoSession(path) if runtime == "openvino" else cpu_session(path, 2)
            loc = UlmLocalizer(path, card, session=session)
            s = data.ulm_scores(truth, [loc.maps(frames)], loc.threshold, loc.offset_clip)
            out[key] = {k: round(v, 4) if np.isfinite(v) else None for k, v in s.items()}
        return out

    return run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--sonic", type=Path, help="SONIC student weights (sonoedge train sonic)")
    which.add_argument("--enhance", type=Path, help="enhancement student weights")
    which.add_argument("--despeckle", type=Path, help="MK despeckling student weights")
    which.add_argument("--ulm", type=Path, help="ULM localiser weights (localizer.pt)")
    parser.add_argument(
        "--ulm-card",
        default="ulm-localizer",
        help="card (shipped name or .onnx) whose decoding scores the ULM runtime",
    )
    parser.add_argument("--kd-steps", type=int, default=None, help="default 800 (quick: 50)")
    parser.add_argument(
        "--round-to",
        type=int,
        default=8,
        help="pruned channel counts stay multiples of this (default 8; the 8-wide full-resolution "
        "layers of the enhancement student need 4 to be halved)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=None,
        help="OpenVINO int8 as compress --int8 --max-drop X builds it (default: the target, "
        "0.5 dB PSNR or 0.01 Jaccard)",
    )
    parser.add_argument(
        "--plain-int8", action="store_true", help="OpenVINO int8 without a maximum drop"
    )
    parser.add_argument(
        "--qat-steps",
        type=int,
        default=None,
        help=f"as compress --qat-steps: quantization-aware fine-tuning when post-training int8 "
        f"misses the maximum drop (default {DEFAULT_STEPS}, quick: 50; 0: none)",
    )
    parser.add_argument(
        "--importance",
        choices=("auto", "taylor", "l2"),
        default="auto",
        help="pruning importance, as compress --importance (auto: taylor when the data has "
        "targets, every student but the ULM localiser; results before 2026-12-01 used l2)",
    )
    parser.add_argument(
        "--crop",
        type=int,
        default=64,
        help="enhancement student: fine-tune the pruned network on windows of this many px of the "
        "256-px frames, as compress --crop (default 64; 128 and 256 did no better for v10)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sets and 2 rounds")
    return parser.parse_args()


def max_drop(args: argparse.Namespace, metric: str) -> float | None:
    """The OpenVINO int8 maximum drop: ``--max-drop``, else the target for ``metric``."""
    if args.plain_int8:
        return None
    if args.max_drop is not None:
        return float(args.max_drop)
    return 0.5 if metric == "psnr_db" else 0.01


def qat_steps(args: argparse.Namespace) -> int:
    """Quantization-aware fine-tuning steps: ``--qat-steps``, else the default."""
    if args.qat_steps is not None:
        return int(args.qat_steps)
    return 50 if args.quick else DEFAULT_STEPS


def benchmark(args: argparse.Namespace, kd_steps: int, rounds: int) -> tuple[str, dict]:
    """The result name and per-student results for the student chosen by ``args``."""
    from sonoedge.quantization.compress import load_torch

    quick = args.quick
    if args.enhance is not None:  # the enhancement student, at the B-mode pipeline's 256×256
        return "compression_enhance", {
            "enhance": {
                "about": f"enhancement student {args.enhance}, KD {kd_steps} steps of "
                f"{task_recipe('degraded').batch} {args.crop}-px windows of 256-px degraded B-mode "
                "frames (MSE to the unpruned network's output, compress --data degraded)",
                **run_student(
                    load_torch(args.enhance),
                    data.degraded(16 if quick else 128, size=256, seed=0),
                    data.degraded(16 if quick else 32, size=256, seed=1),
                    data.degraded(8 if quick else 24, size=256, seed=2),
                    kd_steps,
                    0,
                    rounds,
                    round_to=args.round_to,
                    max_drop=max_drop(args, "psnr_db"),
                    qat_steps=qat_steps(args),
                    importance=args.importance,
                    task="degraded",
                    crop=args.crop,
                ),
            }
        }
    if args.despeckle is not None:  # the MK student, at the B-mode pipeline's 256×256
        return "compression_despeckle", {
            "despeckle-mk": {
                "about": f"MK despeckling student {args.despeckle}, KD {kd_steps} steps (its "
                "training loss + L1 to the unpruned student) on simulated B-mode (sonoedge train "
                "despeckle's data, disjoint seeds)",
                **run_student(
                    load_torch(args.despeckle),
                    data.despeckle(64 if quick else 512, size=96, seed=0),
                    data.despeckle(16 if quick else 32, size=256, seed=1),
                    data.despeckle(8 if quick else 24, size=256, seed=2),
                    kd_steps,
                    0,
                    rounds,
                    round_to=args.round_to,
                    max_drop=max_drop(args, "psnr_db"),
                    qat_steps=qat_steps(args),
                    importance=args.importance,
                    task="despeckle",
                    dense_same_budget=True,
                ),
            }
        }
    if args.ulm is not None:  # the localiser, at the live ulm preset's 128×128 frames
        from sonoedge import zoo
        from sonoedge.zoo.ulm import BATCH

        card = zoo.read_card(zoo.resolve(args.ulm_card))
        val = data.ulm(8 if quick else 24, size=128, seed=2)
        return "compression_ulm", {
            "ulm-localizer": {
                "about": f"ULM localiser {args.ulm}, KD {kd_steps} steps on clutter-filtered "
                "bubble frames; metric: detection Jaccard at lambda/4 of single-pass maps "
                f"(threshold {data.ULM_THRESHOLD}); runtime_scores: as UlmLocalizer decodes "
                f"with card {args.ulm_card} (flip averaging {card['decode'].get('flip_average')}); "
                f"latency of record: batches of {BATCH} frames, as UlmLocalizer runs an "
                "ensemble (twice with flip averaging)",
                **run_student(
                    load_torch(args.ulm),
                    data.ulm(64 if quick else 512, size=64, seed=0),
                    data.ulm(16 if quick else 32, size=128, seed=1),
                    val,
                    kd_steps,
                    0,
                    rounds,
                    ulm_runtime_scores(val, card),
                    round_to=args.round_to,
                    max_drop=max_drop(args, "jaccard"),
                    qat_steps=qat_steps(args),
                    importance=args.importance,
                    latency_batch=BATCH,
                    task="ulm",
                ),
            }
        }
    if args.sonic is not None:  # the SONIC student, at the Doppler pipeline's 128×128
        sonic = load_torch(args.sonic)
        first = next(m for m in sonic.modules() if isinstance(m, nn.Conv2d))
        frames = first.in_channels // 2
        return "compression_sonic", {
            "sonic": {
                "about": f"SONIC student {args.sonic} ({frames} frames), KD {kd_steps} steps",
                **run_student(
                    sonic,
                    data.sonic(32 if quick else 160, frames, size=64, seed=0),
                    data.sonic(8 if quick else 24, frames, size=128, seed=1),
                    data.sonic(8 if quick else 16, frames, size=128, seed=2),
                    kd_steps,
                    0,
                    rounds,
                    round_to=args.round_to,
                    max_drop=max_drop(args, "psnr_db"),
                    qat_steps=qat_steps(args),
                    importance=args.importance,
                    channels_last=True,
                ),
            }
        }
    # representative student: despeckling at the B-mode pipeline's 256×256
    train_set = data.speckle(64 if quick else 512, size=64, seed=0)
    steps = 50 if quick else 800
    net = DespeckleStudent()
    train(net, train_set, steps)
    return "compression", {
        "despeckle-unet": {
            "about": "representative student-shaped network: 2-level U-Net, channels 32/64, "
            f"trained {steps} + {kd_steps} steps on simulated speckle",
            **run_student(
                net,
                train_set,
                data.speckle(16 if quick else 32, size=256, seed=1),
                data.speckle(8 if quick else 24, size=256, seed=2),
                kd_steps,
                kd_steps,
                rounds,
                round_to=args.round_to,
                max_drop=max_drop(args, "psnr_db"),
                importance=args.importance,
            ),
        }
    }


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # distillation; the runtimes keep their own thread defaults
    t0 = time.time()
    load_start = round(os.getloadavg()[0], 2)  # other jobs share these 2 cores
    rounds = 2 if args.quick else 4
    kd_steps = args.kd_steps if args.kd_steps is not None else (50 if args.quick else 800)
    result_name, results = benchmark(args, kd_steps, rounds)
    metrics = {
        "students": results,
        "wall_s": round(time.time() - t0, 1),
        "load_average_1min_start_end": [load_start, round(os.getloadavg()[0], 2)],
    }
    metric = next(iter(results.values()))["metric"]
    loss = "psnr_loss_db" if metric == "psnr_db" else f"{metric}_loss"
    baselines = {
        "targets": {
            "openvino_int8_speedup": ">= 2.5",
            f"openvino_int8_{loss}": "<= 0.5" if metric == "psnr_db" else "<= 0.01",
            "pruning50_further_speedup": ">= 1.5",
            f"pruning50_{loss}": "<= 0.3" if metric == "psnr_db" else "<= 0.01",
            "bundle_mb": "<= 5",
        },
        f"fp32_student_{metric}": {
            k: v[metric]["onnxruntime_fp32_dense"] for k, v in results.items()
        },
    }
    command = " ".join(["python benchmarks/compression.py", *sys.argv[1:]])
    write_result(result_name, metrics, baselines, command=command)
    for student, r in results.items():
        summary = {k: v for k, v in r.items() if k not in ("int8_layer_report_dense", "latency")}
        print(student, json.dumps(summary, indent=1))
    plot(results, RESULTS_DIR / f"{result_name}.png")


def plot(results: dict[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False)
    for row, (name, r) in zip(axes, results.items(), strict=True):
        metric = r["metric"]
        psnr = metric == "psnr_db"
        loss = "psnr_loss_db" if psnr else f"{metric}_loss"
        unit = " dB" if psnr else ""
        lat, values = r["latency"], r[metric]
        keys = list(lat)
        colors = ["tab:blue" if "fp32" in k else "tab:orange" for k in keys]
        row[0].barh(keys, [lat[k]["median_ms"] for k in keys], color=colors)
        shape = "×".join(str(d) for d in r["input_shape"])
        row[0].set_xlabel(f"median latency, ms ({shape}, this CPU)")
        row[1].barh(keys, [values[k] for k in keys], color=colors)
        pad = (0.5, 0.3) if psnr else (0.05, 0.03)
        row[1].set_xlim(min(values.values()) - pad[0], max(values.values()) + pad[1])
        row[1].set_xlabel(
            "PSNR vs ground truth, dB" if psnr else f"{metric} (localisations vs true bubbles)"
        )
        row[1].set_yticklabels([])
        row[0].set_title(
            f"{name}: OpenVINO int8 {r['openvino_int8_speedup']}× "
            f"({r[f'openvino_int8_{loss}']:+.3g}{unit} loss)",
            fontsize=10,
        )
        row[1].set_title(
            f"50% pruning + KD: {r['pruning50_speedup_openvino_fp32']}× fp32, "
            f"{r['pruning50_speedup_openvino_int8']}× int8 ({r[f'pruning50_{loss}']:+.3g}{unit})",
            fontsize=10,
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
