"""The pipeline runner: stages on worker threads joined by bounded queues.

::

    source ─► [input queue: drop oldest] ─► stage 1 ─► [block] ─► stage 2 ─► … ─► dispatcher
                                                          iterator / callbacks ◄─┤
                                        sinks (own thread, queue and policy) ◄─┘

Only the input queue drops (the freshest frame wins when processing falls behind); between
stages queues block, so backpressure reaches the input. An exception in a stage marks that
result with the stage and frame it happened on, skips the remaining stages for it and keeps the
pipeline running. Samples no stage handles (IMU, status, link gaps) pass straight through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from sonoedge.ingest.clock import host_now
from sonoedge.ingest.queue import BoundedQueue, OverflowPolicy
from sonoedge.pipeline.presets import PresetSpec, load_preset
from sonoedge.pipeline.result import ImageSample, Result, initial_image
from sonoedge.pipeline.sinks import Sink, SinkRunner
from sonoedge.pipeline.stages import OpStage, Stage
from sonoedge.resources import Closeable
from sonoedge.types import BmodeFrame, IQEnsemble, IQFrame, ProbeInfo, ProbeMode, Sample

log = logging.getLogger(__name__)
_POLL_S = 0.05
MODE_INPUTS: dict[str, tuple[type, ...]] = {
    "bmode": (BmodeFrame, IQFrame),
    "iq": (IQFrame,),
    "doppler": (IQEnsemble,),
}
"""What a pipeline for each probe mode processes; other images pass through, counted skipped."""


def _percentiles_ms(values: Iterable[float]) -> dict[str, float]:
    arr = np.asarray(list(values), dtype=np.float64) * 1e3
    if arr.size == 0:
        return {"p50": float("nan"), "p99": float("nan")}
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}


@dataclass
class StageStats:
    name: str
    processed: int
    errors: int
    latency_ms: dict[str, float]


@dataclass
class PipelineStats:
    """Throughput, latency and drops since the pipeline started."""

    elapsed_s: float
    results: int
    fps: float
    input_dropped: int
    skipped: int
    output_dropped: int
    errors: int
    end_to_end_ms: dict[str, float]
    acquisition_to_output_ms: dict[str, float]
    stages: list[StageStats]
    sinks: dict[str, dict[str, int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "elapsed_s": round(self.elapsed_s, 3),
            "results": self.results,
            "fps": round(self.fps, 2),
            "input_dropped": self.input_dropped,
            "skipped": self.skipped,
            "output_dropped": self.output_dropped,
            "errors": self.errors,
            "end_to_end_ms": {k: round(v, 3) for k, v in self.end_to_end_ms.items()},
            "acquisition_to_output_ms": {
                k: round(v, 3) for k, v in self.acquisition_to_output_ms.items()
            },
            "stages": {
                s.name: {
                    "processed": s.processed,
                    "errors": s.errors,
                    **{k: round(v, 3) for k, v in s.latency_ms.items()},
                }
                for s in self.stages
            },
            "sinks": self.sinks,
        }


class _StageWorker:
    def __init__(self, stage: Stage, window: int) -> None:
        self.stage = stage
        self.times_s: deque[float] = deque(maxlen=window)
        self.processed = 0
        self.errors = 0


class Pipeline(Closeable):
    """Stages run on threads; feed it a probe (or any iterable of samples) and read results.

    Iterator style::

        with open_probe(url) as probe, Pipeline.from_preset("doppler") as pipeline:
            for result in pipeline.run(probe, seconds=10):
                show(result.image)

    Callback style: ``pipeline.on_result(fn)``, then ``pipeline.start(probe)`` … ``stop()``.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        name: str = "custom",
        probe_mode: ProbeMode | None = None,
        queue_size: int = 2,
        input_policy: OverflowPolicy = "drop_oldest",
        output_policy: OverflowPolicy = "drop_oldest",
        output_queue_size: int = 64,
        stats_window: int = 2000,
        blas_threads: int | None = 1,
    ) -> None:
        self.name = name
        self.probe_mode = probe_mode
        self.device = "cpu"  # backend for model stages (see sonoedge.devices.targets)
        self.stages = list(stages)
        self._workers = [_StageWorker(s, stats_window) for s in self.stages]
        self._queues: list[BoundedQueue[Result]] = [
            BoundedQueue(queue_size, input_policy if i == 0 else "block")
            for i in range(len(self.stages) + 1)
        ]
        self._output: BoundedQueue[Result] = BoundedQueue(output_queue_size, output_policy)
        self._sinks: list[SinkRunner] = []
        self._callbacks: list[Callable[[Result], None]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._e2e_s: deque[float] = deque(maxlen=stats_window)
        self._acq_s: deque[float] = deque(maxlen=stats_window)
        self._done_times: deque[float] = deque(maxlen=stats_window)
        self._results = 0
        self._errors = 0
        self._skipped = 0
        self._started_s = 0.0
        self._probe: ProbeInfo | None = None
        self._running = False
        self._finished = threading.Event()
        # Stages already run in parallel on threads; BLAS spawning its own threads per call on
        # top of that oversubscribes small machines (seen here: 5 ms SVD → 200 ms on 2 cores).
        self.blas_threads = blas_threads
        self._blas_limits: Any = None

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: PresetSpec, device: str = "cpu", **options: Any) -> Pipeline:
        """A pipeline from a parsed preset; model stages run on ``device`` (a target name)."""
        stages = [OpStage(s.op, s.method, s.params, s.name, device=device) for s in spec.stages]
        pipeline = cls(stages, name=spec.name, probe_mode=spec.probe_mode, **options)
        pipeline.device = device
        return pipeline

    @classmethod
    def from_preset(cls, preset: str, device: str = "cpu", **options: Any) -> Pipeline:
        """A built-in preset (``bmode``, ``doppler``, ``ulm``, ``doppler-sonic``,
        ``bmode-students``) or a preset TOML file; model stages run on ``device``."""
        return cls.from_spec(load_preset(preset), device=device, **options)

    def add_sink(
        self, sink: Sink, policy: OverflowPolicy | None = None, queue_size: int = 64
    ) -> None:
        """Send every result to ``sink`` on its own thread (recording sinks never drop)."""
        if self._running:
            raise RuntimeError("add sinks before starting the pipeline")
        self._sinks.append(SinkRunner(sink, policy or sink.policy, queue_size))

    def on_result(self, callback: Callable[[Result], None]) -> None:
        """Call ``callback(result)`` for every result, on the dispatcher thread."""
        self._callbacks.append(callback)

    # --- running -----------------------------------------------------------------------------

    def start(self, source: Iterable[Sample], probe: ProbeInfo | None = None) -> Pipeline:
        """Start pulling from ``source`` (a :class:`~sonoedge.ingest.Probe` or any iterable)."""
        if self._running:
            raise RuntimeError("pipeline already running")
        self._running = True
        self._probe = probe if probe is not None else getattr(source, "info", None)
        mode = self.probe_mode
        if mode is not None and hasattr(source, "set_mode") and hasattr(source, "command"):
            try:
                source.set_mode(mode)
            except Exception as err:  # a replay or a probe without that mode
                log.info("pipeline %s: could not set probe mode %s: %s", self.name, mode, err)
        self._started_s = time.monotonic()
        if self.blas_threads is not None:
            from threadpoolctl import threadpool_limits

            self._blas_limits = threadpool_limits(limits=self.blas_threads, user_api="blas")
        for sink in self._sinks:
            sink.start()
        self._spawn(self._feed, "feeder", source)
        for i, worker in enumerate(self._workers):
            self._spawn(self._work, f"stage {worker.stage.name}", i)
        self._spawn(self._dispatch, "dispatcher")
        return self

    def _spawn(self, target: Callable[..., None], what: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"{self.name} {what}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def results(self, timeout_s: float | None = None) -> Iterator[Result]:
        """Results as they come, until the pipeline stops (or ``timeout_s`` with none)."""
        while True:
            item = self._output.get(_POLL_S)
            if item is not None:
                yield item
                continue
            if self._output.closed and len(self._output) == 0:
                return
            if timeout_s is not None and time.monotonic() - self._last_output() > timeout_s:
                return

    def _last_output(self) -> float:
        return self._done_times[-1] if self._done_times else self._started_s

    def run(
        self, source: Iterable[Sample], seconds: float | None = None, count: int | None = None
    ) -> Iterator[Result]:
        """Start, yield results for ``seconds`` and/or ``count`` results, then stop."""
        self.start(source)
        deadline = None if seconds is None else time.monotonic() + seconds
        n = 0
        try:
            for result in self.results():
                yield result
                n += 1
                if (count is not None and n >= count) or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    break
        finally:
            self.stop()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop pulling, let queued results drain through the stages, stop sinks and threads."""
        if not self._running:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        for sink in self._sinks:
            sink.stop(timeout_s)
        for worker in self._workers:
            try:
                worker.stage.close()
            except Exception:
                log.exception("closing stage %s failed", worker.stage.name)
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
            self._blas_limits = None
        self._running = False

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the source is exhausted and every result dispatched."""
        return self._finished.wait(timeout_s)

    def close(self) -> None:
        """Same as :meth:`stop` (so ``with Pipeline(...) as p:`` stops it on the way out)."""
        self.stop()

    # --- threads -----------------------------------------------------------------------------

    def _feed(self, source: Iterable[Sample]) -> None:
        first = self._queues[0]
        accepted = MODE_INPUTS.get(self.probe_mode or "", (BmodeFrame, IQFrame, IQEnsemble))
        index = 0
        try:
            for sample in source:
                if self._stop.is_set():
                    break
                result = Result(sample=sample, index=index, received_s=host_now())
                index += 1
                if isinstance(sample, accepted):
                    result.processed = True
                    result.image = initial_image(cast(ImageSample, sample))
                    first.put(result)
                else:  # pass-through (IMU, status, gaps, or images of another probe mode)
                    if isinstance(sample, BmodeFrame | IQFrame | IQEnsemble):
                        self._skipped += 1
                    self._queues[-1].put(result)
        except Exception as err:
            log.error("pipeline %s: source failed: %s", self.name, err)
        finally:
            first.close()

    def _work(self, i: int) -> None:
        worker = self._workers[i]
        stage = worker.stage
        inbox, outbox = self._queues[i], self._queues[i + 1]
        while True:
            result = inbox.get(_POLL_S)
            if result is None:
                if inbox.closed and len(inbox) == 0:
                    break
                continue
            if result.error is None:
                t0 = time.perf_counter()
                try:
                    out = stage.process(result.image, result, self._probe)
                except Exception as err:
                    worker.errors += 1
                    result.error = (
                        f"stage {stage.name!r} failed on frame {result.index} "
                        f"({type(result.sample).__name__}): {err}"
                    )
                    if worker.errors <= 3 or worker.errors % 100 == 0:
                        log.warning("%s (%d errors so far)", result.error, worker.errors)
                else:
                    elapsed = time.perf_counter() - t0
                    worker.times_s.append(elapsed)
                    worker.processed += 1
                    result.timings_s[stage.name] = elapsed
                    result.outputs[stage.name] = out
                    result.image = out
            outbox.put(result)
        outbox.close()

    def _dispatch(self) -> None:
        inbox = self._queues[-1]
        while True:
            result = inbox.get(_POLL_S)
            if result is None:
                if inbox.closed and len(inbox) == 0:
                    break
                continue
            now = host_now()
            result.done_s = now
            if result.processed:
                with self._lock:
                    self._results += 1
                    self._done_times.append(time.monotonic())
                    self._e2e_s.append(result.latency_s)
                    self._acq_s.append(now - result.sample.timestamp_s)  # type: ignore[union-attr]
                    if result.error is not None:
                        self._errors += 1
            for callback in self._callbacks:
                try:
                    callback(result)
                except Exception:
                    log.exception("result callback failed")
            for sink in self._sinks:
                sink.put(result)
            self._output.put(result)
        self._output.close()
        self._finished.set()

    # --- statistics --------------------------------------------------------------------------

    def stats(self) -> PipelineStats:
        with self._lock:
            done = list(self._done_times)
            e2e = list(self._e2e_s)
            acq = list(self._acq_s)
            results, errors = self._results, self._errors
        elapsed = time.monotonic() - self._started_s if self._started_s else 0.0
        fps = (
            (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else 0.0
        )
        return PipelineStats(
            elapsed_s=elapsed,
            results=results,
            fps=fps,
            input_dropped=self._queues[0].dropped,
            skipped=self._skipped,
            output_dropped=self._output.dropped,
            errors=errors,
            end_to_end_ms=_percentiles_ms(e2e),
            acquisition_to_output_ms=_percentiles_ms(acq),
            stages=[
                StageStats(w.stage.name, w.processed, w.errors, _percentiles_ms(w.times_s))
                for w in self._workers
            ],
            sinks={s.sink.name: s.counts() for s in self._sinks},
        )
