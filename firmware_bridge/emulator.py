"""Run a :class:`VirtualProbe` behind a real byte transport: a pseudo-terminal or a TCP port.

On a pty the host opens the slave side with pyserial exactly as it opens a USB CDC device, so
the whole serial path is exercised. Writes never block the emulator: like firmware, it drops
whole messages (and counts them) when the host does not read fast enough.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
import tty
from pathlib import Path

from sonoedge.firmware_bridge.virtual_probe import VirtualProbe

MAX_PENDING_BYTES = 16 * 1024 * 1024
WRITE_CHUNK = 1 << 20


class _Pump:
    """Moves bytes between a VirtualProbe and one non-blocking file descriptor."""

    def __init__(self, probe: VirtualProbe, t0: float) -> None:
        self.probe = probe
        self.t0 = t0
        self.pending = bytearray()
        self.bytes_sent = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def step(self, read_fd: int, write_fd: int, max_wait_s: float = 0.01) -> bool:
        """One scheduling round; returns False when the peer is gone."""
        now = self.now()
        for msg in self.probe.poll(now):
            if len(self.pending) + len(msg) > MAX_PENDING_BYTES:
                self.probe.frames_dropped += 1
            else:
                self.pending += msg
        wait = max(0.0, min(max_wait_s, self.probe.next_due_s() - self.now()))
        readable, writable, _ = select.select(
            [read_fd], [write_fd] if self.pending else [], [], wait
        )
        if readable:
            try:
                data: bytes | None = os.read(read_fd, 65536)
            except BlockingIOError:
                data = None
            except OSError:
                return False
            if data is not None:
                if not data:
                    return False
                self.probe.handle(data, self.now())
        if writable and self.pending:
            try:
                n = os.write(write_fd, self.pending[:WRITE_CHUNK])
            except BlockingIOError:
                n = 0
            except OSError as err:
                if err.errno in (errno.EIO, errno.EPIPE, errno.ECONNRESET):
                    return False
                raise
            del self.pending[:n]
            self.bytes_sent += n
        return True


class PtyEmulator:
    """A virtual probe on a pseudo-terminal; ``path`` is what the host opens.

    With ``link`` a symlink of that name points at the pty, so tests and users can "unplug"
    (:meth:`unplug`) and "replug" (:meth:`replug`) a device path that stays the same.
    """

    def __init__(self, probe: VirtualProbe, link: str | Path | None = None) -> None:
        self.probe = probe
        self.link = Path(link) if link else None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self.tty_path = ""
        self._pump = _Pump(probe, time.monotonic())
        self._plug()

    @property
    def path(self) -> str:
        return str(self.link) if self.link else self.tty_path

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.tty_path = os.ttyname(slave)
        if self.link:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.tty_path)
            tmp.replace(self.link)

    def unplug(self) -> None:
        """Close the pty (the host sees the device vanish) and remove the link."""
        with self._lock:
            if self.link:
                with contextlib.suppress(FileNotFoundError):
                    self.link.unlink()
            for fd in (self._master, self._slave):
                if fd >= 0:
                    os.close(fd)
            self._master = self._slave = -1
            self._pump.pending.clear()
            self.probe.streaming = False  # a real probe loses power with its USB cable

    def replug(self) -> None:
        """Make a new pty and point the link at it."""
        with self._lock:
            self._plug()

    def serve(self, seconds: float | None = None) -> None:
        """Run in the calling thread until :meth:`stop` or ``seconds`` elapsed."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            with self._lock:
                fd = self._master
                if fd >= 0:
                    self._pump.step(fd, fd)
            if fd < 0:
                time.sleep(0.01)

    def start(self) -> PtyEmulator:
        """Serve on a background thread."""
        self._thread = threading.Thread(target=self.serve, name="pty-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self.unplug()

    def __enter__(self) -> PtyEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TcpEmulator:
    """A virtual probe on a TCP port (``socket://host:port``); serves one client at a time."""

    def __init__(self, probe: VirtualProbe, host: str = "127.0.0.1", port: int = 0) -> None:
        self.probe = probe
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.1)
        self.host, self.port = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def serve(self, seconds: float | None = None) -> None:
        deadline = None if seconds is None else time.monotonic() + seconds

        def running() -> bool:
            return not self._stop.is_set() and (deadline is None or time.monotonic() < deadline)

        while running():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pump = _Pump(self.probe, self._t0)
                fd = conn.fileno()
                while running() and pump.step(fd, fd):
                    pass
            self.probe.streaming = False

    def start(self) -> TcpEmulator:
        self._thread = threading.Thread(target=self.serve, name="tcp-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self._server.close()

    def __enter__(self) -> TcpEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
