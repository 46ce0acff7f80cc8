"""A continuous-time scene for the virtual probe: B-mode, IQ frames and Doppler ensembles.

Tissue with layers, cysts, lesions and point targets moves with slow handheld sway, breathing
and tremor; blood flows in two random vessel trees. Every output is a pure function of
``(seed, t_s)``, so frames are continuous in time and repeatable. Images are in the probe's
beam space: ``grid`` is ``"cartesian"`` for linear probes and ``"polar"`` for convex/phased ones
(columns are beam angles; ``spacing_m`` and ``origin_m`` follow :mod:`sonoedge.types`: the
lateral entries are in radians on a polar grid).

Example::

    scene = LiveScene(get_preset("L11-5v"), seed=0)
    frame = scene.bmode(0.033)                      # uint8 (256, 256)
    ens = scene.iq_ensemble(0.0, 16, prf_hz=1000)   # complex64 (16, 256, 256)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sonoedge.synth.imaging import Grid, check_size, default_spacing_m
from sonoedge.synth.motion import HandheldMotion
from sonoedge.synth.phantoms import make_phantom
from sonoedge.synth.scene import FlowScene
from sonoedge.synth.transducer import arc_radius_m, check_positive
from sonoedge.synth.vessels import merge_trees, random_tree
from sonoedge.types import Grid as GridKind
from sonoedge.types import ProbeInfo

DB_RANGE = (-45.0, 15.0)
"""Display range of :meth:`LiveScene.bmode`, dB relative to background tissue."""


class LiveScene:
    """Virtual-probe scene of ``height × width`` pixels covering the probe's field of view."""

    def __init__(self, probe: ProbeInfo, seed: int, height: int = 256, width: int = 256) -> None:
        check_size("height", height)
        check_size("width", width)
        rng = np.random.default_rng(seed)
        spacing = default_spacing_m(probe, height, width)
        near = probe.depth_range_m[0]
        grid = Grid((height, width), spacing, (near, -spacing[1] * (width - 1) / 2))
        z0, z1, x0, x1 = grid.extent_m()
        tree = merge_trees(
            [
                random_tree(rng, (z0, z1, x0, x1), radius_range_m=(0.3e-3, 1.2e-3)),
                random_tree(rng, (z0, z1, x0, x1), radius_range_m=(0.2e-3, 0.6e-3), levels=2),
            ]
        )
        # Bounded motion (no drift) so the scene can run for ever without leaving the padding.
        motion = HandheldMotion.random(rng, scale=0.5, drift=False)
        self._scene = FlowScene(
            probe,
            grid,
            make_phantom("random", grid, rng),
            tree,
            motion,
            seed=int(rng.integers(2**31)),
            blood_db=-30.0,
            lumen_db=-25.0,
            noise_db=-50.0,
            blood_per_cell=4.0,
        )
        self.probe = probe
        self.grid: GridKind = "cartesian" if probe.geometry == "linear" else "polar"
        if self.grid == "cartesian":
            self.spacing_m: tuple[float, float] = spacing
            self.origin_m: tuple[float, float] = grid.origin_m
        else:
            # types.py convention for polar frames: lateral spacing/origin in radians.
            d_theta = spacing[1] / arc_radius_m(probe)
            self.spacing_m = (spacing[0], d_theta)
            self.origin_m = (near, -d_theta * (width - 1) / 2)

    def vessel_mask(self, t_s: float) -> npt.NDArray[np.bool_]:
        """Ground-truth lumen mask ``(h, w)`` at time ``t_s`` (vessels move with the tissue)."""
        return self._scene.vessels_at(t_s)[0]

    def iq_frame(self, t_s: float) -> npt.NDArray[np.complex64]:
        """One IQ frame ``(h, w)`` complex64 at time ``t_s``."""
        return self._scene.render([t_s])[0]

    def iq_ensemble(self, t_s: float, n_frames: int, prf_hz: float) -> npt.NDArray[np.complex64]:
        """``n_frames`` IQ frames at ``t_s + k / prf_hz``: ``(n, h, w)`` complex64."""
        check_size("n_frames", n_frames, 1, 4096)
        check_positive("prf_hz", prf_hz)
        return self._scene.render(t_s + np.arange(n_frames) / prf_hz)

    def bmode(self, t_s: float) -> npt.NDArray[np.uint8]:
        """Log-compressed B-mode ``(h, w)`` uint8 at time ``t_s`` (range :data:`DB_RANGE`)."""
        iq = self.iq_frame(t_s)
        power = iq.real * iq.real + iq.imag * iq.imag
        db = 10.0 * np.log10(power / self._scene.background_power + 1e-12)
        lo, hi = DB_RANGE
        return np.clip((db - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
