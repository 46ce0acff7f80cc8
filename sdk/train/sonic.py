"""SONIC task: train the long-ensemble teacher and the short-ensemble student, export, evaluate.

Data: :func:`sonoedge.synth.doppler.simulate_doppler` scenes of ``long_frames`` frames (PRF,
handheld motion, vessel speed, blood and noise levels drawn per scene from the config's ranges),
cached in ``<cache>/sonic-<hash>.npz``. Every scene gives ``long_frames // n_frames`` short
windows that share its ground truth.

Targets (all in the network's ``[0, 1]`` blood-power scale, see :mod:`sonoedge.zoo.sonic`):

- task: the simulator's blood power over the long ensemble (what a perfect clutter filter on the
  long ensemble leaves);
- deep supervision: the SVD-filtered power Doppler of the same short window (from the
  log-energy features after the temporal filter bank) and of the long ensemble (from the
  bottleneck);
- distillation: the teacher's output and bottleneck features on the long ensemble (a 1×1 adapter,
  dropped at export, maps the student's features to the teacher's channels).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.errors import ConfigError
from sonoedge.models.export import provenance
from sonoedge.models.sonic import SonicArch, SonicNet, build, count_parameters, load_state
from sonoedge.train import config as cfgmod
from sonoedge.train.loop import load_checkpoint, run_phase, save_checkpoint
from sonoedge.zoo.sonic import ensemble_features, ensemble_scale, power_to_unit

GENERATOR = "sonoedge.synth.doppler.simulate_doppler/v1"
SPLIT_SEED_BASE = {"train": 0, "val": 1_000_000, "eval": 2_000_000, "eval_shifted": 3_000_000}
SHIFTED = {"motion_scale": [1.2, 1.6], "speed_m_s": [0.001, 0.07], "noise_db": [-58.0, -42.0]}
"""Held-out set with partly disjoint ranges: stronger motion, faster vessels, wider noise."""


# --------------------------------------------------------------------------- config


def check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate the SONIC config's ranges (types were checked on load)."""
    d, s, t = cfg["data"], cfg["student"], cfg["teacher"]
    for key, lo, hi in (
        ("data.height", 16, 1024),
        ("data.width", 16, 1024),
        ("data.long_frames", 8, 1024),
        ("data.n_train", 1, 100_000),
        ("data.n_val", 1, 100_000),
        ("data.prf_hz", 50.0, 50_000.0),
        ("data.motion_scale", 0.0, 10.0),
        ("data.speed_m_s", 1e-5, 1.0),
        ("data.blood_db", -80.0, 0.0),
        ("data.noise_db", -80.0, 0.0),
        ("data.workers", 1, 64),
        ("student.n_frames", 2, 1024),
        ("student.steps", 1, 10_000_000),
        ("teacher.steps", 1, 10_000_000),
        ("student.batch_size", 1, 4096),
        ("teacher.batch_size", 1, 4096),
        ("student.lr", 1e-6, 1.0),
        ("teacher.lr", 1e-6, 1.0),
        ("threads", 1, 256),
        ("train.checkpoint_every", 1, 10_000_000),
        ("eval.n_scenes", 1, 100_000),
    ):
        cfgmod.require_range(cfg, key, lo, hi)
    if d["long_frames"] < 2 * s["n_frames"]:
        raise ConfigError(
            f"data.long_frames={d['long_frames']} must be >= 2 x student.n_frames="
            f"{s['n_frames']} (the teacher must see a longer ensemble than the student)"
        )
    for who in (s, t):
        if who["crop"] % 4 or who["crop"] < 16 or who["crop"] > min(d["height"], d["width"]):
            raise ConfigError(
                f"crop={who['crop']} is invalid: expected a multiple of 4 in 16..min(height, width)"
            )
    if d["height"] % 4 or d["width"] % 4:
        raise ConfigError("data.height and data.width must be multiples of 4")
    if d["ds_cutoff"] not in ("fixed", "energy", "ssm"):
        raise ConfigError(f"data.ds_cutoff={d['ds_cutoff']!r}: expected fixed, energy or ssm")
    SonicArch(s["n_frames"], s["n_filters"], s["width"])
    SonicArch(d["long_frames"], t["n_filters"], t["width"])
    return cfg


def student_arch(cfg: dict[str, Any]) -> SonicArch:
    s = cfg["student"]
    return SonicArch(s["n_frames"], s["n_filters"], s["width"])


def teacher_arch(cfg: dict[str, Any]) -> SonicArch:
    t = cfg["teacher"]
    return SonicArch(cfg["data"]["long_frames"], t["n_filters"], t["width"])


# --------------------------------------------------------------------------- data


