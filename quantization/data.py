"""Compression data sets: inputs (for calibration and distillation) and targets (for the metric).

``speckle``: deterministic synthetic B-mode patches (smooth tissue maps with inclusions under fully
developed speckle, log-compressed to [0, 1]); the target is the speckle-free map. ``degraded``:
simulated B-mode frames (``sonoedge.synth.speckle``), NLLR-denoised as in enhancement training,
then blurred and noised by the physics-guided degradation model (severity uniform in light..heavy,
Gaussian or Fourier noise); the target is the NLLR frame. ``sonic:N``: simulated Doppler ensembles
of N frames (``sonoedge.synth.doppler``) as SONIC network inputs, with the true blood power map in
[0, 1] as target. ``despeckle``: simulated B-mode images as ``sonoedge train despeckle`` makes
them (its default config: four probes, phantoms, zooms, display ranges; seeds disjoint from its
splits), the target the speckle-free image. ``ulm``: clutter-filtered microbubble frames on a
λ/4 grid (:func:`sonoedge.train.ulm_data.render_set`: the ULM localiser's training distribution,
seeds disjoint from every ``sonoedge train ulm`` split) as localiser inputs, with the true bubble
positions instead of targets. A ``.npz`` file with ``inputs`` (N, C, H, W) and optional
``targets`` can be given instead.

Each set's task metric (:func:`task_metric`): PSNR (dB) against the targets, or for ``ulm`` the
detection Jaccard index at λ/4 (PALA pairing) of the decoded localisations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.speckle import PhantomKind

FloatArray = npt.NDArray[np.float32]
Positions = npt.NDArray[np.float64]
Score = Callable[[list[FloatArray]], float]


@dataclass(frozen=True)
class DataSet:
    """``inputs[i]`` is one batch-of-one input (1, C, H, W); ``targets`` match the outputs;
    ``bubbles[i]`` (ULM) are the true ``(n, 2)`` row/col positions, in pixels, of input ``i``."""

    inputs: list[FloatArray]
    targets: list[FloatArray] | None
    bubbles: list[Positions] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def split(self, n_first: int) -> tuple[DataSet, DataSet]:
        t, b = self.targets, self.bubbles
        return (
            DataSet(
                self.inputs[:n_first],
                None if t is None else t[:n_first],
                None if b is None else b[:n_first],
            ),
            DataSet(
                self.inputs[n_first:],
                None if t is None else t[n_first:],
                None if b is None else b[n_first:],
            ),
        )


DEGRADED_PROBES = ("L11-5v", "linear-7.5", "convex-3.5", "phased-2.7")
DEGRADED_PHANTOMS: tuple[PhantomKind, ...] = ("random", "layers", "cyst", "points", "homogeneous")
DESPECKLE_SEED = 4_000_000
"""Seed base of the ``despeckle`` set; ``sonoedge train despeckle``'s splits start at 0, 1e6, 2e6
and 3e6 (+ 10007 × its seed)."""
ULM_SEED = 4_000_000
"""Seed base of the ``ulm`` set; ``sonoedge train ulm`` renders its splits from 0, 1e6, 2e6 and
3e6 (+ 10007 × its seed)."""
ULM_DENSITY = (0.0, 0.2)
"""Bubbles per λ², drawn per frame: the localiser's training range."""
ULM_THRESHOLD = 0.5
"""Detection threshold of the ``ulm`` metric: the shipped localiser card's ``decode.threshold``."""
ULM_TOLERANCE = 0.25
"""Pairing tolerance of the ``ulm`` metric, in wavelengths."""


