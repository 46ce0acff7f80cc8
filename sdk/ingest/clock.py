"""Map probe timestamps (µs, probe clock) to host time (s), fitting offset and drift online.

Arrival time = acquisition time + transfer latency, and latency is never negative. So in every
short block of probe time the message with the smallest ``host - probe`` difference is the one
that travelled fastest; a straight line through those block minima (least squares over a
sliding window) estimates the clock offset and drift without being biased by jitter.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import numpy.typing as npt


class ClockSync:
    """Online probe→host clock mapping: ``host_s = probe_s + offset_s + drift * (probe_s - p0)``."""

    def __init__(
        self,
        window_s: float = 60.0,
        block_s: float = 0.25,
        min_span_s: float = 10.0,
        max_drift_ppm: float = 500.0,
    ) -> None:
        if window_s <= 0 or block_s <= 0 or block_s > window_s:
            raise ValueError("need 0 < block_s <= window_s")
        self.window_s = window_s
        self.block_s = block_s
        self.min_span_s = min_span_s  # drift is only fitted over at least this much probe time
        self.max_drift = max_drift_ppm * 1e-6  # crystal oscillators stay well inside this
        self.reset()

    def reset(self) -> None:
        """Forget everything (probe clock restarted)."""
        self._p0: float | None = None
        self._minima: deque[tuple[float, float]] = deque()  # (probe_s - p0, host_s - probe_s)
        self._block_start = 0.0
        self._block_min: tuple[float, float] | None = None
        self._last_probe_s = -np.inf
        self.offset_s = 0.0
        self.drift = 0.0  # dimensionless (1e-6 = 1 ppm)
        self.updates = 0

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6

    def update(self, probe_us: int, host_s: float) -> None:
        """Add one observation: a message stamped ``probe_us`` arrived at ``host_s``."""
        probe_s = probe_us * 1e-6
        if probe_s < self._last_probe_s - 1.0:
            self.reset()  # the probe clock jumped back by more than a second: it restarted
        self._last_probe_s = max(self._last_probe_s, probe_s)
        if self._p0 is None:
            self._p0 = probe_s
            self._block_start = 0.0
        p = probe_s - self._p0
        d = host_s - probe_s
        self.updates += 1
        if p >= self._block_start + self.block_s:
            if self._block_min is not None:
                self._minima.append(self._block_min)
            self._block_start = p - (p - self._block_start) % self.block_s
            self._block_min = (p, d)
            while self._minima and self._minima[0][0] < p - self.window_s:
                self._minima.popleft()
        elif self._block_min is None or d < self._block_min[1]:
            self._block_min = (p, d)
        self._fit()

    def _fit(self) -> None:
        points = list(self._minima)
        if self._block_min is not None:
            points.append(self._block_min)
        if len(points) >= 3 and points[-1][0] - points[0][0] >= self.min_span_s:
            arr = np.asarray(points)
            p, d = arr[:, 0], arr[:, 1]
            p_mean = p.mean()
            slope = float(((p - p_mean) * (d - d.mean())).sum() / ((p - p_mean) ** 2).sum())
            slope = min(max(slope, -self.max_drift), self.max_drift)
            self.drift = slope
            # Lower envelope: shift the line down onto the fastest observation.
            self.offset_s = float((d - slope * p).min())
            return
        self.drift = 0.0
        self.offset_s = min(d for _, d in points)

    def to_host(self, probe_us: int) -> float:
        """Host time (s) of a probe timestamp (µs)."""
        probe_s = probe_us * 1e-6
        p = probe_s - (self._p0 if self._p0 is not None else probe_s)
        return probe_s + self.offset_s + self.drift * p

    def to_host_array(self, probe_us: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
        """Vectorised :meth:`to_host`."""
        probe_s = probe_us.astype(np.float64) * 1e-6
        p0 = self._p0 if self._p0 is not None else (float(probe_s[0]) if probe_s.size else 0.0)
        return probe_s + self.offset_s + self.drift * (probe_s - p0)


_WALL0 = time.time()
_MONO0 = time.monotonic()


def host_now() -> float:
    """Host time in seconds: wall-clock epoch at import, advanced by the monotonic clock.

    Immune to NTP steps during a session, yet comparable with wall-clock times in files.
    """
    return _WALL0 + (time.monotonic() - _MONO0)
