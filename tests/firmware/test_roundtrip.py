"""Property-based round trips: typed object → wire bytes → decoder → typed object."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonoedge.errors import ProtocolError
from sonoedge.firmware_bridge import Decoder, Encoder, MessageType
from sonoedge.firmware_bridge import payloads as pl
from sonoedge.firmware_bridge.wire import crc32, frame
from sonoedge.types import (
    BmodeFrame,
    ImuBatch,
    IQEnsemble,
    IQFrame,
    ProbeFault,
    ProbeInfo,
    ProbeStatus,
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
small_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
shapes2 = st.tuples(st.integers(1, 12), st.integers(1, 12))


def roundtrip(obj: pl.Decoded, times_us: np.ndarray | None = None, chunk: int = 7) -> pl.Decoded:
    msg_type, parts = pl.encode_parts(obj, times_us)
    data = Encoder(first_sequence=41).encode(msg_type, parts, 123_456)
    decoder = Decoder()
    messages = []
    for start in range(0, len(data), chunk):
        messages += decoder.feed(data[start : start + chunk])
    assert len(messages) == 1 and decoder.rejected() == 0
    msg = messages[0]
    assert (msg.type, msg.sequence, msg.timestamp_us) == (msg_type, 41, 123_456)
    assert msg.to_bytes() == data
    return pl.decode(msg, 7.5)


def test_crc_check_value() -> None:
    assert crc32(b"123456789") == 0xCBF43926


@given(
    geometry=st.sampled_from(["linear", "convex", "phased"]),
    f=st.floats(0.5e6, 30e6),
    bw=st.floats(0.1, 2.0),
    n=st.integers(1, 65535),
    model=small_text,
    calib=st.lists(st.floats(-10, 10), min_size=16, max_size=16),
)
def test_descriptor(
    geometry: str, f: float, bw: float, n: int, model: str, calib: list[float]
) -> None:
    info = ProbeInfo(
        model=model,
        geometry=geometry,
        center_frequency_hz=f,
        bandwidth_fraction=bw,  # type: ignore[arg-type]
        n_elements=n,
        radius_m=0.05 if geometry == "convex" else 0.0,
        sampling_frequency_hz=4 * f,
        imu_to_image=np.array(calib).reshape(4, 4),
    )
    out = roundtrip(info)
    assert isinstance(out, ProbeInfo)
    assert out.model == model and out.geometry == geometry and out.n_elements == n
    assert out.center_frequency_hz == f and out.bandwidth_fraction == bw
    np.testing.assert_array_equal(out.imu_to_image, info.imu_to_image)


@given(
    shape=shapes2,
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    seed=st.integers(0, 9),
    grid=st.sampled_from(["cartesian", "polar"]),
    idx=st.integers(0, 2**32 - 1),
)
def test_bmode(shape: tuple[int, int], dtype: type, seed: int, grid: str, idx: int) -> None:
    image = (np.random.default_rng(seed).random(shape) * 200).astype(dtype)
    frame_in = BmodeFrame(
        spacing_m=(1e-4, 2e-4),
        origin_m=(0.001, -0.019),
        grid=grid,  # type: ignore[arg-type]
        frame_index=idx,
        image=image,
    )
    out = roundtrip(frame_in)
    assert isinstance(out, BmodeFrame)
    np.testing.assert_array_equal(out.image, image)
    assert out.image.dtype == image.dtype and out.frame_index == idx and out.grid == grid
    assert (out.spacing_m, out.origin_m, out.timestamp_s) == ((1e-4, 2e-4), (0.001, -0.019), 7.5)


@given(shape=shapes2, n=st.integers(1, 6), seed=st.integers(0, 9), prf=st.floats(1.0, 2e4))
def test_iq_frame_and_ensemble(shape: tuple[int, int], n: int, seed: int, prf: float) -> None:
    rng = np.random.default_rng(seed)
    iq = (rng.standard_normal((n, *shape)) + 1j * rng.standard_normal((n, *shape))).astype(
        np.complex64
    )
    ens = roundtrip(IQEnsemble(spacing_m=(1e-4, 1e-4), iq=iq, prf_hz=prf))
    assert isinstance(ens, IQEnsemble) and ens.prf_hz == prf
    np.testing.assert_array_equal(ens.iq, iq)
    one = roundtrip(IQFrame(spacing_m=(1e-4, 1e-4), iq=iq[0]))
    assert isinstance(one, IQFrame)
    np.testing.assert_array_equal(one.iq, iq[0])


def test_payload_arrays_are_views_of_the_message() -> None:
    iq = np.ones((2, 3, 4), np.complex64)
    msg_type, parts = pl.encode_parts(IQEnsemble(spacing_m=(1, 1), iq=iq, prf_hz=10.0))
    (msg,) = Decoder().feed(Encoder().encode(msg_type, parts, 0))
    out = pl.decode(msg, 0.0)
    assert isinstance(out, IQEnsemble)
    assert out.iq.base is not None and not out.iq.flags.owndata and not out.iq.flags.writeable


@given(n=st.integers(1, 50), mag=st.booleans(), seed=st.integers(0, 9))
@settings(max_examples=30)
def test_imu(n: int, mag: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vecs = [rng.standard_normal((n, 3)).astype(np.float32) for _ in range(3)]
    times_us = np.sort(rng.integers(0, 2**40, n)).astype(np.uint64)
    batch = ImuBatch(
        times_s=np.zeros(n), gyro_dps=vecs[0], accel_g=vecs[1], mag_ut=vecs[2] if mag else None
    )
    out = roundtrip(batch, times_us)
    assert isinstance(out, ImuBatch) and len(out) == n
    np.testing.assert_array_equal(out.gyro_dps, vecs[0])
    np.testing.assert_array_equal(out.accel_g, vecs[1])
    np.testing.assert_allclose(out.times_s, times_us * 1e-6)
    assert (out.mag_ut is not None) == mag


@given(
    state=st.sampled_from(["idle", "streaming", "error"]),
    mode=st.sampled_from(["bmode", "iq", "doppler"]),
    depth=st.floats(0, 1),
    sent=st.integers(0, 2**32 - 1),
    temp=finite,
)
def test_status(state: str, mode: str, depth: float, sent: int, temp: float) -> None:
    status = ProbeStatus(state, mode, depth, 1000.0, 3.0, temp, sent, 5)  # type: ignore[arg-type]
    out = roundtrip(status)
    assert isinstance(out, ProbeStatus)
    assert (out.state, out.mode, out.depth_m, out.frames_sent) == (state, mode, depth, sent)
    assert out.temperature_c == np.float32(temp)


@given(code=st.integers(0, 2**32 - 1), text=st.text(max_size=100))
def test_error(code: int, text: str) -> None:
    out = roundtrip(ProbeFault(code, text))
    assert isinstance(out, ProbeFault) and (out.code, out.message) == (code, text)


@given(
    code=st.sampled_from(list(pl.CommandCode)),
    arg=st.integers(0, 2**32 - 1),
    value=finite,
    result=st.sampled_from(list(pl.AckResult)),
    seq=st.integers(0, 2**32 - 1),
)
def test_command_and_ack(
    code: pl.CommandCode, arg: int, value: float, result: pl.AckResult, seq: int
) -> None:
    assert roundtrip(pl.Command(code, arg, value)) == pl.Command(code, arg, value)
    assert roundtrip(pl.Ack(seq, code, result, value)) == pl.Ack(seq, code, result, value)


@pytest.mark.parametrize(
    ("msg_type", "payload", "reason"),
    [
        (MessageType.BMODE_FRAME, b"\0" * 10, "shorter than its 56-byte header"),
        (
            MessageType.IQ_ENSEMBLE,
            pl.IMAGE.pack(0, 2, 4, 0, 2, 2, 1e3, 1, 1, 0, 0) + b"\0" * 8,
            "sample bytes",
        ),
        (
            MessageType.BMODE_FRAME,
            pl.IMAGE.pack(0, 1, 4, 0, 1, 1, 0, 1, 1, 0, 0) + b"\0" * 8,
            "wrong for",
        ),
        (
            MessageType.IQ_ENSEMBLE,
            pl.IMAGE.pack(0, 1, 4, 0, 1, 1, 0, 1, 1, 0, 0) + b"\0" * 8,
            "PRF",
        ),
        (MessageType.IMU_BATCH, pl.IMU.pack(0, 0), "outside"),
        (MessageType.STATUS, b"\0" * 39, "status is 39 bytes"),
        (MessageType.PROBE_DESCRIPTOR, b"\xff" + b"\0" * 271, "geometry code"),
        (MessageType.COMMAND, pl.COMMAND.pack(99, 0, 0.0), "unknown"),
    ],
)
def test_malformed_payloads_raise_protocol_error(
    msg_type: int, payload: bytes, reason: str
) -> None:
    (msg,) = Decoder().feed(frame(msg_type, payload, 0, 0))
    with pytest.raises(ProtocolError, match=reason):
        pl.decode(msg, 0.0)
