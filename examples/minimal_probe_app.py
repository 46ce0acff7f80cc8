"""A minimal probe app: connect, switch to Doppler, consume ensembles and IMU for a few seconds.

Run: python examples/minimal_probe_app.py [URL] [SECONDS]
(default URL: the in-process virtual probe)
"""

from __future__ import annotations

import sys

import numpy as np

import sonoedge
from sonoedge.types import ImuBatch, IQEnsemble, LinkGap


def main(url: str = "emulator://?preset=doppler", seconds: float = 2.0) -> None:
    with sonoedge.open_probe(url) as probe:
        info = probe.wait_info()
        print(f"{info.model}: {info.geometry}, {info.center_frequency_hz / 1e6:.1f} MHz")
        probe.set_mode("doppler")
        ensembles = imu_samples = 0
        for sample in probe.samples(seconds=seconds):
            if isinstance(sample, IQEnsemble):
                ensembles += 1
                power_db = 10 * np.log10(np.mean(np.abs(sample.iq) ** 2))
                print(
                    f"t={sample.timestamp_s:.3f} s  ensemble {sample.iq.shape}  {power_db:.1f} dB"
                )
            elif isinstance(sample, ImuBatch):
                imu_samples += len(sample)
            elif isinstance(sample, LinkGap):
                print(f"link lost for {sample.duration_s:.2f} s: {sample.reason}")
        stats = probe.stats()
    print(f"{ensembles} ensembles, {imu_samples} IMU samples, {stats.total_rejected} rejected")


if __name__ == "__main__":
    main(*sys.argv[1:2], *(float(a) for a in sys.argv[2:3]))
