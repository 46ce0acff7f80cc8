"""``sonoedge synth``: write a simulated training or evaluation dataset (HDF5)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

TASKS_HELP = "bmode (despeckling pairs) | enhance (degraded/target) | doppler | bubbles | sweep"


def synth(
    task: str = typer.Argument(..., metavar="TASK", help=f"What to simulate: {TASKS_HELP}."),
    n: int = typer.Option(..., "--n", "-n", help="Number of samples."),
    out: Path = typer.Option(..., "--out", "-o", help="Output HDF5 file (written atomically)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed; the same seed gives the same file."),
    probe: str = typer.Option(
        "L11-5v", "--probe", help="Probe preset: L11-5v, linear-7.5, convex-3.5, phased-2.7."
    ),
    size: int = typer.Option(128, "--size", help="Image height and width in pixels."),
    frames: int = typer.Option(32, "--frames", help="Frames per sample (doppler, bubbles, sweep)."),
    prf_hz: float = typer.Option(1000.0, "--prf-hz", help="Pulse repetition frequency (doppler)."),
    split: str = typer.Option(
        "train", "--split", help="train, or eval (disjoint seeds, partly disjoint parameters)."
    ),
    workers: int = typer.Option(0, "--workers", "-j", help="Processes (0 = all cores)."),
    engine: str = typer.Option(
        "physics",
        "--engine",
        help="bubbles only: physics (convolution model) or generator (the ULM diffusion "
        "generator draws the frames of the same vessel trees; eval = unseen centre frequencies).",
    ),
    generator: str = typer.Option(
        "ulm-generator", "--generator", help="Generator model name or .onnx (--engine generator)."
    ),
    mirror_average: int = typer.Option(
        0,
        "--mirror-average",
        help="Generator copies per denoising step: 1 (fastest), 2 or 4; 0 = the model card's.",
    ),
) -> None:
    """Simulate a dataset with the physics-guided simulators.

    Each sample is a pure function of (seed, split, index), so files are reproducible; the
    spec is stored in the file's `spec` attribute. An interrupted run leaves no file.

    Examples:

    \b
      sonoedge synth bmode --n 1000 --out despeckle.h5 --seed 1
      sonoedge synth doppler --n 200 --frames 128 --out sonic.h5 --probe linear-7.5
      sonoedge synth bubbles --n 50 --frames 64 --out ulm_eval.h5 --split eval --seed 7
      sonoedge synth bubbles --n 20 --size 64 --frames 8 --engine generator --out gen.h5
      sonoedge synth sweep --n 20 --frames 60 --out sweeps.h5 --probe convex-3.5
    """
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from sonoedge.synth.datasets import DatasetSpec, write_dataset

    spec = DatasetSpec(
        task=task,  # type: ignore[arg-type]  # validated by DatasetSpec
        n=n,
        seed=seed,
        probe=probe,
        size=size,
        frames=frames,
        prf_hz=prf_hz,
        split=split,  # type: ignore[arg-type]
        engine=engine,  # type: ignore[arg-type]
        generator=generator,
        mirror_average=mirror_average,
    )
    n_workers = workers if workers > 0 else (os.cpu_count() or 1)
    command = " ".join(shlex.quote(a) for a in ["sonoedge", *sys.argv[1:]])
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        job = bar.add_task(f"synth {task}", total=n)
        path = write_dataset(
            spec,
            out,
            workers=n_workers,
            progress=lambda done: bar.update(job, completed=done),
            command=command,
        )
    typer.echo(f"wrote {n} {task} samples to {path}")
