"""Enhancement student layouts compared for compression, with random weights (no training).

For v3's layout (8 channels at full resolution) and the space-to-depth option (every conv at
1/2 resolution or below) at 256×256: OpenVINO fp32 vs NNCF int8 (default setting, calibrated on
degraded B-mode), and dense vs 50 % channel-pruned fp32 (Torch-Pruning, ``round_to=8``).
Each IR is compiled once on 1 thread (less exposed to a shared CPU's time slicing than 2),
rounds are interleaved; per model the 10th percentile and median of all timed calls.

Usage: python benchmarks/enhance_arch.py [--rounds N] → docs/results/enhance_arch.json
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonoedge.bench.results import write_result
from sonoedge.models.enhance import EnhanceArch, EnhanceDeploy, build, macs_per_pixel
from sonoedge.quantization import data, nncf_int8, pruning
from sonoedge.quantization.export import export_onnx

LAYOUTS = {
    "v3 (width 8, depth 4, full_depth 3, context)": EnhanceArch(
        "student", 8, 4, full_depth=3, context=True
    ),
    "space_to_depth (width 16, depth 4, full_depth 3, context)": EnhanceArch(
        "student", 16, 4, full_depth=3, context=True, space_to_depth=True
    ),
    "space_to_depth (width 16, depth 2, full_depth 2, context)": EnhanceArch(
        "student", 16, 2, full_depth=2, context=True, space_to_depth=True
    ),
}
TEACHER = EnhanceArch("teacher", 24, 2, 8, 6)


def _random(arch: EnhanceArch) -> torch.nn.Module:
    """Random weights everywhere (the context branch is zero-initialised for warm starts)."""
    net = build(arch)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_uniform_(m.weight)
    return net.eval()


def _variants(arch: EnhanceArch, calib: list[dict[str, Any]], tmp: Path) -> dict[str, Path]:
    """OpenVINO IRs: dense fp32, dense NNCF int8 and 50 %-pruned fp32."""
    example = torch.from_numpy(calib[0]["input"])
    dense = EnhanceDeploy(_random(arch)).eval()
    pruned = pruning.prune_channels(copy.deepcopy(dense), example, 0.5)
    tag = f"w{arch.width}d{arch.depth}f{arch.full_depth}s{int(arch.space_to_depth)}"
    out = {}
    for kind, model in (("dense", dense), ("pruned", pruned)):
        onnx = tmp / f"{tag}-{kind}.onnx"
        export_onnx(model, example, onnx, atol=1e-3)
        out[f"fp32_{kind}"] = nncf_int8.to_openvino_ir(onnx, tmp / f"{tag}-{kind}.xml")
        if kind == "dense":
            q = nncf_int8.quantize_openvino(onnx, tmp / f"{tag}-int8.xml", calib)
            out["int8_dense"] = q.model
    return out


def _time(irs: dict[tuple[str, str], Path], x: np.ndarray, rounds: int) -> dict[Any, list[float]]:
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    core = ov.Core()
    requests = {
        k: core.compile_model(
            str(p), "CPU", {**config, "INFERENCE_NUM_THREADS": 1}
        ).create_infer_request()
        for k, p in irs.items()
    }
    times: dict[Any, list[float]] = {k: [] for k in requests}
    for _ in range(rounds):
        for k, request in requests.items():
            for _ in range(3):
                request.infer({"input": x})
            for _ in range(20):
                t0 = time.perf_counter()
                request.infer({"input": x})
                times[k].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    calib = [{"input": x} for x in data.degraded(16, size=256, seed=1).inputs]
    teacher_macs = macs_per_pixel(build(TEACHER))
    load_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp_name:
        irs = {}
        for name, arch in LAYOUTS.items():
            for variant, path in _variants(arch, calib, Path(tmp_name)).items():
                irs[(name, variant)] = path
        times = _time(irs, calib[0]["input"], args.rounds)
    ms = {
        k: (round(float(np.percentile(v, 10)) * 1e3, 3), round(float(np.median(v)) * 1e3, 3))
        for k, v in times.items()
    }
    v3 = ms[(next(iter(LAYOUTS)), "fp32_dense")][0]
    metrics: dict[str, Any] = {"size": "256x256", "threads": 1, "rounds": args.rounds}
    for name, arch in LAYOUTS.items():
        f, i8, pr = (ms[(name, v)] for v in ("fp32_dense", "int8_dense", "fp32_pruned"))
        macs = macs_per_pixel(build(arch))
        metrics[name] = {
            "architecture": arch.to_dict(),
            "macs_per_pixel": round(macs),
            "teacher_over_student_macs": round(teacher_macs / macs, 2),
            "openvino_ms_p10_median": {"fp32": f, "int8": i8, "pruned50_fp32": pr},
            "int8_speedup_p10": round(f[0] / i8[0], 2),
            "int8_speedup_median": round(f[1] / i8[1], 2),
            "pruning50_speedup_p10": round(f[0] / pr[0], 2),
            "pruning50_speedup_median": round(f[1] / pr[1], 2),
            "fp32_vs_v3_p10": round(f[0] / v3, 2),
        }
        print(
            f"{name}: int8 {metrics[name]['int8_speedup_p10']}x, pruned "
            f"{metrics[name]['pruning50_speedup_p10']}x, fp32 {metrics[name]['fp32_vs_v3_p10']}"
            " of v3"
        )
    metrics["load_average_1min_start_end"] = [load_start, round(os.getloadavg()[0], 2)]
    write_result("enhance_arch", metrics)


if __name__ == "__main__":
    main()
