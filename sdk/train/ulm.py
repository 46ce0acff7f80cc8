"""ULM task (PgD): a parameter-conditioned diffusion generator and a deep-learning localiser.

Data (:mod:`sonoedge.train.ulm_data`): physics renders of bubble frames on a λ/4 grid over the
trained parameter box, cached in ``<cache>/ulm-<split>-<hash>.npz``; the training split never
draws a centre frequency inside ``HELD_OUT_F0_MHZ``.

1. Generator (:mod:`sonoedge.models.ulm_generator`): denoising diffusion conditioned on the
   normalised parameter vector and the bubble position map, trained on the physics frames.
2. Synthesis: ``localizer.n_generated`` new frames from the generator (fresh bubbles and
   parameter vectors), saved in the run directory.
3. Localiser (:mod:`sonoedge.models.ulm_localizer`): heatmap + sub-pixel offsets, trained on a
   mix of physics and generator frames (``localizer.generated_fraction`` of each batch); its
   detection threshold is tuned on the validation frames (best Jaccard at 0.25 λ).
4. Export: ``ulm-localizer.onnx`` + model card, run by :mod:`sonoedge.zoo.ulm`.

:func:`evaluate` compares the localiser against every conventional localiser on held-out
:func:`sonoedge.synth.microbubbles.simulate_bubbles` sequences (vessel trees, flow) over SNR and
bubble concentration, measures frames to a vessel-map saturation, and scores the generator (SSIM
to physics frames on held-out parameter sets, time per frame against the simulator).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from sonoedge.errors import ConfigError
from sonoedge.models import ulm_generator as gen
from sonoedge.models import ulm_localizer as loc
from sonoedge.models.export import (
    IMAGE_AXES,
    OPSET,
    PARITY_ATOL,
    export_checked,
    export_image_net,
    provenance,
)
from sonoedge.train import config as cfgmod
from sonoedge.train import ulm_data as ud
from sonoedge.train.loop import load_checkpoint, run_phase, save_checkpoint
from sonoedge.zoo.ulm import (
    GUIDE_PARAMETERS,
    MIRROR_AVERAGES,
    check_dynamic_range,
    to_network_scale,
)

DATA_VERSION = "sonoedge.train.ulm_data/v1"
SPLIT_SEED = {
    "train": 0,
    "val": 1_000_000,
    "synth": 2_000_000,
    "eval": 3_000_000,
    "pymust": 4_000_000,
}
NAME = "ulm-localizer"
NAME_GUIDED = "ulm-localizer-pg"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
CONVENTIONAL = ("weighted_centroid", "radial_symmetry", "gaussian_fit")
FloatArray = npt.NDArray[np.float32]


# --------------------------------------------------------------------------- config


def check_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate the ULM config's ranges (types were checked on load)."""
    for key, lo, hi in (
        ("data.size", 8, 512),
        ("data.n_train", 1, 1_000_000),
        ("data.n_val", 1, 100_000),
        ("data.n_pymust", 0, 1_000_000),
        ("data.frames_per_params", 1, 10_000),
        ("data.density", 0.0, 2.0),
        ("data.vessel_fraction", 0.0, 1.0),
        ("data.vessel_density", 0.0, 2.0),
        ("generator.width", 8, 256),
        ("generator.steps", 1, 10_000_000),
        ("generator.batch_size", 1, 4096),
        ("generator.lr", 1e-6, 1.0),
        ("generator.sample_steps", 1, 1000),
        ("generator.sample_time_power", 1.0, 4.0),
        ("generator.pos_channels", 1, 3),
        ("generator.margin_px", 0, 4),
        ("generator.ema_decay", 0.0, 0.99999),
        ("generator.display_exponent", 0.2, 1.0),
        ("localizer.width", 8, 256),
        ("localizer.depth", 1, 16),
        ("localizer.steps", 1, 10_000_000),
        ("localizer.batch_size", 1, 4096),
        ("localizer.lr", 1e-6, 1.0),
        ("localizer.n_generated", 0, 1_000_000),
        ("localizer.generated_fraction", 0.0, 1.0),
        ("localizer.heatmap_sigma_px", 0.3, 5.0),
        ("localizer.offset_weight", 0.0, 100.0),
        ("localizer.offset_radius_px", 0, 2),
        ("threads", 1, 256),
        ("train.checkpoint_every", 1, 10_000_000),
        ("eval.size", 16, 1024),
        ("eval.snr_db", 0.0, 60.0),
        ("eval.density", 0.0, 2.0),
        ("eval.clutter_db", -80.0, 20.0),
        ("eval.n_sequences", 1, 10_000),
        ("eval.n_frames", 1, 10_000),
        ("eval.saturation_frames", 2, 100_000),
        ("eval.saturation_size", 16, 1024),
        ("eval.saturation_level", 0.01, 1.0),
        ("eval.n_generator", 1, 100_000),
        ("eval.pitch_wavelengths", 0.05, 10.0),
    ):
        cfgmod.require_range(cfg, key, lo, hi)
    if cfg["generator"]["pos_channels"] not in (1, 3):
        raise ConfigError("config key 'generator.pos_channels' must be 1 or 3")
    if cfg["generator"]["mirror_average"] not in MIRROR_AVERAGES:
        raise ConfigError(
            f"config key 'generator.mirror_average' must be one of {MIRROR_AVERAGES} "
            "(no mirror, the lateral one, or the lateral and axial ones)"
        )
    if cfg["generator"]["margin_px"] not in (0, 2, 4):
        raise ConfigError("config key 'generator.margin_px' must be 0, 2 or 4")
    if cfg["data"]["size"] % 4:
        raise ConfigError("config key 'data.size' must be a multiple of 4 (the generator's)")
    for key in ("generator.width", "localizer.width"):
        section, name = key.split(".")
        if cfg[section][name] % 8:
            raise ConfigError(f"config key {key!r} must be a multiple of 8")
    if not cfg["eval"]["snr_db"] or not cfg["eval"]["density"]:
        raise ConfigError("config keys 'eval.snr_db' and 'eval.density' must not be empty")
    if cfg["localizer"]["generated_fraction"] > 0 and cfg["localizer"]["n_generated"] < 1:
        raise ConfigError("localizer.generated_fraction > 0 needs localizer.n_generated >= 1")
    if cfg["localizer"]["axial_average"] and not cfg["localizer"]["flip_average"]:
        raise ConfigError("localizer.axial_average needs localizer.flip_average (4 mirror images)")
    if cfg["localizer"]["dynamic_range_db"]:
        check_dynamic_range(cfg["localizer"]["dynamic_range_db"])
    lo, hi = cfg["localizer"]["accepted_pitch_wavelengths"]
    box_lo, box_hi = ud.TRAIN_RANGES["pitch_wavelengths"]
    if not 0 < lo <= box_lo or not box_hi <= hi <= 10 * box_hi:
        raise ConfigError(
            f"config key 'localizer.accepted_pitch_wavelengths' = {[lo, hi]} is invalid: expected "
            f"0 < low <= {box_lo:g} and {box_hi:g} <= high <= {10 * box_hi:g} (it must contain "
            "the trained range)"
        )
    return cfg


# --------------------------------------------------------------------------- data


def data_spec(cfg: dict[str, Any], split: str, n: int) -> dict[str, Any]:
    """Everything that determines a rendered set (recorded with the weights)."""
    d = cfg["data"]
    return {
        "generator": DATA_VERSION,
        "split": split,
        "n_frames": n,
        "seed": SPLIT_SEED[split] + 10_007 * int(cfg["seed"]),
        "size": d["size"],
        "density_per_lambda2": d["density"],
        "frames_per_params": d["frames_per_params"],
        **_placement(d),
        **({"engine": "pymust"} if split == "pymust" else {}),
        "param_ranges": {k: list(v) for k, v in ud.TRAIN_RANGES.items()},
        "held_out_f0_mhz": list(ud.HELD_OUT_F0_MHZ),
    }


def _placement(d: dict[str, Any]) -> dict[str, Any]:
    """The bubble-placement keys of a data spec: none for uniform placement only (so specs, and
    the cached sets they name, of configs from before vessel placement keep their digest)."""
    if float(d["vessel_fraction"]) <= 0:
        return {}
    return {
        "vessel_fraction": float(d["vessel_fraction"]),
        "vessel_density_per_lambda2": list(d["vessel_density"]),
    }


