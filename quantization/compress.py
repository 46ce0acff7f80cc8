"""``sonoedge compress``: prune + distil, export, int8 (ONNX Runtime QDQ and NNCF/OpenVINO).

Writes into ``out``: ``NAME-fp32.onnx`` (pruned when asked), ``NAME-int8.onnx`` (QDQ, for the CPU
EP and TensorRT), ``NAME-int8-ov.xml/.bin`` (NNCF, for OpenVINO), a model card ``.json`` beside
each (read by ``sonoedge package``) and ``report.json`` (params, MACs, metric per variant, the
per-layer int8 error report, layers kept in float).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from sonoedge.errors import ConfigError
from sonoedge.quantization import data as datamod
from sonoedge.quantization import ort_int8, pruning
from sonoedge.quantization.distill import distill, task_recipe
from sonoedge.quantization.export import export_onnx
from sonoedge.quantization.qat import QatPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What ``compress`` does; sample counts are drawn from one data set in this order."""

    prune: float = 0.0
    round_to: int = 8  # pruned channel counts stay multiples of this (SIMD-friendly widths)
    importance: str = "auto"  # pruning importance: "taylor", "l2", or "auto" (taylor with targets)
    int8: bool = True
    openvino: bool = True
    max_drop: float | None = None
    data: str = "speckle"
    size: int = 64
    n_train: int = 256
    n_calib: int = 64
    n_val: int = 32
    kd_steps: int = 300
    crop: int | None = None  # fine-tuning windows of crop x crop pixels of the size x size samples
    qat_steps: int = 0  # quantization-aware fine-tuning when OpenVINO int8 misses max_drop
    seed: int = 0
    symmetric: bool = False  # int8 symmetric activations (TensorRT)
    latency_repeats: int = 30  # ONNX Runtime latency of each variant in the report (0: skip)


@dataclass(frozen=True)
class _Cards:
    """Writes the model card beside each output model."""

    base: dict[str, Any]
    name: str
    example_shape: list[int]
    opts: Options
    command: str
    commit: str

    def write(self, model: Path, precision: str, vs_fp32: dict[str, float]) -> None:
        card = copy.deepcopy(self.base)
        card.update(
            {
                "name": f"{self.name}-{precision}",
                "precision": precision,
                "pruning_ratio": self.opts.prune,
            }
        )
        card.setdefault("task", "denoise")
        card.setdefault("input", {"layout": "NCHW", "normalisation": "none", "range": [0.0, 1.0]})
        card["input"]["example_shape"] = self.example_shape
        card.setdefault("output", {"layout": "NCHW", "range": [0.0, 1.0]})
        prov = card.setdefault("provenance", {})
        prov.update({"command": self.command, "commit": self.commit, "seed": self.opts.seed})
        prov.setdefault(
            "data_spec", {"data": self.opts.data, "size": self.opts.size, "seed": self.opts.seed}
        )
        card["metrics"] = {
            "vs_fp32": {k: round(float(v), 4) for k, v in vs_fp32.items()},
            "vs_baseline": self.base.get("metrics", {}).get("vs_baseline", {}),
        }
        model.with_suffix(".json").write_text(
            json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8"
        )


def load_torch(path: Path, card: dict[str, Any] | None = None) -> nn.Module:
    """A ``sonoedge train`` weights file (SONIC, enhancement, despeckling or ULM localiser: arch
    + state; loaded as its deploy graph), a whole pickled ``nn.Module`` (``torch.save(model)``)
    — pickle: trusted files only — or an exported student ``.onnx`` rebuilt from its card
    (``card``, default the one beside it; :mod:`sonoedge.quantization.from_onnx`)."""
    if path.suffix == ".onnx":
        from sonoedge.quantization.from_onnx import torch_from_onnx

        return torch_from_onnx(path, read_card(path) if card is None else card)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a bad file
        raise ConfigError(f"cannot load {path}: {err}") from None
    if isinstance(obj, dict) and isinstance(obj.get("arch"), dict) and "state" in obj:
        return _deploy_graph(path, str(obj["arch"].get("name", "")))
    if not isinstance(obj, nn.Module):
        raise ConfigError(
            f"{path} holds a {type(obj).__name__}, not a PyTorch module",
            hint="save the whole network with torch.save(model, path), or pass an .onnx model "
            "(int8 only: pruning needs the PyTorch network)",
        )
    return obj.eval()


