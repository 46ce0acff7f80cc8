"""``sonoedge demo``: the SDK end to end on a virtual probe, no hardware needed."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("sonoedge-demo"), "--out", "-o", help="Folder for the report."),
    seconds: float = typer.Option(3.0, help="Seconds to stream each pipeline."),
) -> None:
    """Virtual probe on a pseudo-terminal → pyserial → B-mode and Doppler pipelines (recorded)
    → replay → HTML report with figures and a latency table in ./sonoedge-demo/.
    """
    from rich.console import Console

    from sonoedge.showcase import run_demo

    console = Console()
    index = run_demo(out, seconds, console.print)
    console.print(f"report: [bold]{index}[/] (open it in a browser)")
