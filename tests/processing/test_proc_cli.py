import subprocess
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from sonoedge.cli import app
from sonoedge.errors import ConfigError, DataError
from sonoedge.processing import registry

runner = CliRunner()


def _iq_npz(path, n=8, h=16, w=12, seed=0):
    rng = np.random.default_rng(seed)
    tissue = 50 * (rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w)))
    blood = rng.standard_normal((n, h, w)) + 1j * rng.standard_normal((n, h, w))
    iq = (tissue[None] + blood).astype(np.complex64)
    z = 1e-3 + np.arange(h) * 1e-4
    x = -6e-4 + np.arange(w) * 2e-4
    np.savez(path, iq=iq, prf_hz=2000.0, z_m=z, x_m=x, center_frequency_hz=7.5e6)
    return iq, z, x


def test_list_methods():
    result = runner.invoke(app, ["process", "--method", "list"])
    assert result.exit_code == 0
    for name in ("svd_ssm", "srad", "nlm", "wiener", "nllr", "gaussian_fit", "classical"):
        assert name in result.output


def test_doppler_npz_roundtrip_keeps_metadata(tmp_path):
    src, out = tmp_path / "scan.npz", tmp_path / "pd.npz"
    _, z, x = _iq_npz(src)
    result = runner.invoke(
        app,
        ["process", str(src), "--op", "doppler", "-m", "svd_fixed", "-p", "low=1", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert data["power_db"].shape == (16, 12) and data["power_db"].max() == pytest.approx(0)
        np.testing.assert_allclose(data["z_m"], z)
        np.testing.assert_allclose(data["x_m"], x)
        assert float(data["prf_hz"]) == 2000.0 and float(data["center_frequency_hz"]) == 7.5e6
        assert str(data["method"]) == "svd_fixed"


def test_chain_bmode_then_despeckle_png(tmp_path):
    src = tmp_path / "scan.npz"
    _iq_npz(src)
    bmode = tmp_path / "b.npz"
    assert (
        runner.invoke(app, ["process", str(src), "--op", "bmode", "-o", str(bmode)]).exit_code == 0
    )
    png = tmp_path / "b_srad.png"
    result = runner.invoke(
        app,
        [
            "process",
            str(bmode),
            "--op",
            "despeckle",
            "-m",
            "srad",
            "-p",
            "n_iter=5",
            "-o",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    picture = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert picture.shape == (16, 12)
    again = tmp_path / "again.npy"
    result = runner.invoke(
        app, ["process", str(png), "--op", "enhance", "-m", "wiener", "-o", str(again)]
    )
    assert result.exit_code == 0, result.output
    assert np.load(again).shape == (16, 12)


def test_ulm_needs_metadata_and_reports_grid(tmp_path):
    src = tmp_path / "mb.npz"
    iq, _, _ = _iq_npz(src)
    out = tmp_path / "ulm.npz"
    result = runner.invoke(
        app,
        [
            "process",
            str(src),
            "--op",
            "ulm",
            "-m",
            "weighted_centroid",
            "-p",
            "min_track_length=1",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "lambda/10" in result.output
    with np.load(out) as data:
        lam = 1540 / 7.5e6
        assert data["density"].shape == (
            int(np.ceil(16e-4 / (lam / 10))),
            int(np.ceil(24e-4 / (lam / 10))),
        )
        assert np.diff(data["z_m"])[0] == pytest.approx(lam / 10)
    np.savez(tmp_path / "bare.npz", iq=iq)
    result = runner.invoke(app, ["process", str(tmp_path / "bare.npz"), "--op", "ulm"])
    assert isinstance(result.exception, DataError) and "prf_hz" in str(result.exception)


def test_native_spacing_resamples_and_says_so(tmp_path):
    registry.register("despeckle", "half_res", lambda image: image, native_spacing_m=(2e-4, 4e-4))
    try:
        src = tmp_path / "img.npz"
        np.savez(
            src,
            image=np.ones((16, 12), np.float32),
            z_m=np.arange(16) * 1e-4,
            x_m=np.arange(12) * 2e-4,
        )
        out = tmp_path / "o.npz"
        result = runner.invoke(
            app, ["process", str(src), "--op", "despeckle", "-m", "half_res", "-o", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert "resampled" in result.output
        with np.load(out) as data:
            assert data["image"].shape == (8, 6)
            assert "resampled" in str(data["notes"])
            assert np.diff(data["z_m"])[0] == pytest.approx(2e-4)
    finally:
        del registry.METHODS["despeckle"]["half_res"]
        del registry.NATIVE_SPACING_M[("despeckle", "half_res")]


def test_bad_inputs_raise_clear_errors(tmp_path):
    np.savez(tmp_path / "both.npz", iq=np.ones((2, 4, 4), np.complex64), image=np.ones((4, 4)))
    np.savez(tmp_path / "nan.npz", iq=np.full((4, 4, 4), np.nan, np.complex64))
    np.savez(tmp_path / "img.npz", image=np.ones((4, 4)))
    cases = [
        (["both.npz", "--op", "doppler"], DataError, "exactly one"),
        (["nan.npz", "--op", "doppler"], DataError, "NaN"),
        (["img.npz", "--op", "doppler"], DataError, "complex IQ"),
        (["img.npz", "--op", "blur"], ConfigError, "--op"),
        (["img.npz", "--op", "despeckle", "-m", "srad", "-p", "speed=3"], ConfigError, "n_iter"),
        (["img.npz", "--op", "despeckle", "-m", "nope"], ConfigError, "bilateral"),
        (["missing.npz", "--op", "despeckle"], DataError, "does not exist"),
    ]
    for args, error, text in cases:
        result = runner.invoke(app, ["process", str(tmp_path / args[0]), *args[1:]])
        assert isinstance(result.exception, error), (args, result.exception)
        assert text in str(result.exception), (args, str(result.exception))


def test_cli_error_has_no_traceback(tmp_path):
    np.savez(tmp_path / "img.npz", image=np.ones((4, 4)))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sonoedge.cli import main; main()",
            "process",
            str(tmp_path / "img.npz"),
            "--op",
            "doppler",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        encoding="utf-8",
    )
    assert proc.returncode != 0
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def _write_recording(path, samples, info):
    from sonoedge.firmware_bridge.payloads import encode_parts
    from sonoedge.firmware_bridge.wire import Message
    from sonoedge.io.recording import RecordingWriter

    with RecordingWriter(path, source="test", info=info) as writer:
        for seq, sample in enumerate(samples):
            msg_type, parts = encode_parts(sample)
            payload = b"".join(bytes(p) for p in parts)
            writer.write(Message(int(msg_type), 0, seq, 1000 * seq, payload), 0.001 * seq)


def test_recording_input_doppler_and_polar_bmode(tmp_path):
    from sonoedge.types import IQEnsemble, IQFrame, ProbeInfo

    rng = np.random.default_rng(4)
    shape = (8, 16, 12)
    ensembles = [
        IQEnsemble(
            spacing_m=(1e-4, 2e-4),
            iq=(rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64),
            prf_hz=1500.0,
            frame_index=k,
        )
        for k in range(3)
    ]
    rec = tmp_path / "rec.h5"
    _write_recording(rec, ensembles, ProbeInfo())
    out = tmp_path / "pd.npz"
    result = runner.invoke(app, ["process", str(rec), "--op", "doppler", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert data["power_db"].shape == (3, 16, 12)
        assert float(data["prf_hz"]) == 1500.0
        np.testing.assert_allclose(np.diff(data["x_m"]), 2e-4)

    phased = ProbeInfo(geometry="phased", n_elements=64, pitch_m=2e-4)
    frame = IQFrame(
        spacing_m=(2e-4, 0.02),
        origin_m=(0.0, -0.3),
        grid="polar",
        iq=(rng.standard_normal((40, 31)) + 1j).astype(np.complex64),
    )
    rec2 = tmp_path / "polar.h5"
    _write_recording(rec2, [frame], phased)
    out2 = tmp_path / "b.npz"
    result = runner.invoke(app, ["process", str(rec2), "--op", "bmode", "-o", str(out2)])
    assert result.exit_code == 0, result.output
    assert "scan-converted" in result.output
    with np.load(out2) as data:
        r_max = 39 * 2e-4  # fan: +-0.3 rad out to 7.8 mm, on 0.2 mm pixels
        assert data["image"].shape == (40, int(2 * r_max * np.sin(0.3) / 2e-4) + 1)
        np.testing.assert_allclose(np.diff(data["x_m"]), 2e-4)
