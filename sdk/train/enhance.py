"""Blind enhancement task (deconvolution + denoising): self-supervised teacher, distilled student.

Data: simulated B-mode frames (:func:`sonoedge.synth.speckle.simulate_bmode`, over the config's
probes, phantoms, zooms, F-numbers, display ranges and thermal-noise levels, drawn per frame) and
their NLLR-denoised versions (:func:`sonoedge.processing.nllr.nllr`), the clean-like targets;
both cached in ``<cache>/enhance-<split>-<hash>.npz``. The simulator's speckle-free image is kept
for evaluation only: no loss ever sees it.

Self-supervision (physics-guided degradation model): each training patch is cut from a target at
a random angle (and flipped), then degraded by :func:`sonoedge.synth.degradation.degrade` — a
Gaussian PSF surrogate with random anisotropic widths, then additive Gaussian noise or a complex
Fourier-domain magnitude/phase perturbation, at a severity drawn per patch — and clipped to
``[0, 1]`` (the runtime's input range). The network learns to map the degraded patch back to the
target. With ``degrade.independent_blur`` the blur's severity is drawn apart from the noise's, so
strongly blurred patches also come with light noise (as the point targets of the evaluation do).

Networks (:mod:`sonoedge.models.enhance`): a Swin-Conv U-Net teacher trained with
``L1 + (1 - SSIM)`` (plus ``loss.grad_weight`` × L1 of the axial/lateral finite differences,
a sharpness term); a plain-conv student with the same loss plus knowledge distillation on the
same degraded batches (L1 to the teacher's output, MSE of a 1×1 adapter of its last full-resolution
features to the teacher's).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from sonoedge.errors import ConfigError
from sonoedge.models.enhance import (
    DEBLUR_SIGMAS_PX,
    EnhanceArch,
    EnhanceDeploy,
    EnhanceNet,
    EnhanceStudent,
    build,
    count_parameters,
    load_state,
    macs_per_pixel,
    pad_to_multiple,
)
from sonoedge.models.export import OPSET, PARITY_ATOL, export_image_net, provenance
from sonoedge.processing.deconvolution import deconvolve_nlm
from sonoedge.train import config as cfgmod
from sonoedge.train.despeckle import psnr_torch, ssim_torch
from sonoedge.train.loop import load_checkpoint, run_phase, save_checkpoint
from sonoedge.zoo.self_ensemble import check_size

GENERATOR = "sonoedge.synth.speckle.simulate_bmode/v1 + sonoedge.processing.nllr.nllr/v1"
DEGRADATION = "sonoedge.synth.degradation.degrade/v1"
SPLIT_SEED_BASE = {
    "train": 0,
    "val": 1_000_000,
    "eval": 2_000_000,
    "points": 3_000_000,
    "cyst": 4_000_000,
    "full": 5_000_000,  # full-size frames of the evaluation (sonoedge.quantization.data.degraded)
}
SEVERITIES = ("light", "moderate", "heavy")
NOISES = ("gaussian", "fourier")
MODEL_NAME = "enhance-student"
ENSEMBLE = "student_ensemble"
REFLECTOR_PHANTOMS = ("wires", "wires_broad")
"""Phantoms of bright reflectors in an anechoic field: ``degrade.reflector_severity_max`` caps the
corruption of their frames (tried against made-up blobs in anechoic regions; it did not remove
them: README, enhancement section)."""
"""Method name of the student's self-ensemble (config ``eval.self_ensemble`` copies) in results."""
POINT_BLUR_PX = (1.5, 1.5)
"""Gaussian PSF surrogate σ (axial, lateral, px) added to the point-target and cyst phantoms
(with light Gaussian noise) for the resolution and edge checks."""
FloatArray = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- config


def check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate the enhance config's ranges (types were checked on load)."""
    from sonoedge.synth.phantoms import PHANTOM_KINDS
    from sonoedge.synth.transducer import PRESETS

    for key, lo, hi in (
        ("data.size", 32, 1024),
        ("data.n_train", 1, 100_000),
        ("data.n_val", 1, 100_000),
        ("data.zoom", 0.1, 10.0),
        ("data.f_number", 0.5, 8.0),
        ("data.db_low", -120.0, 0.0),
        ("data.db_high", 0.0, 60.0),
        ("data.noise_prob", 0.0, 1.0),
        ("data.noise_db", -80.0, 20.0),
        ("data.mix_size", 0, 2048),
        ("data.mix_n_train", 1, 100_000),
        ("student.mix_share", 0.0, 1.0),
        ("student.mix_batch_size", 1, 4096),
        ("nllr.patch_px", 2, 16),
        ("nllr.n_iter", 1, 10),
        ("degrade.severity", 0.0, 1.0),
        ("degrade.fourier_prob", 0.0, 1.0),
        ("degrade.severity_power", 0.1, 10.0),
        ("degrade.reflector_severity_max", 0.0, 1.0),
        ("degrade.whole_frame_prob", 0.0, 1.0),
        ("teacher.steps", 1, 10_000_000),
        ("student.steps", 1, 10_000_000),
        ("teacher.batch_size", 1, 4096),
        ("student.batch_size", 1, 4096),
        ("teacher.lr", 1e-6, 1.0),
        ("student.lr", 1e-6, 1.0),
        ("loss.l1_weight", 0.0, 100.0),
        ("loss.ssim_weight", 0.0, 100.0),
        ("loss.kd_weight", 0.0, 100.0),
        ("loss.kd_feature_weight", 0.0, 100.0),
        ("loss.grad_weight", 0.0, 100.0),
        ("loss.log_mse_weight", 0.0, 100.0),
        ("loss.deblur_target_weight", 0.0, 100.0),
        ("loss.deblur_target_sigma_scale", 0.25, 4.0),
        ("student.ema_decay", 0.0, 0.99999),
        ("threads", 1, 256),
        ("train.checkpoint_every", 1, 10_000_000),
        ("eval.n_images", 1, 100_000),
        ("eval.n_points", 1, 100_000),
        ("eval.n_cyst", 1, 100_000),
        ("eval.size", 32, 2048),
        ("eval.n_full_frames", 1, 100_000),
        ("eval.full_frame_size", 64, 2048),
    ):
        cfgmod.require_range(cfg, key, lo, hi)
    check_size(cfg["eval"]["self_ensemble"])
    dg = cfg["degrade"]
    if dg.get("whole_frame_prob", 0.0) > 0 and dg["rotate"] and not dg["right_angles"]:
        raise ConfigError(
            "config key 'degrade.whole_frame_prob' > 0 needs 'degrade.right_angles' = true (or "
            "'degrade.rotate' = false): a bilinear rotation after the degradation would smooth "
            "its noise"
        )
    d = cfg["data"]
    for probe in d["probes"]:
        if probe not in PRESETS:
            raise ConfigError(
                f"config key 'data.probes' has {probe!r}: expected names from {sorted(PRESETS)}"
            )
    for ph in d["phantoms"]:
        if ph not in PHANTOM_KINDS:
            raise ConfigError(f"config key 'data.phantoms' has {ph!r}: expected {PHANTOM_KINDS}")
    if not d["probes"] or not d["phantoms"]:
        raise ConfigError("config keys 'data.probes' and 'data.phantoms' must not be empty")
    for who in ("teacher", "student"):
        a = arch(cfg, who)
        crop = cfg[who]["crop"]
        if crop % a.size_multiple or crop < a.size_multiple or crop > d["size"]:
            raise ConfigError(
                f"config key '{who}.crop' = {crop} is invalid: expected a multiple of "
                f"{a.size_multiple} in {a.size_multiple}..data.size ({d['size']})"
            )
    mix = d["mix_size"]
    m = arch(cfg, "student").size_multiple
    if mix and (mix % m or mix < 32):
        raise ConfigError(
            f"config key 'data.mix_size' = {mix} is invalid: expected 0 (no second pool) or a "
            f"multiple of {m} of at least 32"
        )
    s = cfg["student"]
    if s["trainable"] not in ("all", "deblur", "none"):
        raise ConfigError(
            f"config key 'student.trainable' = {s['trainable']!r} is invalid: expected 'all', "
            "'deblur' or 'none'"
        )
    if s["trainable"] == "none" and not s["init"]:
        raise ConfigError(
            "config key 'student.trainable' = 'none' takes student.init as it is",
            hint="set student.init to a trained student (.pt, or .onnx + card)",
        )
    cfgmod.require_range(cfg, "student.average_weight", 0.0, 1.0)
    if bool(s["average_with"]) != (s["average_weight"] > 0):
        raise ConfigError(
            "config keys 'student.average_with' and 'student.average_weight' go together: "
            f"got {s['average_with']!r} and {s['average_weight']:g}",
            hint="name the student to average with and its share (0 < w <= 1), or neither",
        )
    if s["trainable"] == "deblur" and not (
        s["deblur"] and s["init"] and cfg["loss"]["deblur_target_weight"] > 0
    ):
        raise ConfigError(
            "config key 'student.trainable' = 'deblur' refits the inverse-filter stage of a "
            "trained student to its selector target",
            hint="set student.deblur = true, student.init to the student and "
            "loss.deblur_target_weight > 0",
        )
    if s["mix_share"] > 0 and not mix:
        raise ConfigError(
            "config key 'student.mix_share' > 0 needs a second pool of frames",
            hint="set data.mix_size (e.g. 256, the B-mode pipeline's frame size)",
        )
    return cfg


def arch(cfg: dict[str, Any], who: str) -> EnhanceArch:
    """The architecture of ``teacher`` or ``student`` in ``cfg``."""
    c = cfg[who]
    if who == "teacher":
        return EnhanceArch("teacher", int(c["width"]), int(c["depth"]), int(c["window"]),
                           int(c["head_dim"]))  # fmt: skip
    return EnhanceArch(
        "student", int(c["width"]), int(c["depth"]), full_depth=int(c["full_depth"]),
        context=bool(c["context"]), space_to_depth=bool(c["space_to_depth"]),
        deblur=bool(c["deblur"]),
    )  # fmt: skip


def arch_of(net: nn.Module) -> EnhanceArch:
    """The :class:`EnhanceArch` of an enhancement network."""
    a = getattr(net, "arch", None)
    if not isinstance(a, EnhanceArch):
        raise ConfigError(f"{type(net).__name__} is not an enhance network")
    return a


