"""Pipeline outputs: recording, video/PNG export, preview window and OpenIGTLink.

Each sink runs on its own thread behind its own queue, so a slow or failing output never stalls
the pipeline or the other outputs. Display-like sinks drop the oldest result when behind; the
recorder blocks (never drops) — the pipeline's input queue absorbs that pressure instead.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from sonoedge.errors import ConfigError
from sonoedge.ingest.queue import BoundedQueue, OverflowPolicy
from sonoedge.pipeline.result import Result
from sonoedge.pipeline.stages import display_image
from sonoedge.types import BmodeFrame, ImuBatch, IQEnsemble, IQFrame

log = logging.getLogger(__name__)


class Sink(ABC):
    """An output of the pipeline. ``write`` runs on the sink's own thread."""

    name = "sink"
    policy: OverflowPolicy = "drop_oldest"

    @abstractmethod
    def write(self, result: Result) -> None: ...

    def close(self) -> None:
        """Flush and release (called once, after the last write)."""


class SinkRunner:
    """Runs one sink on a thread with a bounded queue; counts writes, drops and failures."""

    def __init__(self, sink: Sink, policy: OverflowPolicy, queue_size: int) -> None:
        self.sink = sink
        self._queue: BoundedQueue[Result] = BoundedQueue(queue_size, policy)
        self._thread = threading.Thread(target=self._run, name=f"sink {sink.name}", daemon=True)
        self.written = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, result: Result) -> None:
        self._queue.put(result)

    def _run(self) -> None:
        while True:
            result = self._queue.get(0.05)
            if result is None:
                if self._queue.closed and len(self._queue) == 0:
                    break
                continue
            try:
                self.sink.write(result)
                self.written += 1
            except Exception as err:
                self.failures += 1
                if self.failures <= 3:
                    log.warning(
                        "output %s failed on frame %d: %s", self.sink.name, result.index, err
                    )
        try:
            self.sink.close()
        except Exception as err:
            log.warning("closing output %s failed: %s", self.sink.name, err)

    def stop(self, timeout_s: float) -> None:
        self._queue.close()
        self._thread.join(timeout_s)

    def counts(self) -> dict[str, int]:
        return {"written": self.written, "dropped": self._queue.dropped, "failed": self.failures}


class RecorderSink(Sink):
    """Processed outputs into the HDF5 recording (``/processed/<stage>``); never drops."""

    name = "recording"
    policy: OverflowPolicy = "block"

    def __init__(self, writer: Any, stages: list[str] | None = None) -> None:
        self.writer = writer
        self.stages = stages

    def write(self, result: Result) -> None:
        if not result.processed or result.error is not None:
            return
        timestamp = result.sample.timestamp_s  # type: ignore[union-attr]
        for stage, output in result.outputs.items():
            if self.stages is not None and stage not in self.stages:
                continue
            arr = np.asarray(output) if isinstance(output, np.ndarray) else None
            if arr is not None and arr.ndim == 2:
                self.writer.write_processed(stage, arr, timestamp, result.index)


