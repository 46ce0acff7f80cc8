"""One exception hierarchy for sonoedge.

Every error says what was wrong (``str(err)``) and, where there is one, what to do about it
(``err.hint``). The CLI prints both without a traceback and exits non-zero.
"""

from __future__ import annotations


class SonoedgeError(Exception):
    """Base class of every error sonoedge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(SonoedgeError, ValueError):
    """A parameter, preset or config file is invalid."""

    exit_code = 2


class ProtocolError(SonoedgeError):
    """Bytes on the probe link violate the wire protocol."""


class ProbeConnectionError(SonoedgeError, OSError):
    """The probe cannot be opened or the link was lost."""


class ProbeNotFoundError(ProbeConnectionError):
    """The probe URL names a device or host that does not exist."""


class ProbePermissionError(ProbeConnectionError):
    """The probe device exists but this user may not open it."""


class CommandTimeoutError(SonoedgeError, TimeoutError):
    """The probe did not acknowledge a command in time."""


class CommandRejectedError(SonoedgeError):
    """The probe acknowledged a command with a failure result."""


class RecordingError(SonoedgeError, OSError):
    """A recording file is missing, truncated or not a sonoedge recording."""


class DataError(SonoedgeError, ValueError):
    """Input data has the wrong shape, dtype, range or contains NaN/Inf."""
