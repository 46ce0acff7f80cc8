"""Pipeline benchmark, in the manner of OpenVINO's benchmark_app or trtexec.

For a preset, measured side by side in one run on the same pre-generated inputs:

- throughput: the threaded pipeline saturated (input never empty) vs the same stages called one
  after another on one thread (the ratio is what pipelining buys on this machine), and vs that
  sequential loop with BLAS left at its default threading (what a naive script gets);
- latency: per-stage service time and end-to-end p50/p99 with the input paced at a rate the
  pipeline sustains (so queueing does not dominate), over the steady state after the first
  second of the paced stream; that first second (first inferences, background compiles, the
  queue they build) is reported as its own worst latency;
- cold start: building the pipeline and getting the first result;
- memory: resident set size before and after the run;
- against its classical counterpart (``PRESET_BASELINES``, or ``versus``): the other preset's
  saturated throughput and stage latencies on the same inputs, alternated with this preset's
  over the same rounds, so the ratio compares like with like on a noisy machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from sonoedge.errors import ConfigError
from sonoedge.pipeline.presets import PresetSpec, load_preset
from sonoedge.pipeline.result import Result, initial_image
from sonoedge.pipeline.runner import Pipeline
from sonoedge.types import BmodeFrame, IQEnsemble, Sample

STARTUP_S = 1.0
"""Paced-stream time left out of the steady-state latency (and reported on its own)."""
DEFAULT_SHAPES = {"bmode": (256, 256), "doppler": (128, 128), "iq": (128, 128)}
PRESET_BASELINES = {"doppler-sonic": "doppler", "bmode-students": "bmode"}
"""Student preset -> the classical preset it is compared against."""


def rss_mb() -> float:
    """Current resident set size of this process (Linux), in MB."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return float("nan")
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_inputs(
    mode: str, n: int, shape: tuple[int, int], frames: int = 16, seed: int = 0
) -> list[Sample]:
    """``n`` distinct inputs of the kind a preset's probe mode delivers (the virtual probe's
    physics scene, so clutter, flow and speckle are realistic)."""
    from sonoedge.synth.live import LiveScene
    from sonoedge.types import ProbeInfo

    scene = LiveScene(ProbeInfo(), seed, *shape)
    geometry: dict[str, Any] = {
        "spacing_m": scene.spacing_m,
        "origin_m": scene.origin_m,
        "grid": scene.grid,
    }
    out: list[Sample] = []
    for i in range(n):
        t = i / 30
        if mode == "doppler":
            iq = scene.iq_ensemble(t, frames, 1000.0)
            out.append(IQEnsemble(**geometry, frame_index=i, iq=iq, prf_hz=1000.0))
        else:
            out.append(BmodeFrame(**geometry, frame_index=i, image=scene.bmode(t)))
    return out


def _stamped(inputs: list[Sample], count: int, rate_hz: float | None) -> Iterator[Sample]:
    """Inputs re-stamped with the current time, optionally paced at ``rate_hz``."""
    from dataclasses import replace

    from sonoedge.ingest.clock import host_now

    t0 = time.perf_counter()
    for i in range(count):
        if rate_hz:
            delay = t0 + i / rate_hz - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sample: Any = inputs[i % len(inputs)]
        yield replace(sample, timestamp_s=host_now(), frame_index=i)


def _sequential_fps(pipeline: Pipeline, inputs: list[Sample], count: int) -> float:
    t0 = time.perf_counter()
    for i in range(count):
        sample = inputs[i % len(inputs)]
        result = Result(sample=sample, index=i, received_s=0.0)
        data: Any = initial_image(sample)  # type: ignore[arg-type]
        for stage in pipeline.stages:
            data = stage.process(data, result, None)
    return count / (time.perf_counter() - t0)


def _saturated(
    spec: PresetSpec, inputs: list[Sample], count: int, device: str
) -> tuple[float, Pipeline]:
    """Throughput of the threaded pipeline when its input never runs dry."""
    pipeline = Pipeline.from_spec(spec, device=device, queue_size=4, input_policy="block")
    t0 = time.perf_counter()
    n_out = sum(1 for r in pipeline.run(_stamped(inputs, count, None)) if r.processed)
    return n_out / (time.perf_counter() - t0), pipeline