def speckle(n: int, size: int = 64, seed: int = 0) -> DataSet:
    """``n`` speckled patches (1, 1, size, size) and their clean maps, both in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    inputs, targets = [], []
    for _ in range(n):
        tissue = 0.5 + 0.2 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * yy + rng.uniform(0, 1)))
        for _ in range(rng.integers(1, 4)):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            tissue = np.where(inside, rng.uniform(0.05, 1.0), tissue)
        amplitude = (
            tissue
            * np.abs(rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size)))
            / np.sqrt(2)
        )
        log_img = np.clip(1 + np.log10(amplitude + 1e-3) / 2, 0, 1)
        log_clean = np.clip(1 + np.log10(tissue * 0.886 + 1e-3) / 2, 0, 1)
        inputs.append(log_img[None, None].astype(np.float32))
        targets.append(log_clean[None, None].astype(np.float32))
    return DataSet(inputs, targets)


def degraded(n: int, size: int = 64, seed: int = 0) -> DataSet:
    """``n`` degraded B-mode frames (1, 1, size, size) in [0, 1] and the NLLR-denoised frames
    they were degraded from: the enhancement students' task."""
    from sonoedge.processing.nllr import nllr
    from sonoedge.synth.degradation import degrade
    from sonoedge.synth.speckle import simulate_bmode
    from sonoedge.synth.transducer import get_preset

    rng = np.random.default_rng([seed, 23])
    inputs, targets = [], []
    for i in range(n):
        probe = get_preset(DEGRADED_PROBES[i % len(DEGRADED_PROBES)])
        phantom = DEGRADED_PHANTOMS[int(rng.integers(len(DEGRADED_PHANTOMS)))]
        frame = simulate_bmode(probe, size, size, seed=int(rng.integers(2**31)), phantom=phantom)
        clean = np.clip(nllr(frame.speckled, patch_px=6, n_iter=2), 0.0, 1.0).astype(np.float32)
        noise: Literal["gaussian", "fourier"] = "fourier" if rng.uniform() < 0.5 else "gaussian"
        out, _ = degrade(clean, int(rng.integers(2**31)), None, noise, float(rng.uniform()))
        inputs.append(np.clip(out, 0.0, 1.0)[None, None].astype(np.float32))
        targets.append(clean[None, None])
    return DataSet(inputs, targets)


def sonic(n: int, n_frames: int, size: int = 64, seed: int = 0, probe: str = "L11-5v") -> DataSet:
    """``n`` simulated ensembles → SONIC inputs (1, 2·n_frames, size, size) and blood power maps
    (1, 1, size, size) in the network's [0, 1] output scale."""
    from sonoedge.synth.doppler import simulate_doppler
    from sonoedge.synth.transducer import get_preset
    from sonoedge.zoo.sonic import ensemble_features, power_to_unit

    rng = np.random.default_rng([seed, 11])
    inputs, targets = [], []
    for i in range(n):
        scene = simulate_doppler(
            get_preset(probe),
            n_frames=n_frames,
            prf_hz=float(rng.uniform(500.0, 2000.0)),
            height=size,
            width=size,
            seed=10_007 * seed + i,
            motion_scale=float(rng.uniform(0.0, 1.2)),
        )
        inputs.append(np.asarray(ensemble_features(scene.iq), np.float32)[None])
        targets.append(power_to_unit(scene.blood_power)[None, None])
    return DataSet(inputs, targets)


def despeckle(n: int, size: int = 96, seed: int = 0) -> DataSet:
    """``n`` simulated B-mode images (1, 1, size, size) in [0, 1] as the MK despeckling student
    is trained on, and their speckle-free images."""
    import tempfile

    from sonoedge.train import config as cfgmod
    from sonoedge.train.despeckle import build_set, data_spec

    spec = data_spec(cfgmod.load("despeckle"), "train", n)
    spec.update(seed_base=DESPECKLE_SEED + 10_007 * seed, size=size)
    with tempfile.TemporaryDirectory() as tmp:
        images = build_set(spec, Path(tmp))
    return DataSet(
        [x[None, None].astype(np.float32) for x in images.speckled],
        [y[None, None].astype(np.float32) for y in images.clean],
    )


def ulm(n: int, size: int = 64, seed: int = 0) -> DataSet:
    """``n`` clutter-filtered bubble frames as localiser inputs (1, 1, size, size) with their true
    bubble positions (only those inside the frame: the ones a localiser can find)."""
    from sonoedge.train.ulm_data import render_set

    frames = render_set(n, (size, size), ULM_SEED + 10_007 * seed, "train", ULM_DENSITY)
    inside = [
        p[(p[:, 0] >= -0.5) & (p[:, 0] < size - 0.5) & (p[:, 1] >= -0.5) & (p[:, 1] < size - 0.5)]
        for p in (np.asarray(q, np.float64).reshape(-1, 2) for q in frames.positions)
    ]
    inputs = [x[None, None].astype(np.float32) for x in frames.loc_input]
    return DataSet(inputs, None, inside)


