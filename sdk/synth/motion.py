"""Handheld probe motion: drift, hand tremor, breathing and slow sway as a rigid in-plane shift.

The displacement is a smooth function of time (continuous, bounded apart from the drift), so a
scene can be sampled at any PRF or frame time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class HandheldMotion:
    """Rigid displacement ``(dz, dx)`` in metres of the tissue relative to the probe over time.

    Terms: constant ``drift_m_s``; tremor (``tremor_amp_m`` per axis at ``tremor_hz``);
    breathing (``breathing_amp_m`` at ``breathing_hz``); slow sway (``sway_amp_m`` at
    ``sway_hz``). ``phases_rad`` are the phases of tremor, breathing and sway.
    """

    drift_m_s: tuple[float, float] = (0.0, 0.0)
    tremor_amp_m: tuple[float, float] = (0.0, 0.0)
    tremor_hz: float = 9.0
    breathing_amp_m: tuple[float, float] = (0.0, 0.0)
    breathing_hz: float = 0.25
    sway_amp_m: tuple[float, float] = (0.0, 0.0)
    sway_hz: float = 0.05
    phases_rad: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def random(
        cls, rng: np.random.Generator, scale: float = 1.0, drift: bool = True
    ) -> HandheldMotion:
        """Typical freehand motion; ``scale`` multiplies every amplitude (0 = a still probe)."""

        def pair(low: float, high: float) -> tuple[float, float]:
            a = rng.uniform(low, high, size=2) * scale * rng.choice([-1.0, 1.0], size=2)
            return float(a[0]), float(a[1])

        return cls(
            drift_m_s=pair(0.0, 2e-3) if drift else (0.0, 0.0),
            tremor_amp_m=pair(5e-6, 30e-6),
            tremor_hz=float(rng.uniform(6.0, 12.0)),
            breathing_amp_m=pair(0.2e-3, 1.0e-3),
            breathing_hz=float(rng.uniform(0.2, 0.33)),
            sway_amp_m=pair(0.2e-3, 1.5e-3),
            sway_hz=float(rng.uniform(0.03, 0.1)),
            phases_rad=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, size=3)),  # type: ignore[arg-type]
        )

    def displacement_m(self, t_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Displacement at times ``t_s``: shape ``(n, 2)`` (axial, lateral)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))[:, None]
        p_tremor, p_breath, p_sway = self.phases_rad
        out = np.asarray(self.drift_m_s) * t
        out = out + np.asarray(self.tremor_amp_m) * np.sin(
            2 * np.pi * self.tremor_hz * t + p_tremor
        )
        out = out + np.asarray(self.breathing_amp_m) * np.sin(
            2 * np.pi * self.breathing_hz * t + p_breath
        )
        out = out + np.asarray(self.sway_amp_m) * np.sin(2 * np.pi * self.sway_hz * t + p_sway)
        return out

    def max_displacement_m(self, duration_s: float) -> float:
        """Upper bound of ``|displacement|`` per axis over ``[0, duration_s]``."""
        drift = float(np.max(np.abs(self.drift_m_s))) * max(duration_s, 0.0)
        return drift + float(
            np.max(np.abs(self.tremor_amp_m))
            + np.max(np.abs(self.breathing_amp_m))
            + np.max(np.abs(self.sway_amp_m))
        )