def _deploy_graph(path: Path, arch: str) -> nn.Module:
    """The exported graph of a ``sonoedge train`` weights file, by its architecture name."""
    if arch.startswith("sonic"):
        from sonoedge.models.sonic import SonicDeploy
        from sonoedge.train.sonic import load_weights as load_sonic

        return SonicDeploy(load_sonic(path)[0]).eval()
    if arch.startswith("enhance"):
        from sonoedge.models.enhance import EnhanceDeploy
        from sonoedge.train.enhance import load_weights as load_enhance

        return EnhanceDeploy(load_enhance(path, "student")[0]).eval()
    if arch.startswith("despeckle"):
        from sonoedge.models.despeckle import DespeckleDeploy
        from sonoedge.train.despeckle import load_weights as load_despeckle

        return DespeckleDeploy(load_despeckle(path)[0]).eval()
    if arch.startswith("ulm-localizer"):
        from sonoedge.models.ulm_localizer import LocalizerDeploy
        from sonoedge.train.ulm import load_localizer

        return LocalizerDeploy(load_localizer(path)[0]).eval()
    raise ConfigError(
        f"{path} holds weights of architecture {arch!r}: compress loads SONIC, enhancement, "
        "despeckling and ULM localiser weights files",
        hint="save other networks whole with torch.save(model, path)",
    )


def read_card(model: Path, card: Path | None = None) -> dict[str, Any]:
    """The model card ``card``, else the one beside ``model`` (``NAME.json``), else ``{}``."""
    path = card if card is not None else model.with_suffix(".json")
    if card is not None and not path.is_file():
        raise ConfigError(f"model card {path} does not exist")
    if not path.exists():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"model card {path} is unreadable: {err}") from None
    return card if isinstance(card, dict) else {}


def _onnx_io(model: Path) -> tuple[str, str]:
    import onnxruntime as ort

    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return s.get_inputs()[0].name, s.get_outputs()[0].name


