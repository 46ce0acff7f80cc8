"""MK despeckling task: teacher, metric-optimized distilled student, comparisons, export, eval.

Data: :func:`sonoedge.synth.speckle.simulate_bmode` pairs (speckled input, speckle-free target,
both ``[0, 1]`` log images) over the config's probes, phantoms (random tissue with cysts, vessels,
inclusions and point targets; layers; cysts; homogeneous), zooms (pixel spacing relative to the
probe's default, i.e. speckle size in pixels), F-numbers, display ranges and thermal-noise levels,
drawn per image and cached in ``<cache>/despeckle-<split>-<hash>.npz``. Splits use disjoint seeds.

Networks (:mod:`sonoedge.models.despeckle`): a residual U-Net teacher trained with
``L1 + (1 - SSIM) + PSNR term``; the student with the same metric loss plus knowledge distillation
(L1 to the teacher's output, MSE of a 1×1 adapter of its features to the teacher's last decoder
features). Comparisons on the same data and step budget: the student without the SSIM/PSNR terms,
without KD, and a DnCNN of the student's MACs trained with its paper's MSE loss.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.errors import ConfigError
from sonoedge.models.despeckle import (
    DespeckleArch,
    DespeckleDeploy,
    DespeckleNet,
    build,
    count_parameters,
    load_state,
    macs_per_pixel,
)
from sonoedge.models.export import OPSET, PARITY_ATOL, export_image_net, provenance
from sonoedge.train import config as cfgmod
from sonoedge.train.loop import load_checkpoint, run_phase, save_checkpoint

GENERATOR = "sonoedge.synth.speckle.simulate_bmode/v1"
SPLIT_SEED_BASE = {"train": 0, "val": 1_000_000, "eval": 2_000_000, "lesion": 3_000_000}
VARIANTS = {
    "student": {"arch": "student", "metric": True, "kd": True, "mse": False},
    "student_no_metric": {"arch": "student", "metric": False, "kd": True, "mse": False},
    "student_no_kd": {"arch": "student", "metric": True, "kd": False, "mse": False},
    "dncnn": {"arch": "dncnn", "metric": False, "kd": False, "mse": True},
}
"""The student and its comparisons (all trained on the same data for the same steps)."""
LESION_DB = (-12.0, -3.0)
"""Echogenicity of the round lesions of the lesion set, drawn per image (hypoechoic, low contrast:
the anechoic cyst of ``phantom="cyst"`` is separable before despeckling, gCNR = 1). Training
images get such levels too (``data.hypo_prob``, ``data.hypo_db``): every anechoic region of the
phantom (cysts, vessels) becomes hypoechoic."""
FloatArray = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- config


def check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate the despeckle config's ranges (types were checked on load)."""
    from sonoedge.synth.phantoms import PHANTOM_KINDS
    from sonoedge.synth.transducer import PRESETS

    for key, lo, hi in (
        ("data.size", 16, 1024),
        ("data.n_train", 1, 100_000),
        ("data.n_val", 1, 100_000),
        ("data.zoom", 0.1, 10.0),
        ("data.f_number", 0.5, 8.0),
        ("data.db_low", -120.0, 0.0),
        ("data.db_high", 0.0, 60.0),
        ("data.noise_prob", 0.0, 1.0),
        ("data.noise_db", -80.0, 20.0),
        ("data.hypo_prob", 0.0, 1.0),
        ("data.hypo_db", -40.0, 0.0),
        ("teacher.steps", 1, 10_000_000),
        ("student.steps", 1, 10_000_000),
        ("teacher.batch_size", 1, 4096),
        ("student.batch_size", 1, 4096),
        ("teacher.lr", 1e-6, 1.0),
        ("student.lr", 1e-6, 1.0),
        ("teacher.depth", 1, 16),
        ("student.depth", 1, 16),
        ("dncnn.depth", 3, 64),
        ("loss.ssim_weight", 0.0, 100.0),
        ("loss.psnr_weight", 0.0, 100.0),
        ("loss.l1_weight", 0.0, 100.0),
        ("loss.kd_weight", 0.0, 100.0),
        ("loss.kd_feature_weight", 0.0, 100.0),
        ("threads", 1, 256),
        ("train.checkpoint_every", 1, 10_000_000),
        ("eval.n_images", 1, 100_000),
        ("eval.n_lesion", 1, 100_000),
        ("eval.size", 32, 2048),
    ):
        cfgmod.require_range(cfg, key, lo, hi)
    d = cfg["data"]
    for probe in d["probes"]:
        if probe not in PRESETS:
            raise ConfigError(
                f"config key 'data.probes' has {probe!r}: expected names from {sorted(PRESETS)}"
            )
    for ph in d["phantoms"]:
        if ph not in PHANTOM_KINDS:
            raise ConfigError(f"config key 'data.phantoms' has {ph!r}: expected {PHANTOM_KINDS}")
    if d["size"] % 4 or cfg["eval"]["size"] % 4:
        raise ConfigError("config keys 'data.size' and 'eval.size' must be multiples of 4")
    if not d["probes"] or not d["phantoms"]:
        raise ConfigError("config keys 'data.probes' and 'data.phantoms' must not be empty")
    for who in ("teacher", "student"):
        crop = cfg[who]["crop"]
        if crop % 4 or crop < 16 or crop > d["size"]:
            raise ConfigError(
                f"config key '{who}.crop' = {crop} is invalid: expected a multiple of 4 in "
                f"16..data.size ({d['size']})"
            )
    for who in ("teacher", "student", "dncnn"):
        arch(cfg, who)
    return cfg


def arch_of(net: nn.Module) -> DespeckleArch:
    """The :class:`DespeckleArch` of a despeckle network."""
    a = getattr(net, "arch", None)
    if not isinstance(a, DespeckleArch):
        raise ConfigError(f"{type(net).__name__} is not a despeckle network")
    return a


