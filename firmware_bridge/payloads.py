"""Payload layouts of wire protocol v1 and their conversion to and from :mod:`sonoedge.types`.

Arrays returned by :func:`decode` are numpy views of the message's payload bytes (read-only),
not copies. Timestamps on the wire are probe-clock microseconds; the caller passes the host
time it mapped them to.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

import numpy as np

from sonoedge.errors import ProtocolError
from sonoedge.firmware_bridge.wire import Message, MessageType
from sonoedge.types import (
    GEOMETRIES,
    GRIDS,
    PROBE_MODES,
    PROBE_STATES,
    BmodeFrame,
    ImuBatch,
    IQEnsemble,
    IQFrame,
    ProbeFault,
    ProbeInfo,
    ProbeStatus,
)

# --- layouts -------------------------------------------------------------------------------

DESCRIPTOR = struct.Struct("<B3xI7d16d32s32s16s")  # 272 bytes
IMAGE = struct.Struct("<IHBBHH4x5d")  # 56 bytes, then the samples
IMU = struct.Struct("<HB5x")  # 8 bytes, then times u64[n], gyro f32[n,3], accel f32[n,3], mag
STATUS = struct.Struct("<BBxxfdddII")  # 40 bytes
ERROR = struct.Struct("<I4x")  # 8 bytes, then a UTF-8 message
COMMAND = struct.Struct("<B3xId")  # 16 bytes
ACK = struct.Struct("<IBBxxd")  # 16 bytes

MAX_IMU_SAMPLES = 4096
MAX_ERROR_TEXT_BYTES = 1024
IMU_HAS_MAG = 0x01


class SampleFormat(IntEnum):
    UINT8 = 1
    UINT16 = 2
    FLOAT32 = 3
    COMPLEX64 = 4


_DTYPES: dict[SampleFormat, np.dtype[Any]] = {
    SampleFormat.UINT8: np.dtype("<u1"),
    SampleFormat.UINT16: np.dtype("<u2"),
    SampleFormat.FLOAT32: np.dtype("<f4"),
    SampleFormat.COMPLEX64: np.dtype("<c8"),
}
_FORMATS = {dtype: fmt for fmt, dtype in _DTYPES.items()}


class CommandCode(IntEnum):
    START = 1
    STOP = 2
    SET_MODE = 3
    SET_DEPTH = 4
    SET_PRF = 5
    SET_GAIN = 6
    REQUEST_DESCRIPTOR = 7


class AckResult(IntEnum):
    OK = 0
    UNSUPPORTED = 1
    OUT_OF_RANGE = 2
    BUSY = 3
    BAD_COMMAND = 4


@dataclass(frozen=True)
class Command:
    """A host→probe command. ``arg`` carries the mode index; ``value`` depth/PRF/gain in SI."""

    code: CommandCode
    arg: int = 0
    value: float = 0.0


@dataclass(frozen=True)
class Ack:
    """The probe's answer to the command sent with sequence number ``sequence``."""

    sequence: int
    code: CommandCode
    result: AckResult
    applied_value: float = 0.0


# --- encoding --------------------------------------------------------------------------------