def compress(
    model_path: Path,
    out: Path,
    opts: Options,
    command: str = "",
    commit: str = "unknown",
    card_path: Path | None = None,
) -> dict[str, Any]:
    """Run the whole compression; returns the report (also written to ``out/report.json``).
    ``card_path``: the model card the outputs' cards start from (default: the one beside
    ``model_path``; a weights file's card is the exported model's, e.g.
    ``ulm-localizer.json``, which the runtime needs for its pre/post-processing)."""
    from sonoedge.quantization.measure import ort_latency

    card = read_card(model_path, card_path)
    if opts.data == "ulm" and "decode" not in card:
        raise ConfigError(
            f"{model_path} has no ULM localiser model card: its compressed models would lack the "
            "decoding settings (threshold, flip averaging) the runtime needs",
            hint="pass the exported card, e.g. --card sdk/zoo/ulm-localizer.json",
        )
    if card.get("input", {}).get("params"):
        raise ConfigError(
            f"{model_path} is a physics-guided localiser (a second input, params): compression "
            "handles one-input networks only",
            hint="compress the blind ulm-localizer, or run the guided one in float",
        )
    if opts.qat_steps and (opts.max_drop is None or not (opts.int8 and opts.openvino)):
        raise ConfigError(
            "quantization-aware fine-tuning runs when OpenVINO int8 misses --max-drop: "
            "--qat-steps needs --int8 and --max-drop",
            hint="add --int8 --max-drop X (dB PSNR; Jaccard for --data ulm)",
        )
    if opts.crop is not None and not 0 < opts.crop <= opts.size:
        raise ConfigError(
            f"--crop {opts.crop} is invalid: expected 1..{opts.size} (the --size of the samples)"
        )
    _check_importance_name(opts.importance)  # before the data is made
    name = str(card.get("name", model_path.stem))
    n = opts.n_train + opts.n_calib + opts.n_val
    ds = datamod.load(opts.data, n, opts.size, opts.seed)
    if len(ds) < 3:
        raise ConfigError(f"data {opts.data!r} has {len(ds)} samples: need at least 3")
    train, rest = ds.split(max(1, len(ds) * opts.n_train // n))
    calib, val = rest.split(max(1, len(rest) * opts.n_calib // (opts.n_calib + opts.n_val)))
    task_metric = datamod.task_metric(val)
    if opts.max_drop is not None and task_metric is None:
        raise ConfigError(
            f"--max-drop needs a task metric, and data {opts.data!r} has no targets",
            hint="give a .npz with 'targets' beside 'inputs', or drop --max-drop",
        )
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model": str(model_path), "options": asdict(opts)}
    example = torch.from_numpy(val.inputs[0])
    net: nn.Module | None = None
    if model_path.suffix == ".onnx" and not opts.prune:
        fp32 = model_path
        input_name, _ = _onnx_io(fp32)
    else:  # pruning an .onnx student: its network rebuilt from the card's architecture
        net = load_torch(model_path, card)
        input_name = str(card.get("input", {}).get("name", "input"))
        output_name = str(card.get("output", {}).get("name", "output"))
        report["dense"] = pruning.count(net, example)
        if opts.prune:
            teacher = copy.deepcopy(net).eval()
            importance = prune_for_task(
                net, example, opts.prune, train, opts.data, opts.importance, opts.round_to
            )
            recipe = task_recipe(opts.data)
            losses = distill(
                net,
                teacher,
                train.inputs,
                train.targets,
                steps=opts.kd_steps,
                seed=opts.seed,
                crop=opts.crop,
                **recipe._asdict(),
            )
            report["pruned"] = {
                **pruning.count(net, example),
                "channels": pruning.channel_counts(net),
                "importance": importance,
                "kd_loss_first_last": [losses[0], losses[-1]] if losses else [],
            }
            torch.save(net, out / f"{name}-pruned.pt")
        fp32 = out / f"{name}-fp32.onnx"
        export_onnx(net, example, fp32, input_name, output_name)
    qat = _qat_plan(net or load_torch(model_path, card), train, opts) if opts.qat_steps else None
    val_feeds = [{input_name: x} for x in val.inputs]
    calib_feeds = [{input_name: x} for x in calib.inputs]
    if task_metric is None:  # no truth: how close int8 stays to the float model
        refs = _outputs(fp32, val_feeds)
        task_metric = (
            "psnr_db_vs_fp32_output",
            lambda outputs: datamod.mean_psnr_db(refs, outputs),
        )
    metric_name, score = task_metric

    metric = ort_int8.onnx_metric(val_feeds, score)
    base = metric(fp32)
    cards = _Cards(card, name, list(val.inputs[0].shape), opts, command, commit)
    variants: dict[str, dict[str, Any]] = {"fp32": {"model": fp32.name, metric_name: base}}
    if fp32 != model_path:
        cards.write(fp32, "fp32", {metric_name: base})
    if opts.int8:
        q = ort_int8.quantize_gated(
            fp32,
            out / f"{name}-int8.onnx",
            calib_feeds,
            metric,
            opts.max_drop,
            symmetric=opts.symmetric,
        )
        report["int8_layers"] = q.to_dict()
        if q.report and all(r.in_float for r in q.report):  # the gate returned every layer
            q.model.unlink()
            report["int8_onnxruntime_skipped"] = (
                f"every layer went back to float to stay within max-drop {opts.max_drop}: "
                "no ONNX Runtime int8 model"
            )
            log.warning("%s", report["int8_onnxruntime_skipped"])
        else:
            variants["int8_onnxruntime"] = {"model": q.model.name, metric_name: q.metric_int8}
            cards.write(q.model, "int8", {metric_name: q.metric_int8, "drop": base - q.metric_int8})
        if opts.openvino and importlib.util.find_spec("nncf") is not None:
            from sonoedge.quantization import nncf_int8

            ov_int8 = nncf_int8.quantize_openvino(
                fp32,
                out / f"{name}-int8-ov.xml",
                calib_feeds,
                val_feeds,
                score,
                opts.max_drop,
                qat,
            )
            report["int8_openvino"] = ov_int8.to_dict()
            xml = ov_int8.model
            if nncf_int8.quantized_ops(xml) == 0:  # accuracy control reverted every layer
                xml.unlink()
                xml.with_suffix(".bin").unlink()
                report["int8_openvino_skipped"] = (
                    f"NNCF kept every layer in float to stay within max-drop {opts.max_drop}: "
                    "no OpenVINO int8 model"
                )
                log.warning("%s", report["int8_openvino_skipped"])
            else:
                value = ov_int8.metric_int8  # scored on val_feeds while choosing the setting
                if value is None:
                    value = nncf_int8.openvino_metric(val_feeds, score)(xml)
                cards.write(xml, "int8", {metric_name: value, "drop": base - value})
                variants["int8_openvino"] = {"model": xml.name, metric_name: value}
        elif opts.openvino:
            log.warning(
                "NNCF is not installed (pip install 'sonoedge[openvino]'): no OpenVINO int8"
            )
    for v in variants.values():
        path = out / v["model"] if (out / v["model"]).exists() else model_path
        v["size_bytes"] = path.stat().st_size + (
            path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0
        )
        if path.suffix == ".onnx" and opts.latency_repeats:
            feeds = {input_name: val.inputs[0]}
            v["ort_latency"] = ort_latency(path, feeds, repeats=opts.latency_repeats)
    report["variants"] = variants
    report["metric"] = metric_name
    (out / "report.json").write_text(
        json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
    )
    return report


def prune_importance(requested: str, train: datamod.DataSet) -> pruning.Importance:
    """The pruning importance for ``requested`` (``"auto"``: Taylor when ``train`` has targets,
    else L2); an unknown name, or Taylor without targets, is a ConfigError."""
    if requested == "auto":
        return "l2" if train.targets is None else "taylor"
    _check_importance_name(requested)
    if requested == "taylor" and train.targets is None:
        raise ConfigError(
            "Taylor pruning importance needs targets, and this data has none (ULM frames)",
            hint="use --importance l2 (or auto)",
        )
    return cast(pruning.Importance, requested)


def _check_importance_name(requested: str) -> None:
    if requested not in ("auto", *pruning.IMPORTANCES):
        raise ConfigError(
            f"--importance {requested!r} is invalid: expected 'auto', 'taylor' or 'l2'"
        )


def prune_for_task(
    net: nn.Module,
    example: torch.Tensor,
    ratio: float,
    train: datamod.DataSet,
    data: str,
    importance: str = "auto",
    round_to: int = 8,
) -> pruning.Importance:
    """Prune ``net`` in place as ``compress --prune`` does: channels ranked by ``importance``
    (:func:`prune_importance`), Taylor scores from the ``--data`` task's fine-tuning loss on
    ``train``'s targets (the network's own output as teacher, so only the target term has a
    gradient). Returns the importance used."""
    chosen = prune_importance(importance, train)
    loss_fn = task_recipe(data).loss_fn
    pruning.prune_channels(
        net,
        example,
        ratio,
        round_to=round_to,
        importance=chosen,
        samples=None if train.targets is None else (train.inputs, train.targets),
        loss=lambda out, target: loss_fn(out, out.detach(), target, 0.5),
    )
    return chosen


def _qat_plan(net: nn.Module, train: datamod.DataSet, opts: Options) -> QatPlan:
    """Quantization-aware fine-tuning of ``net`` on ``train`` with the task's loss."""
    recipe = task_recipe(opts.data)
    return QatPlan(net, train.inputs, train.targets, recipe, opts.qat_steps, opts.seed)


def _outputs(
    model: Path, feeds: list[dict[str, npt.NDArray[Any]]]
) -> list[npt.NDArray[np.float32]]:
    import onnxruntime as ort

    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [np.asarray(s.run(None, f)[0]) for f in feeds]
