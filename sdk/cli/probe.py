"""``sonoedge probe``: find, inspect and emulate probes."""

from __future__ import annotations

import typer

app = typer.Typer(help="Find, inspect and emulate probes.", no_args_is_help=True)


@app.command("list")
def list_ports() -> None:
    """List serial ports a probe may be on (USB CDC-ACM devices appear as /dev/ttyACM*).

    No hardware? `sonoedge probe emulate --pty` makes a virtual one.
    """
    from rich.console import Console
    from rich.table import Table
    from serial.tools import list_ports as lp

    ports = sorted(lp.comports(), key=lambda p: p.device)
    console = Console()
    if not ports:
        console.print(
            "no serial ports found; try `sonoedge probe emulate --pty` for a virtual probe"
        )
        return
    table = Table("device", "description", "hardware id")
    for port in ports:
        table.add_row(port.device, port.description or "", port.hwid or "")
    console.print(table)


@app.command("info")
def info(
    url: str = typer.Argument(
        ..., help="Probe URL, e.g. /dev/ttyACM0, socket://host:port, emulator://?preset=doppler"
    ),
    timeout_s: float = typer.Option(2.0, "--timeout", help="Seconds to wait for the probe."),
) -> None:
    """Connect to a probe and print its descriptor and status.

    \b
    Example:
      sonoedge probe info emulator://?preset=doppler
    """
    from rich.console import Console
    from rich.table import Table

    from sonoedge.ingest import open_probe
    from sonoedge.types import ProbeStatus

    with open_probe(url, timeout_s=timeout_s) as probe:
        info = probe.wait_info(timeout_s)
        status = next((s for s in probe.samples(seconds=1.5) if isinstance(s, ProbeStatus)), None)
    table = Table("field", "value", title=f"probe at {url}")
    near, far = info.depth_range_m
    rows = [
        ("model", info.model),
        ("serial", info.serial),
        ("firmware", info.firmware_version),
        ("geometry", info.geometry),
        ("centre frequency", f"{info.center_frequency_hz / 1e6:.2f} MHz"),
        ("bandwidth", f"{info.bandwidth_fraction * 100:.0f} %"),
        ("elements", f"{info.n_elements} × {info.pitch_m * 1e3:.3f} mm pitch"),
        ("sampling", f"{info.sampling_frequency_hz / 1e6:.1f} MHz"),
        ("depth range", f"{near * 1e3:.0f}–{far * 1e3:.0f} mm"),
    ]
    if info.geometry == "convex":
        rows.append(("radius", f"{info.radius_m * 1e3:.1f} mm"))
    if status is not None:
        rows += [
            ("state", f"{status.state} ({status.mode})"),
            ("depth", f"{status.depth_m * 1e3:.0f} mm"),
            ("PRF", f"{status.prf_hz:.0f} Hz"),
            ("gain", f"{status.gain_db:.1f} dB"),
            ("temperature", f"{status.temperature_c:.1f} °C"),
        ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


@app.command("emulate")
def emulate(
    preset: str = typer.Option(
        "bmode",
        help="What to stream: bmode, iq, doppler, or ulm (microbubble ensembles on a λ/4 grid).",
    ),
    pty: bool = typer.Option(True, "--pty/--no-pty", help="Serve on a pseudo-terminal."),
    tcp: int = typer.Option(0, help="Serve on this TCP port instead (socket://127.0.0.1:PORT)."),
    link: str = typer.Option("", help="Also make this symlink to the pty (a stable device path)."),
    seconds: float = typer.Option(0.0, help="Stop after this many seconds (0: until Ctrl-C)."),
    seed: int = typer.Option(0, help="Random seed of the generated content."),
    autostart: bool = typer.Option(False, help="Stream without waiting for a START command."),
    option: list[str] = typer.Option(
        [], "--option", "-o", help="Emulator setting KEY=VALUE, e.g. -o ensemble_frames=32."
    ),
) -> None:
    """Run a virtual probe that speaks the wire protocol, for use without hardware.

    \b
    Examples:
      sonoedge probe emulate --preset doppler    # prints a device path, e.g. /dev/pts/5
      sonoedge stream /dev/pts/5 --seconds 5     # in another terminal
      sonoedge probe emulate --tcp 5555          # then: sonoedge stream socket://127.0.0.1:5555
      sonoedge probe emulate --preset ulm --tcp 5555   # then: --preset ulm_student
    """
    from sonoedge.errors import ConfigError
    from sonoedge.firmware_bridge.emulator import PtyEmulator, TcpEmulator
    from sonoedge.firmware_bridge.virtual_probe import VirtualProbe
    from sonoedge.ingest.urls import emulator_config

    for item in option:
        if "=" not in item:
            raise ConfigError(f"--option {item!r} is not KEY=VALUE")
    query = "&".join([f"preset={preset}", f"seed={seed}", f"autostart={autostart}", *option])
    probe = VirtualProbe(emulator_config(query))
    duration = seconds or None
    if tcp:
        server = TcpEmulator(probe, port=tcp)
        typer.echo(f"virtual probe ({preset}) at {server.url}", err=True)
        try:
            server.serve(duration)
        finally:
            server.stop()
        return
    if not pty:
        raise ConfigError("choose --pty or --tcp PORT")
    emulator = PtyEmulator(probe, link=link or None)
    typer.echo(f"virtual probe ({preset}) at {emulator.path}", err=True)
    typer.echo(emulator.path)
    try:
        emulator.serve(duration)
    finally:
        emulator.stop()