def _text(value: str, size: int, name: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > size:
        raise ProtocolError(f"{name} {value!r} is longer than {size} bytes of UTF-8")
    return raw


def pack_descriptor(info: ProbeInfo) -> bytes:
    near, far = info.depth_range_m
    return DESCRIPTOR.pack(
        GEOMETRIES.index(info.geometry),
        info.n_elements,
        info.center_frequency_hz,
        info.bandwidth_fraction,
        info.pitch_m,
        info.radius_m,
        info.sampling_frequency_hz,
        near,
        far,
        *np.asarray(info.imu_to_image, dtype=np.float64).ravel().tolist(),
        _text(info.model, 32, "model"),
        _text(info.serial, 32, "serial"),
        _text(info.firmware_version, 16, "firmware_version"),
    )


def pack_image(
    data: np.ndarray,
    frame_index: int,
    spacing_m: tuple[float, float],
    origin_m: tuple[float, float],
    grid: str = "cartesian",
    prf_hz: float = 0.0,
) -> list[bytes | memoryview]:
    """Sub-header and samples of a B-mode frame, IQ frame (2-D) or ensemble (3-D)."""
    arr = np.ascontiguousarray(data)
    fmt = _FORMATS.get(arr.dtype.newbyteorder("<"))
    if fmt is None:
        raise ProtocolError(
            f"image dtype {arr.dtype} cannot be sent: use uint8/uint16/float32/complex64"
        )
    shape = arr.shape if arr.ndim == 3 else (1, *arr.shape)
    if len(shape) != 3 or not all(0 < s <= 0xFFFF for s in shape):
        raise ProtocolError(
            f"image shape {arr.shape} cannot be sent: 1..65535 per axis, 2-D or 3-D"
        )
    head = IMAGE.pack(
        frame_index & 0xFFFFFFFF,
        shape[0],
        fmt,
        GRIDS.index(grid),
        shape[1],
        shape[2],
        prf_hz,
        *spacing_m,
        *origin_m,
    )
    return [head, arr.astype(arr.dtype.newbyteorder("<"), copy=False).data.cast("B")]


def pack_imu(batch: ImuBatch, times_us: np.ndarray) -> list[bytes | memoryview]:
    n = len(batch)
    if not 1 <= n <= MAX_IMU_SAMPLES:
        raise ProtocolError(f"IMU batch of {n} samples cannot be sent: 1..{MAX_IMU_SAMPLES}")
    if len(times_us) != n:
        raise ProtocolError(f"IMU batch has {n} samples but {len(times_us)} timestamps")
    parts: list[bytes | memoryview] = [
        IMU.pack(n, IMU_HAS_MAG if batch.mag_ut is not None else 0),
        np.ascontiguousarray(times_us, dtype="<u8").tobytes(),
        np.ascontiguousarray(batch.gyro_dps, dtype="<f4").tobytes(),
        np.ascontiguousarray(batch.accel_g, dtype="<f4").tobytes(),
    ]
    if batch.mag_ut is not None:
        parts.append(np.ascontiguousarray(batch.mag_ut, dtype="<f4").tobytes())
    return parts


def pack_status(status: ProbeStatus) -> bytes:
    return STATUS.pack(
        PROBE_STATES.index(status.state),
        PROBE_MODES.index(status.mode),
        status.temperature_c,
        status.depth_m,
        status.prf_hz,
        status.gain_db,
        status.frames_sent & 0xFFFFFFFF,
        status.frames_dropped & 0xFFFFFFFF,
    )


def pack_error(fault: ProbeFault) -> bytes:
    if not 0 <= fault.code <= 0xFFFFFFFF:
        raise ProtocolError(f"error code {fault.code} cannot be sent: 0..2^32-1")
    return ERROR.pack(fault.code) + _text(fault.message, MAX_ERROR_TEXT_BYTES, "error message")


def pack_command(command: Command) -> bytes:
    return COMMAND.pack(command.code, command.arg, command.value)


def pack_ack(ack: Ack) -> bytes:
    return ACK.pack(ack.sequence, ack.code, ack.result, ack.applied_value)


# --- decoding --------------------------------------------------------------------------------


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise ProtocolError(f"malformed payload: {what}")


def _string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _enum_at(options: tuple[Any, ...], index: int, what: str) -> Any:
    _expect(index < len(options), f"{what} code {index} is not one of 0..{len(options) - 1}")
    return options[index]


def unpack_descriptor(payload: bytes) -> ProbeInfo:
    _expect(len(payload) == DESCRIPTOR.size, f"descriptor is {len(payload)} bytes, not 272")
    fields = DESCRIPTOR.unpack(payload)
    geometry = _enum_at(GEOMETRIES, fields[0], "geometry")
    try:
        return ProbeInfo(
            model=_string(fields[25]),
            serial=_string(fields[26]),
            geometry=geometry,
            center_frequency_hz=fields[2],
            bandwidth_fraction=fields[3],
            n_elements=fields[1],
            pitch_m=fields[4],
            radius_m=fields[5],
            sampling_frequency_hz=fields[6],
            depth_range_m=(fields[7], fields[8]),
            imu_to_image=np.array(fields[9:25], dtype=np.float64).reshape(4, 4),
            firmware_version=_string(fields[27]),
        )
    except ValueError as err:  # ConfigError from ProbeInfo validation
        raise ProtocolError(f"malformed payload: probe descriptor: {err}") from err


def _image(payload: bytes, msg_type: int) -> tuple[np.ndarray, tuple[Any, ...]]:
    _expect(len(payload) >= IMAGE.size, "image payload shorter than its 56-byte header")
    index, n, fmt, grid, height, width, prf, dz, dx, z0, x0 = IMAGE.unpack_from(payload)
    _expect(fmt in _DTYPES, f"sample format {fmt} is unknown")
    dtype = _DTYPES[SampleFormat(fmt)]
    complex_type = msg_type != MessageType.BMODE_FRAME
    _expect(
        (dtype.kind == "c") == complex_type,
        f"sample format {SampleFormat(fmt).name} is wrong for {MessageType(msg_type).name}",
    )
    _expect(n >= 1 and height >= 1 and width >= 1, "zero-sized image")
    _expect(
        n == 1 or msg_type == MessageType.IQ_ENSEMBLE, "several frames in a single-frame message"
    )
    size = n * height * width * dtype.itemsize
    _expect(
        len(payload) == IMAGE.size + size,
        f"{len(payload) - IMAGE.size} sample bytes, expected {size}",
    )
    arr = np.frombuffer(payload, dtype=dtype, count=n * height * width, offset=IMAGE.size)
    arr = arr.reshape(
        (n, height, width) if msg_type == MessageType.IQ_ENSEMBLE else (height, width)
    )
    meta = (index, _enum_at(GRIDS, grid, "grid"), prf, (dz, dx), (z0, x0))
    return arr, meta


def unpack_imu(payload: bytes, time_map: Callable[[np.ndarray], np.ndarray]) -> ImuBatch:
    _expect(len(payload) >= IMU.size, "IMU payload shorter than its 8-byte header")
    n, flags = IMU.unpack_from(payload)
    has_mag = bool(flags & IMU_HAS_MAG)
    _expect(1 <= n <= MAX_IMU_SAMPLES, f"IMU sample count {n} outside 1..{MAX_IMU_SAMPLES}")
    expected = IMU.size + n * 8 + n * 12 * (3 if has_mag else 2)
    _expect(len(payload) == expected, f"IMU payload is {len(payload)} bytes, expected {expected}")
    offset = IMU.size
    times_us = np.frombuffer(payload, "<u8", n, offset)
    offset += 8 * n
    vecs = [
        np.frombuffer(payload, "<f4", 3 * n, offset + 12 * n * k).reshape(n, 3)
        for k in range(3 if has_mag else 2)
    ]
    return ImuBatch(
        times_s=time_map(times_us),
        gyro_dps=vecs[0],
        accel_g=vecs[1],
        mag_ut=vecs[2] if has_mag else None,
    )


def unpack_status(payload: bytes, timestamp_s: float) -> ProbeStatus:
    _expect(len(payload) == STATUS.size, f"status is {len(payload)} bytes, not {STATUS.size}")
    state, mode, temp, depth, prf, gain, sent, dropped = STATUS.unpack(payload)
    return ProbeStatus(
        state=_enum_at(PROBE_STATES, state, "state"),
        mode=_enum_at(PROBE_MODES, mode, "mode"),
        depth_m=depth,
        prf_hz=prf,
        gain_db=gain,
        temperature_c=temp,
        frames_sent=sent,
        frames_dropped=dropped,
        timestamp_s=timestamp_s,
    )


def unpack_command(payload: bytes) -> Command:
    _expect(len(payload) == COMMAND.size, f"command is {len(payload)} bytes, not {COMMAND.size}")
    code, arg, value = COMMAND.unpack(payload)
    _expect(code in CommandCode._value2member_map_, f"command code {code} is unknown")
    return Command(CommandCode(code), arg, value)


def unpack_ack(payload: bytes) -> Ack:
    _expect(len(payload) == ACK.size, f"ack is {len(payload)} bytes, not {ACK.size}")
    seq, code, result, value = ACK.unpack(payload)
    _expect(code in CommandCode._value2member_map_, f"acknowledged command code {code} is unknown")
    _expect(result in AckResult._value2member_map_, f"ack result {result} is unknown")
    return Ack(seq, CommandCode(code), AckResult(result), value)


Decoded: TypeAlias = (
    ProbeInfo
    | BmodeFrame
    | IQFrame
    | IQEnsemble
    | ImuBatch
    | ProbeStatus
    | ProbeFault
    | Command
    | Ack
)


def decode(
    msg: Message,
    timestamp_s: float,
    time_map: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Decoded:
    """Turn a verified message into its typed form; raise ProtocolError if the payload is malformed.

    ``timestamp_s`` is the message time on the host clock; ``time_map`` maps per-sample probe
    microseconds (IMU) to host seconds and defaults to plain microseconds → seconds.
    """
    t = msg.type
    payload = msg.payload
    if t == MessageType.IQ_ENSEMBLE or t == MessageType.IQ_FRAME or t == MessageType.BMODE_FRAME:
        arr, (index, grid, prf, spacing, origin) = _image(payload, t)
        if t == MessageType.IQ_ENSEMBLE:
            _expect(prf > 0, f"ensemble PRF {prf} Hz is not positive")
            return IQEnsemble(
                spacing_m=spacing,
                origin_m=origin,
                grid=grid,
                timestamp_s=timestamp_s,
                frame_index=index,
                iq=arr,
                prf_hz=prf,
            )
        if t == MessageType.IQ_FRAME:
            return IQFrame(
                spacing_m=spacing,
                origin_m=origin,
                grid=grid,
                timestamp_s=timestamp_s,
                frame_index=index,
                iq=arr,
            )
        return BmodeFrame(
            spacing_m=spacing,
            origin_m=origin,
            grid=grid,
            timestamp_s=timestamp_s,
            frame_index=index,
            image=arr,
        )
    if t == MessageType.IMU_BATCH:
        return unpack_imu(payload, time_map or (lambda us: us.astype(np.float64) * 1e-6))
    if t == MessageType.STATUS:
        return unpack_status(payload, timestamp_s)
    if t == MessageType.PROBE_DESCRIPTOR:
        return unpack_descriptor(payload)
    if t == MessageType.ERROR:
        _expect(len(payload) >= ERROR.size, "error payload shorter than 8 bytes")
        _expect(len(payload) - ERROR.size <= MAX_ERROR_TEXT_BYTES, "error text too long")
        (code,) = ERROR.unpack_from(payload)
        text = payload[ERROR.size :].decode("utf-8", errors="replace")
        return ProbeFault(code=code, message=text, timestamp_s=timestamp_s)
    if t == MessageType.COMMAND:
        return unpack_command(payload)
    if t == MessageType.ACK:
        return unpack_ack(payload)
    raise ProtocolError(f"message type 0x{t:02x} has no payload decoder")


def encode_parts(
    obj: Decoded, times_us: np.ndarray | None = None
) -> tuple[MessageType, list[bytes | memoryview]]:
    """Message type and payload parts for a typed object (the inverse of :func:`decode`).

    IMU batches need their per-sample probe timestamps ``times_us``; frames carry their own.
    """
    if isinstance(obj, IQEnsemble):
        if not (obj.iq.ndim == 3 and obj.prf_hz > 0):
            raise ProtocolError("an IQ ensemble needs (N, H, W) samples and prf_hz > 0")
        parts = pack_image(
            obj.iq, obj.frame_index, obj.spacing_m, obj.origin_m, obj.grid, obj.prf_hz
        )
        return MessageType.IQ_ENSEMBLE, parts
    if isinstance(obj, IQFrame):
        return MessageType.IQ_FRAME, pack_image(
            obj.iq, obj.frame_index, obj.spacing_m, obj.origin_m, obj.grid
        )
    if isinstance(obj, BmodeFrame):
        return MessageType.BMODE_FRAME, pack_image(
            obj.image, obj.frame_index, obj.spacing_m, obj.origin_m, obj.grid
        )
    if isinstance(obj, ImuBatch):
        if times_us is None:
            times_us = np.round(np.asarray(obj.times_s) * 1e6).astype(np.uint64)
        return MessageType.IMU_BATCH, pack_imu(obj, times_us)
    if isinstance(obj, ProbeStatus):
        return MessageType.STATUS, [pack_status(obj)]
    if isinstance(obj, ProbeFault):
        return MessageType.ERROR, [pack_error(obj)]
    if isinstance(obj, ProbeInfo):
        return MessageType.PROBE_DESCRIPTOR, [pack_descriptor(obj)]
    if isinstance(obj, Command):
        return MessageType.COMMAND, [pack_command(obj)]
    if isinstance(obj, Ack):
        return MessageType.ACK, [pack_ack(obj)]
    raise ProtocolError(f"{type(obj).__name__} has no wire representation")