def arch(cfg: dict[str, Any], who: str) -> DespeckleArch:
    """The architecture of ``teacher``, ``student`` or ``dncnn`` in ``cfg``."""
    c = cfg[who]
    return DespeckleArch(who, int(c["width"]), int(c["depth"]))


# --------------------------------------------------------------------------- data


def data_spec(cfg: dict[str, Any], split: str, n: int) -> dict[str, Any]:
    """Everything that determines a simulated set (recorded with the weights)."""
    from sonoedge.synth.transducer import get_preset

    d = cfg["data"]
    spec = {
        "generator": GENERATOR,
        "split": split,
        "n_images": n,
        "seed_base": SPLIT_SEED_BASE[split] + 10_007 * int(cfg["seed"]),
        "size": d["size"],
        **{
            k: d[k]
            for k in (
                "probes",
                "phantoms",
                "zoom",
                "f_number",
                "db_low",
                "db_high",
                "noise_prob",
                "noise_db",
                "hypo_prob",
                "hypo_db",
            )
        },
    }
    if split in ("eval", "lesion"):
        spec["size"] = cfg["eval"]["size"]
    if split == "lesion":
        spec["phantoms"] = ["cyst"]
        spec["noise_prob"] = 0.0
        spec["db_low"], spec["db_high"] = [-45.0, -45.0], [15.0, 15.0]  # ENL on known intensity
        spec["hypo_prob"], spec["hypo_db"] = 1.0, list(LESION_DB)
        linear = [p for p in d["probes"] if get_preset(p).geometry == "linear"]
        spec["probes"] = linear or ["L11-5v"]  # masks on the image grid (no scan conversion)
    return spec


def _simulate(spec: dict[str, Any], i: int) -> dict[str, Any]:
    from sonoedge.synth.imaging import default_spacing_m
    from sonoedge.synth.speckle import simulate_bmode
    from sonoedge.synth.transducer import get_preset

    seed = int(spec["seed_base"]) + i
    rng = np.random.default_rng([seed, 11])
    probe_name = spec["probes"][int(rng.integers(len(spec["probes"])))]
    phantom = spec["phantoms"][int(rng.integers(len(spec["phantoms"])))]
    probe = get_preset(probe_name)
    size = int(spec["size"])
    zoom = float(rng.uniform(*spec["zoom"]))
    base = default_spacing_m(probe, size, size)
    noise = float(rng.uniform(*spec["noise_db"])) if rng.uniform() < spec["noise_prob"] else None
    kwargs = {
        "seed": seed,
        "phantom": phantom,
        "spacing_m": (base[0] * zoom, base[1] * zoom),
        "f_number": float(rng.uniform(*spec["f_number"])),
        "db_range": (float(rng.uniform(*spec["db_low"])), float(rng.uniform(*spec["db_high"]))),
        "noise_db": noise,
    }
    if rng.uniform() < spec["hypo_prob"]:
        with _lesion_level(float(rng.uniform(*spec["hypo_db"]))):
            sample = simulate_bmode(probe, size, size, **kwargs)
    else:
        sample = simulate_bmode(probe, size, size, **kwargs)
    return {
        "speckled": sample.speckled,
        "clean": sample.clean,
        "echo_db": sample.echo_db.astype(np.float32),
        "probe": probe_name,
        "phantom": phantom,
    }


@contextmanager
def _lesion_level(level_db: float) -> Iterator[None]:
    """Within the block, ``simulate_bmode``'s cyst phantoms have lesions at ``level_db`` (dB re
    the background) instead of anechoic ones."""
    from unittest import mock

    from sonoedge.synth import speckle
    from sonoedge.synth.phantoms import ANECHOIC_DB, Phantom, make_phantom

    def make(kind: Any, grid: Any, rng: np.random.Generator) -> Phantom:
        ph = make_phantom(kind, grid, rng)
        echo = np.where(ph.echo_db <= ANECHOIC_DB + 1e-3, level_db, ph.echo_db)
        return Phantom(ph.grid, echo.astype(np.float32), ph.points_m, ph.points_amplitude)

    with mock.patch.object(speckle, "make_phantom", make):
        yield


@dataclass
class ImageSet:
    """Simulated speckled/clean pairs of one split."""

    speckled: FloatArray  # (S, H, W)
    clean: FloatArray  # (S, H, W)
    echo_db: FloatArray  # (S, H, W) phantom echogenicity (lesion masks)
    probes: list[str]
    phantoms: list[str]
    spec: dict[str, Any]
    path: Path

    def __len__(self) -> int:
        return int(self.speckled.shape[0])


def build_set(spec: dict[str, Any], cache_dir: Path, progress: Any = None) -> ImageSet:
    """Simulate (or load from the cache) the images described by ``spec``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"despeckle-{spec['split']}-{cfgmod.digest(spec)}.npz"
    if not path.exists():
        n = int(spec["n_images"])
        task = progress.add_task(f"simulate {spec['split']}", total=n) if progress else None
        items = []
        for i in range(n):
            items.append(_simulate(spec, i))
            if task is not None:
                progress.update(task, advance=1)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            speckled=np.stack([it["speckled"] for it in items]),
            clean=np.stack([it["clean"] for it in items]),
            echo_db=np.stack([it["echo_db"] for it in items]),
            probes=np.array([it["probe"] for it in items]),
            phantoms=np.array([it["phantom"] for it in items]),
            spec=json.dumps(spec),
        )
        tmp.replace(path)
    with np.load(path) as z:
        return ImageSet(
            speckled=z["speckled"],
            clean=z["clean"],
            echo_db=z["echo_db"],
            probes=[str(p) for p in z["probes"]],
            phantoms=[str(p) for p in z["phantoms"]],
            spec=json.loads(str(z["spec"])),
            path=path,
        )


# --------------------------------------------------------------------------- losses


def _gauss_window(sigma: float = 1.5, size: int = 11) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


_WINDOW = _gauss_window()


def ssim_torch(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image mean SSIM ``(B,)`` with the 11×11 σ=1.5 Gaussian window of
    :func:`sonoedge.metrics.ssim` (reflected borders), differentiable."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(a, (5, 5, 5, 5), mode="reflect"), _WINDOW)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx**2
    vy = blur(y * y) - my**2
    cov = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def psnr_torch(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR ``(B,)`` in dB for data range 1."""
    mse = ((x - y) ** 2).flatten(1).mean(1)
    return -10.0 * torch.log10(mse + 1e-10)