def _versus(
    spec: PresetSpec,
    other: PresetSpec,
    inputs: list[Sample],
    count: int,
    device: str,
    rounds: int = 3,
) -> dict[str, Any]:
    """Both presets' saturated fps, alternated over ``rounds`` (medians), and the ratio."""
    import statistics

    if other.probe_mode != spec.probe_mode:
        raise ConfigError(
            f"cannot compare preset {spec.name!r} ({spec.probe_mode}) with {other.name!r} "
            f"({other.probe_mode}): they take different inputs"
        )
    ours, theirs = [], []
    stages: dict[str, Any] = {}
    for _ in range(rounds):
        fps, _ = _saturated(spec, inputs, count, device)
        ours.append(fps)
        fps, pipe = _saturated(other, inputs, count, device)
        theirs.append(fps)
        stages = {
            s.name: {
                "p50_ms": round(s.latency_ms["p50"], 3),
                "p99_ms": round(s.latency_ms["p99"], 3),
            }
            for s in pipe.stats().stages
        }
    a, b = statistics.median(ours), statistics.median(theirs)
    return {
        "preset": other.name,
        "methods": [f"{s.op}/{s.method}" for s in other.stages],
        "fps": round(b, 2),
        "stages": stages,
        "fps_ratio": round(a / b, 3),
        "rounds": rounds,
    }


def run(
    preset: str,
    count: int = 200,
    shape: tuple[int, int] | None = None,
    frames: int = 16,
    quick: bool = False,
    versus: str | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Benchmark one preset; returns ``{"metrics": ..., "baselines": ...}``.

    ``versus`` names a preset to compare with (default: the classical counterpart of a student
    preset, :data:`PRESET_BASELINES`; ``""`` for none)."""
    spec = load_preset(preset)
    if versus is None:
        versus = PRESET_BASELINES.get(spec.name)
    other = load_preset(versus) if versus else None
    mode = spec.probe_mode
    shape = shape or DEFAULT_SHAPES.get(mode, (128, 128))
    if quick:
        count, shape = min(count, 20), (min(shape[0], 64), min(shape[1], 64))
    inputs = make_inputs(mode, min(count, 16), shape, frames)
    rss_before = rss_mb()

    t0 = time.perf_counter()
    cold = Pipeline.from_spec(spec, device=device, queue_size=4)
    first = next(iter(cold.run(iter(inputs[:1]))))
    cold_start_s = time.perf_counter() - t0
    if first.error:
        raise RuntimeError(first.error)

    # Saturated: the feeder blocks instead of dropping, so every input is processed.
    pipelined_fps, saturated = _saturated(spec, inputs, count, device)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        sequential_fps = _sequential_fps(saturated, inputs, max(count // 2, 4))
    naive_fps = _sequential_fps(saturated, inputs, max(count // 4, 4))  # BLAS threads as default
    stage_stats = saturated.stats().stages

    paced = Pipeline.from_spec(spec, device=device, queue_size=2)
    rate = 0.8 * pipelined_fps
    startup = int(rate * STARTUP_S)
    results = [r for r in paced.run(_stamped(inputs, startup + count, rate)) if r.processed]
    paced_stats = paced.stats()
    rss_after = rss_mb()
    first_s = min((r.received_s for r in results), default=0.0)
    startup_ms = [1e3 * r.latency_s for r in results if r.received_s - first_s < STARTUP_S]
    steady_ms = [1e3 * r.latency_s for r in results if r.received_s - first_s >= STARTUP_S]
    if not steady_ms:
        raise RuntimeError(f"{preset}: no result after the paced stream's first second")

    metrics: dict[str, Any] = {
        "preset": preset,
        "device": device,
        "input": {"mode": mode, "shape": list(shape), "frames": frames if mode == "doppler" else 1},
        "fps": round(pipelined_fps, 2),
        "stages": {
            s.name: {
                "p50_ms": round(s.latency_ms["p50"], 3),
                "p99_ms": round(s.latency_ms["p99"], 3),
            }
            for s in stage_stats
        },
        "paced_rate_hz": round(rate, 2),
        "paced_results": len(results),
        "paced_dropped": paced_stats.input_dropped,
        "end_to_end_p50_ms": round(float(np.percentile(steady_ms, 50)), 3),
        "end_to_end_p99_ms": round(float(np.percentile(steady_ms, 99)), 3),
        "startup_results": len(startup_ms),
        "startup_end_to_end_max_ms": round(max(startup_ms, default=0.0), 3),
        "cold_start_s": round(cold_start_s, 3),
        "rss_mb_before": round(rss_before, 1),
        "rss_mb_after": round(rss_after, 1),
        "count": count,
        "methods": [f"{s.op}/{s.method}" for s in spec.stages],
    }
    baselines: dict[str, Any] = {
        "sequential_fps": round(sequential_fps, 2),
        "pipelined_vs_sequential": round(pipelined_fps / sequential_fps, 3),
        "sequential_default_blas_fps": round(naive_fps, 2),
        "pipelined_vs_default_blas": round(pipelined_fps / naive_fps, 3),
    }
    if other is not None:
        vs = _versus(spec, other, inputs, count, device, rounds=1 if quick else 3)
        baselines["versus"] = vs
        baselines[f"fps_vs_{other.name}"] = vs["fps_ratio"]
    return {"metrics": metrics, "baselines": baselines}
