"""A recorder: stream a probe to an HDF5 file, then read the file back and summarise it.

Run: python examples/recorder.py OUT.h5 [URL] [SECONDS]
"""

from __future__ import annotations

import sys

import sonoedge
from sonoedge.io.recording import RecordingReader


def main(out: str, url: str = "emulator://?preset=bmode", seconds: float = 2.0) -> None:
    with sonoedge.open_probe(url, record=out, overflow="drop_oldest") as probe:
        for _ in probe.samples(seconds=seconds):
            pass  # the recorder sees every message, whatever the consumer keeps up with
    with RecordingReader(out) as rec:
        print(f"{rec.path}: {rec.n_messages} messages over {rec.duration_s:.2f} s")
        for kind, count in rec.type_counts().items():
            print(f"  {kind:<18}{count}")


if __name__ == "__main__":
    main(sys.argv[1], *sys.argv[2:3], *(float(a) for a in sys.argv[3:4]))
