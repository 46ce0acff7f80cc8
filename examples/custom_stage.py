"""A custom stage: your own code between sonoedge's stages, on its own worker thread.

Run: python examples/custom_stage.py [URL] [SECONDS]
"""

from __future__ import annotations

import sys

import numpy as np

import sonoedge
from sonoedge.pipeline import FunctionStage, OpStage, Pipeline


def vessel_fraction(power_db: np.ndarray) -> np.ndarray:
    """Mark pixels within 10 dB of the brightest as vessel (a toy detector)."""
    return (power_db > power_db.max() - 10).astype(np.float32)


def main(url: str = "emulator://?preset=doppler&iq_shape=64x64", seconds: float = 2.0) -> None:
    pipeline = Pipeline(
        [OpStage("doppler", "svd_ssm"), FunctionStage(vessel_fraction, "vessels")],
        name="doppler+vessels",
        probe_mode="doppler",
    )
    with sonoedge.open_probe(url) as probe:
        for result in pipeline.run(probe, seconds=seconds):
            if result.processed and result.error is None:
                print(
                    f"frame {result.index}: {result.image.mean() * 100:.1f} % vessel, "
                    f"{sum(result.timings_s.values()) * 1e3:.1f} ms"
                )
    stats = pipeline.stats()
    print(
        f"{stats.results} results at {stats.fps:.1f} fps, p99 {stats.end_to_end_ms['p99']:.1f} ms"
    )


if __name__ == "__main__":
    main(*sys.argv[1:2], *(float(a) for a in sys.argv[2:3]))
