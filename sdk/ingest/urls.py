"""Probe URLs, in the spirit of pyserial's ``serial_for_url``.

==============================  ==========================================================
``serial:///dev/ttyACM0``       a USB CDC-ACM probe (or any serial device); a bare path too
``socket://host:port``          a probe (or emulator) on TCP
``emulator://?preset=doppler``  the virtual probe in-process; options as query parameters
                                (presets: bmode, iq, doppler, ulm)
``file://recording.h5``         replay a recording (``?speed=max`` or ``?speed=2``)
==============================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sonoedge.errors import ConfigError
from sonoedge.firmware_bridge.virtual_probe import EmulatorConfig
from sonoedge.ingest.probe import Probe
from sonoedge.ingest.queue import OVERFLOW_POLICIES, OverflowPolicy
from sonoedge.ingest.transport import EmulatorTransport, SerialTransport, SocketTransport

SCHEMES = ("serial", "socket", "emulator", "file")
_URL_HELP = (
    "use serial:///dev/ttyACM0 (or a device path), socket://HOST:PORT, "
    "emulator://?preset=bmode|iq|doppler|ulm or file://RECORDING.h5"
)


def _typed(field: dataclasses.Field[Any], text: str) -> Any:
    default = field.default
    try:
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple):
            return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError as err:
        raise ConfigError(f"emulator option {field.name}={text!r} is not a valid value") from err
    return text


def emulator_config(query: str) -> EmulatorConfig:
    """EmulatorConfig from a query string such as ``preset=doppler&ensemble_frames=32``."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    preset = params.pop("preset", params.get("mode", "bmode"))
    fields = {f.name: f for f in dataclasses.fields(EmulatorConfig)}
    overrides: dict[str, Any] = {}
    for key, text in params.items():
        if key not in fields or key == "info":
            raise ConfigError(
                f"unknown emulator option {key!r}",
                hint="options: preset, " + ", ".join(k for k in fields if k != "info"),
            )
        overrides[key] = _typed(fields[key], text)
    return EmulatorConfig.from_preset(preset, **overrides)


def open_probe(
    url: str,
    *,
    start: bool = True,
    queue_size: int = 256,
    queue_bytes: int = 64 * 1024 * 1024,
    overflow: OverflowPolicy | None = None,
    reconnect: bool = True,
    reconnect_timeout_s: float = 30.0,
    timeout_s: float = 2.0,
    record: str | os.PathLike[str] | None = None,
) -> Probe:
    """Open a probe and start streaming; use it as a context manager.

    ``overflow`` is what happens when the consumer falls behind by ``queue_size`` samples or
    ``queue_bytes`` of array data (64 MiB: about 32 ensembles of 16×128×128):
    ``drop_oldest`` (default for live links: the freshest data wins), ``drop_newest``, or
    ``block`` (default for replays: nothing is skipped). ``record`` starts an HDF5 recording.
    """
    if overflow is not None and overflow not in OVERFLOW_POLICIES:
        raise ConfigError(f"overflow={overflow!r}: expected one of {OVERFLOW_POLICIES}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if len(scheme) == 1 or not scheme:  # a bare path (or a Windows drive letter)
        scheme, target = ("file", url) if url.endswith((".h5", ".hdf5")) else ("serial", url)
    elif scheme == "serial":
        target = parts.path or parts.netloc
    elif scheme == "file":
        target = (parts.netloc + parts.path) or parts.path
    else:
        target = url
    if scheme not in SCHEMES:
        raise ConfigError(f"unsupported probe URL scheme {scheme!r} in {url!r}", hint=_URL_HELP)

    probe: Probe
    if scheme == "file":
        from sonoedge.io.recording import RecordingReader

        speed_text = dict(parse_qsl(parts.query)).get("speed", "1")
        try:
            speed = 0.0 if speed_text == "max" else float(speed_text)
        except ValueError as err:
            raise ConfigError(f"speed={speed_text!r}: use a number or 'max'") from err
        probe = Probe(
            url,
            replay=RecordingReader(target),
            queue_size=queue_size,
            queue_bytes=queue_bytes,
            overflow=overflow or "block",
            replay_speed=speed,
        )
    elif scheme == "emulator":
        config = emulator_config(parts.query)
        probe = Probe(
            url,
            opener=lambda: EmulatorTransport(config),
            queue_size=queue_size,
            queue_bytes=queue_bytes,
            overflow=overflow or "drop_oldest",
            reconnect=False,
        )
    else:
        watch = target if scheme == "serial" else None
        transport = SerialTransport if scheme == "serial" else SocketTransport
        probe = Probe(
            url,
            opener=lambda: transport(target),
            queue_size=queue_size,
            queue_bytes=queue_bytes,
            overflow=overflow or "drop_oldest",
            reconnect=reconnect,
            reconnect_timeout_s=reconnect_timeout_s,
            watch_path=watch,
        )
    if record is not None:
        probe.record(record)
    try:
        return probe.open(start=start, timeout_s=timeout_s)
    except BaseException:
        probe.close()
        raise
