"""``sweep2vol`` as a library call: load a sweep (PLUS file, recording, simulation), make a volume.

Inputs: PLUS sequence files (``.igs.mha``, ``.mha``, ``.igs.nrrd``, ``.seq.nrrd``) with tracked
poses; sonoedge HDF5 recordings (``.h5``) with B-mode frames and IMU; ``sim:fan``,
``sim:linear``, ``sim:rotation`` (a simulated sweep, handy for trying the tool). With a PLUS config,
every setting PLUS takes from its ``VolumeReconstruction`` element comes from there. Example::

    opts = Sweep2VolOptions(spacing_mm=0.5, interpolation="linear")
    result = convert_sweep("NwirePhantomFreehand.igs.mha", "volumes/", opts, plus_config="x.xml")
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from sonoedge.errors import ConfigError, DataError, RecordingError
from sonoedge.freehand import _kernels
from sonoedge.freehand.holes import HOLE_METHODS, HoleMethod
from sonoedge.freehand.poses import MOTIONS, pixel_to_world
from sonoedge.freehand.quality import sweep_quality
from sonoedge.freehand.reconstruct import (
    COMPOUNDINGS,
    ClipRectangle,
    Compounding,
    FanMask,
    Interpolation,
    OutputGrid,
)
from sonoedge.freehand.sweep import estimate_poses, reconstruct
from sonoedge.io.plus import ReconstructionConfig, frames_to_mf
from sonoedge.types import BmodeFrame, ImuBatch, ProbeInfo, Sweep

SEQUENCE_SUFFIXES = (".mha", ".nrrd")
RECORDING_SUFFIXES = (".h5", ".hdf5")
VOLUME_FORMATS = ("nrrd", "nii", "nii.gz", "mha")
_INTERP = {"nn": "nearest", "nearest": "nearest", "linear": "linear"}


@dataclass(frozen=True)
class Sweep2VolOptions:
    """What ``sonoedge sweep2vol`` was asked for (CLI names, mm in user units)."""

    spacing_mm: float = 0.5
    interpolation: str = "linear"
    compounding: str = "mean"
    fill_holes: str = "none"
    fill_size: int | None = None
    motion: str | None = None
    speed_mm_s: float | None = None
    volume_format: str = "nrrd"
    weights: bool = False
    mip: bool = True
    max_memory_gb: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0.01 <= self.spacing_mm <= 50):
            raise ConfigError(f"--spacing {self.spacing_mm} mm is invalid: expected 0.01..50 mm")
        if self.interpolation not in _INTERP:
            raise ConfigError(f"--interp {self.interpolation!r}: expected nn or linear")
        if self.compounding not in ("mean", "max", "latest"):
            raise ConfigError(f"--compound {self.compounding!r}: expected one of {COMPOUNDINGS}")
        if self.fill_holes not in ("none", *HOLE_METHODS):
            raise ConfigError(
                f"--fill-holes {self.fill_holes!r}: expected none or one of {HOLE_METHODS}"
            )
        if self.motion is not None and self.motion not in MOTIONS:
            raise ConfigError(f"--motion {self.motion!r}: expected one of {MOTIONS}")
        if self.volume_format not in VOLUME_FORMATS:
            raise ConfigError(f"--format {self.volume_format!r}: expected one of {VOLUME_FORMATS}")
        if self.max_memory_gb <= 0:
            raise ConfigError("--max-memory-gb must be > 0")


@dataclass
class ConvertResult:
    """Files written for one input and its sweep quality report."""

    input: str
    outputs: list[Path] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files and ``sim:`` names as given; folders become their sweep files (sorted)."""
    out: list[str] = []
    for item in inputs:
        path = Path(item)
        if item.startswith("sim:"):
            out.append(item)
        elif path.is_dir():
            found = sorted(
                str(p)
                for p in path.iterdir()
                if p.is_file() and p.name.lower().endswith(SEQUENCE_SUFFIXES + RECORDING_SUFFIXES)
            )
            if not found:
                raise RecordingError(f"folder {path} holds no sweep files (.mha, .nrrd, .h5)")
            out.extend(found)
        elif path.exists():
            out.append(item)
        else:
            raise RecordingError(f"input {item} does not exist")
    return out


