"""``sonoedge train`` and ``sonoedge eval``: shared student tooling (torch is imported lazily)."""

from __future__ import annotations

from pathlib import Path

import typer

TASKS_HELP = "sonic (Doppler), despeckle (MK despeckling), enhance (blind deblur + denoise), ulm"


def _command() -> str:
    import shlex
    import sys

    return " ".join(shlex.quote(a) for a in ["sonoedge", *sys.argv[1:]])


def train(
    task: str = typer.Argument(..., help=f"What to train: {TASKS_HELP}."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML file overriding the task's default config."
    ),
    quick: bool = typer.Option(False, "--quick", help="Tiny model on tiny data (< 1 minute)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory, e.g. runs/sonic."),
    cache: Path = typer.Option(
        Path("runs/cache"), "--cache", help="Where simulated data sets are cached."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    stop_after: int | None = typer.Option(
        None, "--stop-after", hidden=True, help="Stop after N steps (tests resuming)."
    ),
) -> None:
    """Train a teacher and its student; resumable (re-run the same command to continue).

    The run directory receives checkpoints, the final weights (teacher.pt, student.pt with their
    config and data spec), the exported student (NAME.onnx + model card NAME.json/.md) and
    metrics.json.

    \b
    Examples:
      sonoedge train sonic --quick --out runs/sonic-quick
      sonoedge train sonic --out runs/sonic
      sonoedge train sonic --config my.toml --out runs/sonic-8
    """
    from sonoedge.train import check_task, get_task
    from sonoedge.train import config as cfgmod

    check_task(task)
    cfg = cfgmod.load(task, config, quick)  # bad configs fail here, before torch is imported
    module = get_task(task)
    from sonoedge.train.loop import StopTraining, make_progress

    progress = make_progress(not no_progress)
    try:
        if progress is not None:
            progress.start()
        command = " ".join(
            ["sonoedge train", task, *(["--config", str(config)] if config else [])]
            + (["--quick"] if quick else [])
            + ["--out", str(out)]
        )
        path = module.train(
            cfg, out, progress=progress, stop_after=stop_after, cache_dir=cache, command=command
        )
    except StopTraining as stop:
        typer.echo(f"{stop}; re-run the same command to resume")
        raise typer.Exit(3) from None
    finally:
        if progress is not None:
            progress.stop()
    typer.echo(f"trained {task}: {path}")


def eval_(
    task: str = typer.Argument(..., help=f"What to evaluate: {TASKS_HELP}."),
    model: list[str] = typer.Option(
        ...,
        "--model",
        "-m",
        help="Student: shipped name (sonic-16), .onnx or run dir. Repeat for other lengths "
        "(sonic) or to score other localisers beside the first (ulm).",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML config (default: the one recorded in the model card)."
    ),
    quick: bool = typer.Option(False, "--quick", help="One scene per held-out set."),
    teacher: str | None = typer.Option(
        None, "--teacher", help="Teacher weights (default: teacher.pt beside the model)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Result name: writes NAME.json/NAME.png (default: the task's name)."
    ),
    results_dir: Path | None = typer.Option(
        None,
        "--results-dir",
        help="Output folder (default: $SONOEDGE_RESULTS_DIR or docs/results).",
    ),
    cache: Path = typer.Option(Path("runs/cache"), "--cache", help="Simulated data cache."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Evaluate students on held-out synthetic sets against classical baselines and the teacher.

    Writes RESULTS_DIR/NAME.json and RESULTS_DIR/NAME.png: for sonic, Dice and PSNR/SSIM against
    SVD clutter filtering and Dice vs ensemble length; for despeckle and enhance, PSNR/SSIM per
    condition against the classical filters (enhance: margins per severity, point targets,
    the real PLUS frames); for ulm, RMSE, Jaccard, precision and recall against conventional
    localisation.

    \b
    Examples:
      sonoedge eval sonic --model sonic-16
      sonoedge eval sonic --model runs/sonic --quick --results-dir /tmp/res
      sonoedge eval enhance --model enhance-student --name enhance_check
      sonoedge eval ulm --model ulm-localizer-pg --model ulm-localizer
    """
    from sonoedge.bench import results
    from sonoedge.train import check_task, get_task
    from sonoedge.train import config as cfgmod

    check_task(task)
    result_name = name or task
    results_dir = results_dir or results.RESULTS_DIR
    cfg = cfgmod.load(task, config, quick) if (config is not None) else None
    module = get_task(task)
    from sonoedge.train.loop import make_progress

    progress = make_progress(not no_progress)
    try:
        if progress is not None:
            progress.start()
        metrics = module.evaluate(
            model,
            cfg,
            results_dir,
            name=result_name,
            quick=quick,
            command=_command(),
            progress=progress,
            cache_dir=cache,
            teacher_path=teacher,
        )
    finally:
        if progress is not None:
            progress.stop()
    typer.echo(module.summarize(metrics))
    json_path, png_path = results_dir / f"{result_name}.json", results_dir / f"{result_name}.png"
    typer.echo(f"wrote {json_path} and {png_path}")