# --------------------------------------------------------------------------- data


def data_spec(cfg: dict[str, Any], split: str, n: int) -> dict[str, Any]:
    """Everything that determines a simulated set and its targets (recorded with the weights)."""
    from sonoedge.synth.transducer import get_preset

    d = cfg["data"]
    keys = ("probes", "phantoms", "zoom", "f_number", "db_low", "db_high", "noise_prob", "noise_db")
    spec: dict[str, Any] = {
        "generator": GENERATOR,
        "split": split,
        "n_images": n,
        "seed_base": SPLIT_SEED_BASE["train" if split == "mix" else split]
        + 10_007 * int(cfg["seed"]),
        "size": d["size"],
        **{k: d[k] for k in keys},
        "nllr": dict(cfg["nllr"]),
    }
    if split in ("eval", "points", "cyst"):
        spec["size"] = cfg["eval"]["size"]
    if split == "mix":  # the training frames' seeds and draws at data.mix_size
        spec["split"], spec["size"] = "train", d["mix_size"]
    if split in ("points", "cyst"):
        spec["phantoms"] = [split]
        spec["noise_prob"] = 0.0
        spec["db_low"], spec["db_high"] = [-45.0, -45.0], [15.0, 15.0]
        linear = [p for p in d["probes"] if get_preset(p).geometry == "linear"]
        spec["probes"] = linear or ["L11-5v"]  # image grid = beam grid (no scan conversion)
    return spec


def _simulate(spec: dict[str, Any], i: int) -> dict[str, Any]:
    from sonoedge.processing.nllr import nllr
    from sonoedge.synth.imaging import default_spacing_m
    from sonoedge.synth.speckle import simulate_bmode
    from sonoedge.synth.transducer import get_preset

    seed = int(spec["seed_base"]) + i
    rng = np.random.default_rng([seed, 17])
    probe_name = spec["probes"][int(rng.integers(len(spec["probes"])))]
    phantom = spec["phantoms"][int(rng.integers(len(spec["phantoms"])))]
    probe = get_preset(probe_name)
    size = int(spec["size"])
    zoom = float(rng.uniform(*spec["zoom"]))
    base = default_spacing_m(probe, size, size)
    noise = float(rng.uniform(*spec["noise_db"])) if rng.uniform() < spec["noise_prob"] else None
    sample = simulate_bmode(
        probe,
        size,
        size,
        seed=seed,
        phantom=phantom,
        spacing_m=(base[0] * zoom, base[1] * zoom),
        f_number=float(rng.uniform(*spec["f_number"])),
        db_range=(float(rng.uniform(*spec["db_low"])), float(rng.uniform(*spec["db_high"]))),
        noise_db=noise,
    )
    n = spec["nllr"]
    target = nllr(sample.speckled, patch_px=int(n["patch_px"]), n_iter=int(n["n_iter"]))
    return {
        "frame": sample.speckled,
        "target": np.clip(target, 0.0, 1.0).astype(np.float32),
        "clean": sample.clean,
        "echo_db": sample.echo_db.astype(np.float32),
        "probe": probe_name,
        "phantom": phantom,
    }


@dataclass
class FrameSet:
    """Simulated frames of one split with their NLLR targets (and, for evaluation only, the
    simulator's speckle-free images)."""

    frames: FloatArray  # (S, H, W) simulated speckled B-mode
    targets: FloatArray  # (S, H, W) NLLR-denoised frames: the training targets
    clean: FloatArray  # (S, H, W) speckle-free simulator output (evaluation only)
    echo_db: FloatArray  # (S, H, W) phantom echogenicity
    probes: list[str]
    phantoms: list[str]
    spec: dict[str, Any]
    path: Path

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def build_set(spec: dict[str, Any], cache_dir: Path, progress: Any = None) -> FrameSet:
    """Simulate and NLLR-denoise (or load from the cache) the frames described by ``spec``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"enhance-{spec['split']}-{cfgmod.digest(spec)}.npz"
    if not path.exists():
        n = int(spec["n_images"])
        task = progress.add_task(f"simulate+NLLR {spec['split']}", total=n) if progress else None
        items = []
        for i in range(n):
            items.append(_simulate(spec, i))
            if task is not None:
                progress.update(task, advance=1)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            frames=np.stack([it["frame"] for it in items]),
            targets=np.stack([it["target"] for it in items]),
            clean=np.stack([it["clean"] for it in items]),
            echo_db=np.stack([it["echo_db"] for it in items]),
            probes=np.array([it["probe"] for it in items]),
            phantoms=np.array([it["phantom"] for it in items]),
            spec=json.dumps(spec),
        )
        tmp.replace(path)
    with np.load(path) as z:
        return FrameSet(
            frames=z["frames"],
            targets=z["targets"],
            clean=z["clean"],
            echo_db=z["echo_db"],
            probes=[str(p) for p in z["probes"]],
            phantoms=[str(p) for p in z["phantoms"]],
            spec=json.loads(str(z["spec"])),
            path=path,
        )


# --------------------------------------------------------------------------- degradation


def rotated_patch(
    image: FloatArray,
    rng: np.random.Generator,
    crop: int,
    rotate: bool = True,
    right_angles: bool = False,
) -> FloatArray:
    """A ``crop``-square patch of ``image`` cut at a random position and (``rotate``) a random
    angle (bilinear, reflected borders), flipped laterally half the time. ``right_angles``:
    rotated by a multiple of 90° instead (exact: bilinear resampling at other angles smooths
    the patch, its finest-scale detail by about a quarter). ``image`` may be a stack
    ``(C, H, W)``: every channel gets the same cut, rotation and flip."""
    import cv2

    h, w = image.shape[-2:]
    if rotate and right_angles:
        z0, x0 = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        cut = image[..., z0 : z0 + crop, x0 : x0 + crop]
        patch = np.rot90(cut, int(rng.integers(4)), axes=(-2, -1))
        if rng.integers(2):
            patch = patch[..., ::-1]
        return np.ascontiguousarray(patch, np.float32)
    angle = float(rng.uniform(0.0, 360.0)) if rotate else 0.0
    side = min(h, w, math.ceil(crop * math.sqrt(2.0)) + 2) if rotate else crop
    z0, x0 = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    sub = np.ascontiguousarray(image[..., z0 : z0 + side, x0 : x0 + side], np.float32)
    if rotate:
        m = cv2.getRotationMatrix2D(((side - 1) / 2.0, (side - 1) / 2.0), angle, 1.0)
        planes = [
            np.asarray(
                cv2.warpAffine(
                    plane, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
                ),
                np.float32,
            )
            for plane in sub.reshape(-1, side, side)
        ]
        sub = np.stack(planes).reshape(sub.shape)
    o = (side - crop) // 2
    patch = sub[..., o : o + crop, o : o + crop]
    if rng.integers(2):
        patch = patch[..., ::-1]
    return np.ascontiguousarray(patch, np.float32)


def degrade_patch(
    clean: FloatArray,
    seed: int,
    noise: str,
    severity: str | float,
    blur_sigma_px: tuple[float, float] | None = None,
) -> tuple[FloatArray, dict[str, Any]]:
    """The physics-guided degradation of :func:`sonoedge.synth.degradation.degrade`, clipped to
    ``[0, 1]`` (the range every real input has)."""
    from sonoedge.synth.degradation import degrade

    out, info = degrade(clean, seed, blur_sigma_px, noise, severity)  # type: ignore[arg-type]
    return np.clip(out, 0.0, 1.0).astype(np.float32), info


def training_batch(
    rng: np.random.Generator,
    data: FrameSet,
    bsz: int,
    crop: int,
    dcfg: dict[str, Any],
    infos: list[dict[str, Any]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(degraded, target)`` tensors ``(B, 1, crop, crop)`` drawn from the NLLR targets;
    ``infos`` (if given) receives each sample's degradation record (PSF σ on the batch's axes,
    noise kind)."""
    xs, ys = [], []
    whole_prob = float(dcfg.get("whole_frame_prob", 0.0))
    rotate, right_angles = bool(dcfg["rotate"]), bool(dcfg.get("right_angles", False))
    for s in rng.integers(len(data), size=bsz):
        frame = data.targets[int(s)]
        whole = whole_prob > 0 and rng.uniform() < whole_prob  # no draw when off: same batches
        y = frame if whole else rotated_patch(frame, rng, crop, rotate, right_angles)
        noise = "fourier" if rng.uniform() < dcfg["fourier_prob"] else "gaussian"
        s_lo, s_hi = dcfg["severity"]  # power > 1: mild corruption drawn more often
        if data.phantoms[int(s)] in REFLECTOR_PHANTOMS:
            s_hi = max(s_lo, min(s_hi, dcfg.get("reflector_severity_max", 1.0)))
        sev = float(s_lo + (s_hi - s_lo) * rng.uniform() ** dcfg.get("severity_power", 1.0))
        blur = None
        if dcfg.get("independent_blur", False):  # blur severity drawn apart from the noise's
            hi = 0.5 + 2.5 * float(rng.uniform(*dcfg["severity"]))
            blur = (float(rng.uniform(0.3, hi)), float(rng.uniform(0.3, hi)))
        x, info = degrade_patch(y, int(rng.integers(2**31)), noise, sev, blur)
        if whole:  # the whole frame was degraded, as at deployment: now cut both the same way
            x, y = rotated_patch(np.stack([x, frame]), rng, crop, rotate, right_angles)
            info = {**info, "blur_sigma_px": None}  # the rotation may have swapped its axes
        if infos is not None:
            infos.append(info)
        xs.append(x)
        ys.append(y)
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None])


def task_loss(
    out: torch.Tensor, y: torch.Tensor, loss_cfg: dict[str, Any]
) -> tuple[torch.Tensor, dict[str, float]]:
    """``l1_weight·L1 + ssim_weight·(1 − SSIM) + grad_weight·L1(∇out, ∇y)`` (the last: axial
    and lateral finite differences, which rewards sharp points and edges)."""
    l1 = F.l1_loss(out, y)
    s = ssim_torch(out, y).mean()
    loss = loss_cfg["l1_weight"] * l1 + loss_cfg["ssim_weight"] * (1 - s)
    parts: dict[str, float] = {}
    if loss_cfg["grad_weight"] > 0:
        g = gradient_l1(out, y)
        loss = loss + loss_cfg["grad_weight"] * g
        parts["grad"] = float(g.item())
    if loss_cfg.get("log_mse_weight", 0.0) > 0:
        lm = log_mse(out, y)
        loss = loss + loss_cfg["log_mse_weight"] * lm
        parts["log_mse"] = float(lm.item())
    with torch.no_grad():
        p = psnr_torch(out, y).mean()
    return loss, {"l1": float(l1.item()), "ssim": float(s.item()), "psnr": float(p.item()), **parts}


