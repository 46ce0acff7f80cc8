"""``sonoedge stream``: watch (and record) a probe's data stream."""

from __future__ import annotations

from pathlib import Path

import typer


def stream(
    url: str = typer.Argument(
        ...,
        help="Probe URL: /dev/ttyACM0, socket://host:port, emulator://?preset=doppler, file://rec.h5",
    ),
    record: Path | None = typer.Option(
        None, "--record", "-r", help="Record every message to this HDF5 file."
    ),
    seconds: float = typer.Option(
        0.0, help="Stop after this many seconds (0: until Ctrl-C or end of replay)."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON summary at the end instead of a live view."
    ),
) -> None:
    """Stream from a probe, showing live rates, drops and latency.

    \b
    Examples:
      sonoedge stream emulator://?preset=doppler --seconds 5
      sonoedge stream /dev/ttyACM0 --record session.h5    # Ctrl-C stops; the file stays valid
      sonoedge stream "file://session.h5?speed=max" --json  # replay a recording at full speed
    """
    import json
    import time

    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from sonoedge.ingest import LinkStats, open_probe
    from sonoedge.ingest.monitor import StreamMonitor

    console = Console(stderr=json_out)

    def render(monitor: StreamMonitor, stats: LinkStats) -> Table:
        table = Table(title=f"{url}  ({monitor.elapsed_s:.1f} s)", show_header=True)
        table.add_column("stream")
        table.add_column("rate", justify="right")
        for kind, rate in monitor.rates_hz().items():
            table.add_row(kind, f"{rate:.1f} /s")
        lat = monitor.latency_ms()
        table.add_row("link", f"{stats.bytes_received / monitor.elapsed_s / 1e6:.2f} MB/s")
        if lat:
            table.add_row("latency p50 / p99", f"{lat['p50']:.1f} / {lat['p99']:.1f} ms")
        drops = stats.queue_dropped + stats.sequence_lost + stats.total_rejected
        table.add_row(
            "drops",
            f"{drops} (queue {stats.queue_dropped}, lost {stats.sequence_lost}, "
            f"rejected {stats.total_rejected})",
        )
        if stats.gaps:
            table.add_row(
                "link gaps", f"{len(stats.gaps)} ({sum(g.duration_s for g in stats.gaps):.2f} s)"
            )
        return table

    monitor = StreamMonitor()
    interrupted = False
    with open_probe(url, record=record) as probe:
        try:
            with Live(
                render(monitor, probe.stats()),
                console=console,
                refresh_per_second=4,
                transient=json_out,
            ) as live:
                last = 0.0
                for sample in probe.samples(seconds=seconds or None):
                    monitor.add(sample)
                    now = time.monotonic()
                    if now - last > 0.25:
                        live.update(render(monitor, probe.stats()))
                        last = now
                live.update(render(monitor, probe.stats()))
        except KeyboardInterrupt:
            interrupted = True
        stats = probe.stats()
        error = probe.error
    summary = monitor.summary()
    summary.update(
        url=url,
        bytes_received=stats.bytes_received,
        rejected=stats.rejected,
        sequence_lost=stats.sequence_lost,
        queue_dropped=stats.queue_dropped,
        clock_drift_ppm=round(stats.clock_drift_ppm, 2),
        recording=str(record) if record else None,
    )
    if json_out:
        typer.echo(json.dumps(summary))
    elif record:
        console.print(f"recorded to {record}")
    if error is not None:
        raise error
    if interrupted:
        raise typer.Exit(130)
