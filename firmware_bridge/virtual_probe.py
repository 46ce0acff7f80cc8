"""A virtual probe: speaks wire protocol v1 like firmware would, with no hardware.

Its images come from the physics simulators (:mod:`sonoedge.synth.live`).

:class:`VirtualProbe` is transport-agnostic: feed it host→probe bytes with :meth:`handle` and
collect the messages that are due with :meth:`poll`. ``emulator.py`` runs it on a
pseudo-terminal or a TCP port; ``sonoedge.ingest`` runs it in-process for ``emulator://``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sonoedge.errors import ConfigError
from sonoedge.firmware_bridge import payloads as pl
from sonoedge.firmware_bridge.decoder import Decoder
from sonoedge.firmware_bridge.wire import Encoder, MessageType
from sonoedge.types import (
    PROBE_MODES,
    BmodeFrame,
    ImuBatch,
    IQEnsemble,
    IQFrame,
    ProbeInfo,
    ProbeMode,
    ProbeStatus,
)

PRESETS: dict[str, dict[str, Any]] = {
    "bmode": {"mode": "bmode"},
    "iq": {"mode": "iq"},
    # 16×128×128 complex64 ensembles are 2 MiB: 5/s (10 MB/s) fits a pty with margin
    # (a Linux pty carries ~40 MB/s); raise ensemble_rate_hz for emulator:// or TCP.
    "doppler": {"mode": "doppler", "ensemble_rate_hz": 5.0},
    # Contrast microbubbles for ULM on a λ/4 grid (the localisers need pixels <= λ/2):
    # 32×128×128 ensembles (4 MiB) at 2/s, 64 frames/s of bubbles in flowing vessels.
    "ulm": {"mode": "doppler", "scene": "bubbles", "ensemble_frames": 32, "ensemble_rate_hz": 2.0},
}
SCENES = ("tissue", "bubbles")
"""``tissue``: B-mode/Doppler scene (tissue, cysts, blood; sonoedge.synth.live.LiveScene);
``bubbles``: contrast microbubbles in vessels on a fine grid, for ULM (LiveBubbleScene)."""


@dataclass
class EmulatorConfig:
    """What the virtual probe streams and how fast (rates in Hz, shapes as (axial, lateral)).

    IQ frames and ensembles share ``iq_shape`` (the beamformed grid); B-mode has its own.
    ``scene`` picks the content (:data:`SCENES`); the ``bubble_*`` options shape the ``bubbles``
    scene: pixels per wavelength (>= 2), bubbles per wavelength², SNR and tissue clutter (dB re
    a median bubble's peak).
    """

    mode: ProbeMode = "bmode"
    bmode_fps: float = 30.0
    bmode_shape: tuple[int, int] = (256, 256)
    iq_fps: float = 30.0
    iq_shape: tuple[int, int] = (128, 128)
    ensemble_rate_hz: float = 10.0
    ensemble_frames: int = 16
    prf_hz: float = 1000.0
    depth_m: float = 0.04
    gain_db: float = 0.0
    imu_rate_hz: float = 200.0
    imu_batch: int = 10
    status_rate_hz: float = 1.0
    clock_offset_us: int = 5_000_000
    clock_drift_ppm: float = 40.0
    autostart: bool = False
    seed: int = 0
    scene: str = "tissue"
    bubble_pixels_per_wavelength: float = 4.0
    bubble_concentration: float = 0.05
    bubble_snr_db: float = 30.0
    bubble_tissue_db: float = 10.0
    info: ProbeInfo = field(default_factory=ProbeInfo)

    def __post_init__(self) -> None:
        if self.scene not in SCENES:
            raise ConfigError(
                f"emulator scene {self.scene!r} is unknown", hint=f"use one of: {', '.join(SCENES)}"
            )
        if self.scene == "bubbles":  # fail when configured, not on the first frame
            from sonoedge.synth.live import LiveBubbleScene

            LiveBubbleScene.check_options(
                self.info,
                self.bubble_pixels_per_wavelength,
                self.bubble_concentration,
                self.bubble_snr_db,
                self.bubble_tissue_db,
            )

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> EmulatorConfig:
        if preset not in PRESETS:
            raise ConfigError(
                f"unknown emulator preset {preset!r}", hint=f"use one of: {', '.join(PRESETS)}"
            )
        valid = set(cls.__dataclass_fields__)
        unknown = set(overrides) - valid
        if unknown:
            raise ConfigError(
                f"unknown emulator option(s): {', '.join(sorted(unknown))}",
                hint=f"valid options: {', '.join(sorted(valid))}",
            )
        return cls(**{**PRESETS[preset], **overrides})


class PhysicsScene:
    """The virtual probe's content: the physics simulators' live scene (sonoedge.synth.live).

    Tissue layers, cysts and point targets under handheld motion, blood flowing in vessel trees
    (``scene="tissue"``), or microbubbles flowing in vessels on a fine grid for ULM
    (``scene="bubbles"``); one scene for the B-mode grid and one for the IQ grid, built on first
    use.
    """

    def __init__(
        self,
        info: ProbeInfo,
        seed: int,
        bmode_shape: tuple[int, int],
        iq_shape: tuple[int, int],
        config: EmulatorConfig | None = None,
    ) -> None:
        self._args = (info, seed)
        self._shapes = {"bmode": bmode_shape, "iq": iq_shape}
        self._scenes: dict[str, Any] = {}
        self._config = config or EmulatorConfig()

    def scene(self, grid: str) -> Any:
        if grid not in self._scenes:
            info, seed = self._args
            cfg = self._config
            if cfg.scene == "bubbles":
                from sonoedge.synth.live import LiveBubbleScene

                self._scenes[grid] = LiveBubbleScene(
                    info,
                    seed,
                    *self._shapes[grid],
                    pixels_per_wavelength=cfg.bubble_pixels_per_wavelength,
                    concentration_per_lambda2=cfg.bubble_concentration,
                    snr_db=cfg.bubble_snr_db,
                    tissue_db=cfg.bubble_tissue_db,
                )
            else:
                from sonoedge.synth.live import LiveScene

                self._scenes[grid] = LiveScene(info, seed, *self._shapes[grid])
        return self._scenes[grid]


class VirtualProbe:
    """Generates protocol messages on a schedule and answers commands with acknowledgements."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = cfg = config or EmulatorConfig()
        self.info = cfg.info
        self.scene = PhysicsScene(cfg.info, cfg.seed, cfg.bmode_shape, cfg.iq_shape, cfg)
        self.mode: ProbeMode = cfg.mode
        self.depth_m = cfg.depth_m
        self.prf_hz = cfg.prf_hz
        self.gain_db = cfg.gain_db
        self.streaming = cfg.autostart
        self.frames_sent = 0
        self.frames_dropped = 0
        self.commands_received = 0
        self._encoder = Encoder()
        self._decoder = Decoder(max_payload_bytes=4096)
        self._outbox: list[bytes] = []
        self._rng = np.random.default_rng(cfg.seed + 1)
        self._due: dict[str, float] = {}
        self._frame_index = 0
        self._imu_t = 0.0
        if self.streaming:
            self._start(0.0)

    # --- clock -------------------------------------------------------------------------------

    def probe_time_us(self, t_s: float) -> int:
        """The probe's counter at emulator time ``t_s`` (it has its own offset and drift)."""
        cfg = self.config
        return int(cfg.clock_offset_us + t_s * 1e6 * (1 + cfg.clock_drift_ppm * 1e-6))

    def _emit(self, obj: pl.Decoded, t_s: float, times_us: np.ndarray | None = None) -> None:
        msg_type, parts = pl.encode_parts(obj, times_us)
        self._outbox.append(self._encoder.encode(msg_type, parts, self.probe_time_us(t_s)))

    # --- commands ----------------------------------------------------------------------------

    def handle(self, data: bytes, t_s: float = 0.0) -> None:
        """Process host→probe bytes; acknowledgements are queued for the next :meth:`poll`."""
        for msg in self._decoder.feed(data):
            if msg.type != MessageType.COMMAND:
                continue
            self.commands_received += 1
            try:
                cmd = pl.unpack_command(msg.payload)
            except Exception:
                self._emit(
                    pl.Ack(msg.sequence, pl.CommandCode.START, pl.AckResult.BAD_COMMAND), t_s
                )
                continue
            result, value = self._apply(cmd, t_s)
            self._emit(pl.Ack(msg.sequence, cmd.code, result, value), t_s)
            if (
                cmd.code in (pl.CommandCode.REQUEST_DESCRIPTOR, pl.CommandCode.START)
                and result == pl.AckResult.OK
            ):
                self._emit(self.info, t_s)

    def _apply(self, cmd: pl.Command, t_s: float) -> tuple[pl.AckResult, float]:
        code = cmd.code
        if code == pl.CommandCode.START:
            self._start(t_s)
            return pl.AckResult.OK, 0.0
        if code == pl.CommandCode.STOP:
            self.streaming = False
            return pl.AckResult.OK, 0.0
        if code == pl.CommandCode.SET_MODE:
            if cmd.arg >= len(PROBE_MODES):
                return pl.AckResult.OUT_OF_RANGE, float(PROBE_MODES.index(self.mode))
            self.mode = PROBE_MODES[cmd.arg]
            return pl.AckResult.OK, float(cmd.arg)
        if code == pl.CommandCode.SET_DEPTH:
            near, far = self.info.depth_range_m
            if not near < cmd.value <= far:
                return pl.AckResult.OUT_OF_RANGE, self.depth_m
            self.depth_m = cmd.value
            return pl.AckResult.OK, self.depth_m
        if code == pl.CommandCode.SET_PRF:
            if not 100.0 <= cmd.value <= 20000.0:
                return pl.AckResult.OUT_OF_RANGE, self.prf_hz
            self.prf_hz = float(round(cmd.value))  # the "hardware" has 1 Hz resolution
            return pl.AckResult.OK, self.prf_hz
        if code == pl.CommandCode.SET_GAIN:
            if not -20.0 <= cmd.value <= 40.0:
                return pl.AckResult.OUT_OF_RANGE, self.gain_db
            self.gain_db = cmd.value
            return pl.AckResult.OK, self.gain_db
        return pl.AckResult.OK, 0.0  # REQUEST_DESCRIPTOR

    def _start(self, t_s: float) -> None:
        if not self.streaming or not self._due:
            self._due = {"frame": t_s, "imu": t_s, "status": t_s}
            self._imu_t = t_s
        self.streaming = True

    # --- streaming ---------------------------------------------------------------------------

    def _frame_period_s(self) -> float:
        cfg = self.config
        rate = {"bmode": cfg.bmode_fps, "iq": cfg.iq_fps, "doppler": cfg.ensemble_rate_hz}[
            self.mode
        ]
        return 1.0 / rate

    def poll(self, t_s: float) -> list[bytes]:
        """Every message due up to emulator time ``t_s`` (seconds since the emulator started)."""
        cfg = self.config
        if "status" not in self._due:
            self._due["status"] = t_s
        while self._due["status"] <= t_s:
            self._emit(self._status(), self._due["status"])
            self._due["status"] += 1.0 / cfg.status_rate_hz
        if self.streaming:
            period = self._frame_period_s()
            if t_s - self._due["frame"] > 1.0:  # fell behind by > 1 s: skip, as firmware would
                skipped = int((t_s - self._due["frame"]) / period)
                self.frames_dropped += skipped
                self._due["frame"] += skipped * period
            while self._due["frame"] <= t_s:
                self._emit(self._frame(self._due["frame"]), self._due["frame"])
                self._due["frame"] += period
            imu_period = cfg.imu_batch / cfg.imu_rate_hz
            if t_s - self._due["imu"] > 1.0:
                self._due["imu"] = t_s
                self._imu_t = t_s
            while self._due["imu"] + imu_period <= t_s:
                batch, times_us = self._imu(self._due["imu"])
                self._emit(batch, self._due["imu"], times_us)
                self._due["imu"] += imu_period
        out, self._outbox = self._outbox, []
        return out

    def next_due_s(self) -> float:
        """Emulator time at which :meth:`poll` will next have something to send."""
        return min(self._due.values()) if self._due else 0.0

    def _status(self) -> ProbeStatus:
        return ProbeStatus(
            state="streaming" if self.streaming else "idle",
            mode=self.mode,
            depth_m=self.depth_m,
            prf_hz=self.prf_hz,
            gain_db=self.gain_db,
            temperature_c=31.5,
            frames_sent=self.frames_sent,
            frames_dropped=self.frames_dropped,
        )

    def _frame(self, t_s: float) -> BmodeFrame | IQFrame | IQEnsemble:
        self._frame_index += 1
        self.frames_sent += 1
        idx = self._frame_index
        scene = self.scene.scene("bmode" if self.mode == "bmode" else "iq")
        geometry = {"spacing_m": scene.spacing_m, "origin_m": scene.origin_m, "grid": scene.grid}
        if self.mode == "bmode":
            return BmodeFrame(**geometry, frame_index=idx, image=scene.bmode(t_s))
        if self.mode == "iq":
            return IQFrame(**geometry, frame_index=idx, iq=scene.iq_frame(t_s))
        iq = scene.iq_ensemble(t_s, self.config.ensemble_frames, self.prf_hz)
        return IQEnsemble(**geometry, frame_index=idx, iq=iq, prf_hz=self.prf_hz)

    def _imu(self, t0_s: float) -> tuple[ImuBatch, np.ndarray]:
        """A fan sweep: the probe tilts ±25° about its lateral axis at 0.1 Hz, with sensor noise."""
        cfg = self.config
        t = t0_s + np.arange(cfg.imu_batch) / cfg.imu_rate_hz
        amp_rad = math.radians(25.0)
        omega = 2 * math.pi * 0.1
        tilt = amp_rad * np.sin(omega * t)
        tilt_rate_dps = np.degrees(amp_rad * omega * np.cos(omega * t))
        gyro = np.zeros((len(t), 3), np.float32)
        gyro[:, 0] = tilt_rate_dps + 0.3  # constant bias, °/s
        accel = np.stack([np.zeros_like(t), np.sin(tilt), np.cos(tilt)], axis=1).astype(np.float32)
        gyro += self._rng.normal(0, 0.05, gyro.shape).astype(np.float32)
        accel += self._rng.normal(0, 0.005, accel.shape).astype(np.float32)
        times_us = np.array([self.probe_time_us(x) for x in t], dtype=np.uint64)
        return ImuBatch(times_s=t, gyro_dps=gyro, accel_g=accel), times_us