def metric_loss(
    out: torch.Tensor, y: torch.Tensor, loss_cfg: dict[str, Any], metric: bool
) -> tuple[torch.Tensor, dict[str, float]]:
    """``l1_weight·L1 (+ ssim_weight·(1 − SSIM) + psnr_weight·(−PSNR/40))``."""
    l1 = F.l1_loss(out, y)
    loss = loss_cfg["l1_weight"] * l1
    parts = {"l1": float(l1.item())}
    if metric:
        s = ssim_torch(out, y).mean()
        p = psnr_torch(out, y).mean()
        loss = loss + loss_cfg["ssim_weight"] * (1 - s) - loss_cfg["psnr_weight"] * p / 40.0
        parts.update({"ssim": float(s.item()), "psnr": float(p.item())})
    return loss, parts


# --------------------------------------------------------------------------- batches


def _crops(
    rng: np.random.Generator, data: ImageSet, bsz: int, crop: int
) -> list[tuple[int, int, int, bool, bool]]:
    h, w = data.speckled.shape[1:]
    out = []
    for s in rng.integers(len(data), size=bsz):
        z0, x0 = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        out.append((int(s), z0, x0, bool(rng.integers(2)), False))
    return out


def _take(a: npt.NDArray[Any], geo: tuple[int, int, int, bool, bool], crop: int) -> Any:
    s, z0, x0, flip, _ = geo
    sub = a[s, ..., z0 : z0 + crop, x0 : x0 + crop]
    return sub[..., ::-1] if flip else sub


def _t(arrays: Sequence[npt.NDArray[Any]], channel: bool = True) -> torch.Tensor:
    arr = np.array(np.stack(arrays), dtype=np.float32)
    return torch.from_numpy(arr[:, None] if channel else arr)


# --------------------------------------------------------------------------- training


@dataclass
class TeacherMaps:
    out: FloatArray  # (S, H, W)
    feat: npt.NDArray[np.float16]  # (S, C, H, W)


def train_teacher(
    cfg: dict[str, Any], data: ImageSet, ckpt: Path, progress: Any, stop_after: int | None
) -> DespeckleNet:
    t = cfg["teacher"]
    torch.manual_seed(cfg["seed"])
    net = build(arch(cfg, "teacher"))
    crop, bsz = t["crop"], t["batch_size"]

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        geos = _crops(rng, data, bsz, crop)
        x = _t([_take(data.speckled, g, crop) for g in geos])
        y = _t([_take(data.clean, g, crop) for g in geos])
        return metric_loss(net(x), y, cfg["loss"], metric=True)

    run_phase(
        "teacher",
        {"net": net},
        loss_fn,
        steps=t["steps"],
        lr=t["lr"],
        seed=cfg["seed"],
        checkpoint=ckpt,
        checkpoint_every=cfg["train"]["checkpoint_every"],
        progress=progress,
        stop_after=stop_after,
    )
    return net


@torch.no_grad()
def teacher_maps(teacher: DespeckleNet, data: ImageSet, chunk: int = 8) -> TeacherMaps:
    """The teacher's output and last decoder features on every training image (cached in RAM)."""
    teacher.eval()
    outs, feats = [], []
    for i in range(0, len(data), chunk):
        f = teacher.features(torch.from_numpy(np.array(data.speckled[i : i + chunk]))[:, None])
        outs.append(f["out"][:, 0].numpy())
        feats.append(f["feat"].numpy().astype(np.float16))
    return TeacherMaps(np.concatenate(outs), np.concatenate(feats))


def train_student(
    cfg: dict[str, Any],
    data: ImageSet,
    teacher: TeacherMaps | None,
    ckpt: Path,
    progress: Any,
    stop_after: int | None,
    variant: str = "student",
) -> DespeckleNet:
    """Train one of :data:`VARIANTS` with the student's data, crop, batch, steps and lr."""
    v = VARIANTS[variant]
    s_cfg, loss_cfg = cfg["student"], cfg["loss"]
    torch.manual_seed(cfg["seed"] + 1)
    net = build(arch(cfg, str(v["arch"])))
    crop, bsz = s_cfg["crop"], s_cfg["batch_size"]
    modules: dict[str, nn.Module] = {"net": net}
    if v["kd"]:
        if teacher is None:
            raise ConfigError("distillation needs a trained teacher")
        modules["adapter"] = nn.Conv2d(net.feature_channels, teacher.feat.shape[1], 1)

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        geos = _crops(rng, data, bsz, crop)
        x = _t([_take(data.speckled, g, crop) for g in geos])
        y = _t([_take(data.clean, g, crop) for g in geos])
        f = net.features(x)
        if v["mse"]:
            loss = F.mse_loss(f["out"], y)
            parts = {"mse": float(loss.item())}
        else:
            loss, parts = metric_loss(f["out"], y, loss_cfg, metric=bool(v["metric"]))
        if v["kd"] and teacher is not None:
            t_out = _t([_take(teacher.out, g, crop) for g in geos])
            t_feat = _t([_take(teacher.feat, g, crop) for g in geos], channel=False)
            kd_out = F.l1_loss(f["out"], t_out)
            kd_feat = F.mse_loss(modules["adapter"](f["feat"]), t_feat)
            kd = kd_out + loss_cfg["kd_feature_weight"] / max(loss_cfg["kd_weight"], 1e-9) * kd_feat
            loss = loss + loss_cfg["kd_weight"] * kd
            parts.update({"kd_out": float(kd_out.item()), "kd_feat": float(kd_feat.item())})
        return loss, parts

    run_phase(
        variant,
        modules,
        loss_fn,
        steps=s_cfg["steps"],
        lr=s_cfg["lr"],
        seed=cfg["seed"],
        checkpoint=ckpt,
        checkpoint_every=cfg["train"]["checkpoint_every"],
        progress=progress,
        stop_after=stop_after,
    )
    return net