def data_spec(data_cfg: dict[str, Any], split: str, n: int, seed: int) -> dict[str, Any]:
    """Everything that determines a simulated set (recorded with the weights)."""
    ranges = {
        k: data_cfg[k] for k in ("prf_hz", "motion_scale", "speed_m_s", "blood_db", "noise_db")
    }
    if split == "eval_shifted":
        ranges.update(SHIFTED)
    return {
        "generator": GENERATOR,
        "split": split,
        "n_scenes": n,
        "seed_base": SPLIT_SEED_BASE[split] + 10_007 * seed,
        "probe": data_cfg["probe"],
        "height": data_cfg["height"],
        "width": data_cfg["width"],
        "n_frames": data_cfg["long_frames"],
        **ranges,
    }


def _simulate(args: tuple[dict[str, Any], int]) -> dict[str, Any]:
    from sonoedge.processing.clutter import power_doppler, svd_filter
    from sonoedge.synth.doppler import simulate_doppler
    from sonoedge.synth.transducer import get_preset

    spec, i = args
    seed = int(spec["seed_base"]) + i
    rng = np.random.default_rng([seed, 7])
    prf = float(rng.uniform(*spec["prf_hz"]))
    motion = float(rng.uniform(*spec["motion_scale"]))
    scene = simulate_doppler(
        get_preset(spec["probe"]),
        n_frames=spec["n_frames"],
        prf_hz=prf,
        height=spec["height"],
        width=spec["width"],
        seed=seed,
        blood_db_range=tuple(spec["blood_db"]),
        speed_range_m_s=tuple(spec["speed_m_s"]),
        noise_db_range=tuple(spec["noise_db"]),
        motion_scale=motion,
    )
    scale = ensemble_scale(scene.iq)
    long_pd = power_doppler(svd_filter(scene.iq, cutoff=spec.get("ds_cutoff", "energy")), db=False)
    return {
        "iq": scene.iq,
        "target": power_to_unit(scene.blood_power),
        "mask": scene.vessel_mask,
        "svd_long": power_to_unit(long_pd / scale**2),
        "prf_hz": prf,
        "motion_scale": motion,
        "spacing_m": scene.spacing_m,
    }


@dataclass
class SceneSet:
    """Simulated scenes of one split, with their targets in the ``[0, 1]`` scale."""

    iq: npt.NDArray[np.complex64]  # (S, L, H, W)
    target: npt.NDArray[np.float32]  # (S, H, W)
    mask: npt.NDArray[np.bool_]  # (S, H, W)
    svd_long: npt.NDArray[np.float32]  # (S, H, W)
    prf_hz: npt.NDArray[np.float64]  # (S,)
    spacing_m: tuple[float, float]
    spec: dict[str, Any]
    path: Path

    def __len__(self) -> int:
        return int(self.iq.shape[0])

    def features(self, n: int) -> npt.NDArray[np.float32]:
        """Network inputs of every aligned ``n``-frame window: ``(S, L // n, 2n, H, W)``, cached
        on disk and memory-mapped."""
        path = self.path.with_name(f"{self.path.stem}-features{n}.npy")
        if not path.exists():
            n_win = self.iq.shape[1] // n
            tmp = path.with_name(f"{path.stem}.tmp.npy")
            out = np.lib.format.open_memmap(
                tmp,
                mode="w+",
                dtype=np.float32,
                shape=(len(self), n_win, 2 * n, *self.iq.shape[2:]),
            )
            for s in range(len(self)):
                for w in range(n_win):
                    out[s, w] = ensemble_features(self.iq[s, w * n : (w + 1) * n])
            out.flush()
            del out
            tmp.replace(path)
        return np.load(path, mmap_mode="r")

    def short_svd(self, n: int, cutoff: str) -> npt.NDArray[np.float32]:
        """SVD power Doppler of every aligned ``n``-frame window: ``(S, L // n, H, W)``, cached."""
        path = self.path.with_name(f"{self.path.stem}-short{n}-{cutoff}.npy")
        if path.exists():
            return np.asarray(np.load(path), np.float32)
        from sonoedge.processing.clutter import power_doppler, svd_filter

        n_win = self.iq.shape[1] // n
        out = np.empty((len(self), n_win, *self.iq.shape[2:]), np.float32)
        for s in range(len(self)):
            for w in range(n_win):
                win = self.iq[s, w * n : (w + 1) * n]
                pd = power_doppler(svd_filter(win, cutoff=cutoff), db=False)  # type: ignore[arg-type]
                out[s, w] = power_to_unit(pd / ensemble_scale(win) ** 2)
        tmp = path.with_name(f"{path.stem}.tmp.npy")
        np.save(tmp, out)
        tmp.replace(path)
        return out