def deblur_target(infos: list[dict[str, Any]], sigma_scale: float = 1.0) -> torch.Tensor:
    """Per sample and axis, the inverse-filter choice the degradation calls for, as a
    distribution over the bank and identity ``(B, 2, K + 1)``: the identity under Gaussian noise
    (every inverse amplifies white noise more than it sharpens), and under Fourier-domain noise
    the PSF σ times ``sigma_scale``, split linearly between its two neighbours on the bank's σ
    grid (identity counts as σ 0; past the largest σ, the largest). A sample whose σ is unknown
    on its axes (``None``) gets a uniform row, i.e. no preference."""
    sigmas = np.array(DEBLUR_SIGMAS_PX)
    k = len(sigmas)
    grid = np.concatenate([[0.0], sigmas])  # identity first here, moved last below
    out = np.zeros((len(infos), 2, k + 1), np.float32)
    for i, info in enumerate(infos):
        for axis in range(2):
            row = np.zeros(k + 1)
            if info["blur_sigma_px"] is None:
                row[:] = 1.0 / (k + 1)
            elif info["noise"] == "gaussian":
                row[0] = 1.0
            else:
                s = float(np.clip(sigma_scale * info["blur_sigma_px"][axis], 0.0, sigmas[-1]))
                j = int(np.clip(np.searchsorted(grid, s) - 1, 0, k - 1))
                t = (s - grid[j]) / (grid[j + 1] - grid[j])
                row[j], row[j + 1] = 1.0 - t, t
            out[i, axis] = np.roll(row, -1)  # identity is the last choice in the network
    return torch.from_numpy(out)


def deblur_target_loss(
    net: nn.Module, x: torch.Tensor, infos: list[dict[str, Any]], sigma_scale: float = 1.0
) -> torch.Tensor:
    """Cross-entropy of the inverse-filter stage's choice on ``x`` against :func:`deblur_target`."""
    stage = cast(EnhanceStudent, net).deblur
    if stage is None:
        raise ConfigError("loss.deblur_target_weight > 0 needs student.deblur = true")
    beta, gamma = stage.weights(x)
    chosen = torch.stack([beta[:, :, 0, 0], gamma[:, :, 0, 0]], dim=1)
    target = deblur_target(infos, sigma_scale)
    return -(target * torch.log(chosen + 1e-8)).sum(dim=2).mean()


def log_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over patches of ``log10(MSE + 1e-8)`` (minus a tenth of their mean PSNR in dB): every
    patch's error counts relative to its own size, as the per-image PSNR of the evaluation does,
    so lightly corrupted patches weigh as much as heavily corrupted ones."""
    mse = ((out - y) ** 2).flatten(1).mean(1)
    return torch.log10(mse + 1e-8).mean()


def gradient_l1(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of the axial and lateral finite differences of ``out`` and ``y``."""
    dz = F.l1_loss(out[..., 1:, :] - out[..., :-1, :], y[..., 1:, :] - y[..., :-1, :])
    dx = F.l1_loss(out[..., :, 1:] - out[..., :, :-1], y[..., :, 1:] - y[..., :, :-1])
    return 0.5 * (dz + dx)


# --------------------------------------------------------------------------- training


def train_teacher(
    cfg: dict[str, Any], data: FrameSet, ckpt: Path, progress: Any, stop_after: int | None
) -> EnhanceNet:
    t = cfg["teacher"]
    torch.manual_seed(cfg["seed"])
    net = build(arch(cfg, "teacher"))

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = training_batch(rng, data, t["batch_size"], t["crop"], cfg["degrade"])
        return task_loss(net(x), y, cfg["loss"])

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


def train_student(
    cfg: dict[str, Any],
    data: FrameSet,
    teacher: EnhanceNet,
    ckpt: Path,
    progress: Any,
    stop_after: int | None,
    mix: FrameSet | None = None,
) -> EnhanceNet:
    """Distil the student from ``teacher`` (or another trained student) on freshly degraded
    batches; a share ``student.mix_share`` of the steps takes whole frames of ``mix`` (the
    ``data.mix_size`` pool) instead. ``student.trainable = "deblur"``: only the inverse-filter
    stage's selector learns, from its target alone; the network stays as initialised."""
    s_cfg, loss_cfg = cfg["student"], cfg["loss"]
    share = s_cfg["mix_share"]
    if share > 0 and mix is None:
        raise ConfigError("student.mix_share > 0 needs the data.mix_size pool: pass mix=")
    torch.manual_seed(cfg["seed"] + 1)
    net = build(arch(cfg, "student"))
    if s_cfg.get("init"):
        warm_start(net, Path(s_cfg["init"]))
    stage_only = s_cfg["trainable"] == "deblur"
    if stage_only:
        stage = cast(EnhanceStudent, net).deblur
        if stage is None:
            raise ConfigError("student.trainable = 'deblur' needs student.deblur = true")
        for p in net.parameters():
            p.requires_grad_(False)
        for p in stage.select.parameters():
            p.requires_grad_(True)
    teacher.eval()
    adapter = nn.Conv2d(net.feature_channels, teacher.feature_channels, 1)
    modules: dict[str, nn.Module] = {"net": net, "adapter": adapter}
    distil = loss_cfg["kd_weight"] > 0 or loss_cfg["kd_feature_weight"] > 0

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        infos: list[dict[str, Any]] = []
        if mix is not None and share > 0 and rng.uniform() < share:  # no draw when off
            x, y = training_batch(
                rng, mix, s_cfg["mix_batch_size"], mix.frames.shape[-1], cfg["degrade"], infos
            )
        else:
            x, y = training_batch(
                rng, data, s_cfg["batch_size"], s_cfg["crop"], cfg["degrade"], infos
            )
        scale = loss_cfg["deblur_target_sigma_scale"]
        if stage_only:  # the frozen network's output does not depend on anything trained here
            sel = deblur_target_loss(net, x, infos, scale)
            return loss_cfg["deblur_target_weight"] * sel, {"deblur_target": float(sel.item())}
        f = net.features(x)
        loss, parts = task_loss(f["out"], y, loss_cfg)
        if loss_cfg["deblur_target_weight"] > 0:
            sel = deblur_target_loss(net, x, infos, scale)
            loss = loss + loss_cfg["deblur_target_weight"] * sel
            parts["deblur_target"] = float(sel.item())
        if distil:  # the teacher's forward pass is most of a step: skipped when unused
            with torch.no_grad():
                t = teacher.features(x)
            kd_out = F.l1_loss(f["out"], t["out"])
            # a space_to_depth student's features are at 1/2 resolution: 2x2 means of the teacher's
            h, w = f["feat"].shape[-2:]
            t_feat = F.adaptive_avg_pool2d(t["feat"], (h, w))
            kd_feat = F.mse_loss(adapter(f["feat"]), t_feat)
            loss = loss + loss_cfg["kd_weight"] * kd_out + loss_cfg["kd_feature_weight"] * kd_feat
            parts.update({"kd_out": float(kd_out.item()), "kd_feat": float(kd_feat.item())})
        return loss, parts

    run_phase(
        "student",
        modules,
        loss_fn,
        steps=s_cfg["steps"],
        lr=s_cfg["lr"],
        seed=cfg["seed"],
        checkpoint=ckpt,
        checkpoint_every=cfg["train"]["checkpoint_every"],
        progress=progress,
        stop_after=stop_after,
        ema_decay=float(s_cfg["ema_decay"]),
    )
    return net


def init_student(path: Path) -> EnhanceNet:
    """The student in ``path`` (``student.init``): a ``student.pt`` written by ``sonoedge train
    enhance``, or an exported ``.onnx`` with its model card beside it (a shipped student, e.g.
    ``sdk/zoo/enhance-student.onnx``, rebuilt from its weights and checked against ONNX Runtime)."""
    if path.suffix != ".onnx":
        return load_weights(path, "student")[0]
    from sonoedge.quantization.from_onnx import torch_from_onnx
    from sonoedge.zoo import read_card

    card = read_card(path)
    if card.get("task") != "enhance":
        raise ConfigError(f"student.init {path} is a {card.get('task')!r} model: expected enhance")
    net = cast(EnhanceDeploy, torch_from_onnx(path, card)).net
    if not isinstance(net, EnhanceStudent):
        raise ConfigError(f"student.init {path} is not an enhancement student")
    return net


def warm_start(net: nn.Module, path: Path) -> None:
    """Initialise the student ``net`` from the student in ``path`` (:func:`init_student`).

    The same width is required. A saved student with fewer 1/4-resolution convs (``depth``) or
    full-resolution convs (``full_depth``) is deepened without changing its function: the extra
    convs are appended to the body or the full-resolution refinement as identities (Dirac
    kernels, zero bias; their inputs are ReLU outputs, already non-negative)."""
    src = init_student(path)
    a, b = arch_of(net), arch_of(src)
    if a.width != b.width or b.depth > a.depth or b.full_depth > a.full_depth:
        raise ConfigError(
            f"student.init {path} holds a student of width {b.width}, depth {b.depth}, "
            f"full_depth {b.full_depth}: expected width {a.width}, depth <= {a.depth}, "
            f"full_depth <= {a.full_depth}"
        )
    if a.space_to_depth != b.space_to_depth:
        raise ConfigError(
            f"student.init {path} has space_to_depth = {b.space_to_depth}: expected "
            f"{a.space_to_depth} (the same layout)"
        )
    if b.context and not a.context:
        raise ConfigError(f"student.init {path} has a context branch: expected context = true")
    if b.deblur and not a.deblur:
        raise ConfigError(
            f"student.init {path} has an inverse-filter stage: expected deblur = true"
        )
    state = dict(src.state_dict())
    added = {"context": a.context and not b.context, "deblur": a.deblur and not b.deblur}
    for name in (n for n, new in added.items() if new):
        # context: zero-initialised last conv, same function; deblur: picks the identity
        module = net.get_submodule(name)
        state.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    new = [f"body.{i}.0" for i in range(b.depth, a.depth)]
    new += [f"refine.{i}.0" for i in range(b.full_depth - 1, a.full_depth - 1)]
    for key in new:
        conv = cast(nn.Conv2d, net.get_submodule(key))
        state[f"{key}.weight"] = torch.nn.init.dirac_(torch.empty_like(conv.weight))
        state[f"{key}.bias"] = torch.zeros_like(cast(torch.Tensor, conv.bias))
    load_state(net, state, where=str(path))


