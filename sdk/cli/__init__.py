"""The ``sonoedge`` command line.

Each sub-command lives in its own module and imports its heavy dependencies inside the command
function, so ``sonoedge --help`` stays fast. Errors from :mod:`sonoedge.errors` are printed
without a traceback and end the process with a non-zero exit code; sonoedge's own warnings are
printed as ``warning: MESSAGE`` lines, without Python's source location.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from typing import TextIO

import typer

from sonoedge import __version__
from sonoedge.cli import bench, demo, probe, stream
from sonoedge.cli.compress import compress
from sonoedge.cli.devices import devices
from sonoedge.cli.package import keys_app, package, verify
from sonoedge.cli.process import process
from sonoedge.cli.sweep2vol import sweep2vol
from sonoedge.cli.synth import synth
from sonoedge.cli.train import eval_, train
from sonoedge.cli.ulm import ulm
from sonoedge.errors import SonoedgeError

app = typer.Typer(
    name="sonoedge",
    help="Edge SDK for handheld ultrasound probes: ingest, students, compression, freehand 3D.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's markdown stack would double `--help` time
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sonoedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what sonoedge is doing."),
) -> None:
    """Edge SDK for handheld ultrasound probes.

    Start with `sonoedge demo` (virtual probe, no hardware needed).
    """
    if verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


# Sub-commands: one module each (register new ones here).
app.add_typer(probe.app, name="probe")
app.add_typer(bench.app, name="bench")
app.add_typer(keys_app, name="keys")
app.command("stream")(stream.stream)
app.command("demo")(demo.demo)
app.command("process")(process)
app.command("synth")(synth)
app.command("sweep2vol")(sweep2vol)
app.command("train")(train)
app.command("eval")(eval_)
app.command("ulm")(ulm)
app.command("compress")(compress)
app.command("package")(package)
app.command("verify")(verify)
app.command("devices")(devices)


def report_error(err: SonoedgeError) -> None:
    """Print an error and its hint the way every sonoedge command does."""
    sys.stderr.write(f"error: {err}\n")
    if err.hint:
        sys.stderr.write(f"hint: {err.hint}\n")


def _tolerate_legacy_terminals() -> None:
    """On a terminal whose encoding lacks our symbols (×, →, λ), print '?' instead of failing."""
    for out in (sys.stdout, sys.stderr):
        if isinstance(out, io.TextIOWrapper) and "utf" not in out.encoding.lower():
            out.reconfigure(errors="replace")


PACKAGE_DIR = Path(__file__).resolve().parent.parent
"""The installed ``sonoedge`` package: warnings raised from files under it are ours."""


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Warnings raised inside sonoedge (out-of-range parameters, extrapolation) as plain
    ``warning:`` lines; those of other libraries keep Python's format."""
    ours = issubclass(category, UserWarning) and Path(filename).resolve().is_relative_to(
        PACKAGE_DIR
    )
    text = (
        f"warning: {message}\n"
        if ours
        else warnings.formatwarning(message, category, filename, lineno, line)
    )
    (file or sys.stderr).write(text)


def main() -> None:
    """Console-script entry point."""
    _tolerate_legacy_terminals()
    warnings.showwarning = _show_warning
    try:
        app()
    except SonoedgeError as err:
        report_error(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
