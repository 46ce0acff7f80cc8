"""Simulated freehand sweeps with ground-truth poses and IMU samples.

A probe moves over a :class:`~sonoedge.synth.phantom3d.Phantom3D` — fan (tilt about the skin
contact point), linear (slide along elevation) or rotation (about the probe axis) — after a
stationary start (for gyro-bias estimation). Frames are log-compressed speckle images of the
phantom at the true poses; the IMU reports the body rate with bias and noise and the specific
force (gravity plus motion) with noise, optionally on a clock offset from the images.

World axes are the probe's image axes at the neutral pose (x lateral, y depth, z elevation);
Earth (NWU, z up) sees the image y axis pointing down. Example::

    sweep = simulate_sweep(ProbeInfo(), motion="fan", seed=0)
    sweep.poses[i]            # true image → world (metres) of frame i
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError
from sonoedge.synth.phantom3d import Phantom3D
from sonoedge.types import ImuBatch, ProbeInfo, Sweep

SWEEP_MOTIONS = ("fan", "linear", "rotation")
GRAVITY_M_S2 = 9.80665
EARTH_FROM_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _rx(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([one, zero, zero], -1), np.stack([zero, c, -s], -1), np.stack([zero, s, c], -1)],
        -2,
    )


def _ry(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)],
        -2,
    )


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def image_size(probe: ProbeInfo, spacing_m: tuple[float, float]) -> tuple[int, int]:
    """``(rows, cols)`` of frames covering the probe's depth range and aperture."""
    rows = round(probe.depth_range_m[1] / spacing_m[0])
    cols = round(probe.aperture_m / spacing_m[1])
    return max(rows, 2), max(cols, 2)


def default_phantom(probe: ProbeInfo, seed: int = 0) -> Phantom3D:
    """The phantom :func:`simulate_sweep` uses when none is given."""
    return Phantom3D.default(width_m=probe.aperture_m, depth_m=probe.depth_range_m[1], seed=seed)


def trajectory(
    times_s: npt.ArrayLike,
    motion: str,
    contact_m: npt.ArrayLike,
    start_s: float,
    duration_s: float,
    angle_deg: float,
    length_m: float,
) -> np.ndarray:
    """True image → world poses [n, 4, 4] at ``times_s``."""
    t = np.asarray(times_s, dtype=np.float64)
    s = _smoothstep((t - start_s) / duration_s) - 0.5
    # Hand tremor while moving; the probe rests still before the sweep starts.
    wobble = np.radians(0.25) * (1 - np.cos(2 * np.pi * 0.8 * (t - start_s))) * (t > start_s)
    c = np.asarray(contact_m, dtype=np.float64)
    translation = np.zeros((len(t), 3))
    if motion == "fan":
        rot = _rx(np.radians(angle_deg) * s) @ _ry(wobble)
    elif motion == "rotation":
        rot = _ry(np.radians(angle_deg) * s) @ _rx(wobble)
    elif motion == "linear":
        rot = _rx(wobble)
        translation[:, 2] = length_m * (np.clip((t - start_s) / duration_s, 0.0, 1.0) - 0.5)
    else:
        raise ConfigError(f"motion={motion!r} is invalid: expected one of {SWEEP_MOTIONS}")
    poses = np.tile(np.eye(4), (len(t), 1, 1))
    poses[:, :3, :3] = rot
    poses[:, :3, 3] = c - rot @ c + translation
    return poses


