"""``sonoedge compress``: pruning, distillation and int8 for a student (torch imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def compress(
    model: Path = typer.Argument(
        ...,
        help="Student: .pt (SONIC, enhancement, despeckling or ULM localiser weights from "
        "sonoedge train, or a whole torch module), a shipped student's name (sonic-16, "
        "despeckle-mk, ...) or a sonoedge student's .onnx with its card (its network is rebuilt "
        "for --prune), or any other .onnx (int8 only).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    prune: float = typer.Option(
        0.0, "--prune", min=0.0, max=0.95, help="Fraction of channels to remove (e.g. 0.5)."
    ),
    round_to: int = typer.Option(
        8,
        "--round-to",
        min=1,
        help="Pruned layers keep a multiple of this many channels. 8 suits SIMD units; a layer "
        "at or under it is left whole, so halving an 8-channel layer needs 4.",
    ),
    importance: str = typer.Option(
        "auto",
        "--importance",
        help="Which channels --prune removes: 'taylor' (those whose removal changes the task "
        "loss least, from its gradients on training samples; needs targets), 'l2' (smallest "
        "weights) or 'auto' (taylor when the data has targets). On the enhancement student "
        "taylor cost 0.5 dB where l2 cost 2.4.",
    ),
    int8: bool = typer.Option(False, "--int8", help="Also quantize to int8 (ORT QDQ + NNCF)."),
    max_drop: float | None = typer.Option(
        None,
        "--max-drop",
        help="Largest metric drop int8 may cost (dB PSNR; Jaccard for --data ulm); else layers "
        "stay float.",
    ),
    data: str = typer.Option(
        "speckle",
        help="Data: 'speckle' (synthetic speckle patches), 'despeckle' (simulated B-mode: the MK "
        "despeckling student's), 'degraded' (blurred, noisy patches: enhancement), 'sonic:N' "
        "(N-frame Doppler, simulated), 'ulm' (microbubble frames: ULM localiser, metric "
        "Jaccard at lambda/4) or a .npz (inputs, targets).",
    ),
    card: Path | None = typer.Option(
        None,
        "--card",
        help="Model card the outputs' cards start from (default: MODEL with .json), e.g. the "
        "exported ulm-localizer.json for a localizer.pt.",
    ),
    size: int = typer.Option(
        64, "--size", min=8, help="Side of the simulated samples (training, calibration, metric)."
    ),
    crop: int | None = typer.Option(
        None,
        "--crop",
        min=8,
        help="Fine-tune on random CROP x CROP windows of the samples: frames as large as the "
        "deployment's (--size 256) at the cost of patches.",
    ),
    kd_steps: int = typer.Option(300, min=0, help="Distillation steps after pruning."),
    qat_steps: int = typer.Option(
        0,
        "--qat-steps",
        min=0,
        help="With --max-drop: when post-training OpenVINO int8 costs more, fine-tune this many "
        "steps with int8 in the loop (NNCF QAT; every layer stays int8) before keeping layers "
        "in float. 2000 took the despeckler's int8 drop from 0.68 to 0.16 dB.",
    ),
    tensorrt: bool = typer.Option(
        False, "--tensorrt", help="Symmetric int8 activations (what TensorRT expects)."
    ),
    seed: int = typer.Option(0, help="Seed for data and fine-tuning."),
) -> None:
    """Compress a student: channel pruning + knowledge-distillation fine-tuning, then int8
    (ONNX Runtime QDQ with per-channel weights, and NNCF for OpenVINO). Layers that break under
    int8 stay in float; report.json has the per-layer float-vs-int8 error report.

    \b
    Examples:
      sonoedge compress student.pt --prune 0.5 --int8 --max-drop 0.3 -o runs/compressed
      sonoedge compress student.onnx --int8 -o runs/int8
      sonoedge compress sonic-16 --data sonic:16 --prune 0.5 --kd-steps 3000 -o runs/sonic16-p50
      sonoedge compress enhance-student --data degraded --size 256 --crop 64 --prune 0.5 \\
          --kd-steps 40000 -o runs/enhance-p50
      sonoedge compress despeckle-mk --data despeckle --int8 --max-drop 0.5 --qat-steps 2000 \\
          -o runs/despeckle-int8
      sonoedge compress runs/ulm2/localizer.pt --card sdk/zoo/ulm-localizer.json --data ulm \\
          --prune 0.5 --int8 --max-drop 0.01 -o runs/ulm-compressed
      sonoedge package runs/compressed/student-int8-ov.xml -t openvino-cpu -k my.key
    """
    import shlex
    import sys

    from sonoedge.bench.results import git_commit
    from sonoedge.quantization.compress import Options
    from sonoedge.quantization.compress import compress as run

    if not model.exists() and model.suffix == "":  # a shipped student's name
        from sonoedge import zoo

        model = zoo.resolve(str(model))
    command = " ".join(shlex.quote(a) for a in ["sonoedge", *sys.argv[1:]])
    opts = Options(
        prune=prune,
        round_to=round_to,
        importance=importance,
        int8=int8,
        max_drop=max_drop,
        data=data,
        size=size,
        crop=crop,
        kd_steps=kd_steps,
        qat_steps=qat_steps,
        seed=seed,
        symmetric=tensorrt,
    )
    report = run(model, out, opts, command=command, commit=git_commit(), card_path=card)
    metric = report["metric"]
    for name, v in report["variants"].items():
        lat = v.get("ort_latency", {}).get("median_ms")
        extra = f", ORT median {lat} ms" if lat is not None else ""
        size_mb = v["size_bytes"] / 1e6
        typer.echo(f"{name:18s} {v['model']}: {metric} {v[metric]:.4g}, {size_mb:.2f} MB{extra}")
    for skipped in ("int8_onnxruntime_skipped", "int8_openvino_skipped"):
        if skipped in report:
            typer.echo(f"note: {report[skipped]}")
    if "int8_openvino" in report:
        ov8 = report["int8_openvino"]
        tried = ", ".join(f"{k} {v:.2f}" for k, v in ov8["tried"].items())
        typer.echo(
            f"NNCF calibration kept: {ov8['setting']['name']} (tried: {tried}){_how_int8(ov8)}"
        )
    if "int8_layers" in report:
        kept = report["int8_layers"]["layers_in_float"]
        typer.echo(f"layers kept in float: {', '.join(kept) or 'none'}")
    typer.echo(f"report: {out / 'report.json'}")


def _how_int8(ov8: dict[str, Any]) -> str:
    """What brought the OpenVINO int8 model within the drop, beyond the calibration."""
    if ov8["accuracy_control"]:
        return "; accuracy control returned layers to float"
    if ov8["quantization_aware_steps"]:
        return f"; quantization-aware fine-tuning, {ov8['quantization_aware_steps']} steps"
    if search := ov8.get("layers_kept_float_for_accuracy"):
        return f"; kept in float for accuracy: {', '.join(search)}"
    return ""