def save_weights(path: Path, net: nn.Module, record: dict[str, Any]) -> None:
    save_checkpoint(path, {"arch": arch_of(net).to_dict(), "state": net.state_dict(), **record})


def load_weights(path: str | Path, kind: str | None = None) -> tuple[DespeckleNet, dict[str, Any]]:
    """A despeckle network from a ``.pt`` written by :func:`save_weights`; refuses other models."""
    state = load_checkpoint(Path(path))
    if "arch" not in state or "state" not in state:
        raise ConfigError(f"{path} is not a sonoedge weights file (no 'arch'/'state')")
    net = build(state["arch"])
    load_state(net, state["state"], where=str(path))
    if kind is not None and net.arch.kind != kind:
        raise ConfigError(f"{path} holds a {net.arch.kind!r} network: expected {kind!r}")
    net.eval()
    return net, state


@torch.no_grad()
def predict(net: nn.Module, image: FloatArray) -> FloatArray:
    """Torch inference on one ``(H, W)`` image (size a multiple of the net's) → ``[0, 1]``."""
    net.eval()
    y = net(torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None])
    return np.clip(y[0, 0].numpy(), 0.0, 1.0).astype(np.float32)


def export_onnx(
    net: nn.Module,
    path: Path,
    sample: FloatArray | None = None,
    opset: int = OPSET,
    atol: float = PARITY_ATOL,
) -> float:
    """Export ``net`` (input ``image`` (B, 1, H, W) → ``despeckled``, dynamic batch and size; BN
    folded by the exporter in eval mode) and check onnxruntime against PyTorch on ``sample`` and a
    random input of another size. Returns the largest absolute difference."""
    m = arch_of(net).size_multiple
    x = np.random.default_rng(1).random((1, 1, 32, 32), np.float32) if sample is None else sample
    other = np.random.default_rng(0).uniform(0, 1, (2, 1, 12 * m, 10 * m)).astype(np.float32)
    names = ("image", "despeckled")
    return export_image_net(DespeckleDeploy(net), path, names, x, other, opset, atol)


def _val_scores(net: nn.Module, data: ImageSet) -> dict[str, float]:
    from sonoedge.metrics import psnr, ssim

    m = arch_of(net).size_multiple
    ps, ss = [], []
    for s in range(len(data)):
        h, w = data.speckled.shape[1:]
        x = data.speckled[s, : h - h % m, : w - w % m]
        y = data.clean[s, : h - h % m, : w - w % m]
        out = predict(net, x)
        ps.append(psnr(y, out, data_range=1.0))
        ss.append(ssim(y, out, data_range=1.0))
    return {"psnr_db": round(float(np.mean(ps)), 3), "ssim": round(float(np.mean(ss)), 4)}


def write_card(
    onnx_path: Path,
    name: str,
    net: nn.Module,
    teacher: nn.Module,
    cfg: dict[str, Any],
    spec: dict[str, Any],
    metrics: dict[str, Any],
    command: str,
) -> dict[str, Any]:
    """Write ``NAME.json`` (model card read by :func:`sonoedge.zoo.despeckle.load`) and
    ``NAME.md``."""
    import hashlib

    a = arch_of(net)
    card: dict[str, Any] = {
        "name": name,
        "task": "despeckle",
        "format": "onnx",
        "opset": OPSET,
        "architecture": a.to_dict(),
        "parameters": count_parameters(net),
        "macs_per_pixel": macs_per_pixel(net),
        "teacher": {
            "architecture": arch_of(teacher).to_dict(),
            "parameters": count_parameters(teacher),
            "macs_per_pixel": macs_per_pixel(teacher),
        },
        "input": {
            "name": "image",
            "dtype": "float32",
            "layout": "(batch, 1, axial, lateral)",
            "range": [0.0, 1.0],
            "meaning": "log-compressed B-mode image mapped to [0, 1] over its display range",
            "size_multiple": a.size_multiple,
            "min_size": a.receptive_field,
            "padding": "reflect to a multiple of size_multiple, cropped back",
            "probes": cfg["data"]["probes"],
            "zoom_range": cfg["data"]["zoom"],
        },
        "output": {"name": "despeckled", "range": [0.0, 1.0], "meaning": "same scale as input"},
        "provenance": provenance(command, cfg, spec),
        "metrics": metrics,
        "run_dir": str(onnx_path.parent),
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    }
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    ratio = card["teacher"]["macs_per_pixel"] / max(card["macs_per_pixel"], 1.0)
    md = [
        f"# {name} — MK despeckling student (metric-optimized, knowledge-distilled)",
        "",
        "- Task: remove speckle from a log-compressed B-mode image in [0, 1] (output on the same "
        "scale).",
        f"- Input: `image` float32 (batch, 1, H, W); H, W >= {a.receptive_field} (receptive "
        f"field); other sizes than multiples of {a.size_multiple} are reflect-padded by the "
        "runtime and cropped back.",
        f"- Architecture: {a.to_dict()}: {card['parameters']} parameters, "
        f"{card['macs_per_pixel']:.0f} MACs/pixel ({ratio:.1f}x fewer than the teacher's "
        f"{card['teacher']['macs_per_pixel']:.0f}); plain 3x3/2x2 convs and ReLU, ONNX opset "
        f"{OPSET}.",
        "- Loss: L1 + (1 - SSIM) + PSNR term + KD (L1 to the teacher output, MSE of a 1x1 adapter "
        "to the teacher's last decoder features).",
        f"- Data: {spec['n_images']} simulated {spec['size']}x{spec['size']} pairs ({GENERATOR}) "
        f"over probes {', '.join(spec['probes'])}; phantoms {sorted(set(spec['phantoms']))}; zoom "
        f"{spec['zoom']}; display range low {spec['db_low']} dB, high {spec['db_high']} dB.",
        f"- Command: `{command}` at commit {card['provenance']['commit']}.",
        f"- Validation metrics: {json.dumps(metrics)}",
        "- Held-out evaluation: docs/results/despeckle.json.",
        "",
        "Run it without torch: `sonoedge.zoo.despeckle.load(path).despeckle(image)`; register it "
        "as `despeckle` method `mk_student` with `sonoedge.zoo.despeckle.register()`.",
    ]
    onnx_path.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return card


