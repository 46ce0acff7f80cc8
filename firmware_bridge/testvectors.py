"""Shared test vectors of wire protocol v1: Python codec and C reference emit the same bytes.

``canonical_messages()`` builds one deterministic message of every kind through the Python codec
(``payloads`` + ``wire``); ``c/vectors_main.c`` builds the same messages from the same literal
values with the C reference. ``corrupted_stream(seed)`` mixes them with garbage, bit flips,
truncations, bogus lengths, wrong versions, unknown types and malformed payloads, deterministically
per seed (its own SplitMix64 generator, independent of Python's ``random``).

``python -m sonoedge.firmware_bridge.testvectors`` rewrites the files in ``vectors/``.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from sonoedge.firmware_bridge.payloads import (
    Ack,
    AckResult,
    Command,
    CommandCode,
    Decoded,
    encode_parts,
)
from sonoedge.firmware_bridge.wire import MAGIC, Encoder, Flags, MessageType, frame
from sonoedge.types import (
    BmodeFrame,
    ImuBatch,
    IQEnsemble,
    IQFrame,
    ProbeFault,
    ProbeInfo,
    ProbeStatus,
)

VECTORS_DIR = Path(__file__).resolve().parent / "vectors"
CANONICAL_FILE = "v1_canonical.bin"
CORRUPTED_FILE = "v1_corrupted.bin"
CORRUPTED_SEED = 1
"""Seed of the committed ``v1_corrupted.bin``."""

FIRST_SEQUENCE = 0xFFFFFFFA
"""The probe's first sequence number: the canonical set wraps through 2**32."""
T0_US = 1 << 40
"""Probe clock at the first message: above 2**32 so the full u64 timestamp is exercised."""
COMMAND_SEQUENCE = 41
"""Sequence number of the host's COMMAND (the host counts separately); the ACK answers it."""

_MASK64 = (1 << 64) - 1
_HEADER_CRC_AT = 28


# --- the canonical messages (c/vectors_main.c mirrors every literal below) -------------------


def _descriptor() -> ProbeInfo:
    r = 0.7071067811865476
    return ProbeInfo(
        model="SonoEdge C5-2 convex",
        serial="SN-0123456789ABCDEF-0123456789AB",  # exactly 32 bytes: no terminator
        geometry="convex",
        center_frequency_hz=3.5e6,
        bandwidth_fraction=0.72,
        n_elements=192,
        pitch_m=2.45e-4,
        radius_m=0.045,
        sampling_frequency_hz=14e6,
        depth_range_m=(0.002, 0.16),
        imu_to_image=np.array(
            [
                [0.0, -1.0, 0.0, 0.012],
                [r, 0.0, r, -0.0035],
                [-r, 0.0, r, 0.021],
                [0.0, 0.0, 0.0, 1.0],
            ]
        ),
        firmware_version="fw 1.4.0 \u03b2",  # UTF-8, 11 bytes
    )


def _bmode_u8() -> BmodeFrame:
    k = np.arange(6 * 5)
    return BmodeFrame(
        spacing_m=(2.5e-4, 3e-4),
        origin_m=(0.002, -0.0096),
        grid="cartesian",
        frame_index=41,
        image=((k * 37 + 11) % 256).astype(np.uint8).reshape(6, 5),
    )


def _bmode_u16() -> BmodeFrame:
    k = np.arange(3 * 4)
    return BmodeFrame(
        spacing_m=(5e-4, 0.0125),
        origin_m=(0.001, -0.35),
        grid="polar",
        frame_index=42,
        image=((k * 4099 + 17) % 65536).astype(np.uint16).reshape(3, 4),
    )


def _bmode_f32() -> BmodeFrame:
    k = np.arange(2 * 3)
    return BmodeFrame(
        spacing_m=(1e-3, 1e-3),
        origin_m=(0.0, 0.0),
        grid="cartesian",
        frame_index=43,
        image=((k * 5 - 7) * 0.0625).astype(np.float32).reshape(2, 3),
    )


