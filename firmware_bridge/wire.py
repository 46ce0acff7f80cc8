"""Wire protocol v1 framing: constants, header layout, CRC and the message encoder.

See PROTOCOL.md in this folder for the specification. Every message is::

    header (32 bytes) | payload (payload_length bytes) | payload CRC32 (4 bytes)
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from enum import IntEnum, IntFlag
from typing import NamedTuple

MAGIC = b"\xa5\x5aSE"
VERSION = 1
HEADER = struct.Struct(
    "<4sBBHIIQI"
)  # magic, version, type, flags, sequence, length, time, reserved
HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size + HEADER_CRC.size  # 32
TRAILER_SIZE = 4
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
MAX_PAYLOAD_BYTES = 256 * 1024 * 1024
"""Largest payload the protocol allows; decoders may enforce a smaller per-type bound."""

crc32 = zlib.crc32
"""CRC-32 (IEEE 802.3, reflected 0xEDB88320, init and final xor 0xFFFFFFFF), as zlib computes."""


class MessageType(IntEnum):
    PROBE_DESCRIPTOR = 0x01
    STATUS = 0x02
    ERROR = 0x03
    BMODE_FRAME = 0x10
    IQ_FRAME = 0x11
    IQ_ENSEMBLE = 0x12
    IMU_BATCH = 0x20
    COMMAND = 0x40
    ACK = 0x41


KNOWN_TYPES = frozenset(int(t) for t in MessageType)


class Flags(IntFlag):
    NONE = 0
    CLOCK_RESET = 0x0001
    """The probe's timestamp counter restarted; receivers refit their clock mapping."""


class Message(NamedTuple):
    """One framed message whose header and payload CRCs both passed."""

    type: int
    flags: int
    sequence: int
    timestamp_us: int
    payload: bytes

    def to_bytes(self) -> bytes:
        """The exact bytes of this message on the wire."""
        return frame(self.type, self.payload, self.sequence, self.timestamp_us, self.flags)


def frame_parts(
    msg_type: int,
    payload_parts: Sequence[bytes | bytearray | memoryview],
    sequence: int,
    timestamp_us: int,
    flags: int = 0,
) -> list[bytes | bytearray | memoryview]:
    """Header, payload parts and trailer of one message, ready for ``writelines`` or ``join``."""
    length = sum(memoryview(p).nbytes for p in payload_parts)
    if length > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"payload of {length} bytes exceeds the protocol limit {MAX_PAYLOAD_BYTES}"
        )
    head = HEADER.pack(
        MAGIC,
        VERSION,
        msg_type,
        flags & 0xFFFF,
        sequence & 0xFFFFFFFF,
        length,
        timestamp_us & 0xFFFFFFFFFFFFFFFF,
        0,
    )
    payload_crc = 0
    for part in payload_parts:
        payload_crc = crc32(part, payload_crc)
    return [
        head + HEADER_CRC.pack(crc32(head)),
        *payload_parts,
        HEADER_CRC.pack(payload_crc),
    ]


def frame(
    msg_type: int,
    payload: bytes | bytearray | memoryview,
    sequence: int,
    timestamp_us: int,
    flags: int = 0,
) -> bytes:
    """Encode one message."""
    return b"".join(frame_parts(msg_type, [payload], sequence, timestamp_us, flags))


class Encoder:
    """Frames messages with a running sequence number (what a probe or host sends)."""

    def __init__(self, first_sequence: int = 0) -> None:
        self.sequence = first_sequence & 0xFFFFFFFF

    def encode(
        self,
        msg_type: int,
        payload_parts: Sequence[bytes | bytearray | memoryview],
        timestamp_us: int,
        flags: int = 0,
    ) -> bytes:
        if flags & ~int(Flags.CLOCK_RESET):
            raise ValueError(f"flags 0x{flags:04x} use bits protocol v1 reserves (send 0)")
        parts = frame_parts(msg_type, payload_parts, self.sequence, timestamp_us, flags)
        self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        return b"".join(parts)
