"""Doppler IQ ensembles: strong tissue clutter under handheld motion, blood in vessel trees.

A scene has random tissue layers/lesions, 1–3 random branching vessel trees with Poiseuille flow
(1–50 mm/s centreline, any in-plane direction), blood 25–40 dB below tissue, thermal noise, and
handheld drift, tremor and breathing. Tissue clutter covers the lumens too (the microvascular
regime, where only motion tells blood from tissue). Ground truth: the lumen mask, the blood
echo power (mean ``|IQ_blood|²`` over the ensemble, i.e. what a perfect clutter filter would
leave, relative to background tissue power) and the mean axial blood velocity per pixel; the
mask and velocity are drawn where the vessels are at the middle frame.

Long and short views of the same scene: simulate the long ensemble once and take
``scene.view(n)`` (its first ``n`` frames; the ground truth is unchanged).

Example::

    scene = simulate_doppler(get_preset("L11-5v"), n_frames=128, prf_hz=1000,
                             height=128, width=128, seed=0)
    short = scene.view(16)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.imaging import Grid, check_size, default_spacing_m
from sonoedge.synth.motion import HandheldMotion
from sonoedge.synth.phantoms import make_phantom
from sonoedge.synth.scene import FlowScene
from sonoedge.synth.transducer import check_positive
from sonoedge.synth.vessels import merge_trees, random_tree
from sonoedge.types import IQEnsemble, ProbeInfo


@dataclass(frozen=True)
class DopplerScene:
    """An IQ ensemble ``iq[frame, axial, lateral]`` with its ground truth (see module doc)."""

    iq: npt.NDArray[np.complex64]
    vessel_mask: npt.NDArray[np.bool_]
    blood_power: npt.NDArray[np.float32]
    axial_velocity_m_s: npt.NDArray[np.float32]
    spacing_m: tuple[float, float]
    prf_hz: float
    blood_db: float
    noise_db: float

    @property
    def n_frames(self) -> int:
        return int(self.iq.shape[0])

    def view(self, n_frames: int) -> DopplerScene:
        """The same scene seen through its first ``n_frames`` frames."""
        check_size("n_frames", n_frames, 1, self.n_frames)
        return replace(self, iq=self.iq[:n_frames])

    def ensemble(self) -> IQEnsemble:
        """The IQ data as the SDK's :class:`~sonoedge.types.IQEnsemble`."""
        return IQEnsemble(spacing_m=self.spacing_m, iq=self.iq, prf_hz=self.prf_hz)


def simulate_doppler(
    probe: ProbeInfo,
    n_frames: int,
    prf_hz: float,
    height: int,
    width: int,
    seed: int,
    spacing_m: tuple[float, float] | None = None,
    blood_db_range: tuple[float, float] = (-40.0, -25.0),
    speed_range_m_s: tuple[float, float] = (1e-3, 50e-3),
    noise_db_range: tuple[float, float] = (-55.0, -45.0),
    motion_scale: float = 1.0,
    f_number: float = 1.5,
    blood_per_cell: float = 4.0,
) -> DopplerScene:
    """Simulate one Doppler ensemble of ``n_frames`` at ``prf_hz`` on ``height × width`` pixels.

    Blood and noise levels are drawn per scene from the given dB ranges (relative to background
    tissue power); ``motion_scale`` scales the handheld motion (0 = probe held still). Images
    are in the probe's beam space (for convex/phased probes: depth × arc length, not
    scan-converted); ``spacing_m`` defaults to the depth range and aperture over the grid.
    """
    check_size("n_frames", n_frames, 1, 100_000)
    check_size("height", height)
    check_size("width", width)
    check_positive("prf_hz", prf_hz)
    for name, (lo, hi) in (
        ("blood_db_range", blood_db_range),
        ("noise_db_range", noise_db_range),
    ):
        if not -80.0 <= lo <= hi <= 0.0:
            raise ConfigError(
                f"{name}={(lo, hi)!r} is invalid: expected -80 <= low <= high <= 0 dB"
            )
    if motion_scale < 0:
        raise ConfigError(f"motion_scale={motion_scale!r} is invalid: expected >= 0")
    rng = np.random.default_rng(seed)
    if spacing_m is None:
        spacing_m = default_spacing_m(probe, height, width)
    near = probe.depth_range_m[0]
    grid = Grid((height, width), spacing_m, (near, -spacing_m[1] * (width - 1) / 2))
    extent = grid.extent_m()
    # Small vessels: lumen radius of 1-3 pixels, within 0.1-1 mm.
    pixel_m = max(spacing_m)
    radius_range_m = (min(max(pixel_m, 0.1e-3), 1e-3), min(max(3 * pixel_m, 0.2e-3), 1e-3))
    trees = [
        random_tree(
            rng,
            extent,
            radius_range_m=radius_range_m,
            speed_range_m_s=speed_range_m_s,
            levels=int(rng.integers(2, 4)),
        )
        for _ in range(int(rng.integers(1, 4)))
    ]
    blood_db = float(rng.uniform(*blood_db_range))
    noise_db = float(rng.uniform(*noise_db_range))
    duration_s = n_frames / prf_hz
    scene = FlowScene(
        probe,
        grid,
        make_phantom("layers", grid, rng),
        merge_trees(trees),
        HandheldMotion.random(rng, scale=motion_scale),
        seed=int(rng.integers(2**31)),
        blood_db=blood_db,
        lumen_db=0.0,
        noise_db=noise_db,
        blood_per_cell=blood_per_cell,
        f_number=f_number,
        max_time_s=duration_s,
    )
    times = np.arange(n_frames) / prf_hz
    iq = np.empty((n_frames, height, width), dtype=np.complex64)
    blood_power = np.zeros((height, width), dtype=np.float64)
    for start in range(0, n_frames, 32):
        t = times[start : start + 32]
        tissue_iq, blood_iq = scene.parts(t)
        blood_power += np.sum(np.abs(blood_iq) ** 2, axis=0)
        iq[start : start + 32] = tissue_iq + blood_iq + scene.noise(t)
    mask, velocity = scene.vessels_at(float(times[n_frames // 2]))
    return DopplerScene(
        iq=iq,
        vessel_mask=mask,
        blood_power=(blood_power / n_frames / scene.background_power).astype(np.float32),
        axial_velocity_m_s=velocity,
        spacing_m=spacing_m,
        prf_hz=float(prf_hz),
        blood_db=blood_db,
        noise_db=noise_db,
    )
