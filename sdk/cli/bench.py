"""``sonoedge bench``: measure this machine (results are ratios measured in one run)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Benchmarks: print ratios measured side by side; optionally write docs/results/.",
    no_args_is_help=True,
)


@app.command("ingest")
def ingest(
    json_out: bool = typer.Option(
        False, "--json", help="Print one JSON object (metrics + baselines)."
    ),
    quick: bool = typer.Option(False, help="Small sizes (seconds, for smoke tests)."),
    repeats: int = typer.Option(5, min=1, help="Timed repeats after one warm-up."),
    write: Path | None = typer.Option(
        None, help="Also write <DIR>/ingest.json (e.g. docs/results)."
    ),
) -> None:
    """Decoder throughput (MB/s on ~2 MB ensemble messages), IMU messages/s, and 1M messages
    with 1% corrupted: valid messages lost and corrupt messages accepted (targets: 0 and 0).

    \b
    Example:
      sonoedge bench ingest --json
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from sonoedge.bench import ingest as bench_ingest
    from sonoedge.bench.results import write_result

    result = bench_ingest.run(quick=quick, repeats=repeats)
    metrics, baselines = result["metrics"], result["baselines"]
    assert isinstance(metrics, dict) and isinstance(baselines, dict)
    if write is not None:
        write_result("ingest", metrics, baselines, results_dir=write)
    if json_out:
        typer.echo(json.dumps({**metrics, "baselines": baselines}))
        return
    table = Table("measure", "value", "reference", title="ingest (one core)")
    crc_note = (
        f"CRC-32 alone {baselines['crc32_only_mb_s']} MB/s "
        f"(ratio {baselines['decode_vs_crc32_ratio']}); target ≥ 400"
    )
    table.add_row("decode, 2 MB ensembles", f"{metrics['decode_mb_s']} MB/s", crc_note)
    table.add_row("decode + typed arrays", f"{metrics['decode_typed_mb_s']} MB/s", "")
    table.add_row("IMU messages", f"{metrics['imu_msgs_s']:,} /s", "target ≥ 200,000")
    table.add_row("IMU + typed batches", f"{metrics['imu_typed_msgs_s']:,} /s", "")
    table.add_row(
        f"{metrics['robustness_messages']:,} msgs, {metrics['robustness_corrupted']:,} corrupted",
        f"lost {metrics['valid_lost']}, accepted corrupt {metrics['corrupt_accepted']}",
        "target 0 and 0",
    )
    Console().print(table)
