"""Simulated datasets in chunked HDF5, deterministic per seed, made on all cores.

Tasks and what each sample holds (``N`` samples, ``H × W`` pixels, ``F`` frames):

- ``bmode``: ``speckled`` and ``clean`` (N, H, W) float32 in [0, 1] (despeckling pairs).
- ``enhance``: ``target`` (a speckled B-mode image) and ``degraded`` (N, H, W) float32, with
  ``blur_sigma_px`` (N, 2), ``severity`` (N,) and ``fourier_noise`` (N,) bool.
- ``doppler``: ``iq`` (N, F, H, W) complex64, ``vessel_mask`` (N, H, W) bool, ``blood_power``
  and ``axial_velocity_m_s`` (N, H, W) float32, ``blood_db`` and ``noise_db`` (N,).
- ``bubbles``: ``frames`` (N, F, H, W) float32, ``params`` (N, 8) float32 (the PgD parameter
  vector), and ground truth as flat tables ``positions_m`` (M, 2), ``track_ids`` (M,) with
  ``position_offsets`` (N·F + 1,): rows ``offsets[i·F + f] : offsets[i·F + f + 1]`` belong to
  frame ``f`` of sample ``i``.
  With ``engine="generator"`` the frames come from the ULM generator
  (:meth:`sonoedge.zoo.ulm.UlmGenerator.render_scene`: the same vessel trees, flow and ground
  truth, frames in the simulator's units, clipped at twice a median bubble's peak); its ``train``
  split draws parameters over the generator's trained box, its ``eval`` split only centre
  frequencies the generator never saw (its card's ``held_out_f0_mhz``). Size: a multiple of the
  card's ``size_multiple``.
- ``sweep``: freehand sweeps from :func:`sonoedge.synth.sweeps.simulate_sweep` (fan, linear or
  rotation at random): ``frames`` (N, F, rows, cols) uint8 (about ``size`` pixels square),
  ``poses`` (N, F, 4, 4) image→world in metres, ``timestamps_s`` (N, F), ``imu_times_s`` (N, K),
  ``gyro_dps`` and ``accel_g`` (N, K, 3), ``motion`` (N,) 0 = fan, 1 = linear, 2 = rotation.

Every dataset is chunked one sample per chunk. The file's ``spec`` attribute holds the JSON of
the :class:`DatasetSpec` (and the sonoedge version). Sample ``i`` is seeded by
``SeedSequence([seed, split, i])``, so train and ``eval`` splits never share seeds, and the
``eval`` split also draws from partly disjoint parameter ranges. The file is written under a
temporary name and renamed when complete: an interrupted run leaves no file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sonoedge.errors import ConfigError, DataError, RecordingError
from sonoedge.synth.imaging import check_size
from sonoedge.synth.transducer import check_positive, get_preset
from sonoedge.types import ProbeInfo

Task = Literal["bmode", "enhance", "doppler", "bubbles", "sweep"]
TASKS: tuple[Task, ...] = ("bmode", "enhance", "doppler", "bubbles", "sweep")
Split = Literal["train", "eval"]
SPLITS: tuple[Split, ...] = ("train", "eval")
Engine = Literal["physics", "generator"]
ENGINES: tuple[Engine, ...] = ("physics", "generator")

Sample = dict[str, Any]


@dataclass(frozen=True)
class DatasetSpec:
    """What to simulate: task, count, seed, probe preset, image size, frames, PRF, split; for
    ``bubbles`` also the engine (``physics`` or the ULM ``generator``: its model name or path,
    and its mirror copies per step, 0 for its card's)."""

    task: Task
    n: int
    seed: int
    probe: str = "L11-5v"
    size: int = 128
    frames: int = 32
    prf_hz: float = 1000.0
    split: Split = "train"
    engine: Engine = "physics"
    generator: str = "ulm-generator"
    mirror_average: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task={self.task!r} is invalid: expected one of {TASKS}")
        if not (isinstance(self.n, int) and self.n >= 1):
            raise ConfigError(f"n={self.n!r} is invalid: expected an integer >= 1")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ConfigError(f"seed={self.seed!r} is invalid: expected an integer >= 0")
        get_preset(self.probe)
        check_size("size", self.size, 16, 2048)
        check_size("frames", self.frames, 1, 4096)
        check_positive("prf_hz", self.prf_hz)
        if self.split not in SPLITS:
            raise ConfigError(f"split={self.split!r} is invalid: expected one of {SPLITS}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine={self.engine!r} is invalid: expected one of {ENGINES}")
        if self.engine != "physics" and self.task != "bubbles":
            raise ConfigError(
                f"engine={self.engine!r} makes only 'bubbles' datasets, not {self.task!r}",
                hint="leave the engine at 'physics' for this task",
            )
        if self.mirror_average:
            self._check_mirror_average()

    def _check_mirror_average(self) -> None:
        from sonoedge.zoo.ulm import MIRROR_AVERAGES  # here, not at import: it loads the zoo

        if self.mirror_average not in MIRROR_AVERAGES:
            raise ConfigError(
                f"mirror_average={self.mirror_average!r} is invalid: expected 0 (the generator "
                f"card's) or one of {MIRROR_AVERAGES}"
            )

    def sample_seed(self, index: int) -> int:
        """Seed of sample ``index`` (independent of ``n`` and of worker scheduling)."""
        state = np.random.SeedSequence([self.seed, SPLITS.index(self.split), index])
        return int(state.generate_state(1, dtype=np.uint32)[0])

    def to_json(self) -> str:
        from sonoedge import __version__

        return json.dumps({**asdict(self), "sonoedge_version": __version__}, sort_keys=True)


def make_sample(spec: DatasetSpec, index: int) -> Sample:
    """Simulate sample ``index`` of ``spec`` (pure function of the two)."""
    seed = spec.sample_seed(index)
    rng = np.random.default_rng(seed)
    held_out = spec.split == "eval"
    probe = get_preset(spec.probe)
    size = spec.size
    if spec.task in ("bmode", "enhance"):
        from sonoedge.synth.speckle import simulate_bmode

        f_number = float(rng.uniform(2.0, 3.0) if held_out else rng.uniform(1.0, 2.0))
        b = simulate_bmode(probe, size, size, seed, phantom="random", f_number=f_number)
        if spec.task == "bmode":
            return {"speckled": b.speckled, "clean": b.clean}
        from sonoedge.synth.degradation import degrade

        severity = float(rng.uniform(0.7, 1.0) if held_out else rng.uniform(0.0, 0.8))
        fourier = bool(rng.uniform() < 0.5)
        degraded, info = degrade(
            b.speckled, seed, noise="fourier" if fourier else "gaussian", severity=severity
        )
        return {
            "target": b.speckled,
            "degraded": degraded,
            "blur_sigma_px": np.asarray(info["blur_sigma_px"], dtype=np.float32),
            "severity": np.float32(severity),
            "fourier_noise": np.bool_(fourier),
        }
    if spec.task == "doppler":
        from sonoedge.synth.doppler import simulate_doppler

        d = simulate_doppler(
            probe,
            spec.frames,
            spec.prf_hz,
            size,
            size,
            seed,
            blood_db_range=(-45.0, -35.0) if held_out else (-40.0, -25.0),
            motion_scale=float(rng.uniform(1.0, 1.5) if held_out else rng.uniform(0.0, 1.0)),
        )
        return {
            "iq": d.iq,
            "vessel_mask": d.vessel_mask,
            "blood_power": d.blood_power,
            "axial_velocity_m_s": d.axial_velocity_m_s,
            "blood_db": np.float32(d.blood_db),
            "noise_db": np.float32(d.noise_db),
        }
    if spec.task == "sweep":
        return _sweep_sample(spec, probe, seed, rng, held_out)
    if spec.engine == "generator":
        return _generated_bubbles(spec, rng, held_out)
    from sonoedge.synth.microbubbles import BubbleParams, simulate_bubbles

    params = BubbleParams.random(rng, held_out=held_out)
    bub = simulate_bubbles(params, spec.frames, size, size, seed)
    return {
        "frames": bub.frames,
        "params": params.as_vector(),
        "positions_m": bub.positions_m,
        "track_ids": bub.track_ids,
    }


_GENERATORS: dict[str, Any] = {}


def load_spec_generator(spec: DatasetSpec) -> Any:
    """The spec's ULM generator (one onnxruntime thread; loaded once per process), or a
    :class:`ConfigError` if its frames cannot have the spec's size."""
    if spec.generator not in _GENERATORS:
        from sonoedge.zoo.ulm import load_generator

        _GENERATORS[spec.generator] = load_generator(spec.generator, threads=1)
    gen = _GENERATORS[spec.generator]
    if spec.size % gen.size_multiple:
        raise ConfigError(
            f"size={spec.size} is invalid for {gen.name}: expected a multiple of "
            f"{gen.size_multiple} pixels"
        )
    return gen


def _generated_bubbles(spec: DatasetSpec, rng: np.random.Generator, held_out: bool) -> Sample:
    from dataclasses import replace

    from sonoedge.synth.microbubbles import BubbleParams, bubble_scene
    from sonoedge.zoo.ulm import generator_parameters

    gen = load_spec_generator(spec)
    params = BubbleParams.random(rng)
    if held_out:  # a centre frequency the generator never saw, the rest of the vector kept
        lo, hi = gen.card["input"]["held_out_f0_mhz"]
        f0 = float(rng.uniform(lo, hi)) * 1e6
        pitch_wavelengths = generator_parameters(params)["pitch_wavelengths"]
        lam = 1540.0 / f0
        params = replace(
            params,
            center_frequency_hz=f0,
            pitch_m=pitch_wavelengths * lam,
            spacing_m=(lam / 4,) * 2,
        )
    scene = bubble_scene(params, spec.frames, spec.size, spec.size, rng)
    frames = gen.render_scene(scene, params, int(rng.integers(2**31)), spec.mirror_average or None)
    positions, ids = scene.truth()
    return {
        "frames": frames,
        "params": params.as_vector(),
        "positions_m": positions,
        "track_ids": ids,
    }


def _sweep_sample(
    spec: DatasetSpec, probe: ProbeInfo, seed: int, rng: np.random.Generator, held_out: bool
) -> Sample:
    from sonoedge.synth.sweeps import SWEEP_MOTIONS, simulate_sweep

    motion = int(rng.integers(len(SWEEP_MOTIONS)))
    near, far = probe.depth_range_m
    spacing = ((far - near) / spec.size, probe.aperture_m / spec.size)
    sweep = simulate_sweep(
        probe,
        motion=SWEEP_MOTIONS[motion],
        seed=seed,
        n_frames=spec.frames,
        spacing_m=spacing,
        angle_deg=float(rng.uniform(40.0, 50.0) if held_out else rng.uniform(15.0, 40.0)),
        length_m=float(rng.uniform(0.04, 0.05) if held_out else rng.uniform(0.015, 0.04)),
    )
    if sweep.imu is None or sweep.poses is None:
        raise DataError("simulate_sweep returned a sweep without poses or IMU samples")
    return {
        "frames": sweep.frames,
        "poses": sweep.poses,
        "timestamps_s": sweep.timestamps_s,
        "imu_times_s": sweep.imu.times_s,
        "gyro_dps": sweep.imu.gyro_dps,
        "accel_g": sweep.imu.accel_g,
        "motion": np.int8(motion),
    }


def _make(args: tuple[DatasetSpec, int]) -> tuple[int, Sample]:
    spec, index = args
    return index, make_sample(spec, index)


def _samples(spec: DatasetSpec, workers: int) -> Iterator[tuple[int, Sample]]:
    jobs = [(spec, i) for i in range(spec.n)]
    if workers <= 1 or spec.n == 1:
        yield from map(_make, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_make, jobs, chunksize=max(1, spec.n // (8 * workers)))


def write_dataset(
    spec: DatasetSpec,
    out: str | Path,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    command: str | None = None,
) -> Path:
    """Simulate ``spec`` into the HDF5 file ``out`` and return its path.

    ``workers`` processes simulate in parallel (default: all cores); ``progress`` is called
    with the number of samples written so far.
    """
    import h5py

    out_path = Path(out)
    if not out_path.parent.exists():
        raise RecordingError(
            f"output folder {out_path.parent} does not exist", hint="create it first"
        )
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    if n_workers < 1:
        raise ConfigError(f"workers={workers!r} is invalid: expected >= 1")
    generator = load_spec_generator(spec) if spec.engine == "generator" else None
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["spec"] = spec.to_json()
            f.attrs["command"] = command or ""
            if generator is not None:
                f.attrs["generator"] = json.dumps(
                    {
                        "name": generator.name,
                        "sha256": generator.card.get("sha256"),
                        "sampling": generator.card.get("sampling"),
                    },
                    sort_keys=True,
                )
            ragged: dict[str, list[np.ndarray]] = {"positions_m": [], "track_ids": []}
            for index, sample in _samples(spec, n_workers):
                for key, value in sample.items():
                    if key in ragged:
                        ragged[key].extend(value)
                        continue
                    arr = np.asarray(value)
                    if key not in f:
                        f.create_dataset(
                            key,
                            shape=(spec.n, *arr.shape),
                            dtype=arr.dtype,
                            chunks=(1, *arr.shape) if arr.ndim else None,
                            compression=None if np.iscomplexobj(arr) else "lzf",
                        )
                    f[key][index] = arr
                if progress is not None:
                    progress(index + 1)
            if ragged["positions_m"]:
                counts = [len(p) for p in ragged["positions_m"]]
                f.create_dataset(
                    "positions_m", data=np.concatenate(ragged["positions_m"]).reshape(-1, 2)
                )
                f.create_dataset(
                    "track_ids", data=np.concatenate(ragged["track_ids"]).astype(np.int64)
                )
                f.create_dataset("position_offsets", data=np.concatenate([[0], np.cumsum(counts)]))
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def read_spec(path: str | Path) -> DatasetSpec:
    """The :class:`DatasetSpec` recorded in a dataset file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = json.loads(f.attrs["spec"])
    except (OSError, KeyError) as err:
        raise RecordingError(f"{path} is not a sonoedge synth dataset: {err}") from None
    raw.pop("sonoedge_version", None)
    return DatasetSpec(**raw)