class VideoSink(Sink):
    """The display image of every result into an MP4 file (and optionally PNGs)."""

    name = "video"

    def __init__(self, path: str | os.PathLike[str], fps: float = 20.0, png_every: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self.png_every = png_every
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, result: Result) -> None:
        import cv2

        image = display_image(result)
        if image is None:
            return
        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            self._writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, self._size, False
            )
            if not self._writer.isOpened():
                raise ConfigError(f"cannot write video {self.path}: no MP4 encoder in this OpenCV")
        if (image.shape[1], image.shape[0]) != self._size:
            image = np.asarray(cv2.resize(image, self._size), dtype=np.uint8)
        self._writer.write(image)
        if self.png_every and self.frames % self.png_every == 0:
            cv2.imwrite(str(self.path.with_name(f"{self.path.stem}_{self.frames:05d}.png")), image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def gui_available() -> str | None:
    """None when OpenCV can open windows here, else the reason it cannot."""
    import cv2

    if os.name != "nt" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "no display (DISPLAY is not set)"
    info = cv2.getBuildInformation()
    gui_line = next((ln for ln in info.splitlines() if ln.strip().startswith("GUI:")), "")
    if "NONE" in gui_line.upper() or not gui_line:
        return "this OpenCV has no GUI (opencv-python-headless)"
    return None


class PreviewSink(Sink):
    """An OpenCV window with fps, latency and a depth scale drawn over the image."""

    name = "preview"

    def __init__(self, title: str = "sonoedge", stats: Any = None) -> None:
        reason = gui_available()
        if reason is not None:
            raise ConfigError(
                f"--show needs a window, but {reason}",
                hint="install `opencv-python` (not -headless) on a machine with a display, "
                "or watch in 3D Slicer with --igtl PORT, or save a video with --video FILE.mp4",
            )
        self.title = title
        self.stats = stats

    def write(self, result: Result) -> None:
        import cv2

        image = display_image(result)
        if image is None:
            return
        canvas = cv2.cvtColor(cv2.resize(image, (512, 512)), cv2.COLOR_GRAY2BGR)
        if self.stats is not None:
            s = self.stats()
            text = f"{s.fps:.1f} fps  p99 {s.end_to_end_ms['p99']:.1f} ms"
            cv2.putText(canvas, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
        spacing = result.spacing_m
        if spacing is not None:
            depth_mm = spacing[0] * image.shape[0] * 1e3
            cv2.putText(
                canvas,
                f"{depth_mm:.0f} mm",
                (470, 505),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (255, 255, 0),
                1,
            )
        cv2.imshow(self.title, canvas)
        cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()


def image_to_lps(spacing_m: tuple[float, float], origin_m: tuple[float, float]) -> np.ndarray:
    """IJK→LPS matrix (mm, as OpenIGTLink uses) of a 2-D frame in the probe plane.

    Columns (lateral) run towards patient right (−L), rows (depth) run down (−S), so 3D Slicer
    shows the frame upright in a coronal view with its true pixel spacing.
    """
    dz, dx = spacing_m
    z0, x0 = origin_m
    m = np.zeros((4, 4))
    m[0, 0] = -dx * 1e3  # i (column, lateral) → −L (i.e. towards patient right)
    m[2, 1] = -dz * 1e3  # j (row, depth) → −S (down)
    m[1, 2] = 1.0  # k (a single slice, 1 mm thick) → +P
    m[3, 3] = 1.0
    m[0, 3] = -x0 * 1e3
    m[2, 3] = -z0 * 1e3
    return m


class IgtlSink(Sink):
    """OpenIGTLink server for 3D Slicer: IMAGE for every result, TRANSFORM for the probe pose."""

    name = "openigtlink"

    def __init__(
        self, port: int = 18944, device_name: str = "sonoedge", pose_source: Any = None
    ) -> None:
        try:
            import pyigtl
        except ImportError as err:
            raise ConfigError("--igtl needs pyigtl", hint="pip install pyigtl") from err
        self._pyigtl = pyigtl
        try:
            self.server = pyigtl.OpenIGTLinkServer(port=port, local_server=True)
        except OSError as err:
            raise ConfigError(
                f"cannot serve OpenIGTLink on port {port}: {err}",
                hint="pick a free port with --igtl PORT",
            ) from err
        self.port = port
        self.device_name = device_name
        self.pose_source = pose_source
        self.images_sent = 0
        self.transforms_sent = 0

    def write(self, result: Result) -> None:
        sample = result.sample
        if isinstance(sample, ImuBatch):
            if self.pose_source is not None:
                matrix = self.pose_source(sample)
                if matrix is not None and self.server.is_connected():
                    self.server.send_message(
                        self._pyigtl.TransformMessage(
                            matrix,
                            timestamp=float(sample.times_s[-1]),
                            device_name="ProbeToReference",
                        )
                    )
                    self.transforms_sent += 1
            return
        if (
            not isinstance(sample, BmodeFrame | IQFrame | IQEnsemble)
            or not self.server.is_connected()
        ):
            return
        image = display_image(result)
        if image is None:
            return
        message = self._pyigtl.ImageMessage(
            image[np.newaxis],  # (k, j, i)
            ijk_to_world_matrix=image_to_lps(sample.spacing_m, sample.origin_m),
            timestamp=sample.timestamp_s,
            device_name=self.device_name,
        )
        self.server.send_message(message)
        self.images_sent += 1

    def close(self) -> None:
        self.server.stop()
