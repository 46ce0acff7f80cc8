"""A headless batch processor: run a preset over every recording in a folder, write MP4s.

Run: python examples/batch_processor.py FOLDER_OF_RECORDINGS OUT_FOLDER [PRESET]
"""

from __future__ import annotations

import sys
from pathlib import Path

import sonoedge
from sonoedge.pipeline import Pipeline, VideoSink


def main(folder: str, out: str, preset: str = "doppler") -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for recording in sorted(Path(folder).glob("*.h5")):
        pipeline = Pipeline.from_preset(preset, input_policy="block")  # offline: drop nothing
        pipeline.add_sink(VideoSink(out_dir / f"{recording.stem}_{preset}.mp4"))
        with sonoedge.open_probe(f"file://{recording}?speed=max") as replay:
            n = sum(1 for r in pipeline.run(replay) if r.processed and r.error is None)
        print(f"{recording.name}: {n} {preset} images -> {out_dir}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
