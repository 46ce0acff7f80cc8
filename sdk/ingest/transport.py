"""Byte transports under a probe link: pyserial ports and sockets, and the in-process emulator.

A transport moves bytes and nothing else: ``read`` waits briefly and returns what arrived
(possibly ``b""``), ``write`` sends, and a lost link raises :class:`LinkLostError`.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

from sonoedge.errors import (
    ConfigError,
    ProbeConnectionError,
    ProbeNotFoundError,
    ProbePermissionError,
)
from sonoedge.firmware_bridge.virtual_probe import EmulatorConfig, VirtualProbe

READ_TIMEOUT_S = 0.05


class LinkLostError(ProbeConnectionError):
    """The transport failed mid-stream (cable pulled, device reset, peer closed)."""


class Transport(Protocol):
    description: str

    def read(self, max_bytes: int = 1 << 20) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def _open_error(url: str, err: Any) -> ProbeConnectionError:
    code = getattr(err, "errno", None)
    text = str(err)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        return ProbeNotFoundError(
            f"no probe at {url}: the device does not exist",
            hint="plug the probe in, or list serial ports with `sonoedge probe list`",
        )
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return ProbePermissionError(
            f"not allowed to open {url}",
            hint="add your user to the 'dialout' group (then log in again) or fix the udev rule",
        )
    if code == errno.ECONNREFUSED or "refused" in text:
        return ProbeNotFoundError(
            f"nothing is listening at {url}",
            hint="start the probe or the emulator (`sonoedge probe emulate --tcp PORT`)",
        )
    return ProbeConnectionError(f"cannot open {url}: {text}")


class SerialTransport:
    """A pyserial port: a device path (USB CDC-ACM, pty) or another pyserial URL."""

    def __init__(self, url: str, timeout_s: float = READ_TIMEOUT_S) -> None:
        import serial

        self._serial_mod = serial
        self.description = url
        try:
            self._port = serial.serial_for_url(url, timeout=timeout_s, write_timeout=2.0)
        except (serial.SerialException, OSError, ValueError) as err:
            raise _open_error(url, err) from err

    def read(self, max_bytes: int = 1 << 20) -> bytes:
        port = self._port
        try:
            first = port.read(1)  # waits up to the read timeout
            if not first:
                return b""
            data = bytearray(first)
            while len(data) < max_bytes:  # then drain what is already there
                waiting = port.in_waiting
                if not waiting:
                    break
                data += port.read(min(waiting, max_bytes - len(data)))
            return bytes(data)
        except (self._serial_mod.SerialException, OSError, TypeError, AttributeError) as err:
            # pyserial raises TypeError/AttributeError when the fd vanished under it
            raise LinkLostError(f"link to {self.description} lost: {err}") from err

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (self._serial_mod.SerialException, OSError) as err:
            raise LinkLostError(f"cannot write to {self.description}: {err}") from err

    def close(self) -> None:
        with contextlib.suppress(self._serial_mod.SerialException, OSError):
            self._port.close()


class SocketTransport:
    """A probe on TCP (``socket://host:port``).

    pyserial's socket handler reports at most one waiting byte, which throttles bulk data, so
    sockets get this small transport of their own.
    """

    def __init__(self, url: str, timeout_s: float = READ_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise ConfigError(
                f"{url!r} needs a host and a port", hint="e.g. socket://127.0.0.1:5555"
            )
        self.description = url
        try:
            self._sock = socket.create_connection((parts.hostname, parts.port), timeout=2.0)
        except OSError as err:
            raise _open_error(url, err) from err
        self._sock.settimeout(timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self, max_bytes: int = 1 << 20) -> bytes:
        try:
            data = self._sock.recv(max_bytes)
        except TimeoutError:
            return b""
        except OSError as err:
            raise LinkLostError(f"link to {self.description} lost: {err}") from err
        if not data:
            raise LinkLostError(f"{self.description} closed the connection")
        return data

    def write(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise LinkLostError(f"cannot write to {self.description}: {err}") from err

    def close(self) -> None:
        self._sock.close()


class EmulatorTransport:
    """An in-process virtual probe (``emulator://``), paced by the wall clock."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.description = f"emulator://?mode={config.mode}"
        self.probe = VirtualProbe(config)
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def read(self, max_bytes: int = 1 << 20) -> bytes:
        if self._closed:
            raise LinkLostError("emulator closed")
        with self._lock:
            out = self.probe.poll(self._now())
            wait = min(READ_TIMEOUT_S, max(0.0, self.probe.next_due_s() - self._now()))
        if not out:
            time.sleep(wait)
            with self._lock:
                out = self.probe.poll(self._now())
        return b"".join(out)

    def write(self, data: bytes) -> None:
        with self._lock:
            self.probe.handle(data, self._now())

    def close(self) -> None:
        self._closed = True