def _imu_from_poses(
    pose_at: Callable[[np.ndarray], np.ndarray],
    times_s: np.ndarray,
    calib: np.ndarray,
    rng: np.random.Generator,
    bias_dps: np.ndarray,
    gyro_noise_dps: float,
    accel_noise_g: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Gyro (body rate, °/s) and accelerometer (specific force, g) from true poses over time."""
    h = 1e-3
    imu_in_image = calib[:3, 3]
    r_img_from_imu = calib[:3, :3]

    def sensor(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = pose_at(t)
        rs = EARTH_FROM_WORLD @ p[:, :3, :3] @ r_img_from_imu
        pos = (EARTH_FROM_WORLD @ (p[:, :3, :3] @ imu_in_image + p[:, :3, 3])[..., None])[..., 0]
        return rs, pos

    r_minus, p_minus = sensor(times_s - h)
    r_0, p_0 = sensor(times_s)
    r_plus, p_plus = sensor(times_s + h)
    delta = np.swapaxes(r_minus, 1, 2) @ r_plus  # body-frame rotation over 2h
    vee = (
        np.stack(
            [
                delta[:, 2, 1] - delta[:, 1, 2],
                delta[:, 0, 2] - delta[:, 2, 0],
                delta[:, 1, 0] - delta[:, 0, 1],
            ],
            -1,
        )
        / 2
    )
    omega_dps = np.degrees(np.arcsin(np.clip(np.linalg.norm(vee, axis=1), 0, 1)))
    axis = vee / np.maximum(np.linalg.norm(vee, axis=1, keepdims=True), 1e-15)
    gyro = axis * omega_dps[:, None] / (2 * h)
    accel_earth = (p_plus - 2 * p_0 + p_minus) / h**2 / GRAVITY_M_S2 + np.array([0, 0, 1.0])
    accel = np.einsum("nji,nj->ni", r_0, accel_earth)
    gyro = gyro + bias_dps + rng.normal(0, gyro_noise_dps, gyro.shape)
    accel = accel + rng.normal(0, accel_noise_g, accel.shape)
    return gyro.astype(np.float32), accel.astype(np.float32)


def simulate_sweep(
    probe: ProbeInfo,
    motion: str = "fan",
    seed: int = 0,
    n_frames: int = 60,
    frame_rate_hz: float = 30.0,
    imu_rate_hz: float = 500.0,
    spacing_m: tuple[float, float] = (0.2e-3, 0.2e-3),
    angle_deg: float = 30.0,
    length_m: float = 0.03,
    stationary_s: float = 1.0,
    gyro_bias_dps: tuple[float, float, float] = (0.4, -0.3, 0.2),
    gyro_noise_dps: float = 0.05,
    accel_noise_g: float = 0.003,
    imu_time_offset_s: float = 0.0,
    dynamic_range_db: float = 50.0,
    phantom: Phantom3D | None = None,
) -> Sweep:
    """A sweep over a phantom: uint8 frames, true poses, and IMU samples from the true motion.

    Frames cover the probe's depth and aperture at ``spacing_m`` (axial, lateral); the first
    ``stationary_s`` the probe rests, then it moves for ``n_frames / frame_rate_hz`` seconds.
    ``angle_deg`` is the fan or rotation range (smooth start and stop), ``length_m`` the linear
    slide (constant speed). IMU timestamps
    read ``imu_time_offset_s`` earlier than the image clock.
    """
    if motion not in SWEEP_MOTIONS:
        raise ConfigError(f"motion={motion!r} is invalid: expected one of {SWEEP_MOTIONS}")
    if not 1 <= n_frames <= 10000:
        raise ConfigError(f"n_frames={n_frames} is invalid: expected 1..10000")
    if not 1 <= frame_rate_hz <= 1000 or not 50 <= imu_rate_hz <= 10000:
        raise ConfigError("frame_rate_hz must be 1..1000 Hz and imu_rate_hz 50..10000 Hz")
    if min(spacing_m) <= 0:
        raise ConfigError(f"spacing_m={spacing_m} is invalid: expected > 0")
    rng = np.random.default_rng(seed)
    ph = phantom or default_phantom(probe, seed)
    rows, cols = image_size(probe, spacing_m)
    contact = np.array([(cols - 1) * spacing_m[1] / 2, 0.0, 0.0])
    sweep_s = n_frames / frame_rate_hz
    total_s = stationary_s + sweep_s + 0.2

    def pose_at(t: np.ndarray) -> np.ndarray:
        return trajectory(t, motion, contact, stationary_s, sweep_s, angle_deg, length_m)

    frame_times = stationary_s + np.arange(n_frames) / frame_rate_hz
    poses = pose_at(frame_times)
    imu_times = np.arange(0.0, total_s, 1.0 / imu_rate_hz)
    gyro, accel = _imu_from_poses(
        pose_at,
        imu_times,
        probe.imu_to_image,
        rng,
        np.asarray(gyro_bias_dps, np.float64),
        gyro_noise_dps,
        accel_noise_g,
    )
    imu = ImuBatch(times_s=imu_times - imu_time_offset_s, gyro_dps=gyro, accel_g=accel)
    jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    plane = np.stack(
        [ii.ravel() * spacing_m[1], jj.ravel() * spacing_m[0], np.zeros(ii.size), np.ones(ii.size)],
        0,
    )
    frames = np.empty((n_frames, rows, cols), np.uint8)
    for n in range(n_frames):
        world = (poses[n] @ plane)[:3].T
        db = 20 * np.log10(np.maximum(ph.amplitude(world), 1e-6))
        frames[n] = np.clip((db + dynamic_range_db - 6) / dynamic_range_db * 255, 0, 255).reshape(
            rows, cols
        )
    return Sweep(
        frames=frames,
        spacing_m=spacing_m,
        timestamps_s=frame_times,
        poses=poses,
        imu=imu,
        probe=probe,
    )


def doppler_ensembles(
    sweep: Sweep,
    phantom: Phantom3D,
    n_ensemble: int = 16,
    prf_hz: float = 1000.0,
    blood_to_tissue_db: float = -30.0,
    noise_db: float = -45.0,
    seed: int = 0,
) -> npt.NDArray[np.complex64]:
    """IQ ensembles ``[frame, n_ensemble, rows, cols]`` at each true pose of ``sweep``.

    Tissue is the phantom's speckle with slow handheld phase drift; blood inside vessels
    decorrelates from pulse to pulse and carries a Doppler phase ramp; white noise on top.
    """
    if sweep.poses is None or sweep.probe is None:
        raise ConfigError("the sweep needs true poses and a probe to simulate Doppler")
    if n_ensemble < 2:
        raise ConfigError(f"n_ensemble={n_ensemble} is invalid: expected >= 2")
    rng = np.random.default_rng(seed)
    n, rows, cols = sweep.frames.shape
    jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    plane = np.stack(
        [
            ii.ravel() * sweep.spacing_m[1],
            jj.ravel() * sweep.spacing_m[0],
            np.zeros(ii.size),
            np.ones(ii.size),
        ],
        0,
    )
    f0 = sweep.probe.center_frequency_hz
    out = np.empty((n, n_ensemble, rows, cols), np.complex64)
    blood_amp = 10 ** (blood_to_tissue_db / 20)
    noise_amp = 10 ** (noise_db / 20)
    for f in range(n):
        world = (sweep.poses[f] @ plane)[:3].T
        tissue = np.sqrt(phantom.echogenicity(world)) * phantom.speckle(world)
        blood = phantom.blood_mask(world)
        drift = np.exp(2j * np.pi * 30.0 * np.arange(n_ensemble) / prf_hz)
        ens = tissue[None, :] * drift[:, None]
        shift = 2 * 0.15 * f0 / 1540.0 / prf_hz
        ramp = np.exp(2j * np.pi * shift * np.arange(n_ensemble))
        scat = rng.normal(size=(n_ensemble, int(blood.sum()))) + 1j * rng.normal(
            size=(n_ensemble, int(blood.sum()))
        )
        ens[:, blood] += blood_amp * scat * ramp[:, None]
        ens += noise_amp * (rng.normal(size=ens.shape) + 1j * rng.normal(size=ens.shape))
        out[f] = ens.reshape(n_ensemble, rows, cols)
    return out
