"""``sonoedge process``: run a classical (or trained) method on a file."""

from __future__ import annotations

import ast
from pathlib import Path

import typer

OPS_HELP = "bmode | doppler | despeckle | enhance | ulm"


def _parse_params(items: list[str]) -> dict[str, object]:
    from sonoedge.errors import ConfigError

    params: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r} is invalid: expected KEY=VALUE, e.g. n_iter=20")
        try:
            value: object = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        params[key.strip()] = value
    return params


def _list_methods(op: str | None) -> None:
    import json

    from sonoedge import zoo
    from sonoedge.processing import registry

    index = zoo.BUNDLE_DIR / "index.json"
    bundles = (
        json.loads(index.read_text(encoding="utf-8")).get("bundles", {}) if index.exists() else {}
    )
    for name in registry.OPS if op is None else [op]:
        rows = [(m, registry.describe(fn)) for m, fn in registry.METHODS[name].items()]
        rows += [
            (Path(file).stem, f"signed bundle: {b['model']}, {b['precision']}, {b['target']}")
            for file, b in bundles.items()
            if zoo.TASK_OPS.get(b["task"]) == name
        ]
        width = max(len(m) for m, _ in rows) + 2
        typer.echo(f"{name}:")
        for method, what in rows:
            typer.echo(f"  {method:<{width}}{what}")


def process(
    input_path: Path | None = typer.Argument(
        None, metavar="INPUT", help="A .npz/.npy array file, a .png picture or a .h5 recording."
    ),
    op: str = typer.Option(None, "--op", help=f"What to do: {OPS_HELP}."),
    method: str = typer.Option(
        None, "--method", "-m", help="Method for the op; 'list' (or no INPUT) shows them."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Result file: .npz (arrays + metadata), .npy or .png."
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="Method parameter KEY=VALUE (repeatable), e.g. -p n_iter=20."
    ),
    device: str = typer.Option(
        "cpu", help="Where students run: cpu (onnxruntime), openvino-cpu, cuda, jetson-*, auto."
    ),
) -> None:
    """Run a processing op on a recording, NPY/NPZ file or picture.

    Examples:

      sonoedge process --method list                     # every op and method

      sonoedge process scan.npz --op doppler --method svd_ssm -o pd.npz

      sonoedge process us.png --op despeckle --method srad -p n_iter=50 -o us_srad.png

      sonoedge process rec.h5 --op bmode -p dynamic_range_db=50 -o bmode.npz

      sonoedge process scan.npz --op doppler --method sonic-16 -o pd.npz   # shipped student

      sonoedge process us.png --op despeckle --method mk.zip --device auto   # signed bundle

      sonoedge process us.png --op enhance --method enhance-student -p self_ensemble=8   # 8 copies

    Methods are classical ops, the shipped students (named after the model) or a signed model
    bundle (.zip or directory) for the op.

    NPZ input: `iq` (complex, (N,H,W) or (H,W)) or `image` (float or uint8).
    Optional metadata: `prf_hz`, `x_m` and `z_m` (pixel coordinates, m), `center_frequency_hz`.
    NPZ output: the result (`image`, `power_db`, or `density`/`speed_m_s`/`axial_velocity_m_s`).
    It keeps the metadata and adds `notes` when the input was resampled or converted.
    """
    from sonoedge.errors import ConfigError
    from sonoedge.processing import registry

    if op is not None and op not in registry.OPS:
        raise ConfigError(f"--op {op!r} is invalid: expected one of {', '.join(registry.OPS)}")
    if input_path is None or method == "list":
        _list_methods(op)
        return
    if op is None:
        raise ConfigError(f"--op is required: one of {', '.join(registry.OPS)}")
    name = method or next(iter(registry.METHODS[op]))
    # an unknown method, or a bundle that cannot run on --device, fails before the input is read
    registry.get_method(op, name, device=device)
    params = _parse_params(param)

    from rich.progress import Progress

    from sonoedge.processing.apply import process_source
    from sonoedge.processing.files import read_input, write_output

    source = read_input(input_path, op)
    out_path = output or input_path.with_name(f"{input_path.stem}_{op}.npz")
    with Progress(transient=True, disable=source.count < 2) as progress:
        task = progress.add_task(f"{op} ({name})", total=source.count)
        outcome = process_source(
            source, op, name, params, lambda: progress.advance(task), device=device
        )
    write_output(out_path, outcome.arrays, outcome.meta)
    for note in outcome.notes:
        typer.echo(f"note: {note}", err=True)
    main_key, main = next(iter(outcome.arrays.items()))
    typer.echo(f"{op}/{name}: {main_key} {tuple(main.shape)} -> {out_path}")
