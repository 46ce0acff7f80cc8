"""``sonoedge devices``: what this machine can run, and ``bench model`` (in ``sonoedge bench``)."""

from __future__ import annotations

import typer

from sonoedge.errors import ConfigError, DataError


def devices(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """What this machine can run: ONNX Runtime providers, OpenVINO devices, CPU features (VNNI,
    AVX-512, AMX), the GPU, every target profile, and which one `--device auto` picks.

    \b
    Example:
      sonoedge devices --json
    """
    import json

    from sonoedge.devices import capabilities
    from sonoedge.devices.profiles import profiles
    from sonoedge.devices.targets import available_targets, resolve_device

    info = capabilities.summary()
    available = available_targets(probe_openvino=True)
    info["targets"] = {
        name: {"available": name in available, "backends": list(p.backends), "about": p.description}
        for name, p in profiles().items()
    }
    info["auto"] = resolve_device("auto")
    if json_out:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"cpu: {info['cpu']} ({info['cores']} cores)")
    typer.echo(f"cpu features: {', '.join(info['cpu_features']) or 'none of interest'}")
    typer.echo(f"onnxruntime providers: {', '.join(info['onnxruntime_providers']) or 'none'}")
    typer.echo(f"openvino devices: {', '.join(info['openvino_devices']) or 'not installed'}")
    typer.echo(f"gpu: {info['gpu'] or 'none'}")
    typer.echo("targets:")
    for name, t in info["targets"].items():
        mark = "yes" if t["available"] else "no "
        typer.echo(f"  {mark} {name:18s} {' → '.join(t['backends'])}")
    typer.echo(f"auto picks: {info['auto']}")


def parse_shape(text: str) -> list[int]:
    """``"1,1,256,256"`` → ``[1, 1, 256, 256]`` (positive integers)."""
    try:
        dims = [int(part) for part in text.replace("x", ",").split(",")]
    except ValueError:
        dims = []
    if not dims or any(d < 1 for d in dims):
        raise ConfigError(
            f"--shape {text!r} is invalid: expected positive integers separated by commas",
            hint="for example --shape 1,1,256,256",
        )
    return dims


def bench_model(
    bundle: str,
    device: str,
    repeats: int,
    warmup: int,
    hint: str,
    allow_unsigned: bool,
    json_out: bool,
    channels_last: bool = False,
    shape: list[int] | None = None,
) -> None:
    """Body of ``sonoedge bench model`` (the command itself lives in cli/bench.py)."""
    import json
    import time

    from sonoedge import zoo
    from sonoedge.devices import load_bundle
    from sonoedge.devices.backends import channels_last_names
    from sonoedge.devices.latency import measure

    path = zoo.shipped_bundles().get(bundle, bundle)  # a shipped bundle's name, or a path
    t0 = time.perf_counter()
    runner = load_bundle(path, device, allow_unsigned=allow_unsigned, hint=hint)
    with runner:
        inputs = runner.example_inputs(channels_last, shape)
        try:
            runner.run(inputs)
        except RuntimeError as err:  # the runtime rejects the shape (e.g. a side not a multiple)
            shapes = {k: list(v.shape) for k, v in inputs.items()}
            raise DataError(
                f"{runner.manifest['name']} cannot run at input shape {shapes}: "
                f"{str(err).strip().splitlines()[-1]}",
                hint="pass --shape N,C,H,W with sides the model accepts (its card's "
                "size_multiple and min_size)",
            ) from None
        cold_s = time.perf_counter() - t0
        runner.prepare(inputs)  # a stream's steady state: compiled for its frame shape
        stats = measure(runner.run, inputs, warmup=warmup, repeats=repeats)
    result = {
        "bundle": runner.manifest["name"],
        "precision": runner.manifest["precision"],
        "target": runner.target,
        "backend": runner.backend_name,
        "input_shapes": {k: list(v.shape) for k, v in inputs.items()},
        "channels_last": sorted(channels_last_names(inputs)),
        "cold_start_s": round(cold_s, 3),
        **stats,
    }
    if json_out:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['bundle']} ({result['precision']}) on {result['target']} via "
        f"{result['backend']}, input {result['input_shapes']}"
        f"{' in channels-last memory' if result['channels_last'] else ''}\n"
        f"  latency median {stats['median_ms']} ms, p99 {stats['p99_ms']} ms, "
        f"max {stats['max_ms']} ms\n"
        f"  throughput {stats['throughput_per_s']}/s, cold start {result['cold_start_s']} s"
    )
