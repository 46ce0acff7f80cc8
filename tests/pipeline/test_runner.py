"""The threaded pipeline runner: order, errors, backpressure, pass-through, clean stop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sonoedge.pipeline import FunctionStage, Pipeline, Result
from sonoedge.types import BmodeFrame, ImuBatch


def frames(n: int, shape: tuple[int, int] = (8, 8)) -> list[BmodeFrame | ImuBatch]:
    out: list[BmodeFrame | ImuBatch] = []
    for i in range(n):
        image = np.full(shape, i % 256, np.uint8)
        out.append(
            BmodeFrame(spacing_m=(1e-4, 1e-4), frame_index=i, timestamp_s=time.time(), image=image)
        )
        if i % 5 == 0:
            z = np.zeros((2, 3), np.float32)
            out.append(ImuBatch(times_s=np.zeros(2), gyro_dps=z, accel_g=z))
    return out


def test_stages_run_in_order_and_every_result_arrives() -> None:
    pipe = Pipeline(
        [FunctionStage(lambda x: x * 2, "double"), FunctionStage(lambda x: x + 1, "inc")]
    )
    pipe = Pipeline(pipe.stages, queue_size=1000)
    results = list(pipe.run(frames(50)))
    images = [r for r in results if r.processed]
    assert len(images) == 50 and sum(isinstance(r.sample, ImuBatch) for r in results) == 10
    for r in images:
        value = (r.sample.frame_index % 256) / 255  # type: ignore[union-attr]
        np.testing.assert_allclose(r.image, value * 2 + 1, rtol=1e-6)
        assert set(r.timings_s) == {"double", "inc"} and r.outputs["double"].shape == (8, 8)
    stats = pipe.stats()
    assert stats.results == 50 and stats.errors == 0 and stats.stages[0].processed == 50


def test_a_failing_stage_reports_the_frame_and_the_pipeline_keeps_going() -> None:
    def fragile(x: np.ndarray) -> np.ndarray:
        if round(float(x.mean()) * 255) == 7:
            raise ValueError("bad frame")
        return x

    pipe = Pipeline([FunctionStage(fragile), FunctionStage(lambda x: x, "after")], queue_size=100)
    results = [r for r in pipe.run(frames(20)) if r.processed]
    failed = [r for r in results if r.error]
    assert len(results) == 20 and len(failed) == 1
    assert "stage 'fragile' failed on frame" in failed[0].error and "bad frame" in failed[0].error
    assert "after" not in failed[0].outputs
    assert pipe.stats().errors == 1


def test_slow_stage_drops_at_the_input_only_and_latency_stays_bounded() -> None:
    def slow(x: np.ndarray) -> np.ndarray:
        time.sleep(0.02)
        return x

    def source():  # 200 frames/s against a 50 frames/s stage
        for f in frames(100):
            time.sleep(0.005)
            yield f

    pipe = Pipeline([FunctionStage(slow)], queue_size=2)
    results = [r for r in pipe.run(source()) if r.processed]
    stats = pipe.stats()
    assert stats.input_dropped > 20
    assert len(results) + stats.input_dropped == 100
    assert stats.end_to_end_ms["p99"] < 200


def test_callbacks_and_stop_are_clean() -> None:
    seen: list[Result] = []
    stop_source = threading.Event()

    def endless():
        i = 0
        while not stop_source.is_set():
            yield frames(1)[0]
            i += 1
            time.sleep(0.001)

    pipe = Pipeline([FunctionStage(lambda x: x)])
    pipe.on_result(seen.append)
    pipe.start(endless())
    time.sleep(0.3)
    t0 = time.monotonic()
    pipe.stop()
    stop_source.set()
    assert time.monotonic() - t0 < 2
    assert seen and all(
        t.name.startswith("custom") is False or not t.is_alive() for t in threading.enumerate()
    )


def test_unknown_preset_and_bad_stage_parameters() -> None:
    from sonoedge.errors import ConfigError
    from sonoedge.pipeline.stages import OpStage

    with pytest.raises(ConfigError, match="unknown preset"):
        Pipeline.from_preset("mri")
    with pytest.raises(ConfigError, match="unknown parameter"):
        OpStage("despeckle", "srad", {"iterations": 3})
    with pytest.raises(ConfigError, match="not available"):
        OpStage("despeckle", "magic")


def test_images_of_another_probe_mode_pass_through_counted_as_skipped() -> None:
    pipe = Pipeline([FunctionStage(lambda x: x)], probe_mode="doppler", queue_size=100)
    results = list(pipe.run(frames(10)))
    assert len(results) == 12 and not any(r.processed for r in results)
    assert pipe.stats().skipped == 10 and pipe.stats().errors == 0