def train(
    cfg: dict[str, Any],
    out_dir: Path,
    progress: Any = None,
    stop_after: int | None = None,
    cache_dir: Path | None = None,
    command: str = "",
) -> Path:
    """Train the teacher, the student and (``train.ablations``) its comparisons into
    ``out_dir``; returns the exported student ONNX path."""
    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or Path("runs") / "cache"
    d = cfg["data"]
    train_spec = data_spec(cfg, "train", d["n_train"])
    val_spec = data_spec(cfg, "val", d["n_val"])
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (out_dir / "data_spec.json").write_text(
        json.dumps({"train": train_spec, "val": val_spec}, indent=2) + "\n", encoding="utf-8"
    )
    data = build_set(train_spec, cache, progress)
    val = build_set(val_spec, cache, progress)
    record = {"config": cfg, "data_spec": train_spec, "command": command}
    times: dict[str, float] = {}

    teacher_pt = out_dir / "teacher.pt"
    if teacher_pt.exists():
        teacher, _ = load_weights(teacher_pt, "teacher")
    else:
        t0 = time.perf_counter()
        teacher = train_teacher(cfg, data, out_dir / "teacher.ckpt", progress, stop_after)
        save_weights(teacher_pt, teacher, record)
        times["teacher"] = round(time.perf_counter() - t0, 1)
    maps = teacher_maps(teacher, data)
    variants = list(VARIANTS) if cfg["train"]["ablations"] else ["student"]
    nets: dict[str, nn.Module] = {}
    for variant in variants:
        pt = out_dir / f"{variant}.pt"
        if pt.exists():
            nets[variant] = load_weights(pt)[0]
            continue
        t0 = time.perf_counter()
        net = train_student(
            cfg, data, maps, out_dir / f"{variant}.ckpt", progress, stop_after, variant
        )
        save_weights(pt, net, {**record, "variant": variant, "recipe": VARIANTS[variant]})
        times[variant] = round(time.perf_counter() - t0, 1)
        nets[variant] = net
    student = nets["student"]
    metrics: dict[str, Any] = {
        "val_student": _val_scores(student, val),
        "val_teacher": _val_scores(teacher, val),
        "val_images": len(val),
        "train_s": times,
    }
    for variant in variants[1:]:
        metrics[f"val_{variant}"] = _val_scores(nets[variant], val)
    name = "despeckle-mk"
    onnx_path = out_dir / f"{name}.onnx"
    h = val.speckled.shape[1] - val.speckled.shape[1] % arch_of(student).size_multiple
    sample = np.ascontiguousarray(val.speckled[:1, None, :h, :h])
    metrics["export_parity_max_abs"] = export_onnx(student, onnx_path, sample=sample)
    write_card(onnx_path, name, student, teacher, cfg, train_spec, metrics, command)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return onnx_path


# --------------------------------------------------------------------------- evaluation


def lesion_masks(
    echo_db: FloatArray, margin_px: int = 3
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], tuple[float, float], float]:
    """Inside-lesion and surrounding-background masks of a cyst phantom (``margin_px`` away from
    the edge; the background is a ring out to about twice the radius), the lesion centre (row,
    col) and its radius in pixels."""
    import cv2

    lesion = echo_db < -1.0
    if lesion.sum() < 10:
        raise ConfigError("the lesion phantom has no lesion")
    inside = cv2.distanceTransform(lesion.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~lesion).astype(np.uint8), cv2.DIST_L2, 3)
    radius = math.sqrt(float(lesion.sum()) / math.pi)
    zz, xx = np.nonzero(lesion)
    centre = (float(zz.mean()), float(xx.mean()))
    target = inside >= margin_px
    background = (outside >= margin_px + 1) & (outside <= margin_px + 1 + radius)
    background &= np.abs(echo_db) < 1e-3
    return target, background, centre, radius