def ulm_scores(
    bubbles: list[Positions],
    maps: list[FloatArray],
    threshold: float = ULM_THRESHOLD,
    offset_clip: float = 1.0,
) -> dict[str, float]:
    """Jaccard, precision, recall and RMSE (λ) at :data:`ULM_TOLERANCE` of the localisations
    decoded from localiser maps (each (B, 3, H, W), B frames in order) as the runtime decodes
    them (:func:`sonoedge.zoo.ulm.decode`), against the true positions."""
    from sonoedge.metrics import ulm_scores as scores
    from sonoedge.train.ulm_data import PIXELS_PER_WAVELENGTH
    from sonoedge.zoo.ulm import decode

    found = decode(np.concatenate(maps), threshold, offset_clip=offset_clip)
    s = scores(found, bubbles, float(PIXELS_PER_WAVELENGTH), (ULM_TOLERANCE,))
    return {k: float(v) for k, v in s[f"{ULM_TOLERANCE:g}"].items()}


def task_metric(ds: DataSet) -> tuple[str, Score] | None:
    """The name and scoring function (higher is better) of ``ds``'s task metric: for ULM
    frames the Jaccard index of the localisations, else PSNR (dB) against the targets; None
    when the set has neither targets nor bubbles."""
    if ds.bubbles is not None:
        bubbles = ds.bubbles
        return f"jaccard_{ULM_TOLERANCE:g}", lambda maps: ulm_scores(bubbles, maps)["jaccard"]
    if ds.targets is not None:
        targets = ds.targets
        return "psnr_db", lambda outputs: mean_psnr_db(targets, outputs)
    return None


def from_npz(path: Path) -> DataSet:
    try:
        with np.load(path) as data:
            x = np.asarray(data["inputs"], np.float32)
            y = np.asarray(data["targets"], np.float32) if "targets" in data else None
    except (OSError, KeyError, ValueError) as err:
        raise ConfigError(
            f"cannot read {path}: {err}", hint="expected a .npz with 'inputs' (N, C, H, W)"
        ) from None
    if x.ndim != 4 or (y is not None and len(y) != len(x)):
        raise ConfigError(f"{path}: inputs must be (N, C, H, W) with one target per input")
    return DataSet([a[None] for a in x], None if y is None else [a[None] for a in y])


def load(spec: str, n: int, size: int = 64, seed: int = 0) -> DataSet:
    """``"speckle"``, ``"despeckle"``, ``"degraded"``, ``"sonic:N"``, ``"ulm"`` or a path to a
    ``.npz``."""
    if spec == "speckle":
        return speckle(n, size, seed)
    if spec == "despeckle":
        return despeckle(n, size, seed)
    if spec == "degraded":
        return degraded(n, size, seed)
    if spec == "ulm":
        return ulm(n, size, seed)
    if spec.startswith("sonic:") and spec[6:].isdigit():
        return sonic(n, int(spec[6:]), size, seed)
    path = Path(spec)
    if path.suffix == ".npz" and path.exists():
        return from_npz(path)
    raise ConfigError(
        f"data {spec!r} is unknown",
        hint="use 'speckle', 'despeckle', 'degraded', 'sonic:N' (N frames), 'ulm' or a .npz path",
    )


def psnr_db(reference: FloatArray, test: FloatArray, data_range: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(reference, np.float64) - test) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)


def mean_psnr_db(
    references: list[FloatArray], outputs: list[FloatArray], data_range: float = 1.0
) -> float:
    """Mean PSNR (dB) of ``outputs`` against ``references``."""
    pairs = zip(references, outputs, strict=True)
    return float(np.mean([psnr_db(r, o, data_range) for r, o in pairs]))