AVERAGED_LAYOUT = ("width", "depth", "full_depth", "space_to_depth", "context")


def average_students(net: nn.Module, other: nn.Module, weight: float) -> None:
    """Set every weight of the student ``net`` that ``other`` has too to ``(1 - weight)`` times
    its own plus ``weight`` times ``other``'s; the rest (an inverse-filter stage ``other``
    lacks) stays ``net``'s. Both need the same layout (:data:`AVERAGED_LAYOUT`). Students
    fine-tuned one from the other lie close in weight space, so the average moves smoothly
    between their behaviours (a weight-space ensemble at the cost of one network)."""
    a, b = arch_of(net), arch_of(other)
    differ = [k for k in AVERAGED_LAYOUT if getattr(a, k) != getattr(b, k)]
    if a.kind != "student" or b.kind != "student" or differ:
        raise ConfigError(
            "student.average_with holds a network of another layout"
            + (f" ({', '.join(f'{k} {getattr(b, k)} vs {getattr(a, k)}' for k in differ)})")
            + ": expected a student of the same layout"
        )
    theirs = other.state_dict()
    state = {
        k: (1.0 - weight) * v + weight * theirs[k] if k in theirs and v.is_floating_point() else v
        for k, v in net.state_dict().items()
    }
    net.load_state_dict(state)


def save_weights(path: Path, net: nn.Module, record: dict[str, Any]) -> None:
    save_checkpoint(path, {"arch": arch_of(net).to_dict(), "state": net.state_dict(), **record})


def load_weights(path: str | Path, kind: str | None = None) -> tuple[EnhanceNet, dict[str, Any]]:
    """An enhancement network from a ``.pt`` written by :func:`save_weights`."""
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
    """Torch inference on one ``(H, W)`` image in ``[0, 1]`` (reflect-padded to the network's
    size multiple, cropped back) → ``[0, 1]``."""
    net.eval()
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None]
    x, h, w = pad_to_multiple(x, arch_of(net).size_multiple)
    y = net(x)[0, 0, :h, :w]
    return np.clip(y.numpy(), 0.0, 1.0).astype(np.float32)


def export_onnx(
    net: nn.Module,
    path: Path,
    sample: FloatArray | None = None,
    opset: int = OPSET,
    atol: float = PARITY_ATOL,
) -> float:
    """Export ``net`` (input ``image`` (B, 1, H, W) → ``enhanced``, dynamic batch and size) and
    check onnxruntime against PyTorch on ``sample`` and a random input of another size. Returns
    the largest absolute difference."""
    m = arch_of(net).size_multiple
    shape = (1, 1, 8 * m, 8 * m)
    x = np.random.default_rng(1).random(shape, np.float32) if sample is None else sample
    other = np.random.default_rng(0).uniform(0, 1, (2, 1, 12 * m, 10 * m)).astype(np.float32)
    return export_image_net(EnhanceDeploy(net), path, ("image", "enhanced"), x, other, opset, atol)


def condition_seed(split_base: int, index: int, severity: int, noise: int) -> int:
    """Seed of the degradation of held-out image ``index`` under one condition."""
    return int(split_base) * 7 + 1_009 * index + 101 * severity + 11 * noise + 5


def _val_scores(net: nn.Module, data: FrameSet) -> dict[str, float]:
    """Mean PSNR/SSIM against the targets over the three severities (Gaussian noise)."""
    from sonoedge.metrics import psnr, ssim

    ps, ss = [], []
    for s in range(len(data)):
        for k, sev in enumerate(SEVERITIES):
            seed = condition_seed(data.spec["seed_base"], s, k, 0)
            x, _ = degrade_patch(data.targets[s], seed, "gaussian", sev)
            out = predict(net, x)
            ps.append(psnr(data.targets[s], out, data_range=1.0))
            ss.append(ssim(data.targets[s], out, data_range=1.0))
    return {"psnr_db": round(float(np.mean(ps)), 3), "ssim": round(float(np.mean(ss)), 4)}


def _selector_target_text(lc: dict[str, Any]) -> str:
    scale = lc["deblur_target_sigma_scale"]
    return (
        f"{lc['deblur_target_weight']:g} cross-entropy of the inverse-filter stage's choice "
        "against the degradation's own PSF σ"
        + (f" × {scale:g}" if scale != 1.0 else "")
        + " and noise kind"
    )