def edge_width_px(image: FloatArray, centre: tuple[float, float], radius: float) -> float:
    """10-90 % width (px) of the cyst edge in the radially averaged profile (speckle averages out
    over the ring); ``nan`` when the profile has no clear edge."""
    h, w = image.shape
    zz, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(zz - centre[0], xx - centre[1])
    step = 0.25
    edges = np.arange(0.0, 2.0 * radius, step)
    idx = np.digitize(r.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], weights=image.ravel()[ok], minlength=len(edges))
    counts = np.bincount(idx[ok], minlength=len(edges))
    centres = edges + step / 2
    valid = counts > 0
    prof, rad = sums[valid] / counts[valid], centres[valid]
    lo = float(np.mean(prof[rad < 0.6 * radius]))
    hi = float(np.mean(prof[(rad > 1.4 * radius) & (rad < 1.9 * radius)]))
    if not hi > lo:
        return float("nan")
    # smooth lightly, then the first crossings of 10 % and 90 % outward from the centre
    kernel = np.ones(3) / 3
    prof = np.convolve(np.pad(prof, 1, mode="edge"), kernel, mode="valid")
    norm = (prof - lo) / (hi - lo)
    band = (rad > 0.4 * radius) & (rad < 1.6 * radius)
    rb, nb = rad[band], norm[band]

    def crossing(level: float) -> float:
        above = np.nonzero(nb >= level)[0]
        if above.size == 0 or above[0] == 0:
            return float("nan")
        j = int(above[0])
        return float(rb[j - 1] + (level - nb[j - 1]) / (nb[j] - nb[j - 1]) * (rb[j] - rb[j - 1]))

    return crossing(0.9) - crossing(0.1)


def _intensity(image: FloatArray, db_range: Sequence[float] = (-45.0, 15.0)) -> FloatArray:
    lo, hi = db_range
    return np.asarray(10.0 ** ((lo + image.astype(np.float64) * (hi - lo)) / 10.0), np.float32)


