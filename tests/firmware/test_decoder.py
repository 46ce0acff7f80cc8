"""The streaming decoder under garbage, damage and hostile length fields."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonoedge.bench.ingest import CORRUPTIONS, corrupt, mixed_messages, robustness
from sonoedge.firmware_bridge import Decoder
from sonoedge.firmware_bridge.wire import HEADER, MAGIC, frame

MESSAGES = mixed_messages(40, seed=3)


def decode_all(data: bytes, chunk: int = 1000) -> tuple[list[bytes], Decoder]:
    decoder = Decoder()
    out = []
    for start in range(0, len(data), chunk):
        out += [m.to_bytes() for m in decoder.feed(data[start : start + chunk])]
    out += [m.to_bytes() for m in decoder.flush()]
    return out, decoder


@given(st.binary(max_size=4000), st.integers(1, 600))
@settings(max_examples=200)
def test_random_bytes_never_yield_a_message(data: bytes, chunk: int) -> None:
    out, decoder = decode_all(data, chunk)
    assert out == []
    assert decoder.buffered_bytes == 0


@given(
    st.lists(st.tuples(st.sampled_from(CORRUPTIONS), st.integers(0, 39)), max_size=6),
    st.integers(0, 2**31),
    st.integers(1, 5000),
)
@settings(max_examples=150, deadline=None)
def test_mutated_streams_lose_nothing_and_accept_nothing_corrupt(
    damage: list[tuple[str, int]], seed: int, chunk: int
) -> None:
    rng = np.random.default_rng(seed)
    spoiled = {index: kind for kind, index in damage}
    stream = b"".join(
        corrupt(m, spoiled[i], rng) if i in spoiled else m for i, m in enumerate(MESSAGES)
    )
    out, _ = decode_all(stream, chunk)
    expected = [
        m
        for i, m in enumerate(MESSAGES)
        if spoiled.get(i, "garbage_inserted") == "garbage_inserted"
    ]
    assert out == expected


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_each_corruption_is_counted(kind: str) -> None:
    rng = np.random.default_rng(0)
    stream = MESSAGES[0] + corrupt(MESSAGES[1], kind, rng) + MESSAGES[2]
    out, decoder = decode_all(stream)
    reason = {
        "header_bit_flip": "bad_header_crc",
        "payload_bit_flip": "bad_payload_crc",
        "truncated": "bad_payload_crc",
        "garbage_inserted": "garbage_bytes",
        "huge_length": "too_long",
        "wrong_version": "bad_version",
        "unknown_type": "unknown_type",
    }[kind]
    if kind == "truncated" and len(stream) - len(MESSAGES[0]) < len(MESSAGES[1]) + 36:
        reason = "truncated"  # the stale length reached past the end of the stream
    assert decoder.stats[reason] >= 1
    keep = [MESSAGES[0], MESSAGES[2]] + ([MESSAGES[1]] if kind == "garbage_inserted" else [])
    assert sorted(out) == sorted(keep)


def test_gigabyte_length_with_valid_header_crc_allocates_nothing() -> None:
    head = HEADER.pack(MAGIC, 1, 0x12, 0, 0, 0xFFFFFFF0, 0, 0)
    import zlib

    bogus = head + zlib.crc32(head).to_bytes(4, "little")
    decoder = Decoder()
    assert decoder.feed(bogus + b"\0" * 100) == []
    assert decoder.stats["too_long"] == 1
    assert decoder.buffered_bytes < 200


def test_pending_message_is_bounded_by_its_type_limit() -> None:
    decoder = Decoder(max_payload_bytes=1 << 16)
    msg = frame(0x12, b"\0" * (1 << 17), 0, 0)  # 128 KiB > the 64 KiB bound
    assert decoder.feed(msg) == []
    assert decoder.stats["too_long"] == 1
    assert decoder.buffered_bytes < 64


def test_truncated_tail_is_counted_at_flush_and_what_it_covered_is_rescanned() -> None:
    decoder = Decoder()
    cut = MESSAGES[5][: len(MESSAGES[5]) // 2]
    assert decoder.feed(MESSAGES[4] + cut) != []
    assert decoder.flush() == []
    assert decoder.stats["truncated"] == 1


def test_robustness_on_twenty_thousand_messages() -> None:
    result = robustness(20_000, corrupt_fraction=0.01, seed=1)
    assert result.corrupted > 100
    assert result.valid_lost == 0
    assert result.corrupt_accepted == 0