def _loss_text(lc: dict[str, Any], source: str, distil: bool) -> str:
    return (
        f"{lc['l1_weight']:g} L1 + {lc['ssim_weight']:g} (1 - SSIM)"
        + (f" + {lc['grad_weight']:g} L1 of image gradients" if lc["grad_weight"] > 0 else "")
        + (f" + {lc['log_mse_weight']:g} mean log10 MSE per patch" if lc["log_mse_weight"] else "")
        + (f" + {_selector_target_text(lc)}" if lc["deblur_target_weight"] else "")
        + (
            f" + KD (weight {lc['kd_weight']:g}: L1 to the "
            + (f"output of the student {source}" if source else "teacher output")
            + f"; {lc['kd_feature_weight']:g}: MSE of a 1x1 adapter to the teacher's last "
            "decoder features)."
            if distil
            else "; no distillation in this run (KD weights 0)."
        )
    )


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
    """Write ``NAME.json`` (model card read by :func:`sonoedge.zoo.enhance.load`) and
    ``NAME.md``."""
    import hashlib

    a = arch_of(net)
    card: dict[str, Any] = {
        "name": name,
        "task": "enhance",
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
            "padding": "reflect (bottom/right) to a multiple of size_multiple, cropped back",
            "probes": cfg["data"]["probes"],
            "zoom_range": cfg["data"]["zoom"],
        },
        "output": {"name": "enhanced", "range": [0.0, 1.0], "meaning": "same scale as input"},
        "degradation": {
            "model": DEGRADATION,
            **cfg["degrade"],
            "targets": "NLLR-denoised simulated frames (no clean ground truth in any loss)",
        },
        "provenance": provenance(command, cfg, spec),
        "metrics": metrics,
        "run_dir": str(onnx_path.parent),
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    }
    if cfg["student"]["mix_share"]:
        card["provenance"]["mix_data_spec"] = data_spec(cfg, "mix", cfg["data"]["mix_n_train"])
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    ratio = card["teacher"]["macs_per_pixel"] / max(card["macs_per_pixel"], 1.0)
    dcfg, lc = cfg["degrade"], cfg["loss"]
    distil = lc["kd_weight"] > 0 or lc["kd_feature_weight"] > 0
    init, source = cfg["student"]["init"], cfg["student"].get("distill_from", "")
    trainable = cfg["student"]["trainable"]
    refit = trainable == "deblur"  # the stage's selector alone
    kept = trainable == "none"  # student.init as it is (averaged with another, or exported anew)
    average, share = cfg["student"]["average_with"], cfg["student"]["average_weight"]
    how = "self-supervised, no distillation"
    if distil:
        how = f"distilled from the student {source}" if source else "distilled"
    if init:
        how = f"from {init}" if kept else f"warm-started from {init}, then {how}"
    if average:
        how += f", weights averaged with {average}"
    md = [
        f"# {name} — blind enhancement student (deconvolution + denoising, {how})",
        "",
        "- Task: remove PSF blur and noise from a log-compressed B-mode image in [0, 1] without "
        "knowing the PSF (output on the same scale).",
        f"- Input: `image` float32 (batch, 1, H, W); H, W >= {a.receptive_field} (receptive "
        f"field); sizes that are not multiples of {a.size_multiple} are reflect-padded by the "
        "runtime and cropped back.",
        f"- Architecture: {a.to_dict()}: {card['parameters']} parameters, "
        f"{card['macs_per_pixel']:.0f} MACs/pixel ({ratio:.1f}x fewer than the Swin-Conv U-Net "
        f"teacher's {card['teacher']['macs_per_pixel']:.0f}); plain 3x3/2x2 convs and ReLU"
        + (
            " at 1/2, 1/4 and 1/8 resolution between a PixelUnshuffle(2) stem and a "
            "PixelShuffle(2) head (residual added at 1/2 resolution)"
            if a.space_to_depth
            else ""
        )
        + (
            ", whole-image context (spatial mean of the bottleneck features, 1x1 convs, "
            "per-channel offsets at every level)"
            if a.context
            else ""
        )
        + (
            ", after a blind inverse-filter stage (fixed separable 1-D Wiener inverses of "
            "Gaussian PSFs of σ 0.4–1.5 px, mixed per image and axis by a small MLP on the "
            "image's difference statistics; sonoedge.models.enhance.InverseFilterBank)"
            if a.deblur
            else ""
        )
        + f", ONNX opset {OPSET}.",
        *(
            [
                f"- Initialised from `{init}` (a student of the same width; convs, a context "
                "branch or an inverse-filter stage it lacks start as identities)"
                + (
                    "; not trained in this run (its own card says how it was trained)."
                    if kept
                    else f", then trained for {cfg['student']['steps']} steps at lr "
                    f"{cfg['student']['lr']:g}"
                    + (
                        ": only the inverse-filter stage's selector, the network frozen."
                        if refit
                        else "."
                    )
                )
            ]
            if init
            else []
        ),
        *(
            [
                f"- Weight average: {1.0 - share:g} x these weights + {share:g} x those of "
                f"`{average}`, for every weight both students have (weights only this one has, "
                "such as an inverse-filter stage, stay its own)."
            ]
            if average
            else []
        ),
        "- Training (self-supervised): NLLR-denoised simulated frames are the targets; inputs are "
        + (
            f"the whole frames (crop = frame size, {cfg['student']['batch_size']} per batch) "
            if cfg["student"]["crop"] == cfg["data"]["size"]
            else "patches of them "
        )
        + (
            "rotated by multiples of 90 degrees (exact)"
            if dcfg["rotate"] and dcfg["right_angles"]
            else "rotated by a random angle (bilinear)"
            if dcfg["rotate"]
            else "as they are"
        )
        + ", flipped, and degraded by a Gaussian PSF surrogate with random anisotropic widths and "
        "additive Gaussian noise or a Fourier-domain magnitude/phase perturbation (severity "
        f"{dcfg['severity']}"
        + (f" drawn as u^{dcfg['severity_power']:g}" if dcfg["severity_power"] != 1.0 else "")
        + (
            f"; frames of {'/'.join(REFLECTOR_PHANTOMS)} at most {cap:g}"
            if (cap := dcfg.get("reflector_severity_max", 1.0)) < dcfg["severity"][1]
            else ""
        )
        + f", Fourier with probability {dcfg['fourier_prob']}"
        + ("; blur severity drawn apart from the noise's" if dcfg["independent_blur"] else "")
        + (
            f"; with probability {wp:g} the whole frame degraded before the cut"
            if (wp := dcfg.get("whole_frame_prob", 0.0))
            else ""
        )
        + "). Loss: "
        + (
            _selector_target_text(lc) + " alone; the network frozen as initialised."
            if refit
            else _loss_text(lc, source, distil)
        ),
        f"- Data: {spec['n_images']} simulated {spec['size']}x{spec['size']} frames ({GENERATOR})"
        f" over probes {', '.join(spec['probes'])}; phantoms {sorted(set(spec['phantoms']))}; "
        f"zoom {spec['zoom']}; display range low {spec['db_low']} dB, high {spec['db_high']} dB; "
        f"seed {cfg['seed']}."
        + (
            f" A share {cfg['student']['mix_share']:g} of the student's steps instead takes "
            f"{cfg['student']['mix_batch_size']} whole {cfg['data']['mix_size']}-px frame(s) from "
            f"{cfg['data']['mix_n_train']} more, drawn the same way over the same field of view."
            if cfg["student"]["mix_share"]
            else ""
        ),
        f"- Command: `{command}` at commit {card['provenance']['commit']}.",
        f"- Validation metrics: {json.dumps(metrics)}",
        "- Held-out evaluation: docs/results/enhance.json (`sonoedge eval enhance --model "
        f"{name}`).",
        "",
        "Run it without torch: `sonoedge.zoo.enhance.load(path).enhance(image)`, or "
        f"`sonoedge process IMAGE --op enhance --method {name}`.",
    ]
    if kept:  # no training or data of its own: the init's card says how it was trained
        md = [line for line in md if not line.startswith(("- Training", "- Data:"))]
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
    """Train the teacher and the distilled student into ``out_dir``; returns the exported
    student ONNX path. A ``teacher.pt`` already in ``out_dir`` is reused; a student that does not
    distil from the teacher (KD weights 0, or ``student.distill_from``) trains without one."""
    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or Path("runs") / "cache"
    d = cfg["data"]
    train_spec = data_spec(cfg, "train", d["n_train"])
    val_spec = data_spec(cfg, "val", d["n_val"])
    mix_spec = data_spec(cfg, "mix", d["mix_n_train"]) if cfg["student"]["mix_share"] else None
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    (out_dir / "data_spec.json").write_text(
        json.dumps({"train": train_spec, "val": val_spec, "mix": mix_spec}, indent=2) + "\n",
        encoding="utf-8",
    )
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    data = build_set(train_spec, cache, progress)
    val = build_set(val_spec, cache, progress)
    mix = build_set(mix_spec, cache, progress) if mix_spec else None
    times["data"] = round(time.perf_counter() - t0, 1)
    record = {"config": cfg, "data_spec": train_spec, "mix_data_spec": mix_spec, "command": command}

    teacher_pt = out_dir / "teacher.pt"
    # a student that distils from nothing or from another student never runs the teacher: its
    # architecture alone gives the card's MAC ratio, and no teacher is trained for it
    lc = cfg["loss"]
    needs_teacher = (lc["kd_weight"] > 0 or lc["kd_feature_weight"] > 0) and not cfg["student"][
        "distill_from"
    ]
    teacher_trained = True
    if teacher_pt.exists():
        teacher, saved = load_weights(teacher_pt, "teacher")
        if "train_s" in saved:
            times["teacher"] = saved["train_s"]
    elif not needs_teacher:
        teacher, teacher_trained = build(arch(cfg, "teacher")), False
    else:
        t0 = time.perf_counter()
        teacher = train_teacher(cfg, data, out_dir / "teacher.ckpt", progress, stop_after)
        times["teacher"] = round(time.perf_counter() - t0, 1)
        save_weights(teacher_pt, teacher, {**record, "train_s": times["teacher"]})
    student_pt = out_dir / "student.pt"
    if student_pt.exists():
        student, saved = load_weights(student_pt, "student")
        if "train_s" in saved:
            times["student"] = saved["train_s"]
    else:
        t0 = time.perf_counter()
        s_cfg = cfg["student"]
        source = s_cfg["distill_from"]
        for key in ("distill_from", "init", "average_with"):
            if s_cfg[key] and not Path(s_cfg[key]).is_file():
                raise ConfigError(
                    f"config key 'student.{key}' = {s_cfg[key]!r}: no such file",
                    hint='give a student.pt or an exported .onnx with its card beside it, or ""',
                )
        if s_cfg["trainable"] == "none":
            student = build(arch(cfg, "student"))
            warm_start(student, Path(s_cfg["init"]))
        else:
            kd_net = init_student(Path(source)) if source else teacher
            student = train_student(
                cfg, data, kd_net, out_dir / "student.ckpt", progress, stop_after, mix
            )
        if s_cfg["average_with"]:
            other = init_student(Path(s_cfg["average_with"]))
            average_students(student, other, float(s_cfg["average_weight"]))
        times["student"] = round(time.perf_counter() - t0, 1)
        save_weights(student_pt, student, {**record, "train_s": times["student"]})
    metrics: dict[str, Any] = {
        "val_student": _val_scores(student, val),
        **({"val_teacher": _val_scores(teacher, val)} if teacher_trained else {}),
        "val_images": len(val),
        "train_s": times,
    }
    onnx_path = out_dir / f"{MODEL_NAME}.onnx"
    m = arch_of(student).size_multiple
    h = val.frames.shape[1] - val.frames.shape[1] % m
    sample = np.ascontiguousarray(val.targets[:1, None, :h, :h])
    metrics["export_parity_max_abs"] = export_onnx(student, onnx_path, sample=sample)
    write_card(onnx_path, MODEL_NAME, student, teacher, cfg, train_spec, metrics, command)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return onnx_path


# --------------------------------------------------------------------------- evaluation


