"""``sonoedge sweep2vol``: freehand sweeps (PLUS files, recordings) → 3D volumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def sweep2vol(
    inputs: list[str] = typer.Argument(
        ...,
        metavar="INPUT...",
        help="PLUS sequence files (.igs.mha, .seq.nrrd), sonoedge recordings (.h5), folders of "
        "them, or sim:fan / sim:linear / sim:rotation (a simulated sweep).",
    ),
    out: Path = typer.Option(Path("volumes"), "--out", "-o", help="Output folder."),
    plus_config: Path | None = typer.Option(
        None,
        "--plus-config",
        help="PLUS device-set XML: ImageToProbe and every VolumeReconstruction setting "
        "(spacing, interpolation, compounding, clip rectangle, fan, hole filling) come from it.",
    ),
    spacing: float = typer.Option(0.5, "--spacing", help="Voxel size in mm."),
    interp: str = typer.Option("linear", "--interp", help="nn (nearest neighbour) or linear."),
    compound: str = typer.Option("mean", "--compound", help="mean, max or latest."),
    fill_holes: str = typer.Option(
        "none", "--fill-holes", help="none, nearest, gaussian or stick."
    ),
    fill_size: int | None = typer.Option(
        None, "--fill-size", help="Hole-filling kernel size in voxels (stick: max length)."
    ),
    motion: str | None = typer.Option(
        None,
        "--motion",
        help="fan, linear, rotation (IMU pose models) or tracked (poses in the file). "
        "Default: tracked for PLUS files, fan otherwise.",
    ),
    speed: float | None = typer.Option(
        None, "--speed", help="Linear sweeps: probe speed in mm/s (default: from speckle)."
    ),
    fmt: str = typer.Option("nrrd", "--format", help="Volume format: nrrd, nii, nii.gz, mha."),
    weights: bool = typer.Option(
        False, "--weights", help="Also write the accumulation (coverage) volume."
    ),
    max_memory_gb: float = typer.Option(
        4.0, "--max-memory-gb", help="Refuse volumes whose buffers need more than this."
    ),
) -> None:
    """Reconstruct 3D volumes from freehand sweeps, and report sweep quality.

    Writes, per input, OUT/NAME.nrrd (LPS geometry, opens in 3D Slicer), OUT/NAME_mip.png
    (maximum-intensity projections) and OUT/NAME_quality.json: frame gaps, angular and linear
    speed, elevational frame spacing vs voxel size, hole fraction, heading drift, skipped frames.

    Examples:

      sonoedge sweep2vol NwirePhantomFreehand.igs.mha --plus-config PlusDeviceSet.xml -o vol/

      sonoedge sweep2vol recordings/ -o volumes/ --motion fan --spacing 0.3 --fill-holes gaussian

      sonoedge sweep2vol sim:fan -o /tmp/vol --interp nn --compound max
    """
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from sonoedge.cli import report_error
    from sonoedge.errors import SonoedgeError
    from sonoedge.freehand.convert import Sweep2VolOptions, convert_sweep, expand_inputs

    options = Sweep2VolOptions(
        spacing_mm=spacing,
        interpolation=interp,
        compounding=compound,
        fill_holes=fill_holes,
        fill_size=fill_size,
        motion=motion,
        speed_mm_s=speed,
        volume_format=fmt,
        weights=weights,
        max_memory_gb=max_memory_gb,
    )
    if plus_config is not None and not plus_config.exists():
        from sonoedge.errors import ConfigError

        raise ConfigError(f"--plus-config {plus_config} does not exist")
    names = expand_inputs(inputs)
    failed = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        for name in names:
            task = bar.add_task(Path(name).name, total=None)

            def advance(done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total)

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = convert_sweep(name, out, options, plus_config, advance)
            except SonoedgeError as err:
                failed += 1
                sys.stderr.write(f"{name}: ")
                report_error(err)
                continue
            finally:
                bar.remove_task(task)
            rep = result.report
            typer.echo(f"{name} -> {result.outputs[0]}  {json.dumps(_summary(rep))}")
            for warning in rep.get("warnings", []):
                typer.echo(f"  warning: {warning}", err=True)
    if failed:
        raise typer.Exit(code=1)


def _summary(report: dict) -> dict:
    keys = (
        "volume_shape_ijk",
        "n_frames",
        "n_frames_skipped",
        "hole_fraction",
        "max_spacing_over_voxel",
        "heading_drift_dps",
        "time_offset_ms",
    )
    out = {}
    for k in keys:
        if k in report and report[k] is not None:
            v = report[k]
            out[k] = round(v, 4) if isinstance(v, float) else v
    return out