def build_set(spec: dict[str, Any], cache_dir: Path, progress: Any = None) -> ud.FrameSet:
    """Render (or load from the cache) the physics frames described by ``spec``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"ulm-{spec['split']}-{cfgmod.digest(spec)}.npz"
    if not path.exists():
        size = int(spec["size"])
        data = ud.render_set(
            int(spec["n_frames"]),
            (size, size),
            int(spec["seed"]),
            "train",
            tuple(spec["density_per_lambda2"]),
            int(spec["frames_per_params"]),
            progress,
            f"render {spec['split']}",
            vessel_fraction=float(spec.get("vessel_fraction", 0.0)),
            vessel_density_range=tuple(spec.get("vessel_density_per_lambda2", (0.0, 0.0))),
            engine=str(spec.get("engine", "physics")),
        )
        tmp = path.with_suffix(".tmp.npz")
        ud.save_set(tmp, data)
        tmp.replace(path)
    return ud.load_set(path)


def _t(arr: npt.NDArray[Any]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr, np.float32))


# --------------------------------------------------------------------------- generator


def train_generator(
    cfg: dict[str, Any], data: ud.FrameSet, ckpt: Path, progress: Any, stop_after: int | None
) -> gen.GeneratorNet:
    g = cfg["generator"]
    torch.manual_seed(cfg["seed"])
    arch = gen.GeneratorArch(
        int(g["width"]),
        pos_channels=int(g["pos_channels"]),
        margin_px=int(g["margin_px"]),
        display_exponent=float(g["display_exponent"]),
    )
    net = gen.build(arch)
    bsz = int(g["batch_size"])
    maps = ud.conditioning_stack(data, arch.pos_channels, arch.margin_px)

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        idx = rng.integers(len(data), size=bsz)
        flip = rng.integers(2, size=bsz).astype(bool)
        x0 = to_network_scale(data.display[idx], arch.display_exponent)
        pm = maps[idx]
        x0[flip] = x0[flip, :, ::-1]
        pm[flip] = pm[flip, :, :, ::-1]  # a lateral mirror keeps each bubble's depth and phase
        tgen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        loss = gen.diffusion_loss(net, _t(x0[:, None]), _t(pm), _t(data.cond[idx]), tgen)
        return loss, {}

    run_phase(
        "generator",
        {"net": net},
        loss_fn,
        steps=int(g["steps"]),
        lr=float(g["lr"]),
        seed=cfg["seed"],
        checkpoint=ckpt,
        checkpoint_every=cfg["train"]["checkpoint_every"],
        progress=progress,
        stop_after=stop_after,
        ema_decay=float(g["ema_decay"]),
    )
    return net


def synthesize(
    net: gen.GeneratorNet | Any,
    n: int,
    size: int,
    seed: int,
    density: tuple[float, float],
    sample_steps: int,
    progress: Any = None,
    vessel_fraction: float = 0.0,
    vessel_density: tuple[float, float] | None = None,
    time_power: float = 1.0,
    mirror_average: int = 1,
) -> ud.FrameSet:
    """``n`` generator frames for fresh bubbles and training-split parameter vectors (bubbles
    placed as :func:`sonoedge.train.ulm_data.draw_any_bubbles`; sampler times as
    :func:`sonoedge.zoo.ulm.sample_times`). ``net``: torch weights, or an exported
    :class:`sonoedge.zoo.ulm.UlmGenerator` (which samples with its card's steps and times)."""
    from sonoedge.zoo.ulm import UlmGenerator, localizer_input

    pos_maps, conds, vecs, poss, amps = [], [], [], [], []
    draw: Any
    if isinstance(net, UlmGenerator):
        channels, margin = net.pos_channels, net.margin_px
        draw = partial(net.sample, mirror_average=mirror_average)  # the card's steps and times
    else:
        channels, margin = int(net.arch.pos_channels), int(net.arch.margin_px)
        draw = partial(
            gen.sample,
            net,
            steps=sample_steps,
            time_power=time_power,
            mirror_average=mirror_average,
        )
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        params = ud.draw_params(rng, "train")
        pos, amp = ud.draw_any_bubbles(rng, (size, size), density, vessel_fraction, vessel_density)
        pos_maps.append(ud.conditioning_maps(pos, amp, (size, size), channels, margin))
        conds.append(ud.normalise(params))
        vecs.append(params.as_array())
        poss.append(pos)
        amps.append(amp)
    pm, cond = np.stack(pos_maps), np.stack(conds)
    task = progress.add_task("synthesize", total=n) if progress is not None else None
    frames = []
    for i in range(0, n, 64):
        frames.append(draw(pm[i : i + 64], cond[i : i + 64], seed=seed + i))
        if task is not None:
            progress.update(task, advance=min(64, n - i))
    disp = np.concatenate(frames) if frames else np.zeros((0, size, size), np.float32)
    amp_maps = np.stack(
        [ud.position_map(p, a, (size, size)) for p, a in zip(poss, amps, strict=True)]
    )
    return ud.FrameSet(disp, localizer_input(disp), cond, amp_maps, np.stack(vecs), poss, amps)


# --------------------------------------------------------------------------- localiser


def heatmap_targets(
    positions: Sequence[npt.NDArray[np.float64]],
    shape: tuple[int, int],
    sigma: float,
    offset_radius: int = 0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Targets per sample: Gaussian heatmap (exactly 1 at each bubble's nearest pixel), offsets
    ``(2, h, w)`` to the bubble and their mask.

    ``offset_radius = 0`` supervises the offset at the bubble's nearest pixel only. With
    ``offset_radius = r`` every pixel within ``r`` (Chebyshev) of a bubble's nearest pixel
    learns the offset to the nearest such bubble, so a heatmap peak that lands one pixel off
    (crowded bubbles, noise) still decodes to the bubble's position rather than to an
    untrained offset."""
    h, w = shape
    n = len(positions)
    heat = np.zeros((n, h, w), np.float32)
    off = np.zeros((n, 2, h, w), np.float32)
    mask = np.zeros((n, h, w), np.float32)
    zz, xx = np.mgrid[0:h, 0:w]
    for s, pos in enumerate(positions):
        best = np.full((h, w), np.inf)
        for pz, px in np.asarray(pos).reshape(-1, 2):
            rz, rx = round(pz), round(px)
            if not (0 <= rz < h and 0 <= rx < w):
                continue
            r = int(np.ceil(3 * sigma))
            z0, z1, x0, x1 = max(0, rz - r), min(h, rz + r + 1), max(0, rx - r), min(w, rx + r + 1)
            g = np.exp(
                -((zz[z0:z1, x0:x1] - rz) ** 2 + (xx[z0:z1, x0:x1] - rx) ** 2) / (2 * sigma**2)
            )
            heat[s, z0:z1, x0:x1] = np.maximum(heat[s, z0:z1, x0:x1], g)
            q = offset_radius
            a0, a1, b0, b1 = max(0, rz - q), min(h, rz + q + 1), max(0, rx - q), min(w, rx + q + 1)
            dz = pz - zz[a0:a1, b0:b1]
            dx = px - xx[a0:a1, b0:b1]
            d2 = dz**2 + dx**2
            closer = d2 < best[a0:a1, b0:b1]
            best[a0:a1, b0:b1] = np.where(closer, d2, best[a0:a1, b0:b1])
            off[s, 0, a0:a1, b0:b1] = np.where(closer, dz, off[s, 0, a0:a1, b0:b1])
            off[s, 1, a0:a1, b0:b1] = np.where(closer, dx, off[s, 1, a0:a1, b0:b1])
            mask[s, a0:a1, b0:b1] = 1.0
    return heat, off, mask


def _flip_positions(pos: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    out = np.array(pos, np.float64).reshape(-1, 2)
    out[:, 1] = width - 1 - out[:, 1]
    return out


def guide_parameters(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The parameters a localiser of this config is given (none unless physics-guided)."""
    return GUIDE_PARAMETERS if cfg["localizer"]["physics_guided"] else ()


def guide_vectors(data: ud.FrameSet, names: Sequence[str]) -> FloatArray | None:
    """The normalised ``names`` columns of a set's parameter vectors, or None for none."""
    if not names:
        return None
    return np.ascontiguousarray(data.cond[:, [ud.PARAM_NAMES.index(n) for n in names]])


def train_localizer(
    cfg: dict[str, Any],
    phys: ud.FrameSet,
    synth: ud.FrameSet | None,
    ckpt: Path,
    progress: Any,
    stop_after: int | None,
) -> loc.LocalizerNet:
    c = cfg["localizer"]
    torch.manual_seed(cfg["seed"] + 1)
    names = guide_parameters(cfg)
    net = loc.build(loc.LocalizerArch(int(c["width"]), int(c["depth"]), len(names)))
    guides = {id(s): guide_vectors(s, names) for s in (phys, synth) if s is not None}
    bsz = int(c["batch_size"])
    frac = float(c["generated_fraction"]) if synth is not None and len(synth) else 0.0
    size = phys.loc_input.shape[-1]

    def loss_fn(rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        n_syn = int(rng.binomial(bsz, frac)) if frac > 0 else 0
        xs, poss, gs = [], [], []
        for source, k in ((phys, bsz - n_syn), (synth, n_syn)):
            if source is None or k == 0:
                continue
            guide = guides[id(source)]
            for i in rng.integers(len(source), size=k):
                x, p = source.loc_input[i], source.positions[i]
                if rng.integers(2):  # a lateral mirror keeps the parameters
                    x, p = x[:, ::-1], _flip_positions(p, size)
                xs.append(x)
                poss.append(p)
                if guide is not None:
                    gs.append(guide[i])
        heat, off, mask = heatmap_targets(
            poss, (size, size), float(c["heatmap_sigma_px"]), int(c["offset_radius_px"])
        )
        y = net(_t(np.stack(xs)[:, None]), _t(np.stack(gs)) if gs else None)
        focal = loc.focal_heatmap_loss(y[:, :1], _t(heat[:, None]))
        m = _t(mask[:, None])
        l1 = (torch.abs(y[:, 1:] - _t(off)) * m).sum() / m.sum().clamp(min=1.0)
        return focal + float(c["offset_weight"]) * l1, {
            "focal": float(focal.item()),
            "offset_l1": float(l1.item()),
        }

    run_phase(
        "localizer",
        {"net": net},
        loss_fn,
        steps=int(c["steps"]),
        lr=float(c["lr"]),
        seed=cfg["seed"],
        checkpoint=ckpt,
        checkpoint_every=cfg["train"]["checkpoint_every"],
        progress=progress,
        stop_after=stop_after,
    )
    return net


@torch.no_grad()
def predict_maps(
    net: loc.LocalizerNet,
    inputs: FloatArray,
    flip: bool = False,
    guide: FloatArray | None = None,
    axial: bool = False,
) -> FloatArray:
    """Torch maps ``(N, 3, H, W)`` (probability, dz, dx) of network inputs ``(N, H, W)`` (and
    normalised guide parameters ``(N, P)`` for a physics-guided net); ``flip`` averages them
    with the maps of the laterally mirrored frames and ``axial`` then with those of the axially
    mirrored ones, as the runtime does for cards with ``decode.flip_average`` /
    ``decode.axial_average`` (:func:`sonoedge.zoo.ulm.mirror_averaged`); ``axial`` needs
    ``flip``."""
    from sonoedge.zoo.ulm import mirror_averaged

    if axial and not flip:
        raise ConfigError("axial mirror averaging needs the lateral one (flip)")
    net.eval()
    deploy = loc.LocalizerDeploy(net)
    g = _t(guide) if guide is not None else None
    copies = 4 if axial else 2 if flip else 1
    return mirror_averaged(lambda x: deploy(_t(x[:, None]), g).numpy(), inputs, copies)


def _val_scores(
    maps: FloatArray, data: ud.FrameSet, threshold: float, offset_clip: float = 1.0
) -> dict[str, float]:
    from sonoedge.metrics import ulm_scores
    from sonoedge.zoo.ulm import decode

    h, w = data.loc_input.shape[1:]
    est = decode(maps, threshold, offset_clip=offset_clip)
    truth = [
        p[(p[:, 0] >= -0.5) & (p[:, 0] < h - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] < w - 0.5)]
        for p in (np.asarray(q).reshape(-1, 2) for q in data.positions)
    ]
    # positions are in pixels of lambda/4: wavelength = 4 pixels
    s = ulm_scores(est, truth, float(ud.PIXELS_PER_WAVELENGTH), (0.25, 0.5))
    return {
        "rmse_lambda": round(s["0.25"]["rmse_lambda"], 4),
        "jaccard_0.25": round(s["0.25"]["jaccard"], 4),
        "precision_0.25": round(s["0.25"]["precision"], 4),
        "recall_0.25": round(s["0.25"]["recall"], 4),
        "jaccard_0.5": round(s["0.5"]["jaccard"], 4),
    }


def tune_threshold(
    net: loc.LocalizerNet,
    val: ud.FrameSet,
    offset_clip: float = 1.0,
    flip: bool = False,
    names: Sequence[str] = (),
    axial: bool = False,
) -> tuple[float, dict[str, Any]]:
    """The detection threshold with the best validation Jaccard at 0.25 λ (decoded as the
    runtime will: ``offset_clip``, ``flip`` and ``axial`` averaging, the guide parameters
    ``names``)."""
    maps = predict_maps(net, val.loc_input, flip, guide_vectors(val, names), axial)
    scores = {thr: _val_scores(maps, val, thr, offset_clip) for thr in THRESHOLDS}
    best = max(THRESHOLDS, key=lambda t: (scores[t]["jaccard_0.25"], -abs(t - 0.5)))
    return best, {f"{t:g}": s for t, s in scores.items()}


# --------------------------------------------------------------------------- weights, export


def save_weights(
    path: Path, net: torch.nn.Module, arch: dict[str, Any], record: dict[str, Any]
) -> None:
    save_checkpoint(path, {"arch": arch, "state": net.state_dict(), **record})


def load_generator(path: str | Path) -> tuple[gen.GeneratorNet, dict[str, Any]]:
    """The generator from ``generator.pt``; refuses other weights."""
    state = load_checkpoint(Path(path))
    if state.get("arch", {}).get("name") != "ulm-generator-v1":
        raise ConfigError(f"{path} is not a ULM generator weights file")
    net = gen.build(state["arch"])
    net.load_state_dict(state["state"])
    net.eval()
    return net, state


def load_localizer(path: str | Path) -> tuple[loc.LocalizerNet, dict[str, Any]]:
    """The localiser from ``localizer.pt``; refuses other weights."""
    state = load_checkpoint(Path(path))
    if state.get("arch", {}).get("name") != "ulm-localizer-v1":
        raise ConfigError(f"{path} is not a ULM localizer weights file")
    net = loc.build(state["arch"])
    net.load_state_dict(state["state"])
    net.eval()
    return net, state


def export_onnx(
    net: loc.LocalizerNet,
    path: Path,
    sample: FloatArray | None = None,
    guide: FloatArray | None = None,
) -> float:
    """Export (input ``frames`` (B, 1, H, W), and ``params`` (B, P) for a physics-guided net →
    ``maps`` (B, 3, H, W), dynamic batch and size) and check onnxruntime against torch; returns
    the largest absolute difference."""
    x = np.zeros((1, 1, 32, 32), np.float32) if sample is None else np.asarray(sample, np.float32)
    rng = np.random.default_rng(0)
    other = rng.uniform(-1, 2, (2, 1, 40, 24)).astype(np.float32)
    deploy = loc.LocalizerDeploy(net)
    n = net.arch.n_params
    if not n:
        return export_image_net(deploy, path, ("frames", "maps"), x, other, OPSET, PARITY_ATOL)
    g = rng.uniform(-1, 1, (len(x), n)) if guide is None else guide
    example = {"frames": x, "params": np.asarray(g, np.float32)}
    check = {"frames": other, "params": rng.uniform(-1, 1, (2, n)).astype(np.float32)}
    axes = {"frames": IMAGE_AXES, "params": {0: "batch"}, "maps": IMAGE_AXES}
    return export_checked(deploy, path, example, [check], "maps", axes, OPSET, PARITY_ATOL)


def export_generator_onnx(net: gen.GeneratorNet, path: Path, size: int = 32) -> float:
    """Export the generator's denoiser (inputs ``x_t`` (B, 1, H, W), ``pos_map``
    (B, pos_channels, H + 2 margin, W + 2 margin), ``cond`` (B, P), ``t`` (B,) → ``x0``) and check
    onnxruntime against torch."""
    rng = np.random.default_rng(1)
    c, m = net.arch.pos_channels, 2 * net.arch.margin_px

    def inputs(b: int, h: int, w: int) -> dict[str, npt.NDArray[np.float32]]:
        return {
            "x_t": rng.standard_normal((b, 1, h, w)).astype(np.float32),
            "pos_map": rng.uniform(-1, 1, (b, c, h + m, w + m)).astype(np.float32),
            "cond": rng.uniform(-1, 1, (b, net.arch.n_params)).astype(np.float32),
            "t": rng.uniform(0, 1, b).astype(np.float32),
        }

    img = dict(IMAGE_AXES)
    maps = {0: "batch", 2: "map_height", 3: "map_width"}  # the frame's plus the margins
    axes = {"x_t": img, "pos_map": maps, "cond": {0: "batch"}, "t": {0: "batch"}}
    example, other = inputs(1, size, size), inputs(3, 2 * size, size)
    return export_checked(net, path, example, [other], "x0", axes, OPSET, atol=1e-3)


def write_generator_card(
    onnx_path: Path,
    net: gen.GeneratorNet,
    cfg: dict[str, Any],
    spec: dict[str, Any],
    metrics: dict[str, Any],
    command: str,
) -> dict[str, Any]:
    """Model card of the generator (read by :func:`sonoedge.zoo.ulm.load_generator`)."""
    import hashlib

    g_ema = float(cfg["generator"]["ema_decay"])
    card: dict[str, Any] = {
        "name": onnx_path.stem,
        "task": "ulm-generator",
        "format": "onnx",
        "opset": OPSET,
        "architecture": net.arch.to_dict(),
        "parameters": gen.count_parameters(net),
        "input": {
            "names": ["x_t", "pos_map", "cond", "t"],
            "meaning": "noisy frame, bubble conditioning maps on the wavelength/4 grid "
            "(sonoedge.zoo.ulm.conditioning_maps: amplitudes splatted bilinearly, and with "
            "pos_channels 3 the amplitudes times cos and sin of each bubble's two-way echo phase "
            "-pi x row), normalised parameter vector, diffusion time in [0, 1]",
            "pos_channels": net.arch.pos_channels,
            "margin_px": net.arch.margin_px,
            "param_ranges": {k: list(v) for k, v in ud.TRAIN_RANGES.items()},
            "refuse_beyond": ud.REFUSE_BEYOND,
            "held_out_f0_mhz": list(ud.HELD_OUT_F0_MHZ),
            "pixels_per_wavelength": ud.PIXELS_PER_WAVELENGTH,
            "size_multiple": 4,
        },
        "output": {
            "name": "x0",
            "meaning": "clean-frame estimate in [-1, 1] (display scale d = |iq| / (2 x one "
            "bubble's peak), mapped by 2 d**display_exponent - 1)",
        },
        "sampling": {
            "schedule": "cosine",
            "sampler": "DDIM eta=0",
            "steps": int(cfg["generator"]["sample_steps"]),
            "time_power": float(cfg["generator"]["sample_time_power"]),
            "mirror_average": int(cfg["generator"]["mirror_average"]),
            "display_exponent": net.arch.display_exponent,
        },
        "provenance": provenance(command, cfg, spec),
        "metrics": metrics,
        "run_dir": str(onnx_path.parent),
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    }
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    md = [
        f"# {onnx_path.stem} — physics-parameter-guided microbubble frame generator (PgD)",
        "",
        "- Task: synthesise contrast microbubble envelope frames for given bubble positions and "
        "a physical parameter vector (centre frequency, bandwidth, F-number, pulse cycles, "
        "pitch, SNR, clutter level).",
        f"- Model: conditional denoising diffusion U-Net, {card['parameters']} parameters, "
        f"cosine schedule, DDIM with {card['sampling']['steps']} steps"
        + (
            f" at times (1 - k / steps)^{card['sampling']['time_power']:g}"
            if card["sampling"]["time_power"] != 1.0
            else ""
        )
        + (
            f", each step's estimate averaged over {card['sampling']['mirror_average']} mirror "
            "images of the frame"
            if card["sampling"]["mirror_average"] > 1
            else ""
        )
        + (
            f", on the display^{net.arch.display_exponent:g} scale"
            if net.arch.display_exponent != 1.0
            else ""
        )
        + "; FiLM conditioning on "
        "the normalised parameters, the bubble conditioning maps as input channels"
        + (
            " (amplitude splat and each bubble's two-way echo phase as a splatted phasor)"
            if net.arch.pos_channels == 3
            else " (amplitude splat)"
        )
        + (
            f", {net.arch.margin_px} px beyond each edge (bubbles just outside the frame)."
            if net.arch.margin_px
            else "."
        )
        + (f" Weights: exponential moving average, decay {g_ema:g}." if g_ema > 0 else ""),
        f"- Trained ranges: {card['input']['param_ranges']}; centre frequencies "
        f"{card['input']['held_out_f0_mhz']} MHz were never seen (held out for evaluation). "
        "Outside the ranges it warns; beyond half a range width it refuses.",
        f"- Data: {spec['n_frames']} physics renders ({DATA_VERSION}).",
        f"- Command: `{command}` at commit {card['provenance']['commit']}.",
        "- Evaluation (SSIM to physics frames on held-out parameter sets, time per frame): "
        "docs/results/ulm.json.",
        "",
        "Run it without torch: `sonoedge.zoo.ulm.load_generator().synthesize(positions, params)`.",
    ]
    onnx_path.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return card


def offset_clip_px(cfg: dict[str, Any]) -> float:
    """How far (pixels) a decoded offset may move a peak: 1 when offsets were trained at the
    bubble's nearest pixel only, ``radius + 1`` with neighbourhood supervision."""
    return 1.0 + float(cfg["localizer"]["offset_radius_px"])


def _generator_record(generator: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """What the localiser card records of the generator that drew its generator frames."""
    if isinstance(generator, gen.GeneratorNet):
        return {
            "architecture": generator.arch.to_dict(),
            "parameters": gen.count_parameters(generator),
            "sample_steps": cfg["generator"]["sample_steps"],
            "weights": "generator.pt in the run directory",
        }
    return {
        "architecture": generator.card.get("architecture"),
        "parameters": generator.card.get("parameters"),
        "sample_steps": generator.steps,
        "weights": f"exported {generator.name} (localizer.generator), sha256 "
        f"{generator.card.get('sha256')}",
        "mirror_average": cfg["generator"]["mirror_average"],
    }


def _guide_input(names: Sequence[str], cfg: dict[str, Any]) -> dict[str, Any]:
    """The card's description of a physics-guided localiser's second input (none otherwise)."""
    if not names:
        return {}
    return {
        "params": {
            "name": "params",
            "layout": "(batch, n_params)",
            "names": list(names),
            "meaning": "each parameter of the frames' transducer and pulse mapped to [-1, 1] "
            "over its trained range (param_ranges; sonoedge.zoo.ulm.normalise_parameters)",
            "accepted": {"pitch_wavelengths": cfg["localizer"]["accepted_pitch_wavelengths"]},
            "accepted_meaning": "values the runtime accepts (with a warning outside "
            "param_ranges) and refuses beyond; parameters not listed are refused farther than "
            "half their range's width outside it",
        }
    }


def write_card(
    onnx_path: Path,
    net: loc.LocalizerNet,
    generator: Any,
    cfg: dict[str, Any],
    spec: dict[str, Any],
    threshold: float,
    metrics: dict[str, Any],
    command: str,
    reused: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``NAME.json`` (read by :func:`sonoedge.zoo.ulm.load`) and ``NAME.md``. ``reused``:
    the command and localiser config that trained weights this run only decoded and exported."""
    import hashlib

    a = net.arch
    names = guide_parameters(cfg)
    floor_db = float(cfg["localizer"]["dynamic_range_db"])  # 0: none
    card: dict[str, Any] = {
        "name": onnx_path.stem,
        "task": "ulm",
        "format": "onnx",
        "opset": OPSET,
        "architecture": a.to_dict(),
        "parameters": loc.count_parameters(net),
        "macs_per_pixel": loc.macs_per_pixel(a),
        "generator": _generator_record(generator, cfg),
        "input": {
            "name": "frames",
            "dtype": "float32",
            "layout": "(batch, 1, axial, lateral)",
            "meaning": "clutter-filtered envelope on a wavelength/4 grid, as 20 log10(env / "
            "median(env)) / 40 clipped to [-1, 2] (sonoedge.zoo.ulm.localizer_input)",
            "pixels_per_wavelength": ud.PIXELS_PER_WAVELENGTH,
            "size_multiple": loc.LocalizerArch.size_multiple,
            "min_size": 8,
            "param_ranges": {k: list(v) for k, v in ud.TRAIN_RANGES.items()},
            **_guide_input(names, cfg),
        },
        "output": {
            "name": "maps",
            "layout": "(batch, 3, axial, lateral): probability, dz, dx (pixels)",
        },
        "decode": {
            "threshold": threshold,
            "peaks": "3x3 local maxima",
            "offset_clip_px": offset_clip_px(cfg),
            "flip_average": bool(cfg["localizer"]["flip_average"]),
            "axial_average": bool(cfg["localizer"]["axial_average"]),
            **({"dynamic_range_db": floor_db} if floor_db else {}),
        },
        "provenance": {
            **provenance(command, cfg, spec),
            **({"localizer_weights_trained_by": reused} if reused else {}),
        },
        "metrics": metrics,
        "run_dir": str(onnx_path.parent),
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
    }
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    val = metrics.get("val", {})
    md = [
        f"# {onnx_path.stem} — deep-learning ULM localiser (PgD: physics-guided synthetic data)",
        "",
        "- Task: sub-pixel microbubble positions in clutter-filtered envelope frames (ULM).",
        "- Input: `frames` float32 (batch, 1, H, W) on a wavelength/4 grid, the log envelope re "
        "the frame's median (`sonoedge.zoo.ulm.localizer_input`); the runtime resamples other "
        "grids and pads odd sizes"
        + (
            f", and first floors each frame {floor_db:g} dB below its bright bubbles "
            "(`decode.dynamic_range_db`)."
            if floor_db
            else "."
        ),
        *(
            [
                f"- Physics-guided: a second input `params` (batch, {len(names)}), the frames' "
                f"{', '.join(names)}, each normalised to [-1, 1] over its trained range; the "
                "runtime takes them as `params={name: value}`, warns outside the trained ranges "
                "and refuses a pitch outside "
                f"{'..'.join(f'{v:g}' for v in cfg['localizer']['accepted_pitch_wavelengths'])} "
                "wavelengths (other parameters: half their range's width outside it)."
            ]
            if names
            else []
        ),
        "- Output: `maps` (batch, 3, H, W): bubble probability per pixel and the sub-pixel offset "
        f"(dz, dx); decoded as 3x3 local maxima above {threshold:g} plus the offsets"
        + (
            " of the mean of the maps of the frame and of its lateral mirror image"
            + (
                " and of the axial mirror images of both"
                if cfg["localizer"]["axial_average"]
                else ""
            )
            + " (mirrored back)."
            if cfg["localizer"]["flip_average"]
            else "."
        ),
        f"- Architecture: {a.to_dict()}: {card['parameters']} parameters, "
        f"{card['macs_per_pixel']:.0f} MACs/pixel; plain 3x3 convs and ReLU, ONNX opset {OPSET}.",
        f"- Data: {spec['n_frames']} physics frames ({DATA_VERSION}, {spec['size']}x"
        f"{spec['size']}, parameters {spec['param_ranges']}, centre frequencies "
        f"{spec['held_out_f0_mhz']} MHz held out), "
        + (
            f"{cfg['data']['n_pymust']} frames of other bubbles imaged by PyMUST "
            "(sonoedge.synth.pymust_bubbles, the same parameter ranges) "
            if cfg["data"]["n_pymust"]
            else ""
        )
        + f"and {cfg['localizer']['n_generated']} frames "
        f"of the conditional diffusion generator ({card['generator']['parameters']} parameters, "
        f"{cfg['generator']['sample_steps']} DDIM steps); "
        f"{cfg['localizer']['generated_fraction']:.0%} of each batch from the generator.",
        f"- Validation (physics frames, other seeds): {json.dumps(val)}",
        f"- Command: `{command}` at commit {card['provenance']['commit']}"
        + (
            f"; the weights were trained by `{reused['command']}` (localiser settings "
            f"{reused['localizer_config']}), this command tuned the decoding and exported them."
            if reused
            else "."
        ),
        "- Held-out evaluation: docs/results/ulm.json (`sonoedge eval ulm --model "
        f"{onnx_path.stem}`).",
        "",
        f"Run it without torch: `sonoedge.zoo.ulm.load({onnx_path.stem!r}).localize(frames"
        + (", params=...)`" if names else ")`")
        + f", or as ULM method `{onnx_path.stem}` (`sonoedge ulm INPUT -o OUT -m "
        f"{onnx_path.stem}`, `sonoedge process --op ulm --method {onnx_path.stem}`).",
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
    """Train the generator, synthesise frames, train the localiser, export; returns the ONNX."""
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
    record: dict[str, Any] = {"config": cfg, "data_spec": train_spec, "command": command}
    if d["n_pymust"]:  # PyMUST's frames of other bubbles join the physics frames
        pymust_spec = data_spec(cfg, "pymust", d["n_pymust"])
        record["pymust_data_spec"] = pymust_spec
        data = ud.concat_sets(data, build_set(pymust_spec, cache, progress))
    times: dict[str, float] = {}

    gen_pt = out_dir / "generator.pt"
    generator: Any
    if cfg["localizer"]["generator"]:  # an exported generator draws the localiser's frames
        from sonoedge.zoo.ulm import load_generator as load_exported_generator

        generator = load_exported_generator(cfg["localizer"]["generator"], cfg["threads"])
    elif gen_pt.exists():
        generator, _ = load_generator(gen_pt)
    else:
        t0 = time.perf_counter()
        generator = train_generator(cfg, data, out_dir / "generator.ckpt", progress, stop_after)
        save_weights(gen_pt, generator, generator.arch.to_dict(), record)
        times["generator"] = round(time.perf_counter() - t0, 1)
    c = cfg["localizer"]
    synth: ud.FrameSet | None = None
    if c["n_generated"] > 0:
        synth_path = out_dir / "generated.npz"
        if synth_path.exists():
            synth = ud.load_set(synth_path)
        else:
            t0 = time.perf_counter()
            synth = synthesize(
                generator,
                int(c["n_generated"]),
                int(d["size"]),
                SPLIT_SEED["synth"] + int(cfg["seed"]),
                tuple(d["density"]),
                int(cfg["generator"]["sample_steps"]),
                progress,
                float(d["vessel_fraction"]),
                tuple(d["vessel_density"]),
                float(cfg["generator"]["sample_time_power"]),
                int(cfg["generator"]["mirror_average"]),
            )
            ud.save_set(synth_path, synth)
            times["synthesize"] = round(time.perf_counter() - t0, 1)
    loc_pt = out_dir / "localizer.pt"
    reused: dict[str, Any] | None = None
    if loc_pt.exists():
        net, state = load_localizer(loc_pt)
        if state.get("command") != command:  # weights made by another command (e.g. copied in)
            reused = {
                "command": state.get("command", ""),
                "localizer_config": state.get("config", {}).get("localizer", {}),
            }
    else:
        t0 = time.perf_counter()
        net = train_localizer(cfg, data, synth, out_dir / "localizer.ckpt", progress, stop_after)
        save_weights(loc_pt, net, net.arch.to_dict(), record)
        times["localizer"] = round(time.perf_counter() - t0, 1)
    names = guide_parameters(cfg)
    if net.arch.n_params != len(names):
        raise ConfigError(
            f"{loc_pt} takes {net.arch.n_params} guide parameters, the config "
            f"{len(names)} (localizer.physics_guided): train it again in a new --out folder"
        )
    threshold, sweep = tune_threshold(
        net,
        val,
        offset_clip_px(cfg),
        bool(cfg["localizer"]["flip_average"]),
        names,
        bool(cfg["localizer"]["axial_average"]),
    )
    metrics: dict[str, Any] = {
        "val": sweep[f"{threshold:g}"],
        "threshold_sweep": sweep,
        "val_frames": len(val),
        "train_s": times,
    }
    onnx_path = out_dir / f"{NAME_GUIDED if names else NAME}.onnx"
    guide = guide_vectors(val, names)
    sample = val.loc_input[:2, None]
    metrics["export_parity_max_abs"] = export_onnx(
        net, onnx_path, sample, None if guide is None else guide[:2]
    )
    write_card(onnx_path, net, generator, cfg, train_spec, threshold, metrics, command, reused)
    if isinstance(generator, gen.GeneratorNet):  # trained here: export it beside the localiser
        gen_onnx = out_dir / "ulm-generator.onnx"
        parity = export_generator_onnx(generator, gen_onnx, int(d["size"]))
        write_generator_card(
            gen_onnx, generator, cfg, train_spec, {"export_parity_max_abs": parity}, command
        )
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return onnx_path


# --------------------------------------------------------------------------- evaluation


def _eval_params(
    rng: np.random.Generator, snr_db: float, density: float, frame_rate: float, clutter_db: float
) -> Any:
    """Simulator parameters over the trained box (``BubbleParams.random``'s training ranges)
    at a given SNR, bubble density (per λ²) and residual clutter level."""
    from sonoedge.synth.microbubbles import BubbleParams

    seed = int(rng.integers(2**31))
    probe = BubbleParams.random(np.random.default_rng(seed))
    lam_mm = 1.54 / (probe.center_frequency_hz / 1e6)
    return BubbleParams.random(
        np.random.default_rng(seed),
        snr_db=snr_db,
        concentration_per_mm2=density / lam_mm**2,
        frame_rate_hz=frame_rate,
        clutter_db=clutter_db,
    )


def eval_sequences(
    cfg: dict[str, Any],
    snr_db: float,
    density: float,
    salt: int,
    count: int,
    pitch_wavelengths: float | None = None,
    simulate: Callable[..., Any] | None = None,
    clutter_db: float | None = None,
) -> list[Any]:
    """``count`` held-out sequences of ``eval ulm`` (``eval.size``, ``eval.n_frames``) at one SNR
    and bubble density (per λ²); ``salt`` 1 are the validation sequences, 2 the scored ones.
    The parameter vectors and bubble scenes are the same at every SNR (a paired comparison) and
    for every ``simulate`` (default :func:`~sonoedge.synth.microbubbles.simulate_bubbles`; the
    same signature: ``(params, n_frames, height, width, seed)``); ``pitch_wavelengths`` sets
    the element pitch, ``clutter_db`` the residual clutter (default ``eval.clutter_db``)."""
    from sonoedge.synth.microbubbles import simulate_bubbles

    e = cfg["eval"]
    seed = SPLIT_SEED["eval"] + 10_007 * int(cfg["seed"])
    size, n_frames = int(e["size"]), int(e["n_frames"])
    render = simulate or simulate_bubbles
    clutter = float(e["clutter_db"]) if clutter_db is None else float(clutter_db)
    out = []
    for k in range(count):
        rng = np.random.default_rng([seed, salt, int(density * 1000), k])
        params = _eval_params(rng, snr_db, density, 500.0, clutter)
        if pitch_wavelengths is not None:  # the same scenes with another element pitch
            lam_m = 1540.0 / params.center_frequency_hz
            params = dataclasses.replace(params, pitch_m=pitch_wavelengths * lam_m)
        out.append(render(params, n_frames, size, size, seed=int(rng.integers(2**31))))
    return out


def _conventional(
    frames: Any, spacing: tuple[float, float], method: str, p: dict[str, Any]
) -> list[Any]:
    from sonoedge.processing.ulm import localize_frames

    return localize_frames(
        frames, spacing, method=method, threshold_db=p["threshold_db"], window_px=p["window_px"]
    )


def localizer_fns(
    model: Any, tuned: dict[str, dict[str, Any]], others: Sequence[Any] = ()
) -> dict[str, Any]:
    """Per method: ``fn(frames, spacing_m, wavelength_m, params) -> list of (n, 2) metres``
    (``params``: the sequence's :class:`~sonoedge.synth.microbubbles.BubbleParams`, which
    physics-guided networks are given). ``network`` is ``model``; ``others`` are scored beside
    it as ``network_<name>``."""
    from sonoedge.zoo.ulm import generator_parameters

    def network(net: Any) -> Any:
        def run(frames: Any, spacing: tuple[float, float], lam: float, params: Any) -> list[Any]:
            pix = net.localize(frames, spacing, lam, params=generator_parameters(params))
            return [p * np.asarray(spacing) for p in pix]

        return run

    fns: dict[str, Any] = {"network": network(model)}
    fns.update({f"network_{m.name}": network(m) for m in others})
    for m in CONVENTIONAL:
        fns[m] = lambda frames, spacing, lam, _, m=m: _conventional(frames, spacing, m, tuned[m])
    return fns


def psf_fit_fn(model: Any) -> Any:
    """``model``'s localisations refined by the joint PSF fit in IQ (``psf_fit``, given the
    sequence's transducer and pulse): a :func:`localizer_fns` function that takes the complex
    IQ frames (:func:`score_cell` passes them to functions with ``takes_iq``)."""
    from sonoedge.zoo.ulm import generator_parameters

    def run(iq: Any, spacing: tuple[float, float], lam: float, params: Any) -> list[Any]:
        pix = model.localize(iq, spacing, lam, params=generator_parameters(params), psf_fit=True)
        return [p * np.asarray(spacing) for p in pix]

    run.takes_iq = True  # type: ignore[attr-defined]
    return run


def score_cell(fns: dict[str, Any], seqs: list[Any]) -> dict[str, dict[str, Any]]:
    from sonoedge.metrics import ulm_scores

    est: dict[str, list[Any]] = {k: [] for k in fns}
    truth: list[Any] = []
    lam_list: list[float] = []
    for b in seqs:
        lam = 1540.0 / b.params.center_frequency_hz
        for k, fn in fns.items():
            frames = b.iq if getattr(fn, "takes_iq", False) else b.frames
            est[k].extend(fn(frames, b.spacing_m, lam, b.params))
        truth.extend(b.positions_m)
        lam_list.extend([lam] * len(b.positions_m))
    out = {}
    # errors in wavelengths: scale each frame to lambda units, then score with wavelength 1
    lam_arr = np.asarray(lam_list)
    t_l = [np.asarray(t).reshape(-1, 2) / lam for t, lam in zip(truth, lam_arr, strict=True)]
    for k in fns:
        e_l = [np.asarray(e).reshape(-1, 2) / lam for e, lam in zip(est[k], lam_arr, strict=True)]
        s = ulm_scores(e_l, t_l, 1.0, (0.25, 0.5))
        out[k] = {
            "rmse_lambda": round(s["0.25"]["rmse_lambda"], 4),
            "jaccard": round(s["0.25"]["jaccard"], 4),
            "precision": round(s["0.25"]["precision"], 4),
            "recall": round(s["0.25"]["recall"], 4),
            "rmse_lambda_at_0.5": round(s["0.5"]["rmse_lambda"], 4),
            "jaccard_at_0.5": round(s["0.5"]["jaccard"], 4),
            "n_true": int(s["0.25"]["tp"] + s["0.25"]["fn"]),
            "by_nearest_neighbour": _by_crowding(e_l, t_l),
        }
    return out


CROWDING_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, float("inf")))
"""Nearest-neighbour distance bins (wavelengths) of :func:`_by_crowding`."""


def _by_crowding(est: list[Any], truth: list[Any], tol: float = 0.25) -> dict[str, Any]:
    """RMSE (λ) and recall at ``tol`` λ of true bubbles binned by the distance to their nearest
    neighbour in the same frame (positions in wavelengths): how much of the error is crowding."""
    from sonoedge.processing.hungarian import match_within

    err: list[float] = []
    nn: list[float] = []
    hit: list[bool] = []
    for e, t in zip(est, truth, strict=True):
        e, t = np.asarray(e).reshape(-1, 2), np.asarray(t).reshape(-1, 2)
        if not len(t):
            continue
        d_tt = np.linalg.norm(t[:, None] - t[None], axis=2)
        np.fill_diagonal(d_tt, np.inf)
        near = d_tt.min(axis=1)
        found = np.zeros(len(t), bool)
        dist = np.full(len(t), np.nan)
        if len(e):
            d = np.linalg.norm(e[:, None] - t[None], axis=2)
            rows, cols = match_within(d, tol)
            found[cols] = True
            dist[cols] = d[rows, cols]
        nn.extend(near)
        hit.extend(found)
        err.extend(dist)
    nn_a, hit_a, err_a = np.asarray(nn), np.asarray(hit, bool), np.asarray(err)
    out = {}
    for lo, hi in CROWDING_BINS:
        sel = (nn_a >= lo) & (nn_a < hi)
        tp = sel & hit_a
        out[f"{lo:g}-{hi:g}_lambda"] = {
            "n_true": int(sel.sum()),
            "recall": round(float(tp.sum() / sel.sum()), 4) if sel.any() else None,
            "rmse_lambda": round(float(np.sqrt(np.mean(err_a[tp] ** 2))), 4) if tp.any() else None,
        }
    return out


def tune_conventional(seqs: list[Any]) -> dict[str, dict[str, Any]]:
    """Each conventional localiser's detection threshold and window, tuned for Jaccard at
    0.25 λ on validation sequences (fair baselines)."""
    from sonoedge.metrics import ulm_scores

    best: dict[str, dict[str, Any]] = {}
    for m in CONVENTIONAL:
        scores = {}
        for thr in (-6.0, -10.0, -15.0, -20.0):
            for win in (5, 7):
                p = {"threshold_db": thr, "window_px": win}
                jac = []
                for b in seqs:
                    lam = 1540.0 / b.params.center_frequency_hz
                    e = _conventional(b.frames, b.spacing_m, m, p)
                    jac.append(ulm_scores(e, b.positions_m, lam, (0.25,))["0.25"]["jaccard"])
                scores[(thr, win)] = float(np.mean(jac))
        thr, win = max(scores, key=lambda k: scores[k])
        best[m] = {
            "threshold_db": thr,
            "window_px": win,
            "val_jaccard": round(scores[(thr, win)], 4),
        }
    return best


def _true_tracks(b: Any) -> list[npt.NDArray[np.float64]]:
    by_id: dict[int, list[tuple[float, float, float]]] = {}
    for t, (pos, ids) in enumerate(zip(b.positions_m, b.track_ids, strict=True)):
        for (z, x), i in zip(pos, ids, strict=True):
            by_id.setdefault(int(i), []).append((float(t), float(z), float(x)))
    return [np.asarray(v, np.float64) for v in by_id.values() if len(v) >= 2]


def _saturation(
    fns: dict[str, Any], cfg: dict[str, Any], seed: int, progress: Any
) -> dict[str, Any]:
    """Vessel-map saturation: the fraction of the true vessel map (pixels of the λ/10 grid
    crossed by the true bubble tracks over the whole sequence) covered, within one grid pixel,
    by the ULM density map after ``n`` frames; frames each method needs to reach the stated
    level, and the fraction of its map lying on true vessels (map precision)."""
    import cv2

    from sonoedge.processing.ulm import render_maps, ulm_from_localizations
    from sonoedge.synth.microbubbles import simulate_bubbles

    e = cfg["eval"]
    n_frames, size, level = (
        int(e["saturation_frames"]),
        int(e["saturation_size"]),
        e["saturation_level"],
    )
    rng = np.random.default_rng([seed, 99])
    params = _eval_params(rng, 30.0, float(max(e["density"])), 500.0, float(e["clutter_db"]))
    b = simulate_bubbles(params, n_frames, size, size, seed=seed + 99)
    lam = 1540.0 / params.center_frequency_hz
    dz, dx = b.spacing_m
    grid = lam / 10
    corner = (-dz / 2, -dx / 2)
    grid_origin = (corner[0] + grid / 2, corner[1] + grid / 2)
    truth_map, _, _ = render_maps(
        _true_tracks(b), (size * dz, size * dx), grid_origin, grid, params.frame_rate_hz
    )
    vessel = truth_map > 0
    near_vessel = cv2.dilate(vessel.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    checkpoints = sorted({round(x) for x in np.geomspace(10, n_frames, 12)} | {n_frames})
    out: dict[str, Any] = {
        "snr_db": 30.0,
        "density_per_lambda2": float(max(e["density"])),
        "frames": n_frames,
        "size": size,
        "level": level,
        "vessel_pixels": int(vessel.sum()),
        "checkpoints": checkpoints,
        "curves": {},
        "frames_to_level": {},
        "map_precision": {},
    }
    task = progress.add_task("saturation", total=len(fns)) if progress is not None else None
    out["ms_per_frame"] = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        locs = fn(b.frames, b.spacing_m, lam, b.params)
        out["ms_per_frame"][name] = round(1e3 * (time.perf_counter() - t0) / n_frames, 3)
        curve = []
        density = None
        for n in checkpoints:
            res = ulm_from_localizations(
                locs[:n], (size, size), b.spacing_m, lam, params.frame_rate_hz, min_track_length=3
            )
            density = res.density
            got = cv2.dilate((density > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            curve.append(round(float((got & vessel).sum() / max(1, vessel.sum())), 4))
        out["curves"][name] = curve
        reached = [n for n, v in zip(checkpoints, curve, strict=True) if v >= level]
        out["frames_to_level"][name] = reached[0] if reached else None
        if density is not None and (density > 0).any():
            out["map_precision"][name] = round(
                float((near_vessel & (density > 0)).sum() / (density > 0).sum()), 4
            )
        if task is not None:
            progress.update(task, advance=1)
    return out


def _log_display(display: FloatArray, range_db: float = 20.0) -> FloatArray:
    db = 20.0 * np.log10(np.maximum(2.0 * display, 1e-6))
    return np.clip((db + range_db) / range_db, 0.0, 1.0).astype(np.float32)


def _sampler(path: Path) -> tuple[Any, tuple[int, int], int]:
    """``sample(pos_maps, conds, steps, seed, mirrors=None) -> frames`` of a generator (the
    exported ONNX under onnxruntime, one thread, or ``generator.pt`` under torch; ``mirrors``
    overrides its mirror average), its conditioning channels and margin, and its own mirror
    average."""
    if path.suffix == ".onnx":
        from sonoedge.zoo.ulm import load_generator as load_onnx

        model = load_onnx(path, threads=1)
        return (
            lambda pm, cond, steps, seed, mirrors=None: model.sample(
                pm, cond, seed=seed, steps=steps, mirror_average=mirrors
            ),
            (model.pos_channels, model.margin_px),
            model.mirror_average,
        )
    net, state = load_generator(path)
    g = state.get("config", {}).get("generator", {})
    power, own = float(g.get("sample_time_power", 1.0)), int(g.get("mirror_average", 1))
    return (
        lambda pm, cond, steps, seed, mirrors=None: gen.sample(
            net, pm, cond, steps, seed=seed, time_power=power, mirror_average=mirrors or own
        ),
        (net.arch.pos_channels, net.arch.margin_px),
        own,
    )


TEXTURE_FREE_LEVEL = 0.02
"""Display level under which a noise-free render's pixel counts as bubble-free (texture ratio)."""

AVERAGE_K = 16
"""Frames averaged per side in the generator's secondary SSIM (:func:`_averaged_ssim`)."""


def _averaged_ssim(
    sample: Any,
    scenes: list[tuple[ud.Renderer, Any, Any]],
    pm: FloatArray,
    cond: FloatArray,
    steps: int,
    seed: int,
    k: int,
) -> dict[str, Any]:
    """Secondary generator measure (not the target's): SSIM between the mean of ``k`` generator
    frames and the mean of ``k`` physics renders of the same bubbles and parameters (other noise,
    clutter and sampler draws each time). Averaging shrinks what no generator can predict (the
    particular noise and clutter draw) and keeps what it must get right: the bubbles' PSFs,
    their level, and the mean noise and clutter floor. Its ceiling is the same SSIM between two
    independent means of ``k`` physics renders; both are reported, on the same frames as the
    primary measure."""
    from sonoedge.metrics import ssim

    n = len(scenes)
    shape = scenes[0][0].shape
    phys = np.zeros((2, n, *shape), np.float64)
    for i, (r, pos, amp) in enumerate(scenes):
        for side in range(2):
            for j in range(k):
                s = int(np.random.default_rng([seed, 79, i, side, j]).integers(2**31))
                phys[side, i] += r.display(r.render(pos, amp, seed=s))
    phys /= k
    fake = np.zeros((n, *shape), np.float64)
    for j in range(k):
        fake += sample(pm, cond, steps, seed + 7919 * (j + 1))
    fake /= k
    ss = np.array([ssim(phys[0, i], fake[i], 1.0) for i in range(n)])
    ceiling = np.array([ssim(phys[0, i], phys[1, i], 1.0) for i in range(n)])
    return {
        "frames_averaged": k,
        "ssim": round(float(ss.mean()), 4),
        "ceiling_physics_vs_physics": round(float(ceiling.mean()), 4),
        "definition": f"secondary, not the target measure: SSIM (as ssim_mean) between the mean of "
        f"{k} generator frames and the mean of {k} physics renders of the same bubbles and "
        "parameters, each with its own noise/clutter draw; ceiling: two such physics means",
    }


def _clean_corner_ssim(
    sample: Any,
    scenes: list[tuple[ud.Renderer, Any, Any]],
    pm: FloatArray,
    cond: FloatArray,
    steps: int,
    seed: int,
) -> dict[str, Any]:
    """SSIM to physics frames for the same held-out scenes at the cleanest corner of the trained
    box (highest SNR, lowest clutter), where two physics renders differ little, so the measure
    can reach 0.97 and scores what a generator must get right: the PSFs of unseen parameter sets
    and how neighbouring bubbles' echoes interfere. Reference: two physics renders, as before (a
    generator whose noise texture is smoother than the physics' can score above it)."""
    from dataclasses import replace

    from sonoedge.metrics import ssim

    snr_db, clutter_db = ud.TRAIN_RANGES["snr_db"][1], ud.TRAIN_RANGES["clutter_db"][0]
    refs, refs2, conds = [], [], []
    for i, (r, pos, amp) in enumerate(scenes):
        params = replace(r.params, snr_db=snr_db, clutter_db=clutter_db)
        rc = ud.Renderer(params, r.shape)
        rng = np.random.default_rng([seed, 81, i])
        refs.append(rc.display(rc.render(pos, amp, seed=int(rng.integers(2**31)))))
        refs2.append(rc.display(rc.render(pos, amp, seed=int(rng.integers(2**31)))))
        conds.append(ud.normalise(params))
    fake = sample(pm, np.stack(conds), steps, seed)
    n = len(scenes)
    ss = np.array([ssim(refs[i], fake[i], 1.0) for i in range(n)])
    ceiling = np.array([ssim(refs[i], refs2[i], 1.0) for i in range(n)])
    return {
        "ssim": round(float(ss.mean()), 4),
        "ssim_standard_error": round(float(ss.std(ddof=1) / np.sqrt(n)), 4) if n > 1 else None,
        "ssim_median": round(float(np.median(ss)), 4),
        "ceiling_physics_vs_physics": round(float(ceiling.mean()), 4),
        "snr_db": snr_db,
        "clutter_db": clutter_db,
        "definition": "ssim_mean's frames, bubbles and held-out parameter sets with SNR and "
        "clutter set to the cleanest corner of the trained box; ceiling: two physics renders "
        "with other noise/clutter draws; standard error: of the mean over the frames (how much "
        "another draw of held-out scenes could move it)",
    }


def _generator_scores(
    sample: Any,
    channels: tuple[int, int],
    mirrors: int,
    cfg: dict[str, Any],
    seed: int,
    quick: bool,
) -> dict[str, Any]:
    """SSIM of generated frames to physics reference frames on held-out parameter sets (centre
    frequencies the generator never saw), the SSIM between two physics realisations of the same
    bubbles (noise and clutter differ: the ceiling for any generator), the same at the cleanest
    corner of the box, and time per frame (with the generator's mirror average and, side by
    side, with one copy)."""
    from sonoedge.metrics import ssim

    size = int(cfg["data"]["size"])
    n = int(cfg["eval"]["n_generator"])
    steps = int(cfg["generator"]["sample_steps"])
    refs, refs2, pms, conds, snrs, clean = [], [], [], [], [], []
    scenes: list[tuple[ud.Renderer, Any, Any]] = []
    for i in range(n):
        rng = np.random.default_rng([seed, 77, i])
        params = ud.draw_params(rng, "held_out")
        r = ud.Renderer(params, (size, size))
        pos, amp = ud.draw_bubbles(rng, (size, size), float(rng.uniform(*cfg["data"]["density"])))
        scenes.append((r, pos, amp))
        refs.append(r.display(r.render(pos, amp, seed=int(rng.integers(2**31)))))
        refs2.append(r.display(r.render(pos, amp, seed=int(rng.integers(2**31)))))
        clean.append(r.display(r.render(pos, amp, seed=0, noise=False)))
        pms.append(ud.conditioning_maps(pos, amp, (size, size), *channels))
        conds.append(ud.normalise(params))
        snrs.append(params.snr_db)
    pm, cond = np.stack(pms), np.stack(conds)
    t0 = time.perf_counter()
    fake = sample(pm, cond, steps, seed)
    gen_ms = 1e3 * (time.perf_counter() - t0) / n
    ss = np.array([ssim(refs[i], fake[i], 1.0) for i in range(n)])
    ceiling = np.array([ssim(refs[i], refs2[i], 1.0) for i in range(n)])
    vs_clean = np.array([ssim(clean[i], fake[i], 1.0) for i in range(n)])
    ss_log = np.array([ssim(_log_display(refs[i]), _log_display(fake[i]), 1.0) for i in range(n)])
    ceiling_log = np.array(
        [ssim(_log_display(refs[i]), _log_display(refs2[i]), 1.0) for i in range(n)]
    )
    averaged = _averaged_ssim(sample, scenes, pm, cond, steps, seed, 2 if quick else AVERAGE_K)
    clean_corner = _clean_corner_ssim(sample, scenes, pm, cond, steps, seed)
    snr = np.asarray(snrs)
    # noise and clutter texture: spread of the bubble-free pixels (noise-free render below 0.02),
    # generator over physics; 1 is the physics' texture, below 1 smoother (which raises SSIM)
    ref_arr, fake_arr = np.stack(refs), np.asarray(fake)
    free = np.stack(clean) < TEXTURE_FREE_LEVEL

    def texture_ratio(sel: npt.NDArray[np.bool_]) -> float:
        m = free & sel[:, None, None]
        return round(float(fake_arr[m].std() / max(float(ref_arr[m].std()), 1e-12)), 3)

    bins = {}
    for lo, hi in ((10, 20), (20, 30), (30, 40.01)):
        sel = (snr >= lo) & (snr < hi)
        if sel.any():
            bins[f"snr_{lo}-{int(hi)}_db"] = {
                "ssim": round(float(ss[sel].mean()), 4),
                "ceiling": round(float(ceiling[sel].mean()), 4),
                "texture_ratio": texture_ratio(sel),
                "n": int(sel.sum()),
            }
    # Time per frame, three interleaved rounds (medians; the machine is shared): the generator on
    # a batch of 16 (and with one copy instead of its mirror average), the physics simulator with
    # a fresh parameter vector per frame (set-up included, as the generator's conditioning changes
    # per frame) and with one parameter set.
    reps = 4 if quick else 24
    gen_rounds, one_rounds, sim_rounds, same_rounds = [gen_ms], [], [], []
    for k in range(3):
        if k:
            t0 = time.perf_counter()
            sample(pm[:16], cond[:16], steps, seed + k)
            gen_rounds.append(1e3 * (time.perf_counter() - t0) / len(pm[:16]))
        if mirrors > 1:
            t0 = time.perf_counter()
            sample(pm[:16], cond[:16], steps, seed + k, 1)
            one_rounds.append(1e3 * (time.perf_counter() - t0) / len(pm[:16]))
        t0 = time.perf_counter()
        for i in range(reps):
            rng = np.random.default_rng([seed, 88, i])
            r = ud.Renderer(ud.draw_params(rng, "held_out"), (size, size))
            pos, amp = ud.draw_bubbles(rng, (size, size), 0.1)
            r.display(r.render(pos, amp, seed=i))
        sim_rounds.append(1e3 * (time.perf_counter() - t0) / reps)
        t0 = time.perf_counter()
        for i in range(reps):
            r.display(r.render(pos, amp, seed=i))
        same_rounds.append(1e3 * (time.perf_counter() - t0) / reps)
    gen_ms = float(np.median(gen_rounds))
    one_ms = float(np.median(one_rounds)) if one_rounds else gen_ms
    sim_ms = float(np.median(sim_rounds))
    sim_same_ms = float(np.median(same_rounds))
    return {
        "held_out": f"centre frequency {ud.HELD_OUT_F0_MHZ} MHz (never in training), other "
        "parameters across the trained box",
        "n_frames": n,
        "size": size,
        "ddim_steps": steps,
        "ssim_mean": round(float(ss.mean()), 4),
        "ssim_median": round(float(np.median(ss)), 4),
        "ssim_ceiling_physics_vs_physics": round(float(ceiling.mean()), 4),
        "ssim_vs_noise_free_render": round(float(vs_clean.mean()), 4),
        "ssim_log20db_display": round(float(ss_log.mean()), 4),
        "ssim_log20db_ceiling_physics_vs_physics": round(float(ceiling_log.mean()), 4),
        "ssim_definition": "metrics.ssim (11x11 Gaussian window, data range 1) on the linear "
        "display |iq| / (2 x one bubble's peak) clipped to [0, 1]; log20db: the same frames on a "
        "20 dB log display re one bubble's peak (noise and clutter below -20 dB are black). "
        "Ceiling: SSIM between two physics renders of the same bubbles and parameters with other "
        "noise and clutter draws - no generator of the distribution can beat it on average",
        "ssim_by_snr": bins,
        "noise_texture_ratio": texture_ratio(np.ones(n, bool)),
        "noise_texture_definition": "standard deviation of the generator's bubble-free pixels "
        f"(noise-free render below {TEXTURE_FREE_LEVEL}) over the physics frames' (same scenes): "
        "1 matches the physics' noise and clutter texture, below 1 is smoother",
        "secondary_ssim_of_averages": averaged,
        "ssim_clean_corner": clean_corner,
        "mirror_average": mirrors,
        "ms_per_frame_generator": round(gen_ms, 2),
        "ms_per_frame_generator_one_copy": round(one_ms, 2),
        "ms_per_frame_simulator_new_params": round(sim_ms, 2),
        "ms_per_frame_simulator_same_params": round(sim_same_ms, 2),
        "generator_over_simulator_time": round(gen_ms / sim_ms, 2),
        "threads": torch.get_num_threads(),
        "examples": {"reference": refs[:3], "generated": fake[:3]},
    }


def evaluate(
    model_paths: Sequence[str],
    cfg: dict[str, Any] | None,
    results_dir: Path,
    name: str = "ulm",
    quick: bool = False,
    command: str | None = None,
    progress: Any = None,
    cache_dir: Path | None = None,
    teacher_path: str | None = None,
) -> dict[str, Any]:
    """Network vs conventional localisers on held-out simulated sequences; generator scores.
    ``teacher_path`` names the generator (default: ``ulm-generator.onnx`` or ``generator.pt``
    beside the model, or ``generator.pt`` in its run directory). Writes
    ``<results_dir>/<name>.json`` and ``<name>.png``."""
    from sonoedge import zoo
    from sonoedge.bench.results import write_result
    from sonoedge.processing import psf_fit
    from sonoedge.zoo.ulm import UlmLocalizer

    if not model_paths:
        raise ConfigError("eval needs --model (a shipped name, an .onnx or a run directory)")
    # the first is scored as `network`, the others beside it in the same rounds
    model, *others = [zoo.load_task(p, "ulm", UlmLocalizer, threads=1) for p in model_paths]
    onnx_path, card = model.path, model.card
    if cfg is None:
        cfg = cfgmod.merge(cfgmod.load("ulm"), card["provenance"]["config"])
        if quick:  # the quick config's (small) evaluation, the model's own data settings
            cfg["eval"] = cfgmod.load("ulm", quick=True)["eval"]
    check_config(cfg)
    torch.set_num_threads(cfg["threads"])
    e = cfg["eval"]
    seed = SPLIT_SEED["eval"] + 10_007 * int(cfg["seed"])
    size, n_frames = int(e["size"]), int(e["n_frames"])

    def sequences(
        snr: float, density: float, salt: int, count: int, pitch: float | None = None
    ) -> list[Any]:
        return eval_sequences(cfg, snr, density, salt, count, pitch)

    val_seqs = [
        s for snr in (20.0, 30.0) for s in sequences(snr, float(np.median(e["density"])), 1, 1)
    ]
    tuned = tune_conventional(val_seqs)
    fns = localizer_fns(model, tuned, others)
    # the PSF fit (seconds per crowded frame) is scored on the grid, not in the long saturation
    # sequence or the pitch cells
    grid_fns = {**fns, "network_psf_fit": psf_fit_fn(model)}
    cells: dict[str, dict[str, Any]] = {}
    total = len(e["snr_db"]) * len(e["density"])
    task = progress.add_task("localisation grid", total=total) if progress is not None else None
    for snr in e["snr_db"]:
        for density in e["density"]:
            seqs = sequences(float(snr), float(density), 2, int(e["n_sequences"]))
            cells[f"snr{snr:g}_d{density:g}"] = {
                "snr_db": snr,
                "density_per_lambda2": density,
                "scores": score_cell(grid_fns, seqs),
            }
            if task is not None:
                progress.update(task, advance=1)
    saturation = _saturation(fns, cfg, seed, progress)
    pitch_cells = _pitch_extrapolation(model, others, tuned, e, sequences)

    gpath = Path(teacher_path) if teacher_path else None
    if gpath is None:
        for cand in (
            onnx_path.parent / "ulm-generator.onnx",
            onnx_path.parent / "generator.pt",
            Path(card.get("run_dir", "")) / "generator.pt",
        ):
            if cand.is_file():
                gpath = cand
                break
    generator = None
    if gpath is not None:
        generator = _generator_scores(*_sampler(gpath), cfg, seed, quick)
        generator["weights"] = gpath.name
    examples = generator.pop("examples") if generator else None

    hi_d = max(e["density"])
    at30 = [c for c in cells.values() if abs(c["snr_db"] - 30.0) < 1e-6]
    high = [c for c in cells.values() if c["density_per_lambda2"] == hi_d]
    net_rmse30 = [c["scores"]["network"]["rmse_lambda"] for c in at30]
    fit_rmse30 = [c["scores"]["network_psf_fit"]["rmse_lambda"] for c in at30]
    ftl = saturation["frames_to_level"]
    conv_frames = [ftl[m] for m in CONVENTIONAL if ftl[m] is not None]
    targets: dict[str, Any] = {
        "rmse_le_0.1_lambda_at_30db": (
            bool(all(r <= 0.1 for r in net_rmse30)) if net_rmse30 else None
        ),
        "network_rmse_lambda_at_30db": net_rmse30,
        "rmse_le_0.1_lambda_at_30db_psf_fit": (
            bool(all(r <= 0.1 for r in fit_rmse30)) if fit_rmse30 else None
        ),
        "network_psf_fit_rmse_lambda_at_30db": fit_rmse30,
        "jaccard_above_every_conventional_at_high_concentration_psf_fit": bool(
            all(
                c["scores"]["network_psf_fit"]["jaccard"] > c["scores"][m]["jaccard"]
                for c in high
                for m in CONVENTIONAL
            )
        ),
        "jaccard_above_every_conventional_at_high_concentration": bool(
            all(
                c["scores"]["network"]["jaccard"] > c["scores"][m]["jaccard"]
                for c in high
                for m in CONVENTIONAL
            )
        ),
        # conventional localisers that never reach the level within the sequence count as slower
        "fewer_frames_to_saturation": bool(
            ftl["network"] is not None and all(ftl["network"] < f for f in conv_frames)
        ),
        "generator_ssim_ge_0.97": (bool(generator["ssim_mean"] >= 0.97) if generator else None),
        "generator_ssim_ge_0.97_clean_corner": (
            bool(generator["ssim_clean_corner"]["ssim"] >= 0.97) if generator else None
        ),
    }
    metrics: dict[str, Any] = {
        "model": card.get("name", onnx_path.stem),
        "localization": cells,
        "saturation": saturation,
        "generator": generator if generator else {"skipped": "no generator.pt found"},
        "targets": targets,
        "tolerance_lambda": 0.25,
        "held_out": "sonoedge.synth.microbubbles.simulate_bubbles sequences (vessel trees with "
        "flow, bubbles only in lumens) with seeds disjoint from training; parameter vectors drawn "
        "over the trained box (BubbleParams.random) at each SNR and concentration, residual "
        f"clutter fixed at {e['clutter_db']:g} dB; the localiser was trained on uniformly "
        "placed bubbles (clutter -40..-10 dB)",
        "frames": {"size": size, "per_sequence": n_frames, "sequences": e["n_sequences"]},
        "pitch_extrapolation": pitch_cells,
        "conventional_tuned_on_val": tuned,
        "network_threshold": model.threshold,
        "network_parameters": list(model.param_names),
        "network_psf_fit": {
            "definition": "the network's detections refined by the joint fit of coherent PSFs "
            "to the IQ frame (sonoedge.processing.psf_fit, the PSF from the sequence's "
            "transducer and pulse), pairs split, bubbles kept when their position standard "
            "deviation is <= max_sigma_wavelengths or its inflation by the neighbours <= "
            "max_sigma_inflation",
            "max_sigma_wavelengths": psf_fit.MAX_SIGMA_WAVELENGTHS,
            "max_sigma_inflation": psf_fit.MAX_SIGMA_INFLATION,
        },
        "beside": {
            f"network_{m.name}": {"threshold": m.threshold, "parameters": list(m.param_names)}
            for m in others
        },
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    _plot(metrics, examples, results_dir / f"{name}.png")
    write_result(name, metrics, {"conventional": tuned}, command=command, results_dir=results_dir)
    return metrics


def _pitch_extrapolation(
    model: Any, others: Sequence[Any], tuned: dict[str, Any], e: dict[str, Any], sequences: Any
) -> dict[str, Any]:
    """Every localiser on the 30 dB grid's scenes with the element pitch set outside the trained
    box (``eval.pitch_wavelengths``), guided ones given that pitch with their refusal lifted:
    where their results stay meaningful (a card's ``input.params.accepted``)."""
    from sonoedge.zoo.ulm import UlmLocalizer

    def unrefused(m: Any) -> Any:
        if not m.param_names:
            return m
        card = copy.deepcopy(m.card)
        card["input"]["params"]["accepted"] = {n: [-1e9, 1e9] for n in m.param_names}
        return UlmLocalizer(m.path, card, threads=1)

    lifted = [unrefused(m) for m in (model, *others)]
    fns = localizer_fns(lifted[0], tuned, lifted[1:])
    cells: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # every value here is outside the box
        for pitch in e["pitch_wavelengths"]:
            for density in e["density"]:
                seqs = sequences(30.0, float(density), 2, int(e["n_sequences"]), float(pitch))
                scores = score_cell(fns, seqs)
                cells[f"pitch{pitch:g}_d{density:g}"] = {
                    "pitch_wavelengths": pitch,
                    "density_per_lambda2": density,
                    "scores": {
                        k: {n: v for n, v in sc.items() if n != "by_nearest_neighbour"}
                        for k, sc in scores.items()
                    },
                }
    return {
        "snr_db": 30.0,
        "cells": cells,
        "definition": "the 30 dB cells' scenes and parameter vectors with only the pitch "
        "changed; guided networks are given the true pitch (their refusal lifted), blind ones "
        "and the conventional localisers do not use it",
    }


def _plot(metrics: dict[str, Any], examples: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(metrics["localization"].values())
    densities = sorted({c["density_per_lambda2"] for c in cells})
    hi = densities[-1]
    methods = list(cells[0]["scores"])
    n_ex = len(examples["reference"]) if examples else 0
    fig, axes = plt.subplots(1, 3 + min(n_ex, 2), figsize=(4.0 * (3 + min(n_ex, 2)), 3.6))
    for key, ax, label in (
        ("jaccard", axes[0], "Jaccard @0.25λ"),
        ("rmse_lambda", axes[1], "RMSE (λ)"),
    ):
        for m in methods:
            row = sorted(
                (c["snr_db"], c["scores"][m][key]) for c in cells if c["density_per_lambda2"] == hi
            )
            ax.plot([r[0] for r in row], [r[1] for r in row], "o-", label=m.replace("_", " "))
        ax.set_xlabel("SNR (dB)")
        ax.set_title(f"{label}, {hi:g} bubbles/λ²", fontsize=9)
    axes[0].legend(fontsize=7)
    sat = metrics["saturation"]
    for m in sat["curves"]:  # the PSF fit is scored on the grid only
        axes[2].plot(sat["checkpoints"], sat["curves"][m], "o-", ms=3, label=m.replace("_", " "))
    axes[2].axhline(sat["level"], color="k", lw=0.5)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("frames")
    axes[2].set_title("vessel-map saturation (30 dB, high conc.)", fontsize=9)
    for k in range(min(n_ex, 2)):
        assert examples is not None
        pair = np.concatenate([examples["reference"][k], examples["generated"][k]], axis=1)
        axes[3 + k].imshow(pair, cmap="gray", vmin=0, vmax=1)
        axes[3 + k].set_title("physics | generator (held-out params)", fontsize=8)
        axes[3 + k].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarize(metrics: dict[str, Any]) -> str:
    """A few lines for the CLI."""
    lines = []
    for c in metrics["localization"].values():
        parts = [
            f"{m} RMSE {s['rmse_lambda']:.3f}λ J {s['jaccard']:.3f}" for m, s in c["scores"].items()
        ]
        lines.append(
            f"SNR {c['snr_db']:g} dB, {c['density_per_lambda2']:g}/λ²: " + " | ".join(parts)
        )
    sat = metrics["saturation"]["frames_to_level"]
    lines.append(f"frames to {metrics['saturation']['level']:.0%} vessel map: {sat}")
    g = metrics["generator"]
    if "ssim_mean" in g:
        lines.append(
            f"generator SSIM {g['ssim_mean']:.3f} (physics vs physics "
            f"{g['ssim_ceiling_physics_vs_physics']:.3f}; at the clean corner "
            f"{g['ssim_clean_corner']['ssim']:.3f} ± "
            f"{g['ssim_clean_corner'].get('ssim_standard_error') or 0:.3f} vs "
            f"{g['ssim_clean_corner']['ceiling_physics_vs_physics']:.3f}), "
            f"{g['ms_per_frame_generator']} ms/frame "
            f"({g.get('mirror_average', 1)} mirror copies; one copy "
            f"{g.get('ms_per_frame_generator_one_copy', '-')} ms) "
            f"vs simulator {g['ms_per_frame_simulator_new_params']} ms"
        )
    lines.append(f"targets: {metrics['targets']}")
    return "\n".join(lines)