def output_stem(name: str) -> str:
    """``a/b/sweep.igs.mha`` → ``sweep``; ``sim:fan`` → ``sim_fan``."""
    if name.startswith("sim:"):
        return name.replace(":", "_")
    base = Path(name).name
    for suffix in (".igs.mha", ".igs.nrrd", ".seq.nrrd", ".mha", ".nrrd", ".h5", ".hdf5"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return Path(base).stem


def load_recording(path: str | Path) -> Sweep:
    """B-mode frames and IMU samples of a sonoedge recording as a :class:`Sweep`."""
    from sonoedge.io.recording import RecordingReader

    frames: list[BmodeFrame] = []
    imu: list[ImuBatch] = []
    with RecordingReader(path) as reader:
        probe = reader.probe_info
        for sample in reader.samples():
            if isinstance(sample, BmodeFrame):
                frames.append(sample)
            elif isinstance(sample, ImuBatch):
                imu.append(sample)
    if not frames:
        raise RecordingError(f"{path} holds no B-mode frames", hint="record with --preset bmode")
    if any(f.grid != "cartesian" for f in frames):
        raise DataError(f"{path}: frames are in beam (polar) space; scan-convert them first")
    shapes = {f.image.shape for f in frames}
    if len(shapes) != 1:
        raise DataError(f"{path}: frame size changes during the sweep ({sorted(shapes)})")
    stack = np.stack([f.image for f in frames])
    imu_batch = None
    if imu:
        times = np.concatenate([b.times_s for b in imu])
        order = np.argsort(times, kind="stable")
        keep = order[np.concatenate([[True], np.diff(times[order]) > 0])]
        imu_batch = ImuBatch(
            times_s=times[keep],
            gyro_dps=np.concatenate([b.gyro_dps for b in imu])[keep],
            accel_g=np.concatenate([b.accel_g for b in imu])[keep],
        )
    return Sweep(
        frames=stack,
        spacing_m=frames[0].spacing_m,
        timestamps_s=np.array([f.timestamp_s for f in frames]),
        imu=imu_batch,
        probe=probe,
    )


def _simulated(name: str, seed: int) -> Sweep:
    from sonoedge.synth.sweeps import simulate_sweep

    motion = name.split(":", 1)[1]
    return simulate_sweep(ProbeInfo(), motion=motion, seed=seed, spacing_m=(0.4e-3, 0.4e-3))


def convert_sweep(
    name: str,
    out_dir: str | Path,
    options: Sweep2VolOptions,
    plus_config: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ConvertResult:
    """Reconstruct one input and write its volume, MIP, optional weights and quality report.

    Warnings raised on the way (skipped frames, unreliable clock alignment, flat sweeps) are
    collected into the report's ``warnings`` list.
    """
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        return _convert(name, out_dir, options, plus_config, progress, records)


@dataclass
class _Settings:
    """Reconstruction settings for one input: from the CLI, or from a PLUS config."""

    spacing_m: Any
    interpolation: Interpolation
    compounding: Compounding
    fill: HoleMethod | None
    fill_size: int | None
    fill_sigma: float = 1.0
    fill_min_ratio: float = 0.1
    clip: ClipRectangle | None = None
    fan: FanMask | None = None
    threshold: float | None = None
    grid: OutputGrid | None = None
    plus_extent: bool = False
    plus_arithmetic: bool = False

    @classmethod
    def from_options(cls, options: Sweep2VolOptions) -> _Settings:
        return cls(
            spacing_m=options.spacing_mm * 1e-3,
            interpolation=cast(Interpolation, _INTERP[options.interpolation]),
            compounding=cast(Compounding, options.compounding),
            fill=None if options.fill_holes == "none" else cast(HoleMethod, options.fill_holes),
            fill_size=options.fill_size,
        )


@dataclass
class _Posed:
    """Frames with pixel → world matrices and what the quality report needs."""

    frames: np.ndarray
    pixel_to_world: np.ndarray
    valid: np.ndarray
    times_s: np.ndarray
    heading_drift_dps: float | None = None
    time_offset_s: float | None = None


def _convert(
    name: str,
    out_dir: str | Path,
    options: Sweep2VolOptions,
    plus_config: str | Path | None,
    progress: Callable[[int, int], None] | None,
    records: list[warnings.WarningMessage],
) -> ConvertResult:
    from sonoedge.io.volume import write_mips, write_volume

    result = ConvertResult(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = _Settings.from_options(options)
    if not name.startswith("sim:") and name.lower().endswith(SEQUENCE_SUFFIXES):
        if options.motion not in (None, "tracked"):
            raise ConfigError(f"--motion {options.motion}: PLUS sequence files use tracked poses")
        posed = _load_plus(name, plus_config, settings)
    else:
        if plus_config is not None:
            raise ConfigError("--plus-config applies to PLUS sequence files only")
        posed = _pose_sweep(name, options)
        result.report["time_offset_ms"] = (posed.time_offset_s or 0.0) * 1e3
    n = len(posed.frames)
    rec = reconstruct(
        posed.frames,
        posed.pixel_to_world,
        posed.valid,
        settings.spacing_m,
        settings.interpolation,
        settings.compounding,
        settings.clip,
        settings.fan,
        settings.fill,
        settings.fill_size,
        fill_sigma=settings.fill_sigma,
        fill_min_ratio=settings.fill_min_ratio,
        pixel_rejection_threshold=settings.threshold,
        grid=settings.grid,
        plus_extent=settings.plus_extent,
        max_bytes=int(options.max_memory_gb * 2**30),
        progress=None if progress is None else (lambda i: progress(i + 1, n)),
        plus_arithmetic=settings.plus_arithmetic,
    )
    stem = output_stem(name)
    result.outputs.append(write_volume(out / f"{stem}.{options.volume_format}", rec.volume))
    if options.mip:
        result.outputs.append(write_mips(out / f"{stem}_mip.png", rec.volume))
    if options.weights:
        result.outputs.append(
            write_volume(out / f"{stem}_weights.{options.volume_format}", rec.weights)
        )
    report = sweep_quality(
        posed.times_s,
        posed.pixel_to_world,
        posed.valid,
        posed.frames.shape[1:3],
        (1.0, 1.0),  # the matrices take pixels
        float(np.min(np.broadcast_to(settings.spacing_m, (3,)))),
        coverage=np.asarray(rec.weights.data) > 0,
        heading_drift=posed.heading_drift_dps,
    )
    report["warnings"] = [str(w.message) for w in records] + report["warnings"]
    report["n_frames_skipped"] = rec.n_frames_skipped
    report["plus_arithmetic"] = settings.plus_arithmetic
    report["volume_shape_ijk"] = list(rec.volume.data.shape[::-1])
    report["origin_mm"] = [v * 1e3 for v in rec.volume.origin_m]
    result.report.update(report)
    report_path = out / f"{stem}_quality.json"
    report_path.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    result.outputs.append(report_path)
    return result


def _pose_sweep(name: str, options: Sweep2VolOptions) -> _Posed:
    """A recording or simulated sweep posed from its IMU (or the given pose model)."""
    if name.startswith("sim:"):
        sweep = _simulated(name, options.seed)
    elif name.lower().endswith(RECORDING_SUFFIXES):
        sweep = load_recording(name)
    else:
        raise ConfigError(f"{name}: unknown input type; expected .mha/.nrrd/.h5 or sim:MOTION")
    default_motion = name.split(":", 1)[1] if name.startswith("sim:") else "fan"
    speed = None if options.speed_mm_s is None else options.speed_mm_s * 1e-3
    poses = estimate_poses(sweep, options.motion or default_motion, speed_m_s=speed)
    return _Posed(
        np.asarray(sweep.frames),
        pixel_to_world(poses.poses, sweep.spacing_m),
        poses.valid,
        np.asarray(sweep.timestamps_s, dtype=np.float64),
        poses.heading_drift_dps,
        poses.time_offset_s,
    )


def _load_plus(name: str, plus_config: str | Path | None, settings: _Settings) -> _Posed:
    """A PLUS sequence with tracked poses; a config overrides ``settings`` as PLUS would."""
    from sonoedge.freehand.tracked import tracked_pixel_to_world
    from sonoedge.io.plus import read_plus_config, read_sequence

    seq = read_sequence(name)
    if seq.frames.size == 0 or seq.frames.ndim != 3:
        raise DataError(f"{name} holds no grayscale image frames (tracker-only or RGB sequence)")
    settings.plus_extent = True
    static: dict[tuple[str, str], Any] = {}
    image_frame, reference_frame = "Image", "Reference"
    if plus_config is not None:
        cfg = read_plus_config(plus_config)
        rc = cfg.reconstruction
        assert rc is not None  # read_plus_config raises when the element is missing
        static = dict(cfg.transforms)
        image_frame, reference_frame = rc.image_frame, rc.reference_frame
        _apply_plus_config(settings, rc)
    p2w, valid = tracked_pixel_to_world(seq, static, image_frame, reference_frame)
    return _Posed(frames_to_mf(seq.frames, seq.image_orientation), p2w, valid, seq.timestamps_s)


def _apply_plus_config(settings: _Settings, rc: ReconstructionConfig) -> None:
    """Every setting PLUS takes from its VolumeReconstruction element."""
    settings.spacing_m = tuple(v * 1e-3 for v in rc.output_spacing_mm)
    settings.interpolation = "linear" if rc.interpolation == "LINEAR" else "nearest"
    compounding = {"MAXIMUM": "max", "LATEST": "latest"}.get(rc.compounding, "mean")
    settings.compounding = cast(Compounding, compounding)
    if rc.compounding == "IMPORTANCE_MASK":
        warnings.warn("IMPORTANCE_MASK compounding needs a mask image: using MEAN", stacklevel=2)
    settings.clip = ClipRectangle(rc.clip_rectangle_origin, rc.clip_rectangle_size)
    if rc.fan_angles_deg is not None:
        settings.fan = FanMask(
            rc.fan_origin_px, rc.fan_angles_deg, rc.fan_radius_start_px, rc.fan_radius_stop_px
        )
    fill = _plus_hole_filling(rc.fill_holes, rc.hole_filling)
    method, settings.fill_size, settings.fill_sigma, settings.fill_min_ratio = fill
    settings.fill = cast("HoleMethod | None", method)
    settings.threshold = rc.pixel_rejection_threshold
    # PLUS's own rounding arithmetic where it applies (MEAN, numba present).
    settings.plus_arithmetic = settings.compounding == "mean" and _kernels.AVAILABLE
    if rc.output_origin_mm is not None and rc.output_extent is not None:
        e = rc.output_extent
        origin = [
            (o + e[2 * a] * s) * 1e-3
            for a, (o, s) in enumerate(zip(rc.output_origin_mm, rc.output_spacing_mm, strict=True))
        ]
        settings.grid = OutputGrid(
            (origin[0], origin[1], origin[2]),
            settings.spacing_m,
            (e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1),
        )


def _plus_hole_filling(
    on: bool, elements: tuple[dict[str, str], ...]
) -> tuple[str | None, int | None, float, float]:
    """PLUS's first HoleFillingElement as (method, size, sigma, min_ratio)."""
    if not on:
        return None, None, 1.0, 0.1
    if not elements:
        return "gaussian", 3, 1.0, 0.1
    el = elements[0]
    kind = el.get("Type", "GAUSSIAN").upper()
    method = {"NEAREST_NEIGHBOR": "nearest", "STICK": "stick"}.get(kind, "gaussian")
    try:
        size = int(float(el.get("Size", el.get("StickLengthLimit", "3"))))
        sigma = float(el.get("Stdev", "1.0"))
        ratio = float(el.get("MinimumKnownVoxelsRatio", "0.1"))
    except ValueError as err:
        raise ConfigError(f"HoleFillingElement {el} has a value that is not a number") from err
    return method, size, sigma, ratio