def build_set(
    spec: dict[str, Any], cache_dir: Path, workers: int = 1, progress: Any = None
) -> SceneSet:
    """Simulate (or load from the cache) the scenes described by ``spec``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"sonic-{spec['split']}-{cfgmod.digest(spec)}.npz"
    if not path.exists():
        n = int(spec["n_scenes"])
        task = progress.add_task(f"simulate {spec['split']}", total=n) if progress else None
        items: list[dict[str, Any]] = []
        jobs = [(spec, i) for i in range(n)]
        if workers > 1 and n > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                for item in pool.map(_simulate, jobs):
                    items.append(item)
                    if task is not None:
                        progress.update(task, advance=1)
        else:
            for job in jobs:
                items.append(_simulate(job))
                if task is not None:
                    progress.update(task, advance=1)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            iq=np.stack([it["iq"] for it in items]),
            target=np.stack([it["target"] for it in items]),
            mask=np.stack([it["mask"] for it in items]),
            svd_long=np.stack([it["svd_long"] for it in items]),
            prf_hz=np.array([it["prf_hz"] for it in items]),
            spacing_m=np.array(items[0]["spacing_m"]),
            spec=json.dumps(spec),
        )
        tmp.replace(path)
    with np.load(path) as z:
        return SceneSet(
            iq=z["iq"],
            target=z["target"],
            mask=z["mask"],
            svd_long=z["svd_long"],
            prf_hz=z["prf_hz"],
            spacing_m=(float(z["spacing_m"][0]), float(z["spacing_m"][1])),
            spec=json.loads(str(z["spec"])),
            path=path,
        )


# --------------------------------------------------------------------------- batches


def _augment(rng: np.random.Generator, h: int, w: int, crop: int) -> tuple[bool, int, int]:
    """Random lateral flip and an even-offset crop (the input features are already invariant to
    gain, global phase and time reversal)."""
    flip = bool(rng.integers(2))
    z0 = 2 * int(rng.integers((h - crop) // 2 + 1))
    x0 = 2 * int(rng.integers((w - crop) // 2 + 1))
    return flip, z0, x0


def _geo(a: npt.NDArray[Any], geo: tuple[bool, int, int], crop: int, stride: int = 1) -> Any:
    flip, z0, x0 = geo
    if flip:
        a = a[..., ::-1]
    c = crop // stride
    return a[..., z0 // stride : z0 // stride + c, x0 // stride : x0 // stride + c]


def _t(arrays: Sequence[npt.NDArray[Any]]) -> torch.Tensor:
    return torch.from_numpy(np.array(np.stack(arrays), dtype=np.float32))


# --------------------------------------------------------------------------- training


@dataclass
class TeacherMaps:
    out: npt.NDArray[np.float32]  # (S, 1, H, W)
    feat: npt.NDArray[np.float32]  # (S, C, H/2, W/2)


def train_teacher(
    cfg: dict[str, Any],
    data: SceneSet,
    ckpt: Path,
    progress: Any,
    stop_after: int | None,
) -> SonicNet:
    t = cfg["teacher"]
    torch.manual_seed(cfg["seed"])
    net = build(teacher_arch(cfg))
    crop, bsz = t["crop"], t["batch_size"]
    feats = data.features(cfg["data"]["long_frames"])
    h, w = data.target.shape[1:]

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        xs, ys, ls = [], [], []
        for s in rng.integers(len(data), size=bsz):
            geo = _augment(rng, h, w, crop)
            xs.append(_geo(feats[s, 0], geo, crop))
            ys.append(_geo(data.target[s][None], geo, crop))
            ls.append(_geo(data.svd_long[s][None], geo, crop))
        x, y, svd_long = _t(xs), _t(ys), _t(ls)
        f = net.features(x)
        task = F.mse_loss(f["out"], y)
        ds = F.l1_loss(net.ds_filtered(f["filtered"]), svd_long) + F.l1_loss(
            net.ds_bottleneck(f["bottleneck"]), F.avg_pool2d(svd_long, 2)
        )
        loss = task + cfg["loss"]["ds_weight"] * ds
        return loss, {"task": float(task.item()), "ds": float(ds.item())}

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
def teacher_maps(teacher: SonicNet, data: SceneSet) -> TeacherMaps:
    outs, feats = [], []
    teacher.eval()
    inputs = data.features(teacher.arch.n_frames)
    for s in range(len(data)):
        f = teacher.features(torch.from_numpy(np.array(inputs[s, 0]))[None])
        outs.append(f["out"][0].numpy())
        feats.append(f["bottleneck"][0].numpy())
    return TeacherMaps(np.stack(outs), np.stack(feats))


def train_student(
    cfg: dict[str, Any],
    data: SceneSet,
    short_svd: npt.NDArray[np.float32],
    teacher: TeacherMaps | None,
    ckpt: Path,
    progress: Any,
    stop_after: int | None,
    deep_supervision: bool,
    distillation: bool,
    phase: str = "student",
) -> SonicNet:
    s_cfg, loss_cfg = cfg["student"], cfg["loss"]
    torch.manual_seed(cfg["seed"] + 1)
    net = build(student_arch(cfg))
    n, crop, bsz = s_cfg["n_frames"], s_cfg["crop"], s_cfg["batch_size"]
    n_win = short_svd.shape[1]
    feats = data.features(n)
    h, w = data.target.shape[1:]
    modules: dict[str, nn.Module] = {"net": net}
    if distillation:
        if teacher is None:
            raise ConfigError("distillation needs a trained teacher")
        adapter = nn.Conv2d(net.feature_channels, teacher.feat.shape[1], 1)
        modules["adapter"] = adapter

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        xs, ys, ss, ls, tos, tfs = [], [], [], [], [], []
        for s, win in zip(
            rng.integers(len(data), size=bsz), rng.integers(n_win, size=bsz), strict=True
        ):
            geo = _augment(rng, h, w, crop)
            xs.append(_geo(feats[s, win], geo, crop))
            ys.append(_geo(data.target[s][None], geo, crop))
            ss.append(_geo(short_svd[s, win][None], geo, crop))
            ls.append(_geo(data.svd_long[s][None], geo, crop))
            if teacher is not None and distillation:
                tos.append(_geo(teacher.out[s], geo, crop))
                tfs.append(_geo(teacher.feat[s], geo, crop, stride=2))
        x, y = _t(xs), _t(ys)
        f = net.features(x)
        task = F.mse_loss(f["out"], y)
        loss, parts = task, {"task": float(task.item())}
        if deep_supervision:
            svd_short, svd_long = _t(ss), _t(ls)
            ds = F.l1_loss(net.ds_filtered(f["filtered"]), svd_short) + F.l1_loss(
                net.ds_bottleneck(f["bottleneck"]), F.avg_pool2d(svd_long, 2)
            )
            loss = loss + loss_cfg["ds_weight"] * ds
            parts["ds"] = float(ds.item())
        if distillation:
            kd = F.mse_loss(f["out"], _t(tos)) + loss_cfg["kd_feature_weight"] * F.mse_loss(
                modules["adapter"](f["bottleneck"]), _t(tfs)
            )
            loss = loss + loss_cfg["kd_weight"] * kd
            parts["kd"] = float(kd.item())
        return loss, parts

    run_phase(
        phase,
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


def save_weights(path: Path, net: SonicNet, record: dict[str, Any]) -> None:
    save_checkpoint(path, {"arch": net.arch.to_dict(), "state": net.state_dict(), **record})


def load_weights(
    path: str | Path, expect_frames: int | None = None
) -> tuple[SonicNet, dict[str, Any]]:
    """A SONIC network from a ``.pt`` written by :func:`save_weights`; refuses other models."""
    state = load_checkpoint(Path(path))
    if "arch" not in state or "state" not in state:
        raise ConfigError(f"{path} is not a sonoedge weights file (no 'arch'/'state')")
    net = build(state["arch"])
    load_state(net, state["state"], where=str(path))
    if expect_frames is not None and net.arch.n_frames != expect_frames:
        raise ConfigError(
            f"{path} was trained for {net.arch.n_frames}-frame ensembles: expected {expect_frames}"
        )
    net.eval()
    return net, state


@torch.no_grad()
def predict_unit(net: SonicNet, iq: npt.NDArray[np.complex64]) -> npt.NDArray[np.float32]:
    """Torch inference on one ensemble of exactly ``net.arch.n_frames`` frames → ``(H, W)``."""
    y = net(torch.from_numpy(ensemble_features(iq[: net.arch.n_frames]))[None])
    return np.clip(y[0, 0].numpy(), 0.0, 1.0)


def _val_dice(net: SonicNet, data: SceneSet) -> float:
    from sonoedge.metrics import vessel_scores

    n = net.arch.n_frames
    return float(
        np.mean(
            [
                vessel_scores(predict_unit(net, data.iq[s, :n]), data.mask[s]).dice
                for s in range(len(data))
            ]
        )
    )


def write_card(
    onnx_path: Path,
    name: str,
    net: SonicNet,
    cfg: dict[str, Any],
    spec: dict[str, Any],
    spacing_m: tuple[float, float],
    metrics: dict[str, Any],
    command: str,
) -> dict[str, Any]:
    """Write ``NAME.json`` (model card read by :func:`sonoedge.zoo.load`) and ``NAME.md``."""
    import hashlib

    from sonoedge.synth.transducer import get_preset
    from sonoedge.types import SPEED_OF_SOUND_M_S
    from sonoedge.zoo.sonic import DB_LOW, DB_SPAN, SIZE_MULTIPLE

    probe = get_preset(cfg["data"]["probe"])
    wavelength = SPEED_OF_SOUND_M_S / probe.center_frequency_hz
    card: dict[str, Any] = {
        "name": name,
        "task": "sonic",
        "format": "onnx",
        "opset": 17,
        "architecture": net.arch.to_dict(),
        "parameters": count_parameters(net),
        "input": {
            "name": "iq",
            "dtype": "float32",
            "layout": "(batch, 2*n_frames, axial, lateral): SVD component energies, then tail sums",
            "normalisation": "sonoedge.zoo.sonic.ensemble_features: 0.25*log10(E/(N*rms^2) + 1e-9)",
            "n_frames": net.arch.n_frames,
            "prf_hz_range": cfg["data"]["prf_hz"],
            "spacing_m": list(spacing_m),
            "spacing_wavelengths": [spacing_m[0] / wavelength, spacing_m[1] / wavelength],
            "probe": cfg["data"]["probe"],
            "center_frequency_hz": probe.center_frequency_hz,
            "trained_size": [cfg["data"]["height"], cfg["data"]["width"]],
            "size_multiple": SIZE_MULTIPLE,
        },
        "output": {
            "name": "blood_power",
            "range": [0.0, 1.0],
            "meaning": f"blood power in dB re tissue = {DB_LOW:g} + y * {DB_SPAN:g}",
        },
        "provenance": provenance(command, cfg, spec),
        "metrics": metrics,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    }
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    md = [
        f"# {name} — SONIC power Doppler student",
        "",
        f"- Task: power Doppler from a {net.arch.n_frames}-frame IQ ensemble (clutter filtering "
        f"that SVD needs {cfg['data']['long_frames']} frames for).",
        f"- Input: `iq` float32 (batch, {2 * net.arch.n_frames}, H, W), H and W multiples of "
        f"{SIZE_MULTIPLE}; features from `sonoedge.zoo.sonic.ensemble_features` (log energy of the "
        "ensemble's SVD components and their tail sums per pixel).",
        f"- Trained for: PRF {cfg['data']['prf_hz'][0]:g}–{cfg['data']['prf_hz'][1]:g} Hz, pixel "
        f"spacing {spacing_m[0] * 1e3:.3f} × {spacing_m[1] * 1e3:.3f} mm "
        f"({card['input']['spacing_wavelengths'][0]:.2f} × "
        f"{card['input']['spacing_wavelengths'][1]:.2f} λ at "
        f"{probe.center_frequency_hz / 1e6:g} MHz), {cfg['data']['height']}×"
        f"{cfg['data']['width']} scenes.",
        f"- Output: `blood_power` in [0, 1] = ({card['output']['meaning']}).",
        f"- Architecture: {net.arch.to_dict()}, {card['parameters']} parameters, ONNX opset 17.",
        f"- Data: {spec['n_scenes']} simulated scenes ({GENERATOR}), "
        f"seed base {spec['seed_base']}.",
        f"- Command: `{command}` at commit {card['provenance']['commit']}.",
        f"- Validation metrics: {json.dumps(metrics)}",
        "- Held-out evaluation: docs/results/sonic.json.",
        "",
        "Run it without torch: `sonoedge.zoo.load(path).power_doppler(iq, prf_hz, spacing_m)`.",
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
    """Train teacher then student into ``out_dir``; returns the exported student ONNX path."""
    from sonoedge.models.export import export_onnx

    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or Path("runs") / "cache"
    d = cfg["data"]
    train_spec = {**data_spec(d, "train", d["n_train"], cfg["seed"]), "ds_cutoff": d["ds_cutoff"]}
    val_spec = {**data_spec(d, "val", d["n_val"], cfg["seed"]), "ds_cutoff": d["ds_cutoff"]}
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (out_dir / "data_spec.json").write_text(
        json.dumps({"train": train_spec, "val": val_spec}, indent=2) + "\n", encoding="utf-8"
    )
    data = build_set(train_spec, cache, d["workers"], progress)
    val = build_set(val_spec, cache, d["workers"], progress)
    record = {"config": cfg, "data_spec": train_spec, "command": command}

    teacher_pt = out_dir / "teacher.pt"
    if teacher_pt.exists():
        teacher, _ = load_weights(teacher_pt)
    else:
        teacher = train_teacher(cfg, data, out_dir / "teacher.ckpt", progress, stop_after)
        save_weights(teacher_pt, teacher, record)
    maps = teacher_maps(teacher, data) if cfg["loss"]["distillation"] else None
    n = cfg["student"]["n_frames"]
    short = data.short_svd(n, d["ds_cutoff"])
    student = train_student(
        cfg,
        data,
        short,
        maps,
        out_dir / "student.ckpt",
        progress,
        stop_after,
        cfg["loss"]["deep_supervision"],
        cfg["loss"]["distillation"],
    )
    save_weights(out_dir / "student.pt", student, record)
    metrics = {
        "val_dice_student": round(_val_dice(student, val), 4),
        "val_dice_teacher": round(_val_dice(teacher, val), 4),
        "val_scenes": len(val),
    }
    name = f"sonic-{n}"
    onnx_path = out_dir / f"{name}.onnx"
    parity = export_onnx(student, onnx_path, sample=ensemble_features(val.iq[0, :n])[None])
    metrics["export_parity_max_abs"] = parity
    write_card(onnx_path, name, student, cfg, train_spec, data.spacing_m, metrics, command)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return onnx_path


# --------------------------------------------------------------------------- ablation


def ablation(
    cfg: dict[str, Any],
    run_dir: Path,
    steps: int,
    progress: Any = None,
    cache_dir: Path | None = None,
) -> dict[str, dict[str, float]]:
    """Train the student four ways (task / +DS / +KD / both) on the same data, teacher and step
    budget; score each on the validation and held-out in-range sets (Dice, best threshold)."""
    from sonoedge.metrics import vessel_scores

    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    cache = cache_dir or Path("runs") / "cache"
    d = cfg["data"]
    train_spec = {**data_spec(d, "train", d["n_train"], cfg["seed"]), "ds_cutoff": d["ds_cutoff"]}
    data = build_set(train_spec, cache, d["workers"], progress)
    ev = build_set(
        {**data_spec(d, "eval", cfg["eval"]["n_scenes"], cfg["seed"]), "ds_cutoff": d["ds_cutoff"]},
        cache,
        d["workers"],
        progress,
    )
    teacher, _ = load_weights(run_dir / "teacher.pt")
    maps = teacher_maps(teacher, data)
    n = cfg["student"]["n_frames"]
    short = data.short_svd(n, d["ds_cutoff"])
    small = {**cfg, "student": {**cfg["student"], "steps": steps}}
    table: dict[str, dict[str, float]] = {}
    for label, use_ds, use_kd in (
        ("task only", False, False),
        ("+ deep supervision", True, False),
        ("+ distillation", False, True),
        ("both", True, True),
    ):
        tag = label.replace(" ", "_").replace("+", "plus")
        ckpt = run_dir / f"ablation-{tag}-{steps}.ckpt"
        t0 = time.perf_counter()
        net = train_student(
            small,
            data,
            short,
            maps,
            ckpt,
            progress,
            None,
            use_ds,
            use_kd,
            phase=f"ablation {label}",
        )
        dices = [
            vessel_scores(predict_unit(net, ev.iq[s, :n]), ev.mask[s]).dice for s in range(len(ev))
        ]
        table[label] = {
            "dice_mean": round(float(np.mean(dices)), 4),
            "dice_std": round(float(np.std(dices)), 4),
            "train_s": round(time.perf_counter() - t0, 1),
        }
    return table


# --------------------------------------------------------------------------- evaluation


def _svd_unit(iq: npt.NDArray[np.complex64], policy: str) -> npt.NDArray[np.float32]:
    from sonoedge.processing.clutter import power_doppler, svd_filter

    pd = power_doppler(svd_filter(iq, cutoff=policy), db=False)  # type: ignore[arg-type]
    return power_to_unit(pd / ensemble_scale(iq) ** 2)


def _model_unit(model: Any, iq: npt.NDArray[np.complex64], prf: float, spacing: Any) -> Any:
    from sonoedge.zoo.sonic import DB_LOW, DB_SPAN

    db = model.blood_power_db(iq, prf, spacing)
    return np.clip((db - DB_LOW) / DB_SPAN, 0.0, 1.0).astype(np.float32)


def _find_teacher(onnx_path: Path, card: dict[str, Any]) -> Path | None:
    for cand in (onnx_path.parent / "teacher.pt", Path(card.get("run_dir", "")) / "teacher.pt"):
        if cand.is_file():
            return cand
    return None


def evaluate(
    model_paths: Sequence[str],
    cfg: dict[str, Any] | None,
    results_dir: Path,
    name: str = "sonic",
    quick: bool = False,
    command: str | None = None,
    progress: Any = None,
    cache_dir: Path | None = None,
    teacher_path: str | None = None,
) -> dict[str, Any]:
    """Score students (via onnxruntime), the teacher and SVD baselines on held-out sets.

    The first model is the headline; the others (other ensemble lengths) add points to the
    Dice-vs-length curve. Writes ``<results_dir>/<name>.json`` and ``<name>.png``.
    """
    from sonoedge import zoo
    from sonoedge.bench.results import write_result
    from sonoedge.metrics import psnr, ssim, vessel_scores

    if not model_paths:
        raise ConfigError("eval needs at least one --model")
    models = [zoo.load(p, threads=2) for p in model_paths]
    head = models[0]
    if cfg is None:
        cfg = dict(head.card["provenance"]["config"])
        if quick:
            cfg = cfgmod.merge(cfg, {"eval": {"n_scenes": 1}})
    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    d = cfg["data"]
    cache = cache_dir or Path("runs") / "cache"
    long_n = d["long_frames"]
    lengths = sorted({int(v) for v in cfg["eval"]["lengths"]} | {head.n_frames})
    lengths = [n for n in lengths if n < long_n]
    tpath = Path(teacher_path) if teacher_path else _find_teacher(head.path, head.card)
    teacher = load_weights(tpath, expect_frames=long_n)[0] if tpath else None
    policies = ("fixed", "energy", "ssm")
    sets = {}
    for split in ("eval", "eval_shifted"):
        spec = {
            **data_spec(d, split, cfg["eval"]["n_scenes"], cfg["seed"]),
            "ds_cutoff": d["ds_cutoff"],
        }
        sets[split] = build_set(spec, cache, d["workers"], progress)
    per: dict[str, dict[str, list[float]]] = {}
    examples: list[dict[str, Any]] = []
    task = (
        progress.add_task("evaluate", total=sum(len(s) for s in sets.values()))
        if progress
        else None
    )

    def add(split: str, key: str, value: float) -> None:
        per.setdefault(split, {}).setdefault(key, []).append(value)

    for split, data in sets.items():
        for s in range(len(data)):
            iq, mask, target = data.iq[s], data.mask[s], data.target[s]
            prf, spacing = float(data.prf_hz[s]), data.spacing_m
            maps: dict[str, npt.NDArray[np.float32]] = {}
            for n in [*lengths, long_n]:
                for pol in policies:
                    m = _svd_unit(iq[:n], pol)
                    maps[f"svd_{pol}@{n}"] = m
                    add(split, f"dice svd_{pol}@{n}", vessel_scores(m, mask).dice)
                    add(split, f"psnr svd_{pol}@{n}", psnr(target, m, data_range=1.0))
                    add(split, f"ssim svd_{pol}@{n}", ssim(target, m, data_range=1.0))
            for model in models:
                for n in lengths:
                    if n < model.n_frames:
                        continue
                    m = _model_unit(model, iq[:n], prf, spacing)
                    key = f"{model.name}@{n}"
                    maps[key] = m
                    add(split, f"dice {key}", vessel_scores(m, mask).dice)
                    add(split, f"psnr {key}", psnr(target, m, data_range=1.0))
                    add(split, f"ssim {key}", ssim(target, m, data_range=1.0))
            if teacher is not None:
                m = predict_unit(teacher, iq)
                maps[f"teacher@{long_n}"] = m
                add(split, f"dice teacher@{long_n}", vessel_scores(m, mask).dice)
                add(split, f"psnr teacher@{long_n}", psnr(target, m, data_range=1.0))
                add(split, f"ssim teacher@{long_n}", ssim(target, m, data_range=1.0))
            add(split, "dice target(blood power)", vessel_scores(target, mask).dice)
            if split == "eval" and len(examples) < 3:
                examples.append({"iq0": iq[0], "mask": mask, "target": target, "maps": maps})
            if task is not None:
                progress.update(task, advance=1)

    means = {
        split: {k: round(float(np.mean(v)), 4) for k, v in table.items()}
        for split, table in per.items()
    }
    ev = means["eval"]
    best_policy: dict[int, str] = {}
    for n in [*lengths, long_n]:
        best_policy[n] = max(policies, key=lambda p: ev[f"dice svd_{p}@{n}"])
    hn = head.n_frames
    student_key = f"dice {head.name}@{hn}"
    svd_short = ev[f"dice svd_{best_policy[hn]}@{hn}"]
    svd_long = ev[f"dice svd_{best_policy[long_n]}@{long_n}"]
    curve = {
        "lengths": lengths,
        "svd_best": [ev[f"dice svd_{best_policy[n]}@{n}"] for n in lengths],
        "svd_best_policy": [best_policy[n] for n in lengths],
        "svd_long": svd_long,
        **{m.name: [ev.get(f"dice {m.name}@{n}") for n in lengths] for m in models},
    }
    latency = _latency(head, long_n, d)
    metrics = {
        "student": head.name,
        "student_frames": hn,
        "long_frames": long_n,
        "dice_student": ev[student_key],
        "dice_svd_same_frames_best_policy": svd_short,
        "dice_svd_long_best_policy": svd_long,
        "dice_teacher_long": ev.get(f"dice teacher@{long_n}"),
        "dice_gain_vs_svd_same_frames": round(ev[student_key] - svd_short, 4),
        "dice_gain_vs_svd_long": round(ev[student_key] - svd_long, 4),
        "target_met_vs_svd_long": bool(ev[student_key] >= svd_long),
        "target_met_vs_svd_short_plus_0.10": bool(ev[student_key] >= svd_short + 0.10),
        "psnr_student_db": ev[f"psnr {head.name}@{hn}"],
        "ssim_student": ev[f"ssim {head.name}@{hn}"],
        "dice_student_shifted_set": means["eval_shifted"][student_key],
        "dice_svd_long_shifted_set": means["eval_shifted"][
            f"dice svd_{best_policy[long_n]}@{long_n}"
        ],
        "dice_vs_length": curve,
        "latency": latency,
        "dice_threshold_policy": "best threshold per image (upper bound, same for every method)",
        "n_scenes_per_set": cfg["eval"]["n_scenes"],
        "held_out_sets": {
            "eval": "same parameter ranges as training, disjoint seeds",
            "eval_shifted": f"disjoint seeds, partly disjoint ranges {SHIFTED}",
        },
    }
    baselines = {"svd_best_policy_per_length": best_policy, "per_set_means": means}
    results_dir.mkdir(parents=True, exist_ok=True)
    _panel(examples, head.name, hn, long_n, best_policy, curve, results_dir / f"{name}.png")
    write_result(name, metrics, baselines, command=command, results_dir=results_dir)
    return metrics


def _latency(model: Any, long_n: int, d: dict[str, Any], reps: int = 15) -> dict[str, Any]:
    """Median wall time (ms) of the student (onnxruntime, 2 threads, incl. pre/post-processing)
    against SVD (energy cutoff) + power Doppler on the long ensemble,
    at the trained size and 128²."""
    from sonoedge.processing.clutter import power_doppler, svd_filter

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"threads": 2, "reps": reps}
    for size in sorted({d["height"], 128}):
        iq_long = (
            rng.standard_normal((long_n, size, size))
            + 1j * rng.standard_normal((long_n, size, size))
        ).astype(np.complex64)
        short = iq_long[: model.n_frames]
        prf = float(np.mean(model.prf_range_hz))

        def student(short: Any = short, prf: float = prf) -> None:
            model.power_doppler(short, prf, model.spacing_m)

        def svd(iq_long: Any = iq_long) -> None:
            power_doppler(svd_filter(iq_long, cutoff="energy"))

        times = {}
        for label, fn in (("student_ms", student), ("svd_long_ms", svd)):
            fn()
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            times[label] = round(1e3 * float(np.median(ts)), 2)
        times["speedup"] = round(times["svd_long_ms"] / max(times["student_ms"], 1e-9), 2)
        out[f"{size}x{size}"] = times
    return out


def _panel(
    examples: list[dict[str, Any]],
    student: str,
    n: int,
    long_n: int,
    best: dict[int, str],
    curve: dict[str, Any],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [
        ("input (frame 0, dB)", None),
        (f"SVD {best[n]} @{n}", f"svd_{best[n]}@{n}"),
        (f"SVD {best[long_n]} @{long_n}", f"svd_{best[long_n]}@{long_n}"),
        (f"student @{n}", f"{student}@{n}"),
        (f"teacher @{long_n}", f"teacher@{long_n}"),
        ("target (blood power)", "target"),
    ]
    rows = max(1, len(examples))
    fig = plt.figure(figsize=(2.2 * len(cols), 2.2 * rows + 2.8))
    grid = fig.add_gridspec(rows + 1, len(cols), height_ratios=[1] * rows + [1.3])
    for r, ex in enumerate(examples):
        for c, (title, key) in enumerate(cols):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if key is None:
                img = 20 * np.log10(np.abs(ex["iq0"]) + 1e-12)
                ax.imshow(img, cmap="gray", vmin=img.max() - 50, vmax=img.max())
            elif key == "target":
                ax.imshow(ex["target"], cmap="hot", vmin=0, vmax=1)
                ax.contour(ex["mask"], levels=[0.5], colors="c", linewidths=0.4)
            elif key in ex["maps"]:
                img = ex["maps"][key]  # each map on its own range: Dice only depends on ranking
                lo, hi = np.percentile(img, [5, 99.5])
                ax.imshow(img, cmap="hot", vmin=lo, vmax=max(hi, lo + 1e-6))
            else:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center")
            if r == 0:
                ax.set_title(title, fontsize=8)
    ax = fig.add_subplot(grid[rows, 1:-1])
    lengths = curve["lengths"]
    ax.plot(lengths, curve["svd_best"], "o-", label="SVD (best cutoff policy)")
    for key, values in curve.items():
        if key in ("lengths", "svd_best", "svd_best_policy", "svd_long"):
            continue
        pts = [(L, v) for L, v in zip(lengths, values, strict=True) if v is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), "s-", label=key)
    if curve.get("svd_long") is not None:
        ax.axhline(curve["svd_long"], color="gray", ls="--", label=f"SVD @{long_n} (best policy)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths)
    ax.set_xticklabels([str(v) for v in lengths])
    ax.set_xlabel("ensemble length (frames)")
    ax.set_ylabel("vessel Dice")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(metrics: dict[str, Any]) -> str:
    """One paragraph for the CLI."""
    return (
        f"Dice {metrics['student']}@{metrics['student_frames']}: {metrics['dice_student']:.3f} | "
        f"SVD@{metrics['student_frames']} (best policy): "
        f"{metrics['dice_svd_same_frames_best_policy']:.3f} | SVD@{metrics['long_frames']}: "
        f"{metrics['dice_svd_long_best_policy']:.3f} | latency speed-up vs SVD@"
        f"{metrics['long_frames']}: "
        + ", ".join(
            f"{k} {v['speedup']}x" for k, v in metrics["latency"].items() if isinstance(v, dict)
        )
    )
