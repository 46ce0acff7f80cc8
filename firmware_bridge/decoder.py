"""Streaming decoder: feed arbitrary chunks of bytes, get back verified messages.

The decoder never trusts a length field it has not checked: the header CRC must pass and the
length must be within the bound for the message type before anything waits for or copies the
payload. After garbage, a truncated message or a flipped bit it resynchronises on the next sync
magic, so a message that follows a damaged one is never lost. Every rejection is counted by
reason in :attr:`Decoder.stats`.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping

from sonoedge.firmware_bridge.wire import (
    HEADER,
    HEADER_SIZE,
    KNOWN_TYPES,
    MAGIC,
    MAX_PAYLOAD_BYTES,
    OVERHEAD,
    VERSION,
    Message,
    MessageType,
    crc32,
)

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
"""Default bound for image and ensemble messages (a 64×256×256 complex64 ensemble is 32 MiB)."""

SMALL_TYPE_LIMITS: Mapping[int, int] = {
    MessageType.PROBE_DESCRIPTOR: 4096,
    MessageType.STATUS: 1024,
    MessageType.ERROR: 4096,
    MessageType.IMU_BATCH: 1 << 20,
    MessageType.COMMAND: 256,
    MessageType.ACK: 256,
}

REJECT_REASONS = (
    "bad_header_crc",
    "bad_version",
    "too_long",
    "bad_payload_crc",
    "unknown_type",
    "truncated",
)

_HEAD_FIELDS = HEADER.size  # bytes covered by the header CRC
_unpack_head = struct.Struct(HEADER.format + "I").unpack_from  # header fields + header CRC
_unpack_crc = struct.Struct("<I").unpack_from


class Decoder:
    """Incremental decoder for wire protocol v1.

    ``feed(chunk)`` returns the messages completed by that chunk; ``flush()`` ends the stream
    and counts a trailing incomplete message as truncated (rescanning what it covered).
    ``stats`` counts rejected messages by reason plus ``garbage_bytes`` skipped while hunting
    for the sync magic.
    """

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if not 0 < max_payload_bytes <= MAX_PAYLOAD_BYTES:
            raise ValueError(f"max_payload_bytes must be in 1..{MAX_PAYLOAD_BYTES}")
        self.max_payload_bytes = max_payload_bytes
        self._limits = {t: min(v, max_payload_bytes) for t, v in SMALL_TYPE_LIMITS.items()}
        self._buf = bytearray()
        self._pos = 0
        self._pending_end = 0  # end offset of a verified header's message still incomplete
        self._pending_head = (0, 0, 0, 0)  # its type, flags, sequence, timestamp
        self.stats: Counter[str] = Counter()
        self.messages = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes held while waiting for the rest of a message (bounded by the payload limit)."""
        return len(self._buf) - self._pos

    def reset(self) -> None:
        """Drop buffered bytes, e.g. after the link was lost; a partial message counts truncated."""
        if self._pending_end:
            self.stats["truncated"] += 1
        elif len(self._buf) > self._pos:
            self.stats["garbage_bytes"] += len(self._buf) - self._pos
        self._buf.clear()
        self._pos = 0
        self._pending_end = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Add received bytes; return every message they complete, in order."""
        self._buf += data
        return self._scan(final=False)

    def flush(self) -> list[Message]:
        """End of stream: reject an incomplete tail as truncated and rescan what it covered."""
        out = self._scan(final=True)
        self.reset()
        return out

    def _scan(self, final: bool) -> list[Message]:
        buf = self._buf
        pos = self._pos
        end = len(buf)
        out: list[Message] = []
        append = out.append
        stats = self.stats
        limits = self._limits
        max_payload = self.max_payload_bytes
        pending_end = self._pending_end
        msg_type = flags = seq = ts = 0
        if pending_end:
            msg_type, flags, seq, ts = self._pending_head
        view = memoryview(buf)
        try:
            while True:
                if pending_end:
                    msg_end = pending_end
                    if msg_end > end:
                        if not final:
                            break
                        stats["truncated"] += 1
                        pending_end = 0
                        pos += 1
                        continue
                else:
                    if end - pos < HEADER_SIZE:
                        if final and end > pos:
                            stats["garbage_bytes"] += end - pos
                            pos = end
                        break
                    if not buf.startswith(MAGIC, pos):
                        found = buf.find(MAGIC, pos + 1)
                        if found < 0:
                            # Keep a tail that may be the start of the next magic.
                            keep = max(pos, end - (len(MAGIC) - 1))
                            stats["garbage_bytes"] += keep - pos
                            pos = keep
                            if not final:
                                break
                            continue
                        stats["garbage_bytes"] += found - pos
                        pos = found
                        continue
                    _, version, msg_type, flags, seq, length, ts, _, head_crc = _unpack_head(
                        buf, pos
                    )
                    if crc32(view[pos : pos + _HEAD_FIELDS]) != head_crc:
                        stats["bad_header_crc"] += 1
                        pos += 1
                        continue
                    if version != VERSION:
                        stats["bad_version"] += 1
                        pos += 1
                        continue
                    if length > limits.get(msg_type, max_payload):
                        stats["too_long"] += 1
                        pos += 1
                        continue
                    msg_end = pos + OVERHEAD + length
                    if msg_end > end:
                        pending_end = msg_end
                        continue
                # A complete candidate message lies at buf[pos:msg_end].
                pending_end = 0
                payload = bytes(view[pos + HEADER_SIZE : msg_end - 4])
                if crc32(payload) != _unpack_crc(buf, msg_end - 4)[0]:
                    stats["bad_payload_crc"] += 1
                    pos += 1
                    continue
                pos = msg_end
                if msg_type in KNOWN_TYPES:
                    append(Message(msg_type, flags, seq, ts, payload))
                else:
                    stats["unknown_type"] += 1
        finally:
            view.release()
        self.messages += len(out)
        if pos:
            del buf[:pos]
            if pending_end:
                pending_end -= pos
            pos = 0
        self._pos = pos
        self._pending_end = pending_end
        self._pending_head = (msg_type, flags, seq, ts)
        return out

    def rejected(self) -> int:
        """Number of rejected messages (all reasons, garbage bytes excluded)."""
        return sum(self.stats[r] for r in REJECT_REASONS)
