"""The ``sonoedge demo`` showcase: every part of the SDK on a virtual probe, with an HTML report.

Steps: a virtual probe on a pseudo-terminal read through pyserial → the B-mode and Doppler
pipelines live (with recording) → replay of the recording → a simulated freehand sweep
reconstructed into a volume from its IMU → ``index.html`` with the figures and latency table.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sonoedge.firmware_bridge.emulator import PtyEmulator
from sonoedge.firmware_bridge.virtual_probe import EmulatorConfig, VirtualProbe
from sonoedge.ingest import open_probe
from sonoedge.ingest.monitor import StreamMonitor
from sonoedge.pipeline import Pipeline, RecorderSink, Result
from sonoedge.pipeline.stages import display_image

Log = Callable[[str], None]


@dataclass
class DemoReport:
    out: Path
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, HTML body)
    summary: dict[str, Any] = field(default_factory=dict)

    def add(self, title: str, body: str) -> None:
        self.sections.append((title, body))

    def figure(self, name: str, image: np.ndarray, caption: str) -> str:
        cv2.imwrite(str(self.out / name), image)
        text = html.escape(caption)
        return f'<figure><img src="{name}" alt="{text}"><figcaption>{text}</figcaption></figure>'

    def write(self) -> Path:
        parts = [
            "<!doctype html><meta charset='utf-8'><title>sonoedge demo</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "img{max-width:100%;image-rendering:pixelated}figure{display:inline-block;margin:6px;"
            "vertical-align:top;width:31%}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style>",
            "<h1>sonoedge demo</h1>",
        ]
        for title, body in self.sections:
            parts += [f"<h2>{html.escape(title)}</h2>", body]
        path = self.out / "index.html"
        path.write_text("\n".join(parts), encoding="utf-8")
        return path


def table_html(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _upscale(image: np.ndarray, size: int = 256) -> np.ndarray:
    return np.asarray(cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST), np.uint8)


DEMO_PRESETS = ("bmode", "bmode-students", "doppler", "doppler-sonic")
"""Classical pipelines and the same ones with the shipped students, one after the other."""


def run_live(report: DemoReport, seconds: float, log: Log) -> Path:
    """Virtual probe on a pty → B-mode and Doppler pipelines, recorded; returns the recording."""
    recording = report.out / "recording.h5"
    link_rows: list[list[Any]] = []
    latency_rows: list[list[Any]] = []
    from sonoedge.devices.targets import resolve_device

    device = resolve_device("auto")  # students on the best backend here (OpenVINO on x86)
    with PtyEmulator(VirtualProbe(EmulatorConfig(seed=0))) as emulator:
        log(f"virtual probe on {emulator.path} (pseudo-terminal, read with pyserial)")
        with open_probe(emulator.path, record=recording) as probe:
            info = probe.wait_info()
            mhz = info.center_frequency_hz / 1e6
            log(f"connected: {info.model}, {info.geometry}, {mhz:.1f} MHz")
            for preset in DEMO_PRESETS:
                pipeline = Pipeline.from_preset(preset, device=device)
                assert probe.recorder is not None
                pipeline.add_sink(RecorderSink(probe.recorder))
                last: Result | None = None
                start = time.monotonic()
                pipeline.start(probe)
                for result in pipeline.results():
                    if result.processed and result.error is None:
                        last = result
                    elapsed = time.monotonic() - start
                    if elapsed >= seconds and (last is not None or elapsed > 10 * seconds + 10):
                        break
                pipeline.stop()
                stats = pipeline.stats()
                log(
                    f"{preset} on {device}: {stats.results} images at {stats.fps:.1f} fps, "
                    f"end-to-end p99 {stats.end_to_end_ms['p99']:.1f} ms"
                )
                for stage in stats.stages:
                    latency_rows.append(
                        [
                            preset,
                            stage.name,
                            f"{stage.latency_ms['p50']:.1f}",
                            f"{stage.latency_ms['p99']:.1f}",
                            stage.processed,
                            stage.errors,
                        ]
                    )
                latency_rows.append(
                    [
                        preset,
                        "end to end",
                        f"{stats.end_to_end_ms['p50']:.1f}",
                        f"{stats.end_to_end_ms['p99']:.1f}",
                        stats.results,
                        stats.errors,
                    ]
                )
                report.summary[preset] = {"fps": round(stats.fps, 1), "results": stats.results}
                if last is not None:
                    methods = ", ".join(
                        str(getattr(st, "method", st.name)) for st in pipeline.stages
                    )
                    _panels(report, preset, str(pipeline.probe_mode), methods, last)
            link = probe.stats()
    link_rows = [[k, v] for k, v in link.messages.items()]
    link_rows += [
        ["bytes", f"{link.bytes_received:,}"],
        ["rejected", link.total_rejected],
        ["lost (sequence gaps)", link.sequence_lost],
        ["queue drops", link.queue_dropped],
    ]
    report.add("Probe link (pty + pyserial)", table_html(["messages", "count"], link_rows))
    report.add(
        "Pipeline latency (ms)",
        table_html(["preset", "stage", "p50", "p99", "frames", "errors"], latency_rows),
    )
    return recording


def _panels(report: DemoReport, preset: str, mode: str, methods: str, result: Result) -> None:
    figures = []
    source = result.sample
    if mode == "bmode":
        raw = getattr(source, "image", None)
        if raw is not None:
            figures.append(
                report.figure(
                    f"{preset}_input.png", _upscale(np.asarray(raw, np.uint8)), "input B-mode"
                )
            )
        for stage, output in result.outputs.items():
            if stage == "bmode":
                continue
            shown = display_image(Result(sample=source, index=0, received_s=0, image=output))
            if shown is not None:
                figures.append(
                    report.figure(f"{preset}_{stage}.png", _upscale(shown), f"after {stage}")
                )
    else:
        iq = getattr(source, "iq", None)
        if iq is not None:
            env = np.abs(iq[0])
            db = 20 * np.log10(env / env.max() + 1e-6)
            figures.append(
                report.figure(
                    f"{preset}_input.png",
                    _upscale(np.clip((db + 50) * 255 / 50, 0, 255).astype(np.uint8)),
                    "one IQ frame of the ensemble (envelope)",
                )
            )
        shown = display_image(result)
        if shown is not None:
            colour = cv2.applyColorMap(_upscale(shown), cv2.COLORMAP_HOT)
            figures.append(
                report.figure(f"{preset}_power.png", colour, f"power Doppler ({methods})")
            )
    report.add(f"{preset} ({methods}): input and outputs", "".join(figures))


def run_replay(report: DemoReport, recording: Path, log: Log) -> None:
    monitor = StreamMonitor()
    with open_probe(f"file://{recording}?speed=max") as replay:
        for sample in replay:
            monitor.add(sample)
    rows = [[k, v] for k, v in sorted(monitor.counts.items())]
    log(f"replayed {sum(monitor.counts.values())} samples from {recording.name}")
    report.add("Replay of the recording", table_html(["sample", "count"], rows))
    report.summary["replayed_samples"] = sum(monitor.counts.values())


def run_freehand(report: DemoReport, log: Log) -> None:
    """A simulated fan sweep with IMU → orientation → poses → volume (NRRD) and its MIPs."""
    from sonoedge.freehand.sweep import estimate_poses, reconstruct_sweep
    from sonoedge.io.volume import write_mips, write_volume
    from sonoedge.synth.sweeps import simulate_sweep
    from sonoedge.synth.transducer import get_preset

    t0 = time.monotonic()
    sweep = simulate_sweep(get_preset("linear-7.5"), "fan", seed=0, n_frames=60)
    poses = estimate_poses(sweep, "fan")
    result = reconstruct_sweep(sweep, poses, spacing_m=0.4e-3)
    volume_path = write_volume(report.out / "sweep_volume.nrrd", result.volume)
    mip_path = write_mips(report.out / "sweep_mips.png", result.volume)
    elapsed = time.monotonic() - t0
    shape = "×".join(str(n) for n in result.volume.data.shape[::-1])
    log(f"freehand: {len(sweep.frames)} frames + IMU → {shape} volume in {elapsed:.1f} s")
    caption = "maximum-intensity projections of the reconstructed volume"
    body = (
        f'<figure style="width:95%"><img src="{mip_path.name}" alt="{caption}">'
        f"<figcaption>{caption}</figcaption></figure>"
        + table_html(
            ["frames", "IMU samples", "volume (i×j×k)", "file", "seconds"],
            [[len(sweep.frames), len(sweep.imu or []), shape, volume_path.name, f"{elapsed:.1f}"]],
        )
    )
    report.add("Freehand sweep → volume (IMU orientation, fan about the skin contact)", body)
    report.summary["volume_shape"] = shape


def run_demo(out: Path, seconds: float, log: Log) -> Path:
    """Run every step and write ``out/index.html``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out)
    t0 = time.monotonic()
    recording = run_live(report, seconds, log)
    run_replay(report, recording, log)
    run_freehand(report, log)
    report.summary["seconds"] = round(time.monotonic() - t0, 1)
    return report.write()