def _no_reference(image: FloatArray, reference: FloatArray) -> dict[str, float]:
    """No-reference scores of a processed real frame against its input: speckle index (mean local
    std/mean, 7×7) and ENL (mean²/var) over the echo pixels of the input (> 5 % of full scale),
    mean gradient magnitude (edge content), mean of the brightest 0.1 % of pixels (bright targets
    kept) and the mean absolute change."""
    import cv2

    echo = reference > 0.05
    mu = cv2.blur(image, (7, 7))
    sd = np.sqrt(np.maximum(cv2.blur(image * image, (7, 7)) - mu * mu, 0))
    si = sd[echo] / np.maximum(mu[echo], 1e-3) if echo.any() else np.zeros(1)
    vals = image[echo] if echo.sum() > 1 else image.ravel()
    gz, gx = np.gradient(image.astype(np.float64))
    top = np.sort(image.ravel())[-max(1, image.size // 1000) :]
    return {
        "speckle_index_echo": round(float(np.mean(si)), 4),
        "enl_echo": round(float(vals.mean() ** 2 / max(float(vals.var()), 1e-12)), 4),
        "mean_gradient": round(float(np.mean(np.hypot(gz, gx))), 6),
        "bright_targets_mean": round(float(top.mean()), 4),
        "mean_abs_change": round(float(np.mean(np.abs(image - reference))), 5),
    }


def _tune_classical(val: ImageSet) -> dict[str, dict[str, Any]]:
    """NLM strength and SRAD iterations tuned for PSNR on the validation images."""
    from sonoedge.metrics import psnr
    from sonoedge.processing.despeckle import nlm, srad

    def score(fn: Any) -> float:
        return float(
            np.mean([psnr(val.clean[s], fn(val.speckled[s]), 1.0) for s in range(len(val))])
        )

    best: dict[str, dict[str, Any]] = {}
    nlm_scores = {h: score(lambda im, h=h: nlm(im, h=h)) for h in (10.0, 20.0, 30.0, 45.0, 60.0)}
    best["nlm"] = {"h": max(nlm_scores, key=lambda k: nlm_scores[k]), "val_psnr": nlm_scores}
    srad_scores = {n: score(lambda im, n=n: srad(im, n_iter=n)) for n in (10, 20, 40, 80)}
    best["srad"] = {
        "n_iter": max(srad_scores, key=lambda k: srad_scores[k]),
        "val_psnr": srad_scores,
    }
    return best


def _find(onnx_path: Path, card: dict[str, Any], name: str) -> Path | None:
    for cand in (onnx_path.parent / name, Path(card.get("run_dir", "")) / name):
        if cand.is_file():
            return cand
    return None


def _latency(
    model: Any, teacher: nn.Module | None, params: dict[str, dict[str, Any]], reps: int
) -> dict[str, Any]:
    """Median wall time (ms) for one 256×256 image on 2 threads: the student (onnxruntime,
    incl. checks and padding), NLM and SRAD (OpenCV/numpy with 2 threads), the teacher (onnxruntime
    export of it, when available)."""
    import os
    import tempfile

    import cv2

    from sonoedge.processing.despeckle import nlm, srad
    from sonoedge.zoo.despeckle import DespeckleModel

    cv2.setNumThreads(2)
    img = np.random.default_rng(0).uniform(0.2, 0.8, (256, 256)).astype(np.float32)
    fns: dict[str, Any] = {
        "student_ms": model.despeckle,
        "nlm_ms": lambda im: nlm(im, h=params["nlm"]["h"]),
        "srad_ms": lambda im: srad(im, n_iter=params["srad"]["n_iter"]),
    }
    tmpdir = tempfile.mkdtemp()
    if teacher is not None:
        path = Path(tmpdir) / "teacher.onnx"
        export_onnx(teacher, path)
        a = arch_of(teacher)
        card = {"input": {"size_multiple": a.size_multiple, "min_size": a.receptive_field}}
        fns["teacher_ms"] = DespeckleModel(path, card, threads=2).despeckle
    out: dict[str, Any] = {"size": "256x256", "threads": 2, "reps": reps}
    for key, fn in fns.items():
        fn(img)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(img)
            ts.append(time.perf_counter() - t0)
        out[key] = round(1e3 * float(np.median(ts)), 2)
    out["student_speedup_vs_nlm"] = round(out["nlm_ms"] / out["student_ms"], 2)
    out["student_speedup_vs_srad"] = round(out["srad_ms"] / out["student_ms"], 2)
    for p in Path(tmpdir).iterdir():
        os.remove(p)
    os.rmdir(tmpdir)
    return out


def evaluate(
    model_paths: Sequence[str],
    cfg: dict[str, Any] | None,
    results_dir: Path,
    name: str = "despeckle",
    quick: bool = False,
    command: str | None = None,
    progress: Any = None,
    cache_dir: Path | None = None,
    teacher_path: str | None = None,
    plus_path: str | Path | None = "/work/shared/data/plus/NwirePhantomFreehand.igs.mha",
) -> dict[str, Any]:
    """Score the student (onnxruntime), its teacher and comparisons (torch, ``*.pt`` beside the
    model), NLM and SRAD on held-out synthetic images (PSNR/SSIM), cyst phantoms (CNR, gCNR,
    ENL, edge width) and real PLUS frames (no-reference). Writes ``<results_dir>/<name>.json``
    and ``<name>.png``."""
    from sonoedge import zoo
    from sonoedge.bench.results import write_result
    from sonoedge.metrics import cnr, enl, gcnr, psnr, ssim
    from sonoedge.processing.despeckle import nlm, srad
    from sonoedge.zoo.despeckle import DespeckleModel

    if not model_paths:
        raise ConfigError("eval needs at least one --model")
    onnx_path = zoo.resolve(model_paths[0])
    card = zoo.read_card(onnx_path)
    head = DespeckleModel(onnx_path, card, threads=2)
    if cfg is None:  # the model's training config, keys added since then at their defaults
        cfg = cfgmod.merge(cfgmod.load("despeckle"), card["provenance"]["config"])
        if quick:
            cfg = cfgmod.merge(cfg, {"eval": {"n_images": 2, "n_lesion": 1, "size": 64}})
    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    cache = cache_dir or Path("runs") / "cache"
    ev = build_set(data_spec(cfg, "eval", cfg["eval"]["n_images"]), cache, progress)
    les = build_set(data_spec(cfg, "lesion", cfg["eval"]["n_lesion"]), cache, progress)
    val = build_set(data_spec(cfg, "val", cfg["data"]["n_val"]), cache, progress)
    tuned = _tune_classical(val if not quick else _subset(val, 1))

    methods: dict[str, Any] = {"student": head.despeckle}
    tpath = Path(teacher_path) if teacher_path else _find(onnx_path, card, "teacher.pt")
    teacher = load_weights(tpath, "teacher")[0] if tpath else None
    torch_nets: dict[str, nn.Module] = {}
    if teacher is not None:
        torch_nets["teacher"] = teacher
    for variant in list(VARIANTS)[1:]:
        p = _find(onnx_path, card, f"{variant}.pt")
        if p is not None:
            torch_nets[variant] = load_weights(p)[0]
    for key, net in torch_nets.items():
        methods[key] = lambda im, net=net: _predict_padded(net, im)
    methods["nlm"] = lambda im: nlm(im, h=tuned["nlm"]["h"])
    methods["srad"] = lambda im: srad(im, n_iter=tuned["srad"]["n_iter"])

    scores: dict[str, dict[str, list[float]]] = {}

    def add(method: str, key: str, value: float) -> None:
        scores.setdefault(method, {}).setdefault(key, []).append(value)

    examples: list[dict[str, Any]] = []
    for s in range(len(ev)):
        x, y = ev.speckled[s], ev.clean[s]
        add("input", "psnr_db", psnr(y, x, 1.0))
        add("input", "ssim", ssim(y, x, 1.0))
        outs = {}
        for key, fn in methods.items():
            out = fn(x)
            outs[key] = out
            add(key, "psnr_db", psnr(y, out, 1.0))
            add(key, "ssim", ssim(y, out, 1.0))
        if len(examples) < 2:
            examples.append({"input": x, "clean": y, **outs})
    lesion_rows: dict[str, dict[str, list[float]]] = {}
    for s in range(len(les)):
        target, bg, centre, radius = lesion_masks(les.echo_db[s])
        images = {"input": les.speckled[s], "clean": les.clean[s]}
        images.update({key: fn(les.speckled[s]) for key, fn in methods.items()})
        if len(examples) < 3:
            examples.append(images)
        for key, im in images.items():
            row = lesion_rows.setdefault(key, {})
            row.setdefault("cnr", []).append(cnr(im, target, bg))
            row.setdefault("gcnr", []).append(gcnr(im, target, bg))
            row.setdefault("enl_intensity", []).append(enl(_intensity(im), bg))
            row.setdefault("enl_log", []).append(enl(im, bg))
            row.setdefault("edge_width_px", []).append(edge_width_px(im, centre, radius))

    def mean(values: list[float]) -> float:
        arr = np.asarray(values, np.float64)
        arr = arr[np.isfinite(arr)]
        return round(float(arr.mean()), 4) if arr.size else float("nan")

    synth = {k: {m: mean(v) for m, v in t.items()} for k, t in scores.items()}
    lesion: dict[str, dict[str, float]] = {
        k: {m: mean(v) for m, v in t.items()} for k, t in lesion_rows.items()
    }
    for scores_ in lesion.values():
        scores_["edge_width_change_vs_input"] = round(
            scores_["edge_width_px"] / lesion["input"]["edge_width_px"] - 1.0, 4
        )
    real = _real_frames(methods, plus_path, quick)
    latency = _latency(head, teacher, tuned, reps=3 if quick else 15)
    st = synth["student"]
    t_macs = card.get("teacher", {}).get("macs_per_pixel")
    s_macs = card.get("macs_per_pixel")
    comp = {k: v for k, v in synth.items() if k in ("dncnn", "nlm", "srad")}
    metrics: dict[str, Any] = {
        "student": card.get("name", onnx_path.stem),
        "psnr_ssim_heldout": synth,
        "lesion_phantoms": lesion,
        "real_frames_no_reference": real,
        "latency": latency,
        "macs_per_pixel": {"student": s_macs, "teacher": t_macs},
        "teacher_over_student_macs": round(t_macs / s_macs, 2) if t_macs and s_macs else None,
        "parameters": {
            "student": card.get("parameters"),
            **{k: count_parameters(n) for k, n in torch_nets.items()},
        },
        "macs_per_pixel_comparisons": {k: macs_per_pixel(n) for k, n in torch_nets.items()},
        "targets": {
            "beats_dncnn_nlm_srad_psnr": all(st["psnr_db"] > v["psnr_db"] for v in comp.values()),
            "beats_dncnn_nlm_srad_ssim": all(st["ssim"] > v["ssim"] for v in comp.values()),
            "compared": sorted(comp),
            "psnr_gap_to_teacher_db": (
                round(synth["teacher"]["psnr_db"] - st["psnr_db"], 3)
                if "teacher" in synth
                else None
            ),
            "within_0.3db_of_teacher": (
                bool(synth["teacher"]["psnr_db"] - st["psnr_db"] <= 0.3)
                if "teacher" in synth
                else None
            ),
            "teacher_macs_ge_8x_student": bool(t_macs and s_macs and t_macs >= 8 * s_macs),
            "cnr_up": bool(lesion["student"]["cnr"] > lesion["input"]["cnr"]),
            "gcnr_up": bool(lesion["student"]["gcnr"] > lesion["input"]["gcnr"]),
            "enl_up": bool(lesion["student"]["enl_intensity"] > lesion["input"]["enl_intensity"]),
            "edge_width_increase_le_10pct": bool(
                lesion["student"]["edge_width_change_vs_input"] <= 0.10
            ),
            "onnx_size_bytes": onnx_path.stat().st_size,
            "onnx_le_5mb": bool(onnx_path.stat().st_size <= 5 * 1024 * 1024),
        },
        "n_heldout": len(ev),
        "n_lesion": len(les),
        "held_out": "disjoint seeds from training/validation; same parameter ranges; "
        f"lesion set: cyst phantoms over {cfg['data']['probes']}, no thermal noise",
        "classical_params_tuned_on_val": tuned,
        "notes": "ENL on intensity (dB re background, display range -45..15 dB) in the background "
        "ring; CNR/gCNR on the [0,1] log image; edge width: 10-90% rise of the radially averaged "
        "cyst profile. Comparisons (teacher, ablations) run in torch, the student in onnxruntime.",
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    _panel(examples, list(methods), results_dir / f"{name}.png")
    write_result(name, metrics, {"classical": tuned}, command=command, results_dir=results_dir)
    return metrics


def _subset(data: ImageSet, n: int) -> ImageSet:
    return ImageSet(
        data.speckled[:n],
        data.clean[:n],
        data.echo_db[:n],
        data.probes[:n],
        data.phantoms[:n],
        data.spec,
        data.path,
    )


def _predict_padded(net: nn.Module, image: FloatArray) -> FloatArray:
    m = arch_of(net).size_multiple
    h, w = image.shape
    work = np.pad(image, ((0, (-h) % m), (0, (-w) % m)), mode="reflect")
    return predict(net, work)[:h, :w]


def _real_frames(
    methods: dict[str, Any], plus_path: str | Path | None, quick: bool
) -> dict[str, Any]:
    """No-reference scores on real B-mode frames from a PLUS sequence (skipped when absent)."""
    if plus_path is None or not Path(plus_path).is_file():
        return {"skipped": f"{plus_path} not found"}
    from sonoedge.io.plus import read_sequence

    seq = read_sequence(plus_path)
    frames = np.asarray(seq.frames)
    if frames.ndim == 4:
        frames = frames[..., 0]
    picks = np.linspace(0, len(frames) - 1, 2 if quick else 6).round().astype(int)
    rows: dict[str, dict[str, list[float]]] = {}
    for i in picks:
        img = frames[i].astype(np.float32) / (255.0 if frames.dtype == np.uint8 else frames.max())
        if quick:
            img = img[:128, :128]
        images = {"input": img, **{k: fn(img) for k, fn in methods.items()}}
        for key, im in images.items():
            for m, v in _no_reference(im, img).items():
                rows.setdefault(key, {}).setdefault(m, []).append(v)
    out: dict[str, Any] = {
        k: {m: round(float(np.mean(v)), 4) for m, v in t.items()} for k, t in rows.items()
    }
    out["file"] = Path(plus_path).name
    out["note"] = (
        "N-wire phantom in water: bright wire echoes on a black background, no speckled tissue, "
        "so speckle index/ENL here measure little; the check is that wires (bright targets) and "
        "edges are kept and the background is not altered"
    )
    out["frames"] = [int(i) for i in picks]
    out["frame_shape"] = list(frames.shape[1:])
    return out


def _panel(examples: list[dict[str, Any]], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["input", *methods, "clean"]
    rows = max(1, len(examples))
    fig, axes = plt.subplots(rows, len(cols), figsize=(1.9 * len(cols), 2.0 * rows), squeeze=False)
    for r, ex in enumerate(examples):
        for c, key in enumerate(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if key in ex:
                ax.imshow(ex[key], cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(key.replace("_", " "), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarize(metrics: dict[str, Any]) -> str:
    """One paragraph for the CLI."""
    syn = metrics["psnr_ssim_heldout"]
    parts = [f"{k} {v['psnr_db']:.2f} dB / {v['ssim']:.3f}" for k, v in syn.items()]
    lat = metrics["latency"]
    return (
        "PSNR/SSIM held-out: "
        + " | ".join(parts)
        + f" || 256x256 latency: student {lat['student_ms']} ms, NLM {lat['nlm_ms']} ms, "
        f"SRAD {lat['srad_ms']} ms"
    )
