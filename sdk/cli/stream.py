"""``sonoedge stream``: watch, process, record and serve a probe's data stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def stream(
    url: str = typer.Argument(
        ...,
        help="Probe URL: /dev/ttyACM0, socket://host:port, emulator://?preset=doppler, file://rec.h5",
    ),
    preset: str = typer.Option(
        "",
        "--preset",
        "-p",
        help="Run a pipeline: bmode, bmode-students, doppler, doppler-sonic, ulm, ulm_student, "
        "ulm_guided or "
        "a preset .toml file.",
    ),
    device: str = typer.Option("auto", help="Backend for model stages: auto, cpu, openvino-cpu, …"),
    record: Path | None = typer.Option(
        None, "--record", "-r", help="Record raw messages (and pipeline outputs) to this HDF5 file."
    ),
    igtl: int = typer.Option(0, help="Serve images and the probe pose to 3D Slicer on this port."),
    show: bool = typer.Option(False, "--show", help="Open a preview window (needs a display)."),
    video: Path | None = typer.Option(None, help="Write the processed images to this MP4 file."),
    png_every: int = typer.Option(
        0, min=0, help="With --video: also save every Nth image as PNG beside the video."
    ),
    seconds: float = typer.Option(0.0, help="Stop after this many seconds (0: until Ctrl-C)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary at the end."),
) -> None:
    """Stream from a probe, optionally through a processing pipeline, with live statistics.

    \b
    Examples:
      sonoedge stream emulator://?preset=doppler --seconds 5
      sonoedge stream "emulator://?preset=ulm" --preset ulm_student --seconds 5
      sonoedge stream /dev/ttyACM0 --preset doppler --record session.h5 --igtl 18944
      sonoedge stream "file://session.h5?speed=max" --preset bmode --video out.mp4 --json
    """
    import json
    import time

    from rich.console import Console
    from rich.live import Live

    from sonoedge.ingest import open_probe
    from sonoedge.ingest.monitor import StreamMonitor

    console = Console(stderr=json_out)
    pipeline = _build_pipeline(preset, device, igtl, show, video, png_every) if preset else None
    monitor = StreamMonitor()
    interrupted = False
    with open_probe(url, record=record) as probe:
        if pipeline is not None and record is not None and probe.recorder is not None:
            from sonoedge.pipeline.sinks import RecorderSink

            pipeline.add_sink(RecorderSink(probe.recorder))
        try:
            with Live(console=console, refresh_per_second=4, transient=json_out) as live:
                last = 0.0
                items: Any = (
                    probe.samples(seconds=seconds or None)
                    if pipeline is None
                    else pipeline.run(probe, seconds=seconds or None)
                )
                for item in items:
                    monitor.add(item if pipeline is None else item.sample)
                    now = time.monotonic()
                    if now - last > 0.25:
                        live.update(_table(url, monitor, probe, pipeline))
                        last = now
                live.update(_table(url, monitor, probe, pipeline))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if pipeline is not None:
                pipeline.stop()
        stats = probe.stats()
        error = probe.error
    summary: dict[str, Any] = monitor.summary()
    summary.update(
        url=url,
        bytes_received=stats.bytes_received,
        rejected=stats.rejected,
        sequence_lost=stats.sequence_lost,
        queue_dropped=stats.queue_dropped,
        clock_drift_ppm=round(stats.clock_drift_ppm, 2),
        recording=str(record) if record else None,
    )
    if pipeline is not None:
        summary["pipeline"] = {"preset": pipeline.name, **pipeline.stats().as_dict()}
    if json_out:
        typer.echo(json.dumps(summary))
    elif record:
        console.print(f"recorded to {record}")
    if error is not None:
        raise error
    if interrupted:
        raise typer.Exit(130)


def _build_pipeline(
    preset: str, device: str, igtl: int, show: bool, video: Path | None, png_every: int
) -> Any:
    from sonoedge.devices.targets import resolve_device
    from sonoedge.pipeline import Pipeline
    from sonoedge.pipeline.sinks import IgtlSink, PreviewSink, VideoSink

    pipeline = Pipeline.from_preset(preset, device=resolve_device(device))
    if show:
        pipeline.add_sink(PreviewSink(f"sonoedge {pipeline.name}", pipeline.stats))
    if video is not None:
        pipeline.add_sink(VideoSink(video, png_every=png_every))
    if igtl:
        from sonoedge.pipeline.pose import LivePose

        pipeline.add_sink(
            IgtlSink(igtl, device_name=f"sonoedge-{pipeline.name}", pose_source=LivePose())
        )
    return pipeline


def _table(url: str, monitor: Any, probe: Any, pipeline: Any) -> Any:
    from rich.table import Table

    stats = probe.stats()
    table = Table(title=f"{url}  ({monitor.elapsed_s:.1f} s)")
    table.add_column("stream")
    table.add_column("value", justify="right")
    for kind, rate in monitor.rates_hz().items():
        table.add_row(kind, f"{rate:.1f} /s")
    table.add_row("link", f"{stats.bytes_received / monitor.elapsed_s / 1e6:.2f} MB/s")
    lat = monitor.latency_ms()
    if lat:
        table.add_row("acquisition → here p50 / p99", f"{lat['p50']:.1f} / {lat['p99']:.1f} ms")
    drops = stats.queue_dropped + stats.sequence_lost + stats.total_rejected
    table.add_row(
        "link drops",
        f"{drops} (queue {stats.queue_dropped}, lost {stats.sequence_lost}, "
        f"rejected {stats.total_rejected})",
    )
    if stats.silent_s:
        table.add_row("[red]probe silent[/]", f"for {stats.silent_s:.1f} s")
    if stats.gaps:
        table.add_row(
            "link gaps", f"{len(stats.gaps)} ({sum(g.duration_s for g in stats.gaps):.2f} s)"
        )
    if pipeline is not None:
        p = pipeline.stats()
        table.add_row(f"pipeline {pipeline.name}", f"{p.fps:.1f} fps")
        for stage in p.stages:
            table.add_row(
                f"  {stage.name} p50 / p99",
                f"{stage.latency_ms['p50']:.1f} / {stage.latency_ms['p99']:.1f} ms",
            )
        table.add_row(
            "  end to end p50 / p99",
            f"{p.end_to_end_ms['p50']:.1f} / {p.end_to_end_ms['p99']:.1f} ms",
        )
        table.add_row("  dropped (input) / errors", f"{p.input_dropped} / {p.errors}")
    return table
