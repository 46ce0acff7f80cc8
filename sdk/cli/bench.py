"""``sonoedge bench``: measure this machine (results are ratios measured in one run)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Benchmarks: print ratios measured side by side; optionally write docs/results/.",
    invoke_without_command=True,
)


OVERVIEW_PRESETS = ("bmode", "bmode-students", "doppler", "doppler-sonic")


@app.callback()
def overview(
    ctx: typer.Context,
    quick: bool = typer.Option(False, help="Small sizes (seconds, for smoke tests)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Without a sub-command: the overview (ingest, then the classical and student pipelines,
    each student preset against its classical counterpart in the same run).

    \b
    Examples:
      sonoedge bench                       # overview table
      sonoedge bench pipeline --preset doppler --json
      sonoedge bench ingest --write docs/results
    """
    if ctx.invoked_subcommand is not None:
        return
    import json

    from rich.console import Console
    from rich.table import Table

    from sonoedge.bench import ingest as bench_ingest
    from sonoedge.bench import pipeline as bench_pipeline
    from sonoedge.devices.targets import resolve_device
    from sonoedge.pipeline.presets import builtin_presets

    link = bench_ingest.run(quick=True, repeats=3)
    device = resolve_device("auto")
    names = [p for p in OVERVIEW_PRESETS if p in builtin_presets()]
    runs = {p: bench_pipeline.run(p, count=40, quick=quick, device=device) for p in names}
    if json_out:
        typer.echo(json.dumps({"ingest": link, "pipelines": runs}))
        return
    table = Table("what", "median", "p99", "reference", title="sonoedge bench (this machine)")
    m = link["metrics"]
    assert isinstance(m, dict)
    table.add_row(
        "decode 2 MB ensembles",
        f"{m['decode_mb_s']} MB/s",
        f"{m['decode_mb_s_p99']} MB/s",
        "≥ 400 MB/s",
    )
    table.add_row(
        "IMU messages", f"{m['imu_msgs_s']:,}/s", f"{m['imu_msgs_s_p99']:,}/s", "≥ 200k/s"
    )
    for name, result in runs.items():
        pm, pb = result["metrics"], result["baselines"]
        table.add_row(
            f"pipeline {name}: throughput",
            f"{pm['fps']} fps",
            "",
            f"{pb['pipelined_vs_sequential']}× sequential",
        )
        for stage, lat in pm["stages"].items():
            table.add_row(
                f"  {stage} ({name})", f"{lat['p50_ms']:.1f} ms", f"{lat['p99_ms']:.1f} ms", ""
            )
        table.add_row(
            f"  end to end ({name})",
            f"{pm['end_to_end_p50_ms']:.1f} ms",
            f"{pm['end_to_end_p99_ms']:.1f} ms",
            f"cold start {pm['cold_start_s']} s",
        )
        vs = pb.get("versus")
        if vs:
            table.add_row(
                f"  vs {vs['preset']} ({name})",
                f"{vs['fps']} fps",
                "",
                f"{name} {vs['fps_ratio']}× its fps",
            )
    Console().print(table)


@app.command("pipeline")
def pipeline(
    preset: str = typer.Option("doppler", "--preset", "-p", help="Preset name or .toml file."),
    device: str = typer.Option("auto", help="Backend for model stages."),
    count: int = typer.Option(200, min=4, help="Inputs to push through."),
    quick: bool = typer.Option(False, help="Small sizes (seconds, for smoke tests)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    write: Path | None = typer.Option(None, help="Also write <DIR>/pipeline_<preset>.json."),
    versus: str | None = typer.Option(
        None,
        "--versus",
        help="Preset to compare with in the same run (default: the classical counterpart of a "
        "student preset, e.g. doppler for doppler-sonic; '' for none).",
    ),
) -> None:
    """Throughput (pipelined vs sequential), per-stage and end-to-end latency p50/p99, cold
    start and memory of a pipeline preset, on generated inputs of the preset's probe mode; for
    student presets also the classical preset's throughput and the ratio, measured alternately.

    \b
    Examples:
      sonoedge bench pipeline --preset bmode --json
      sonoedge bench pipeline --preset doppler-sonic          # vs preset doppler (SVD)
      sonoedge bench pipeline --preset bmode-students --versus bmode --write docs/results
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from sonoedge.bench import pipeline as bench_pipeline
    from sonoedge.bench.results import write_result
    from sonoedge.devices.targets import resolve_device

    target = resolve_device(device)
    result = bench_pipeline.run(preset, count=count, quick=quick, versus=versus, device=target)
    if write is not None:
        name = Path(preset).stem
        write_result(f"pipeline_{name}", result["metrics"], result["baselines"], results_dir=write)
    if json_out:
        typer.echo(json.dumps({**result["metrics"], "baselines": result["baselines"]}))
        return
    m, b = result["metrics"], result["baselines"]
    table = Table("measure", "value", title=f"pipeline {preset} on {target}")
    table.add_row(
        "throughput",
        f"{m['fps']} fps ({b['pipelined_vs_sequential']}× sequential {b['sequential_fps']} fps)",
    )
    for stage, lat in m["stages"].items():
        table.add_row(f"{stage} p50 / p99", f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms")
    e2e = f"{m['end_to_end_p50_ms']:.1f} / {m['end_to_end_p99_ms']:.1f} ms"
    table.add_row("end to end p50 / p99", f"{e2e} at {m['paced_rate_hz']} Hz")
    table.add_row(
        "first second, worst", f"{m['startup_end_to_end_max_ms']:.1f} ms (not in the p99)"
    )
    table.add_row("cold start", f"{m['cold_start_s']} s")
    table.add_row("memory", f"{m['rss_mb_before']} → {m['rss_mb_after']} MB")
    vs = b.get("versus")
    if vs:
        table.add_row(
            f"vs {vs['preset']}",
            f"{vs['fps']} fps ({', '.join(vs['methods'])}): ratio {vs['fps_ratio']}×",
        )
    Console().print(table)


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


@app.command("model")
def model(
    bundle: str = typer.Argument(
        ..., help="Bundle directory or .zip, or a shipped bundle's name (sonoedge process -m list)."
    ),
    device: str = typer.Option("auto", "--device", "-d", help="Target, or auto."),
    repeats: int = typer.Option(50, min=1, help="Timed inferences after the warm-up."),
    warmup: int = typer.Option(5, min=0, help="Untimed inferences first."),
    hint: str = typer.Option("latency", help="OpenVINO performance hint: latency|throughput."),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned", help="Run unsigned bundles."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    channels_last: bool = typer.Option(
        False,
        "--channels-last",
        help="Feed multi-channel 4-D inputs in channels-last (NHWC) memory, as the SONIC "
        "students' feature builder does; OpenVINO then skips its input reorder.",
    ),
    shape: str | None = typer.Option(
        None,
        "--shape",
        help="Input shape N,C,H,W (one-input models; default: the bundle's example shape).",
    ),
) -> None:
    """Latency of a model bundle on a device: cold start, median/p99/max, throughput, at the
    bundle's example input shape or at --shape.

    \b
    Examples:
      sonoedge bench model despeckle-mk-int8-openvino-cpu          # a shipped bundle
      sonoedge bench model enhance-student-int8-openvino-cpu --shape 1,1,256,256
      sonoedge bench model my-student.zip --device openvino-cpu --json
      sonoedge bench model sonic-16-int8-openvino-cpu --channels-last
    """
    from sonoedge.cli.devices import bench_model, parse_shape

    dims = parse_shape(shape) if shape is not None else None
    bench_model(
        bundle, device, repeats, warmup, hint, allow_unsigned, json_out, channels_last, dims
    )