def _complex(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    """complex64 from parts, keeping the sign of zeros (``a + 1j * b`` turns -0.0 into 0.0)."""
    out = np.empty(real.shape, np.complex64)
    out.real = real
    out.imag = imag
    return out


def _iq_frame() -> IQFrame:
    k = np.arange(4 * 3)
    iq = _complex(((k * 13) % 31 - 15) / 8.0, ((k * 7) % 29 - 14) / 16.0)
    return IQFrame(
        spacing_m=(1.1e-4, 2.45e-4),
        origin_m=(0.002, -0.0235),
        grid="cartesian",
        frame_index=7,
        iq=iq.reshape(4, 3),
    )


def _iq_ensemble() -> IQEnsemble:
    k = np.arange(3 * 2 * 3)
    iq = _complex(((k * 11) % 23 - 11) * 0.25, ((k * 5) % 19 - 9) * -0.125)  # ends with -0.0
    return IQEnsemble(
        spacing_m=(1.1e-4, 2.45e-4),
        origin_m=(0.01, -0.001),
        grid="cartesian",
        frame_index=3,
        iq=iq.reshape(3, 2, 3),
        prf_hz=5000.0,
    )


def _imu(n: int, with_mag: bool, t_us: int) -> tuple[ImuBatch, np.ndarray]:
    i = np.arange(n)[:, None]
    j = np.arange(3)[None, :]
    m = i * 3 + j
    times_us = t_us + np.arange(n, dtype=np.uint64) * np.uint64(1250)
    batch = ImuBatch(
        times_s=times_us.astype(np.float64) * 1e-6,
        gyro_dps=((m - 4) * 0.25).astype(np.float32),
        accel_g=((m % 5 - 2) * 0.125 + (j == 2)).astype(np.float32),
        mag_ut=((m - 3) * 2.5 + 20.0).astype(np.float32) if with_mag else None,
    )
    return batch, times_us


def canonical_messages() -> list[bytes]:
    """One framed message per case, in order (concatenated they form ``v1_canonical.bin``)."""
    enc = Encoder(first_sequence=FIRST_SEQUENCE)
    out: list[bytes] = []

    def emit(obj: Decoded, t_us: int, flags: int = 0, times_us: np.ndarray | None = None) -> None:
        msg_type, parts = encode_parts(obj, times_us)
        out.append(enc.encode(msg_type, parts, t_us, flags))

    def host_command(command: Command, sequence: int, t_us: int) -> None:
        msg_type, parts = encode_parts(command)
        out.append(frame(msg_type, b"".join(parts), sequence, t_us))

    emit(_descriptor(), T0_US)
    status = ProbeStatus(
        state="streaming",
        mode="doppler",
        depth_m=0.08,
        prf_hz=4000.0,
        gain_db=12.5,
        temperature_c=36.7,
        frames_sent=123456,
        frames_dropped=7,
    )
    emit(status, T0_US + 250)
    emit(_bmode_u8(), T0_US + 1000)
    emit(_bmode_u16(), T0_US + 34333)
    emit(_bmode_f32(), T0_US + 67666)
    emit(_iq_frame(), T0_US + 100000)  # sequence 0xFFFFFFFF
    emit(_iq_ensemble(), T0_US + 200000)  # sequence 0: the wrap
    batch, times = _imu(3, False, T0_US + 200100)
    emit(batch, T0_US + 200100, times_us=times)
    batch, times = _imu(2, True, T0_US + 203850)
    emit(batch, T0_US + 203850, times_us=times)
    fault = ProbeFault(code=0x00020003, message="temp 41.5 °C — überhitzt, throttling")
    emit(fault, T0_US + 250000)
    # The host's command (its own sequence space), then the probe's answer to it.
    host_command(Command(CommandCode.SET_PRF, 0, 4166.5), COMMAND_SEQUENCE, 987654321)
    emit(
        Ack(COMMAND_SEQUENCE, CommandCode.SET_PRF, AckResult.OK, 4166.666666666667), T0_US + 260000
    )
    host_command(Command(CommandCode.SET_MODE, 2, 0.0), COMMAND_SEQUENCE + 1, 987655000)
    # The probe rebooted: its clock restarted, the first message after it says so.
    rebooted = ProbeStatus(
        state="idle",
        mode="bmode",
        depth_m=0.04,
        prf_hz=0.0,
        gain_db=-3.25,
        temperature_c=24.5,
        frames_sent=0,
        frames_dropped=0,
    )
    emit(rebooted, 17, flags=Flags.CLOCK_RESET)
    return out


# --- the corrupted stream --------------------------------------------------------------------


class _SplitMix64:
    """A tiny PRNG whose output is fixed forever (unlike ``random`` across Python versions)."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def bytes(self, n: int) -> bytes:
        return bytes(self.next() & 0xFF for _ in range(n))


def _with_header(msg: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``msg`` with one header field replaced and the header CRC recomputed (so it passes)."""
    buf = bytearray(msg)
    struct.pack_into(fmt, buf, offset, value)
    struct.pack_into("<I", buf, _HEADER_CRC_AT, zlib.crc32(bytes(buf[:_HEADER_CRC_AT])))
    return bytes(buf)


def _malformed(rng: _SplitMix64, canon: list[bytes], seq: int) -> bytes:
    """A message with valid CRCs whose payload breaks its layout (counted ``bad_payload``)."""
    status, bmode, ensemble, imu, command, ack = (canon[i] for i in (1, 2, 6, 7, 10, 11))

    def payload(msg: bytes) -> bytearray:
        return bytearray(msg[32:-4])

    cases: list[tuple[int, bytes]] = []
    cases.append((MessageType.STATUS, bytes(payload(status)[:-1])))  # 39 bytes
    p = payload(status)
    p[0] = 3  # state out of range
    cases.append((MessageType.STATUS, bytes(p)))
    cases.append((MessageType.BMODE_FRAME, bytes(payload(bmode)[:-1])))  # a sample short
    p = payload(bmode)
    p[6] = 4  # complex64 in a B-mode frame
    cases.append((MessageType.BMODE_FRAME, bytes(p)))
    p = payload(ensemble)
    p[16:24] = struct.pack("<d", 0.0)  # ensemble without PRF
    cases.append((MessageType.IQ_ENSEMBLE, bytes(p)))
    p = payload(ensemble)
    cases.append((MessageType.IQ_FRAME, bytes(p)))  # 3 frames in a single-frame message
    p = payload(imu)
    p[0:2] = struct.pack("<H", 0)  # zero samples
    cases.append((MessageType.IMU_BATCH, bytes(p)))
    p = payload(imu)
    p[2] = 1  # claims a magnetometer it does not carry
    cases.append((MessageType.IMU_BATCH, bytes(p)))
    p = payload(command)
    p[0] = 9  # unknown command code
    cases.append((MessageType.COMMAND, bytes(p)))
    p = payload(ack)
    p[5] = 7  # unknown result
    cases.append((MessageType.ACK, bytes(p)))
    cases.append((MessageType.ERROR, struct.pack("<I4x", 5) + b"x" * 1025))  # text too long
    cases.append((MessageType.PROBE_DESCRIPTOR, bytes(271)))  # short descriptor
    msg_type, body = cases[rng.below(len(cases))]
    return frame(msg_type, body, seq, 5_000_000 + seq)


def corrupted_stream(seed: int = CORRUPTED_SEED, segments: int = 160) -> bytes:
    """Canonical messages mixed with every kind of damage, the same bytes for the same seed.

    Receivers must accept every intact message in it (including those right after or inside
    the claimed length of a damaged one) and no damaged one.
    """
    return _corrupted(seed, segments)[0]


def corrupted_stream_expectation(
    seed: int = CORRUPTED_SEED, segments: int = 160
) -> tuple[int, int]:
    """``(intact, malformed)``: how many messages of ``corrupted_stream(seed, segments)`` a
    receiver with the default bounds must accept, and how many it must count ``bad_payload``."""
    _, intact, malformed = _corrupted(seed, segments)
    return intact, malformed


def _corrupted(seed: int, segments: int) -> tuple[bytes, int, int]:
    rng = _SplitMix64(seed)
    canon = canonical_messages()
    out = bytearray(b"\x5a\x53\x45" + rng.bytes(5))  # starts mid-magic
    intact = malformed = 0
    for n in range(segments):
        msg = canon[rng.below(len(canon))]
        kind = rng.below(10)
        if kind == 0:  # intact
            out += msg
            intact += 1
        elif kind == 1:  # garbage, sometimes with (partial) magics in it
            junk = bytearray(rng.bytes(1 + rng.below(64)))
            if rng.below(2):
                at = rng.below(len(junk))
                junk[at:at] = MAGIC[: 1 + rng.below(4)]
            out += junk
        elif kind == 2:  # one flipped bit anywhere (magic, header, payload or trailer)
            buf = bytearray(msg)
            bit = rng.below(8 * len(buf))
            buf[bit // 8] ^= 1 << (bit % 8)
            out += buf
        elif kind == 3:  # truncated, then the next message lies inside its claimed length
            cut = 32 + rng.below(len(msg) - 32) if rng.below(3) else 1 + rng.below(31)
            out += msg[:cut]
            out += canon[rng.below(len(canon))]
            intact += 1
        elif kind == 4:  # a length field far above the bound, with a valid header CRC
            bogus = (0xFFFFFFFF, 0x7FFFFFFF, 0x10000001, 0x4000001)[rng.below(4)]
            out += _with_header(msg, 12, "<I", bogus)[: 32 + rng.below(len(msg) - 32)]
        elif kind == 5:  # another protocol version, valid header CRC
            out += _with_header(msg, 4, "<B", (0, 2, 0x81, 0xFF)[rng.below(4)])
        elif kind == 6:  # a type this receiver does not know, valid CRCs: skipped
            unknown = (0x00, 0x04, 0x13, 0x42, 0x7E, 0xFF)[rng.below(6)]
            out += frame(unknown, rng.bytes(rng.below(48)), 7000 + n, 123 + n)
        elif kind == 7:  # valid CRCs, malformed payload
            out += _malformed(rng, canon, 9000 + n)
            malformed += 1
        elif kind == 8:  # the same intact message twice (duplicates are not errors)
            out += msg + msg
            intact += 2
        else:  # a flipped bit in the length field only: the header CRC catches it
            buf = bytearray(msg)
            buf[12 + rng.below(4)] ^= 1 << rng.below(8)
            out += buf
    # End of stream: a message cut short whose claimed length covers a last intact message,
    # then the start of a magic. Flushing counts one truncated and still finds the message.
    out += canon[5][:42] + canon[1] + MAGIC[:3]
    return bytes(out), intact + 1, malformed


# --- files -------------------------------------------------------------------------------------

_README = """\
# Wire protocol v1 test vectors

Byte-exact vectors shared by the Python codec (`firmware_bridge/wire.py`, `payloads.py`,
`decoder.py`) and the C reference (`firmware_bridge/c/`). See `../PROTOCOL.md`. Generated by
`firmware_bridge/testvectors.py`; `c/vectors_main.c` builds the same canonical messages from
the same literal values.

## `{canonical_file}` ({canonical_bytes} bytes)

{n_canonical} intact messages, concatenated. The probe's sequence numbers start at
0x{first_sequence:08X} and wrap through 0; its timestamps start at 2^40 µs so the whole 64-bit
field is used; the host's commands carry their own sequence numbers (the ACK answers
{command_sequence}); the last message follows a probe reboot and sets `CLOCK_RESET`.

| # | type | sequence | timestamp_us | flags | payload bytes | content |
| --- | --- | --- | --- | --- | --- | --- |
{table}

## `{corrupted_file}` ({corrupted_bytes} bytes)

`corrupted_stream(seed={seed})`: the canonical messages mixed with garbage (some holding
partial magics), single bit flips, truncated messages followed by intact ones inside their
stale length, valid-CRC headers with lengths far above the bounds, other versions, unknown
types, valid-CRC messages with malformed payloads and duplicates; it starts mid-magic and ends
with a truncated message whose claimed length covers one last intact message, then a partial
magic. With the default bounds a receiver accepts {accepted} messages and counts:
{counts}.

`tests/test_c_reference.py` compiles the C reference and checks that the C encoder, the Python
codec and these files agree byte for byte, and that the C and Python decoders accept the same
messages and count the same rejects. Regenerate the files (only when the protocol or the vector
set changes on purpose) with:

    python -m sonoedge.firmware_bridge.testvectors
"""

_CONTENT = (
    "descriptor: convex, 192 elements, 32-byte serial without terminator, UTF-8 firmware",
    "status: streaming, doppler",
    "B-mode 6×5 uint8, cartesian",
    "B-mode 3×4 uint16, polar",
    "B-mode 2×3 float32",
    "IQ frame 4×3 complex64",
    "IQ ensemble 3×2×3 complex64 at 5 kHz PRF (last sample −0.0)",
    "IMU batch, 3 samples, no magnetometer",
    "IMU batch, 2 samples, magnetometer",
    "error 0x00020003 with UTF-8 text",
    "host COMMAND SET_PRF 4166.5 Hz",
    "ACK of message 10: OK, applied 4166.666… Hz",
    "host COMMAND SET_MODE doppler",
    "status after a reboot: idle",
)


def _readme() -> str:
    from sonoedge.firmware_bridge.decoder import REJECT_REASONS, Decoder

    messages = canonical_messages()
    canonical = b"".join(messages)
    corrupted = corrupted_stream(CORRUPTED_SEED)
    dec = Decoder()
    decoded = dec.feed(canonical) + dec.flush()
    rows = [
        f"| {i} | {MessageType(m.type).name} | {m.sequence} | {m.timestamp_us} | {m.flags} "
        f"| {len(m.payload)} | {content} |"
        for i, (m, content) in enumerate(zip(decoded, _CONTENT, strict=True))
    ]
    dec = Decoder()
    dec.feed(corrupted)
    dec.flush()
    accepted, malformed = corrupted_stream_expectation(CORRUPTED_SEED)
    counts = [f"{reason} {dec.stats[reason]}" for reason in REJECT_REASONS]
    counts += [f"bad_payload {malformed}", f"garbage_bytes {dec.stats['garbage_bytes']}"]
    return _README.format(
        canonical_file=CANONICAL_FILE,
        canonical_bytes=len(canonical),
        n_canonical=len(messages),
        first_sequence=FIRST_SEQUENCE,
        command_sequence=COMMAND_SEQUENCE,
        table="\n".join(rows),
        corrupted_file=CORRUPTED_FILE,
        corrupted_bytes=len(corrupted),
        seed=CORRUPTED_SEED,
        accepted=accepted,
        counts=", ".join(counts),
    )


def write_vectors(directory: Path = VECTORS_DIR) -> list[Path]:
    """(Re)write the vector files and their README; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        CANONICAL_FILE: b"".join(canonical_messages()),
        CORRUPTED_FILE: corrupted_stream(CORRUPTED_SEED),
        "README.md": _readme().encode("utf-8"),
    }
    paths = []
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def main() -> int:
    for path in write_vectors():
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
