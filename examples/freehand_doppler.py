"""Freehand 3D power Doppler: SVD-filtered slices of a fan sweep compounded into a vessel volume.

Simulates a fan sweep over a phantom with two vessels, a 16-pulse IQ ensemble at every position,
filters each ensemble with sonoedge.processing's SVD clutter filter, poses the slices from the IMU
and compounds them with MAXIMUM into a 3D vascular volume (NRRD + MIP PNG).

    python examples/freehand_doppler.py --out /tmp/doppler3d
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sonoedge.freehand import estimate_poses, pixel_to_world, reconstruct
from sonoedge.freehand.doppler import power_doppler_slices, slices_to_uint8
from sonoedge.io.volume import write_mips, write_volume
from sonoedge.synth.sweeps import default_phantom, doppler_ensembles, simulate_sweep
from sonoedge.types import ProbeInfo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("doppler3d"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()

    probe = ProbeInfo(n_elements=96, depth_range_m=(0.0, 0.03))
    sweep = simulate_sweep(
        probe, "fan", seed=args.seed, n_frames=args.frames, spacing_m=(0.3e-3, 0.3e-3)
    )
    ensembles = doppler_ensembles(sweep, default_phantom(probe, args.seed), 16, seed=args.seed)
    slices = slices_to_uint8(power_doppler_slices(ensembles))  # SVD, SSM cutoffs, dB → 0..255
    poses = estimate_poses(sweep, "fan")  # IMU only: no tracker
    result = reconstruct(
        slices, pixel_to_world(poses.poses, sweep.spacing_m), poses.valid, 0.3e-3, "linear", "max"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_volume(args.out / "vessels.nrrd", result.volume))
    print(write_mips(args.out / "vessels_mip.png", result.volume))


if __name__ == "__main__":
    main()