BASELINE_GRID = {
    "wiener": (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
    "richardson_lucy": (1, 2, 3, 5, 10, 20, 30, 50),
}
NLM_GRID = (0.0, 5.0, 10.0, 20.0, 35.0, 50.0, 70.0, 100.0)
"""Parameter grids searched per condition; the chosen values are reported with a flag when they
sit at an end of their grid (the search may not have found the optimum)."""
BLIND_SIGMA_GRID = (0.3, 0.5, 0.75, 1.0, 1.4, 1.9, 2.5)
"""Isotropic PSF σ (px) searched per condition for the blind baselines (the degradation draws
σ in 0.3..0.5 + 2.5 × severity px per axis)."""


def _grids(quick: bool) -> tuple[dict[str, tuple[float, ...]], tuple[float, ...]]:
    """Deconvolution parameter grids per baseline and the NLM grid (two values each when
    ``quick``)."""
    grid_p = {k: v[1:3] if quick else v for k, v in BASELINE_GRID.items()}
    return grid_p, NLM_GRID[1:3] if quick else NLM_GRID


Case = tuple[FloatArray, Sequence[float], FloatArray]
"""A degraded frame, the true PSF σ (px) it was blurred with, and its target."""


def _val_cases(val: FrameSet, quick: bool) -> Iterator[tuple[str, list[Case]]]:
    """Per condition (``severity/noise``), the validation frames degraded as the held-out ones."""
    n = 1 if quick else len(val)
    for k, sev in enumerate(SEVERITIES):
        for j, noise in enumerate(NOISES):
            cases: list[Case] = []
            for s in range(n):
                seed = condition_seed(val.spec["seed_base"], s, k, j)
                x, info = degrade_patch(val.targets[s], seed, noise, sev)
                cases.append((x, info["blur_sigma_px"], val.targets[s]))
            yield f"{sev}/{noise}", cases


def _mean_psnr(
    cases: list[Case], kind: str, param: float, h: float, sigma_px: float | None = None
) -> float:
    """Mean PSNR of a baseline over ``cases``: with each frame's true PSF, or an isotropic one
    of σ ``sigma_px``."""
    from sonoedge.metrics import psnr

    return float(
        np.mean(
            [
                psnr(
                    y,
                    deconvolve_nlm(kind, x, sg if sigma_px is None else (sigma_px,) * 2, param, h),
                    1.0,
                )
                for x, sg, y in cases
            ]
        )
    )


def tune_baselines(val: FrameSet, quick: bool = False) -> dict[str, dict[str, Any]]:
    """Per condition, the deconvolution parameter and NLM strength that maximise PSNR against
    the targets on the validation frames (oracle PSF: the true blur of each degraded image)."""
    grid_p, grid_h = _grids(quick)
    out: dict[str, dict[str, Any]] = {}
    for cond, cases in _val_cases(val, quick):
        best: dict[str, Any] = {}
        for kind, params in grid_p.items():
            scores = {(p, hh): _mean_psnr(cases, kind, p, hh) for p in params for hh in grid_h}
            p_best, h_best = max(scores, key=lambda key: scores[key])
            best[kind] = {
                "param": p_best,
                "nlm_h": h_best,
                "val_psnr_db": round(scores[(p_best, h_best)], 3),
                "at_grid_edge": bool(
                    p_best in (params[0], params[-1]) or h_best in (grid_h[0], grid_h[-1])
                ),
            }
        out[cond] = best
    return out


def tune_blind_baselines(
    val: FrameSet, oracle: dict[str, dict[str, Any]], quick: bool = False
) -> dict[str, dict[str, Any]]:
    """The classical pipelines as a user without the true PSF would run them: per condition one
    isotropic PSF σ (searched jointly with NSR or iterations, at the oracle-tuned NLM strength),
    then NSR or iterations and NLM strength re-searched at that σ; PSNR against the validation
    targets."""
    grid_p, grid_h = _grids(quick)
    grid_s = BLIND_SIGMA_GRID[2:4] if quick else BLIND_SIGMA_GRID
    out: dict[str, dict[str, Any]] = {}
    for cond, cases in _val_cases(val, quick):
        best: dict[str, Any] = {}
        for kind, params in grid_p.items():
            h0 = oracle[cond][kind]["nlm_h"]
            first = {(sg, p): _mean_psnr(cases, kind, p, h0, sg) for sg in grid_s for p in params}
            sigma = max(first, key=lambda key: first[key])[0]
            scores = {
                (p, hh): _mean_psnr(cases, kind, p, hh, sigma) for p in params for hh in grid_h
            }
            p_best, h_best = max(scores, key=lambda key: scores[key])
            best[kind] = {
                "sigma_px": sigma,
                "param": p_best,
                "nlm_h": h_best,
                "val_psnr_db": round(scores[(p_best, h_best)], 3),
                "at_grid_edge": bool(
                    sigma in (grid_s[0], grid_s[-1])
                    or p_best in (params[0], params[-1])
                    or h_best in (grid_h[0], grid_h[-1])
                ),
            }
        out[cond] = best
    return out


def _peaks(reference: FloatArray, min_value: float = 0.5, radius: int = 6) -> list[tuple[int, int]]:
    """Local maxima of ``reference`` above ``min_value``, at least ``radius`` px from the border
    and from one another."""
    import cv2

    dil = cv2.dilate(reference, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    zz, xx = np.nonzero((reference >= dil) & (reference > min_value))
    h, w = reference.shape
    out: list[tuple[int, int]] = []
    for z, x in zip(zz.tolist(), xx.tolist(), strict=True):
        inside = radius * 2 <= z < h - radius * 2 and radius * 2 <= x < w - radius * 2
        if inside and all(abs(z - a) > radius or abs(x - b) > radius for a, b in out):
            out.append((z, x))
    return out


def point_scores(image: FloatArray, peak: tuple[int, int], half: int = 10) -> dict[str, float]:
    """Axial and lateral FWHM (px) of one point target (profiles through the brightest pixel
    within 2 px of ``peak``, window median subtracted) and the largest gradient magnitude in
    the window (px⁻¹); NaN widths when a profile does not fall to half its height."""
    from sonoedge.errors import DataError
    from sonoedge.metrics import fwhm

    z, x = peak
    h, w = image.shape
    z0, z1, x0, x1 = max(0, z - half), min(h, z + half + 1), max(0, x - half), min(w, x + half + 1)
    win = image[z0:z1, x0:x1].astype(np.float64)
    win = win - float(np.median(win))
    near = win[z - z0 - 2 : z - z0 + 3, x - x0 - 2 : x - x0 + 3]
    dz, dx = np.unravel_index(int(np.argmax(near)), near.shape)
    pz, px = z - z0 - 2 + int(dz), x - x0 - 2 + int(dx)
    res: dict[str, float] = {}
    for key, prof in (("fwhm_axial_px", win[:, px]), ("fwhm_lateral_px", win[pz, :])):
        try:
            res[key] = fwhm(prof)
        except DataError:
            res[key] = float("nan")
    gz, gx = np.gradient(image[z0:z1, x0:x1].astype(np.float64))
    res["peak_gradient"] = float(np.max(np.hypot(gz, gx)))
    return res


def edge_radius_px(image: FloatArray, centre: tuple[float, float], radius: float) -> float:
    """Radius (px) where the radially averaged profile of a round lesion crosses halfway between
    the lesion interior and the surrounding ring (the edge position; erosion moves it)."""
    h, w = image.shape
    zz, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(zz - centre[0], xx - centre[1]).ravel()
    step = 0.25
    edges = np.arange(0.0, 2.0 * radius, step)
    idx = np.digitize(r, edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], weights=image.ravel()[ok], minlength=len(edges))
    counts = np.bincount(idx[ok], minlength=len(edges))
    valid = counts > 0
    prof, rad = sums[valid] / counts[valid], (edges + step / 2)[valid]
    lo = float(np.mean(prof[rad < 0.6 * radius]))
    hi = float(np.mean(prof[(rad > 1.4 * radius) & (rad < 1.9 * radius)]))
    if not hi > lo:
        return float("nan")
    band = (rad > 0.4 * radius) & (rad < 1.6 * radius)
    rb, nb = rad[band], (prof[band] - lo) / (hi - lo)
    above = np.nonzero(nb >= 0.5)[0]
    if above.size == 0 or above[0] == 0:
        return float("nan")
    j = int(above[0])
    return float(rb[j - 1] + (0.5 - nb[j - 1]) / (nb[j] - nb[j - 1]) * (rb[j] - rb[j - 1]))


def _mean(values: Sequence[float]) -> float:
    arr = np.asarray(values, np.float64)
    arr = arr[np.isfinite(arr)]
    return round(float(arr.mean()), 4) if arr.size else float("nan")


def _timing(fn: Callable[[FloatArray], Any], img: FloatArray, reps: int) -> dict[str, float]:
    for _ in range(3):
        fn(img)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(img)
        ts.append(time.perf_counter() - t0)
    arr = 1e3 * np.asarray(ts)
    return {
        "median_ms": round(float(np.median(arr)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
    }


def _latency(
    model: Any,
    teacher: nn.Module | None,
    tuned: dict[str, dict[str, Any]],
    ensemble: int,
    reps: int,
) -> dict[str, Any]:
    """Wall time for one 256×256 image on 2 threads, warmed up: the student (onnxruntime, incl.
    checks and padding; and its self-ensemble of ``ensemble`` copies if > 1), Wiener+NLM and
    RL+NLM (moderate-severity parameters, σ 1.5 px PSF), the teacher (torch)."""
    import cv2

    cv2.setNumThreads(2)
    img = np.random.default_rng(0).uniform(0.2, 0.8, (256, 256)).astype(np.float32)
    mod = tuned["moderate/gaussian"]
    w, r = mod["wiener"], mod["richardson_lucy"]
    fns: dict[str, Callable[[FloatArray], Any]] = {
        "student": model.enhance,
        "wiener_nlm": lambda im: deconvolve_nlm("wiener", im, (1.5, 1.5), w["param"], w["nlm_h"]),
        "rl_nlm": lambda im: deconvolve_nlm(
            "richardson_lucy", im, (1.5, 1.5), r["param"], r["nlm_h"]
        ),
    }
    if ensemble > 1:
        fns[ENSEMBLE] = lambda im: model.enhance(im, ensemble)
    out: dict[str, Any] = {"size": "256x256", "threads": 2, "reps": reps, "warmup": 3}
    for key, fn in fns.items():
        out[key] = _timing(fn, img, reps)
    if teacher is not None:
        prev = torch.get_num_threads()
        torch.set_num_threads(2)
        out["teacher_torch"] = _timing(lambda im: predict(teacher, im), img, max(3, reps // 5))
        torch.set_num_threads(prev)
    s = out["student"]["median_ms"]
    out["student_speedup_vs_wiener_nlm"] = round(out["wiener_nlm"]["median_ms"] / s, 2)
    out["student_speedup_vs_rl_nlm"] = round(out["rl_nlm"]["median_ms"] / s, 2)
    return out


def _find(onnx_path: Path, card: dict[str, Any], name: str) -> Path | None:
    for cand in (onnx_path.parent / name, Path(card.get("run_dir", "")) / name):
        if cand.is_file():
            return cand
    return None


def evaluate(
    model_paths: Sequence[str],
    cfg: dict[str, Any] | None,
    results_dir: Path,
    name: str = "enhance",
    quick: bool = False,
    command: str | None = None,
    progress: Any = None,
    cache_dir: Path | None = None,
    teacher_path: str | None = None,
    plus_path: str | Path | None = "/work/shared/data/plus/NwirePhantomFreehand.igs.mha",
) -> dict[str, Any]:
    """Score the student (onnxruntime), its teacher (torch, ``teacher.pt`` beside the model),
    Wiener+NLM and Richardson–Lucy+NLM (oracle PSF, parameters tuned per condition on validation
    frames; and blind, with one PSF per condition tuned the same way) on held-out degraded frames
    per severity and noise kind (PSNR/SSIM), point targets
    (FWHM, peak gradient), cyst edges (erosion), real PLUS frames (no-reference) and latency.
    Writes ``<results_dir>/<name>.json`` and ``<name>.png``."""
    from sonoedge import zoo
    from sonoedge.bench.results import write_result
    from sonoedge.metrics import false_bright_fraction, psnr, ssim
    from sonoedge.train.despeckle import edge_width_px, lesion_masks
    from sonoedge.zoo.enhance import EnhanceModel

    if not model_paths:
        raise ConfigError("eval needs at least one --model")
    onnx_path = zoo.resolve(model_paths[0])
    card = zoo.read_card(onnx_path)
    if card["task"] != "enhance":
        raise ConfigError(f"{onnx_path} is a {card['task']!r} model: expected an 'enhance' model")
    head = EnhanceModel(onnx_path, card, threads=2)
    if cfg is None:  # the model's training config, keys added since then at their defaults
        cfg = cfgmod.merge(cfgmod.load("enhance"), card["provenance"]["config"])
        if quick:
            cfg = cfgmod.merge(
                cfg,
                {
                    "eval": {
                        "n_images": 1,
                        "n_points": 1,
                        "n_cyst": 1,
                        "size": 64,
                        "n_full_frames": 2,
                        "full_frame_size": 64,
                    }
                },
            )
    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    cache = cache_dir or Path("runs") / "cache"
    e = cfg["eval"]
    ev = build_set(data_spec(cfg, "eval", e["n_images"]), cache, progress)
    val = build_set(data_spec(cfg, "val", cfg["data"]["n_val"]), cache, progress)
    pts = build_set(data_spec(cfg, "points", e["n_points"]), cache, progress)
    cys = build_set(data_spec(cfg, "cyst", e["n_cyst"]), cache, progress)
    tuned = tune_baselines(val, quick)
    blind = tune_blind_baselines(val, tuned, quick)
    ensemble = int(e["self_ensemble"])

    tpath = Path(teacher_path) if teacher_path else _find(onnx_path, card, "teacher.pt")
    teacher = load_weights(tpath, "teacher")[0] if tpath else None

    def methods_for(
        cond: str | None, sigma: Sequence[float]
    ) -> dict[str, Callable[[FloatArray], FloatArray]]:
        key = cond or "light/gaussian"
        w, r = tuned[key]["wiener"], tuned[key]["richardson_lucy"]
        bw, br = blind[key]["wiener"], blind[key]["richardson_lucy"]
        sw, sr = (bw["sigma_px"],) * 2, (br["sigma_px"],) * 2
        fns: dict[str, Callable[[FloatArray], FloatArray]] = {
            "wiener_nlm": lambda im: deconvolve_nlm("wiener", im, sigma, w["param"], w["nlm_h"]),
            "rl_nlm": lambda im: deconvolve_nlm(
                "richardson_lucy", im, sigma, r["param"], r["nlm_h"]
            ),
            "wiener_nlm_blind": lambda im: deconvolve_nlm(
                "wiener", im, sw, bw["param"], bw["nlm_h"]
            ),
            "rl_nlm_blind": lambda im: deconvolve_nlm(
                "richardson_lucy", im, sr, br["param"], br["nlm_h"]
            ),
        }
        if teacher is not None:
            fns["teacher"] = lambda im: predict(teacher, im)
        fns["student"] = head.enhance
        if ensemble > 1:
            fns[ENSEMBLE] = lambda im: head.enhance(im, ensemble)
        return fns

    # ---- held-out frames per severity and noise kind
    shown = int(np.argmax(ev.targets.reshape(len(ev), -1).std(axis=1)))  # most structure
    per_cond: dict[str, dict[str, dict[str, float]]] = {}
    examples: list[dict[str, Any]] = []
    for k, sev in enumerate(SEVERITIES):
        for j, noise in enumerate(NOISES):
            cond = f"{sev}/{noise}"
            rows: dict[str, dict[str, list[float]]] = {}
            stacks: dict[str, list[FloatArray]] = {}  # outputs per method, for false_bright
            for s in range(len(ev)):
                y = ev.targets[s]
                x, info = degrade_patch(
                    y, condition_seed(ev.spec["seed_base"], s, k, j), noise, sev
                )
                outs = {"input": x}
                outs.update(
                    {m: fn(x) for m, fn in methods_for(cond, info["blur_sigma_px"]).items()}
                )
                for m, out in outs.items():
                    row = rows.setdefault(m, {})
                    row.setdefault("psnr_db", []).append(psnr(y, out, 1.0))
                    row.setdefault("ssim", []).append(ssim(y, out, 1.0))
                    stacks.setdefault(m, []).append(out)
                if s == shown and sev == "heavy":
                    examples.append({"title": f"heavy, {noise} noise", **outs, "target": y})
            per_cond[cond] = {m: {q: _mean(v) for q, v in row.items()} for m, row in rows.items()}
            for m, outs_m in stacks.items():
                made_up = false_bright_fraction(np.stack(outs_m), ev.targets)
                if not np.isnan(made_up):  # nan: no dark pixel in these frames
                    per_cond[cond][m]["false_bright"] = round(made_up, 5)
    methods = [m for m in per_cond[f"{SEVERITIES[0]}/{NOISES[0]}"] if m != "input"]
    per_sev: dict[str, dict[str, dict[str, float]]] = {}
    margins: dict[str, dict[str, float]] = {}
    for sev in SEVERITIES:
        conds = [per_cond[f"{sev}/{n}"] for n in NOISES]
        per_sev[sev] = {
            m: {q: _mean([c[m][q] for c in conds]) for q in ("psnr_db", "ssim")}
            for m in ["input", *methods]
        }
        srow = per_sev[sev]
        best_base = max(srow["wiener_nlm"]["psnr_db"], srow["rl_nlm"]["psnr_db"])
        best_blind = max(srow["wiener_nlm_blind"]["psnr_db"], srow["rl_nlm_blind"]["psnr_db"])
        margins[sev] = {
            "student_vs_input_db": round(srow["student"]["psnr_db"] - srow["input"]["psnr_db"], 3),
            "student_vs_best_baseline_db": round(srow["student"]["psnr_db"] - best_base, 3),
            "student_vs_best_baseline_ssim": round(
                srow["student"]["ssim"] - max(srow["wiener_nlm"]["ssim"], srow["rl_nlm"]["ssim"]), 4
            ),
            "student_vs_best_blind_baseline_db": round(srow["student"]["psnr_db"] - best_blind, 3),
        }
        if ENSEMBLE in srow:
            ens = srow[ENSEMBLE]["psnr_db"]
            margins[sev].update(
                {
                    "ensemble_vs_input_db": round(ens - srow["input"]["psnr_db"], 3),
                    "ensemble_vs_best_baseline_db": round(ens - best_base, 3),
                    "ensemble_vs_best_blind_baseline_db": round(ens - best_blind, 3),
                    "ensemble_gain_db": round(ens - srow["student"]["psnr_db"], 3),
                }
            )
        if "teacher" in srow:
            margins[sev]["teacher_minus_student_db"] = round(
                srow["teacher"]["psnr_db"] - srow["student"]["psnr_db"], 3
            )
    overall = {
        m: {q: _mean([per_cond[c][m][q] for c in per_cond]) for q in ("psnr_db", "ssim")}
        for m in ["input", *methods]
    }

    # ---- point targets: FWHM and peak gradient
    pt_rows: dict[str, dict[str, dict[str, list[float]]]] = {}
    for s in range(len(pts)):
        ref = pts.clean[s]
        x, _ = degrade_patch(ref, 90_001 + s, "gaussian", "light", POINT_BLUR_PX)
        cases = {"degraded": x, "native": ref}
        for case, inp in cases.items():
            imgs = {"reference": ref, "input": inp}
            imgs.update(
                {
                    m: fn(inp)
                    for m, fn in methods_for(
                        "light/gaussian", POINT_BLUR_PX if case == "degraded" else (0.3, 0.3)
                    ).items()
                }
            )
            if s == 0 and case == "degraded":
                examples.append(
                    {
                        "title": "point targets (blur 1.5 px, light noise)",
                        **{k2: v for k2, v in imgs.items() if k2 != "reference"},
                        "target": ref,
                    }
                )
            for peak in _peaks(ref):
                scores = {m: point_scores(im, peak) for m, im in imgs.items()}
                for m, sc in scores.items():
                    for q, v in sc.items():
                        pt_rows.setdefault(case, {}).setdefault(m, {}).setdefault(q, []).append(v)
    points: dict[str, Any] = {}
    for case, rows in pt_rows.items():
        agg = {m: {q: _mean(v) for q, v in row.items()} for m, row in rows.items()}
        for sc in agg.values():
            inp = agg["input"]
            fw_in = (inp["fwhm_axial_px"] + inp["fwhm_lateral_px"]) / 2
            fw = (sc["fwhm_axial_px"] + sc["fwhm_lateral_px"]) / 2
            sc["fwhm_mean_px"] = round(fw, 4)
            sc["fwhm_change_vs_input"] = round(fw / fw_in - 1.0, 4)
            sc["peak_gradient_change_vs_input"] = round(
                sc["peak_gradient"] / inp["peak_gradient"] - 1.0, 4
            )
        points[case] = agg
    points["n_targets"] = len(pt_rows.get("degraded", {}).get("input", {}).get("peak_gradient", []))

    # ---- cyst edges: erosion (edge position) and edge width
    edge_rows: dict[str, dict[str, list[float]]] = {}
    for s in range(len(cys)):
        ref = cys.clean[s]
        _, _, centre, radius = lesion_masks(cys.echo_db[s])
        x, _ = degrade_patch(ref, 80_001 + s, "gaussian", "light", POINT_BLUR_PX)
        imgs = {"reference": ref, "input": x}
        imgs.update({m: fn(x) for m, fn in methods_for("light/gaussian", POINT_BLUR_PX).items()})
        r_ref = edge_radius_px(ref, centre, radius)
        for m, im in imgs.items():
            row = edge_rows.setdefault(m, {})
            row.setdefault("edge_shift_px", []).append(edge_radius_px(im, centre, radius) - r_ref)
            row.setdefault("edge_width_px", []).append(edge_width_px(im, centre, radius))
    edges = {m: {q: _mean(v) for q, v in row.items()} for m, row in edge_rows.items()}

    real = _real_frames(methods_for("light/gaussian", (1.0, 1.0)), plus_path, quick)
    full_methods: dict[str, Callable[[FloatArray], FloatArray]] = {"student": head.enhance}
    if ensemble > 1:
        full_methods[ENSEMBLE] = lambda im: head.enhance(im, ensemble)
    full, _ = full_frame_scores(
        full_methods,
        int(e["n_full_frames"]),
        int(e["full_frame_size"]),
        SPLIT_SEED_BASE["full"] + 10_007 * int(cfg["seed"]),
    )
    latency = _latency(head, teacher, tuned, ensemble, reps=3 if quick else 30)

    t_macs = card.get("teacher", {}).get("macs_per_pixel")
    s_macs = card.get("macs_per_pixel")
    size_b = onnx_path.stat().st_size
    heavy = margins["heavy"]
    gap = {sev: margins[sev].get("teacher_minus_student_db") for sev in SEVERITIES}
    gap_all = (
        round(overall["teacher"]["psnr_db"] - overall["student"]["psnr_db"], 3)
        if "teacher" in overall
        else None
    )
    pd = points.get("degraded", {}).get("student", {})
    ed = edges.get("student", {})
    margins_widen = [margins[s]["student_vs_best_baseline_db"] for s in SEVERITIES]
    blind_margins = [margins[s]["student_vs_best_blind_baseline_db"] for s in SEVERITIES]
    metrics: dict[str, Any] = {
        "student": card.get("name", onnx_path.stem),
        "psnr_ssim_per_condition": per_cond,
        "psnr_ssim_per_severity": per_sev,
        "psnr_ssim_overall": overall,
        "margins_per_severity": margins,
        "point_targets": points,
        "cyst_edges": edges,
        "real_frames_no_reference": real,
        "full_frames": full,
        "latency": latency,
        "macs_per_pixel": {"student": s_macs, "teacher": t_macs},
        "teacher_over_student_macs": round(t_macs / s_macs, 2) if t_macs and s_macs else None,
        "parameters": {
            "student": card.get("parameters"),
            "teacher": count_parameters(teacher) if teacher is not None else None,
        },
        "targets": {
            "heavy_student_vs_input_db": heavy["student_vs_input_db"],
            "heavy_ge_3db_over_input": bool(heavy["student_vs_input_db"] >= 3.0),
            "student_vs_best_baseline_db_per_severity": dict(
                zip(SEVERITIES, margins_widen, strict=True)
            ),
            "ge_1db_over_wiener_rl_nlm_every_severity": bool(min(margins_widen) >= 1.0),
            "ge_1db_over_wiener_rl_nlm_overall": bool(
                overall["student"]["psnr_db"]
                - max(overall["wiener_nlm"]["psnr_db"], overall["rl_nlm"]["psnr_db"])
                >= 1.0
            ),
            "margins_widen_with_severity": bool(all(np.diff(margins_widen) > 0)),
            "student_vs_best_blind_baseline_db_per_severity": dict(
                zip(SEVERITIES, blind_margins, strict=True)
            ),
            "ge_1db_over_blind_wiener_rl_nlm_every_severity": bool(min(blind_margins) >= 1.0),
            "point_fwhm_change": pd.get("fwhm_change_vs_input"),
            "point_fwhm_reduced_ge_20pct": bool(pd.get("fwhm_change_vs_input", 0.0) <= -0.20),
            "point_peak_gradient_up": bool(pd.get("peak_gradient_change_vs_input", 0.0) > 0),
            "edge_shift_px": ed.get("edge_shift_px"),
            "no_edge_erosion_le_1px": bool(abs(ed.get("edge_shift_px", float("nan"))) <= 1.0),
            "teacher_minus_student_db_per_severity": gap,
            "teacher_minus_student_db_overall": gap_all,
            "within_0.5db_of_teacher": bool(gap_all is not None and gap_all <= 0.5),
            "teacher_macs_ge_8x_student": bool(t_macs and s_macs and t_macs >= 8 * s_macs),
            "onnx_size_bytes": size_b,
            "onnx_le_5mb": bool(size_b <= 5 * 1024 * 1024),
            **_ensemble_targets(margins, points, edges, ensemble),
        },
        "n_heldout_per_condition": len(ev),
        "n_point_phantoms": len(pts),
        "n_cyst_phantoms": len(cys),
        "held_out": "disjoint seeds from training/validation; same simulator ranges; references "
        "are the NLLR targets of the held-out frames, degraded by "
        f"{DEGRADATION} at each severity (light/moderate/heavy) with Gaussian or Fourier noise",
        "baselines_tuned_on_val": tuned,
        "blind_baselines_tuned_on_val": blind,
        "notes": "Baselines get the oracle PSF (the true blur σ of each degraded image) and their "
        "NSR / RL iterations / NLM strength tuned per condition on validation frames; the "
        "student and teacher are blind. The *_blind baselines are blind too: one isotropic PSF σ "
        "per condition, tuned on the validation frames with the other parameters. Point targets "
        "and cyst edges use the simulator's "
        f"speckle-free image, blurred by an extra Gaussian PSF of σ {POINT_BLUR_PX} px with light "
        "Gaussian noise ('degraded'; 'native' = the image as simulated); FWHM in px of the "
        "[0, 1] log image with the window median subtracted. Edge shift: change of the 50 % "
        "crossing radius of the cyst's radial profile vs the reference (erosion moves it). "
        "false_bright: share of the target's pixels below 0.05 that a method shows above 0.25 "
        "(made-up structure in anechoic regions), pooled over a condition's frames. "
        "The teacher runs in torch, the student in onnxruntime.",
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    _panel(examples, ["input", *methods, "target"], results_dir / f"{name}.png")
    write_result(
        name,
        metrics,
        {"classical": tuned, "classical_blind": blind},
        command=command,
        results_dir=results_dir,
    )
    return metrics


def _ensemble_targets(
    margins: dict[str, dict[str, float]],
    points: dict[str, Any],
    edges: dict[str, dict[str, float]],
    ensemble: int,
) -> dict[str, Any]:
    """The quality targets again for the student's self-ensemble (empty when it is off)."""
    if ensemble <= 1:
        return {}
    oracle = [margins[s]["ensemble_vs_best_baseline_db"] for s in SEVERITIES]
    blind = [margins[s]["ensemble_vs_best_blind_baseline_db"] for s in SEVERITIES]
    pd = points.get("degraded", {}).get(ENSEMBLE, {})
    return {
        "ensemble": {
            "self_ensemble": ensemble,
            "heavy_vs_input_db": margins["heavy"]["ensemble_vs_input_db"],
            "vs_best_baseline_db_per_severity": dict(zip(SEVERITIES, oracle, strict=True)),
            "ge_1db_over_wiener_rl_nlm_every_severity": bool(min(oracle) >= 1.0),
            "margins_widen_with_severity": bool(all(np.diff(oracle) > 0)),
            "vs_best_blind_baseline_db_per_severity": dict(zip(SEVERITIES, blind, strict=True)),
            "ge_1db_over_blind_wiener_rl_nlm_every_severity": bool(min(blind) >= 1.0),
            "point_fwhm_change": pd.get("fwhm_change_vs_input"),
            "point_peak_gradient_change": pd.get("peak_gradient_change_vs_input"),
            "edge_shift_px": edges.get(ENSEMBLE, {}).get("edge_shift_px"),
        }
    }


def full_frame_scores(
    methods: Mapping[str, Callable[[FloatArray], FloatArray]], n_frames: int, size: int, seed: int
) -> tuple[dict[str, Any], dict[str, FloatArray]]:
    """PSNR and made-up bright structure (:func:`sonoedge.metrics.false_bright_fraction`) of
    ``methods`` (and the input) on ``n_frames`` simulated frames of ``size`` px at the simulator's
    own display range, degraded at uniform severity: what a deployed student sees. The held-out
    sets of :func:`evaluate` are 128-px frames over the training display ranges, and a candidate
    once matched its predecessor there while inventing bright blobs from noise in anechoic
    regions of these frames. Returns the scores and the stacked outputs (with ``target``)."""
    from sonoedge.metrics import false_bright_fraction, psnr
    from sonoedge.quantization.data import degraded

    ds = degraded(n_frames, size=size, seed=seed)
    assert ds.targets is not None  # degraded() always returns its targets
    targets = np.stack([t[0, 0] for t in ds.targets])
    inputs = np.stack([x[0, 0] for x in ds.inputs])
    outputs = {"input": inputs}
    outputs.update({k: np.stack([fn(x) for x in inputs]) for k, fn in methods.items()})
    per_frame = {
        k: [round(psnr(t, o, 1.0), 3) for t, o in zip(targets, v, strict=True)]
        for k, v in outputs.items()
    }
    scores = {
        "n_frames": n_frames,
        "size": size,
        "seed": seed,
        "psnr_db": {k: round(float(np.mean(v)), 3) for k, v in per_frame.items()},
        "false_bright_fraction": {  # None: no dark pixel in these frames
            k: None if np.isnan(f := false_bright_fraction(v, targets)) else round(f, 5)
            for k, v in outputs.items()
        },
        "psnr_db_per_frame": per_frame,
        "note": "sonoedge.quantization.data.degraded frames (the compression harness's kind, "
        "other seeds): four probes, random/layers/cyst/points/homogeneous phantoms, severity "
        "uniform in [0, 1], Gaussian or Fourier noise. false_bright_fraction: share of the "
        "target's pixels below 0.05 that the method shows above 0.25, pooled over the frames.",
    }
    return scores, {**outputs, "target": targets}


def _real_frames(
    methods: dict[str, Callable[[FloatArray], FloatArray]],
    plus_path: str | Path | None,
    quick: bool,
) -> dict[str, Any]:
    """No-reference scores on real B-mode frames from a PLUS sequence (skipped when absent)."""
    if plus_path is None or not Path(plus_path).is_file():
        return {"skipped": f"{plus_path} not found"}
    from sonoedge.io.plus import sample_frames
    from sonoedge.metrics import no_reference_scores

    size = 128 if quick else 256
    sample = sample_frames(plus_path, 2 if quick else 6, size)
    rows: dict[str, dict[str, list[float]]] = {}
    for img in sample.frames:
        images = {"input": img, **{k: fn(img) for k, fn in methods.items()}}
        for key, im in images.items():
            for m, v in no_reference_scores(im, img).items():
                rows.setdefault(key, {}).setdefault(m, []).append(v)
    out: dict[str, Any] = {
        k: {m: round(float(np.mean(v)), 5) for m, v in t.items()} for k, t in rows.items()
    }
    out["file"] = Path(plus_path).name
    out["crop"] = [*sample.origin_px, size, size]
    out["frames"] = sample.indices
    out["note"] = (
        "N-wire phantom in water (bright wire echoes on a dark background); baselines with a "
        "σ = 1 px Gaussian PSF (the real PSF is unknown). Lower noise_sigma with a kept or higher "
        "mean_gradient and bright_targets_mean means denoised without blurring the wires."
    )
    return out


def _panel(examples: list[dict[str, Any]], cols: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(examples))
    fig, axes = plt.subplots(rows, len(cols), figsize=(1.9 * len(cols), 2.1 * rows), squeeze=False)
    for r, ex in enumerate(examples):
        for c, key in enumerate(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if key in ex:
                ax.imshow(ex[key], cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(key.replace("_", " + ").replace("rl", "RL"), fontsize=8)
            if c == 0:
                ax.set_ylabel(ex.get("title", ""), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarize(metrics: dict[str, Any]) -> str:
    """One paragraph for the CLI."""
    parts = []
    for sev, row in metrics["psnr_ssim_per_severity"].items():
        cells = ", ".join(f"{m} {v['psnr_db']:.2f}" for m, v in row.items())
        parts.append(f"{sev}: {cells}")
    lat = metrics["latency"]
    pts = metrics["point_targets"].get("degraded", {}).get("student", {})
    return (
        "PSNR dB per severity: "
        + " | ".join(parts)
        + f" || point FWHM change {pts.get('fwhm_change_vs_input')}"
        + f" || 256x256: student {lat['student']['median_ms']} ms"
        + (f", its self-ensemble {lat[ENSEMBLE]['median_ms']} ms" if ENSEMBLE in lat else "")
        + f", Wiener+NLM {lat['wiener_nlm']['median_ms']} ms"
        + f", RL+NLM {lat['rl_nlm']['median_ms']} ms"
    )
