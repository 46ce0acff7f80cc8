"""The C reference (firmware_bridge/c/) against the Python codec, on the shared test vectors.

The C code is compiled with the system compiler into a temporary folder; without a compiler
the C checks are skipped (the Python-side vector checks still run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from sonoedge.errors import ProtocolError
from sonoedge.firmware_bridge import payloads, testvectors
from sonoedge.firmware_bridge.decoder import DEFAULT_MAX_PAYLOAD_BYTES, REJECT_REASONS, Decoder
from sonoedge.firmware_bridge.wire import Flags, Message, MessageType
from sonoedge.types import ImuBatch, ProbeFault

C_DIR = Path(testvectors.__file__).resolve().parent / "c"
VECTORS = testvectors.VECTORS_DIR
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
COUNTERS = (*REJECT_REASONS, "garbage_bytes", "bad_payload")
"""Counters both decoders keep (the C one adds seq_lost and accepted)."""


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


@pytest.fixture(scope="module")
def vectors_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = _compiler()
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH: the C reference is not checked")
    exe = tmp_path_factory.mktemp("c_reference") / "vectors"
    sources = [str(C_DIR / "sonoedge_wire.c"), str(C_DIR / "vectors_main.c")]
    proc = subprocess.run(
        [cc, *CFLAGS, "-o", str(exe), *sources],
        capture_output=True,
        text=True,
        timeout=120,
        encoding="utf-8",
    )
    assert proc.returncode == 0, f"{cc} failed:\n{proc.stdout}{proc.stderr}"
    return exe


def _run(exe: Path, *args: str, stdin: bytes = b"") -> bytes:
    proc = subprocess.run([str(exe), *args], input=stdin, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def _line(msg: Message) -> str:
    return (
        f"{msg.type} {msg.sequence} {msg.timestamp_us} {len(msg.payload)} "
        f"{zlib.crc32(msg.payload):08x} {msg.flags}"
    )


def _python_decode(stream: bytes, chunk: int, max_payload: int) -> tuple[list[str], dict[str, int]]:
    """What the Python codec makes of a stream: accepted messages (payload layout checked by
    ``payloads.decode``, as PROTOCOL.md §6 rule 5) and the reject counters."""
    dec = Decoder(max_payload)
    messages: list[Message] = []
    for start in range(0, len(stream), chunk):
        messages += dec.feed(stream[start : start + chunk])
    messages += dec.flush()
    lines: list[str] = []
    bad_payload = 0
    for msg in messages:
        try:
            payloads.decode(msg, 0.0)
        except ProtocolError:
            bad_payload += 1
            continue
        lines.append(_line(msg))
    counts = {reason: dec.stats[reason] for reason in COUNTERS}
    counts["bad_payload"] = bad_payload
    return lines, counts


def _c_decode(
    exe: Path, stream: bytes, chunk: int, max_payload: int
) -> tuple[list[str], dict[str, int]]:
    lines: list[str] = []
    counts: dict[str, int] = {}
    for row in (
        _run(exe, "decode", str(chunk), str(max_payload), stdin=stream).decode().splitlines()
    ):
        if row.startswith("stat "):
            _, name, value = row.split()
            counts[name] = int(value)
        else:
            lines.append(row)
    return lines, counts


# --- the vectors themselves (no compiler needed) ----------------------------------------------


def test_committed_vectors_are_current() -> None:
    canonical = b"".join(testvectors.canonical_messages())
    assert (VECTORS / testvectors.CANONICAL_FILE).read_bytes() == canonical
    corrupted = testvectors.corrupted_stream(testvectors.CORRUPTED_SEED)
    assert (VECTORS / testvectors.CORRUPTED_FILE).read_bytes() == corrupted, (
        "vectors are stale: python -m sonoedge.firmware_bridge.testvectors"
    )


def test_canonical_set_covers_the_protocol() -> None:
    dec = Decoder()
    messages = dec.feed(b"".join(testvectors.canonical_messages())) + dec.flush()
    assert len(messages) == len(testvectors.canonical_messages())
    assert dec.rejected() == 0 and dec.stats["garbage_bytes"] == 0
    assert {m.type for m in messages} == {int(t) for t in MessageType}
    sequences = [m.sequence for m in messages]
    assert 0xFFFFFFFF in sequences and sequences[sequences.index(0xFFFFFFFF) + 1] == 0
    assert [m.flags for m in messages].count(Flags.CLOCK_RESET) == 1
    assert max(m.timestamp_us for m in messages) > 1 << 32
    decoded = [payloads.decode(m, 0.0) for m in messages]  # every payload is well formed
    imu = [d for d in decoded if isinstance(d, ImuBatch)]
    assert sorted(d.mag_ut is not None for d in imu) == [False, True]
    formats = {m.payload[6] for m in messages if m.type == MessageType.BMODE_FRAME}
    assert formats == {1, 2, 3}
    fault = next(d for d in decoded if isinstance(d, ProbeFault))
    assert "überhitzt" in fault.message


def test_corrupted_stream_is_deterministic_and_loses_nothing() -> None:
    assert testvectors.corrupted_stream(7) == testvectors.corrupted_stream(7)
    assert testvectors.corrupted_stream(7) != testvectors.corrupted_stream(8)
    for seed in (testvectors.CORRUPTED_SEED, 2, 3):
        lines, counts = _python_decode(
            testvectors.corrupted_stream(seed), 4096, DEFAULT_MAX_PAYLOAD_BYTES
        )
        intact, malformed = testvectors.corrupted_stream_expectation(seed)
        assert (len(lines), counts["bad_payload"]) == (intact, malformed)
        for reason in ("bad_header_crc", "bad_version", "too_long", "bad_payload_crc"):
            assert counts[reason] > 0, reason
        assert counts["unknown_type"] > 0 and counts["truncated"] >= 1


# --- the C reference ---------------------------------------------------------------------------


def test_c_crc32_check_value(vectors_exe: Path) -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert _run(vectors_exe, "crc32", "123456789").decode().strip() == "cbf43926"


def test_c_selftest(vectors_exe: Path) -> None:
    assert _run(vectors_exe, "selftest").decode().strip() == "selftest ok"


def test_c_encoder_is_byte_identical(vectors_exe: Path) -> None:
    c_bytes = _run(vectors_exe, "encode")
    python_bytes = b"".join(testvectors.canonical_messages())
    assert c_bytes == python_bytes
    assert c_bytes == (VECTORS / testvectors.CANONICAL_FILE).read_bytes()


@pytest.mark.parametrize("name", [testvectors.CANONICAL_FILE, testvectors.CORRUPTED_FILE])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize("max_payload", [DEFAULT_MAX_PAYLOAD_BYTES, 200])
def test_c_decoder_matches_python(
    vectors_exe: Path, name: str, chunk: int, max_payload: int
) -> None:
    """Same accepted messages, in order, and the same reject counts, for any chunking; with a
    200-byte bound the descriptor is too long and the 200-byte ensemble just fits."""
    stream = (VECTORS / name).read_bytes()
    expected_lines, expected_counts = _python_decode(stream, chunk, max_payload)
    lines, counts = _c_decode(vectors_exe, stream, chunk, max_payload)
    assert lines == expected_lines
    assert {k: counts[k] for k in COUNTERS} == expected_counts
    assert counts["accepted"] == len(lines)
    if name == testvectors.CANONICAL_FILE:
        n = len(testvectors.canonical_messages())
        assert len(lines) == (n if max_payload >= 272 else n - 1)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_c_decoder_matches_python_on_other_seeds(vectors_exe: Path, seed: int) -> None:
    stream = testvectors.corrupted_stream(seed, segments=300)
    expected_lines, expected_counts = _python_decode(stream, 13, 4096)
    lines, counts = _c_decode(vectors_exe, stream, 13, 4096)
    assert lines == expected_lines
    assert {k: counts[k] for k in COUNTERS} == expected_counts
