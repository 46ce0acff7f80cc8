"""``sonoedge ulm`` end to end, ``sonoedge process --op ulm`` with a network, and bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from sonoedge.cli import app
from sonoedge.synth.microbubbles import BubbleParams, simulate_bubbles


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 IQ frames of 32 x 32 bubbles with the metadata ULM needs."""
    f0 = 7.6e6
    lam = 1540.0 / f0
    params = BubbleParams(
        center_frequency_hz=f0,
        concentration_per_mm2=2.0,
        snr_db=30.0,
        clutter_db=-30.0,
        spacing_m=(lam / 4, lam / 4),
        frame_rate_hz=500.0,
    )
    b = simulate_bubbles(params, 12, 32, 32, seed=4)
    path = tmp_path_factory.mktemp("ulm-in") / "tiny.npz"
    np.savez(
        path,
        iq=b.iq,
        z_m=0.008 + np.arange(32) * lam / 4,
        x_m=np.arange(32) * lam / 4,
        prf_hz=500.0,
        center_frequency_hz=f0,
    )
    return path


@pytest.fixture(scope="module")
def quick_method(ulm_run: Path) -> str:
    """The quick run's localiser registered as ULM method ``ulm-quick``."""
    from sonoedge.processing import registry
    from sonoedge.zoo import ulm as zu

    registry.register("ulm", "ulm-quick", zu.load(ulm_run / "ulm-localizer.onnx").as_method())
    return "ulm-quick"


def _run(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def test_ulm_cli_writes_hdf5_maps_and_picture(
    tiny_npz: Path, quick_method: str, tmp_path: Path
) -> None:
    out = tmp_path / "maps.h5"
    result = _run("ulm", str(tiny_npz), "-o", str(out), "-m", quick_method, "--no-progress")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert f"ulm/{quick_method}: 12 frames" in result.output  # type: ignore[attr-defined]
    lam = 1540.0 / 7.6e6
    with h5py.File(out) as f:
        density = f["density"][...]
        # 32 pixels of lambda/4 on a lambda/10 grid (ceil may add one row to rounding)
        assert abs(density.shape[0] - 80) <= 1 and abs(density.shape[1] - 80) <= 1
        assert f["speed_m_s"].shape == density.shape and f["z_m"].shape == density.shape[:1]
        assert f.attrs["method"] == quick_method
        assert f.attrs["spacing_m"][0] == pytest.approx(lam / 10)
        assert f.attrs["n_frames"] == 12
    assert out.with_suffix(".png").is_file()


def test_ulm_cli_conventional_npz(tiny_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps.npz"
    result = _run(
        "ulm", str(tiny_npz), "-o", str(out), "-m", "weighted_centroid", "-p", "threshold_db=-15"
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    with np.load(out) as z:
        assert abs(z["density"].shape[0] - 80) <= 1 and z["density"].sum() > 0
        assert str(z["method"]) == "weighted_centroid" and int(z["n_tracks"]) > 0


def test_ulm_cli_smooths_tracks_on_request(tiny_npz: Path, tmp_path: Path) -> None:
    """``-p smoothing_window=N`` (network and conventional methods alike) refines each track
    before the maps are rendered: the same tracks, other positions."""
    maps = {}
    for window in ("0", "2"):
        out = tmp_path / f"maps{window}.npz"
        args = ["-o", str(out), "-m", "ulm-localizer", "-p", f"smoothing_window={window}"]
        result = _run("ulm", str(tiny_npz), *args, "-p", "min_track_length=3")
        assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
        with np.load(out) as z:
            maps[window] = (int(z["n_tracks"]), z["density"].copy())
    assert maps["0"][0] == maps["2"][0] > 0
    assert not np.array_equal(maps["0"][1], maps["2"][1])


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["-o", "x.png"], "expected .h5 or .npz"),
        (["-o", "x.h5", "-m", "nope"], "not available for op 'ulm'"),
        (["-o", "x.h5", "--prf-hz", "-3", "-m", "weighted_centroid"], "--prf-hz"),
        (["-o", "x.h5", "-p", "colour=3", "-m", "weighted_centroid"], "colour"),
        (["-o", "x.h5", "-p", "mirror_average=3"], "mirror_average=3 is invalid"),
        (["-o", "x.h5", "-p", "dynamic_range_db=3"], "dynamic_range_db=3 is invalid"),
        (["-o", "x.h5", "-p", "smoothing_window=-1"], "smoothing_window=-1 is invalid"),
    ],
)
def test_ulm_cli_bad_input(tiny_npz: Path, tmp_path: Path, extra: list[str], match: str) -> None:
    from sonoedge.errors import SonoedgeError

    args = ["ulm", str(tiny_npz), *[str(tmp_path / a) if a.startswith("x.") else a for a in extra]]
    result = _run(*args)
    assert result.exit_code != 0
    assert isinstance(result.exception, SonoedgeError)  # type: ignore[attr-defined]
    assert match in str(result.exception)  # type: ignore[attr-defined]


def test_ulm_cli_needs_the_centre_frequency(tmp_path: Path) -> None:
    path = tmp_path / "bare.npz"
    iq = (np.random.default_rng(0).standard_normal((4, 16, 16)) * (1 + 1j)).astype(np.complex64)
    np.savez(path, iq=iq, z_m=np.arange(16) * 5e-5, x_m=np.arange(16) * 5e-5, prf_hz=500.0)
    result = _run("ulm", str(path), "-o", str(tmp_path / "m.h5"), "-m", "weighted_centroid")
    assert result.exit_code != 0 and "centre frequency" in str(result.exception)  # type: ignore[attr-defined]


@pytest.mark.parametrize("shipped", [False, True])
def test_process_op_ulm_with_a_network_method(
    tiny_npz: Path, quick_method: str, tmp_path: Path, shipped: bool
) -> None:
    out = tmp_path / "p.npz"
    method = "ulm-localizer" if shipped else quick_method
    result = _run("process", str(tiny_npz), "--op", "ulm", "--method", method, "-o", str(out))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    with np.load(out) as z:
        assert abs(z["density"].shape[1] - 80) <= 1


def test_ulm_cli_on_a_recording_with_the_shipped_network(tmp_path: Path) -> None:
    """Two ensembles of a recording through the default method: their maps add up."""
    from sonoedge.firmware_bridge.payloads import encode_parts
    from sonoedge.firmware_bridge.wire import Message
    from sonoedge.io.recording import RecordingWriter
    from sonoedge.types import IQEnsemble, ProbeInfo

    f0 = 7.6e6
    lam = 1540.0 / f0
    params = BubbleParams(
        center_frequency_hz=f0,
        concentration_per_mm2=2.0,
        clutter_db=-30.0,
        spacing_m=(lam / 4, lam / 4),
    )
    b = simulate_bubbles(params, 24, 32, 32, seed=6)
    rec = tmp_path / "rec.h5"
    info = ProbeInfo(center_frequency_hz=f0, sampling_frequency_hz=4 * f0)
    with RecordingWriter(rec, source="test", info=info) as writer:
        for seq, k in enumerate((0, 12)):
            sample = IQEnsemble(
                spacing_m=params.spacing_m, iq=b.iq[k : k + 12], prf_hz=500.0, frame_index=seq
            )
            msg_type, parts = encode_parts(sample)
            payload = b"".join(bytes(p) for p in parts)
            writer.write(Message(int(msg_type), 0, seq, 1000 * seq, payload), 0.001 * seq)
    out = tmp_path / "maps.npz"
    result = _run("ulm", str(rec), "-o", str(out), "--no-progress")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    with np.load(out) as z:
        assert str(z["method"]) == "ulm-localizer" and int(z["n_ensembles"]) == 2
        assert int(z["n_frames"]) == 24 and int(z["n_localizations"]) > 0
        assert z["density"].sum() > 0 and float(z["wavelength_m"]) == pytest.approx(lam)


def test_ulm_cli_with_a_physics_guided_network(
    ulm_pg_run: Path, tiny_npz: Path, tmp_path: Path
) -> None:
    from sonoedge.errors import ConfigError
    from sonoedge.processing import registry
    from sonoedge.zoo import ulm as zu

    model = zu.load(ulm_pg_run / "ulm-localizer-pg.onnx")
    registry.register("ulm", "ulm-pg-quick", model.as_method())
    out = tmp_path / "pg.npz"
    missing = _run("ulm", str(tiny_npz), "-o", str(out), "-m", "ulm-pg-quick", "--no-progress")
    err = missing.exception  # type: ignore[attr-defined]
    assert isinstance(err, ConfigError) and not out.exists()
    assert "needs the frames' bandwidth_fraction" in str(err) and "-p f_number=VALUE" in err.hint
    guide = ["-p", "bandwidth_fraction=0.7", "-p", "f_number=1.5", "-p", "n_cycles=1"]
    guide += ["-p", "pitch_wavelengths=0.75"]
    ok = _run("ulm", str(tiny_npz), "-o", str(out), "-m", "ulm-pg-quick", *guide, "--no-progress")
    assert ok.exit_code == 0, ok.output  # type: ignore[attr-defined]
    with np.load(out) as maps:
        assert maps["density"].ndim == 2


def test_a_recordings_probe_gives_the_bandwidth_and_pitch() -> None:
    from types import SimpleNamespace

    from sonoedge.cli.ulm import _guide_parameters
    from sonoedge.errors import ConfigError
    from sonoedge.types import ProbeInfo

    fn = SimpleNamespace(param_names=("bandwidth_fraction", "f_number", "pitch_wavelengths"))
    probe = ProbeInfo(bandwidth_fraction=0.65, pitch_m=0.15e-3)
    params: dict[str, object] = {"f_number": 1.5}
    _guide_parameters(fn, params, probe, 0.2e-3, "m")
    assert params == {
        "f_number": 1.5,
        "bandwidth_fraction": 0.65,
        "pitch_wavelengths": pytest.approx(0.75),
    }
    given = {"f_number": 1.5, "bandwidth_fraction": 0.8}  # -p wins over the probe
    _guide_parameters(fn, given, probe, 0.2e-3, "m")
    assert given["bandwidth_fraction"] == 0.8
    with pytest.raises(ConfigError, match="needs the frames' f_number"):
        _guide_parameters(fn, {}, probe, 0.2e-3, "m")
    conventional: dict[str, object] = {}
    _guide_parameters(SimpleNamespace(), conventional, probe, 0.2e-3, "m")  # not a network
    assert conventional == {}
    blind: dict[str, object] = {}  # a blind network is given them to check its trained box
    _guide_parameters(SimpleNamespace(param_names=()), blind, probe, 0.2e-3, "m")
    assert set(blind) == {"bandwidth_fraction", "pitch_wavelengths"}


def test_a_pipeline_stage_gives_a_guided_network_the_probes_parameters(ulm_pg_run: Path) -> None:
    from sonoedge.pipeline import OpStage, Pipeline
    from sonoedge.processing import registry
    from sonoedge.types import IQEnsemble, ProbeInfo
    from sonoedge.zoo import ulm as zu

    model = zu.load(ulm_pg_run / "ulm-localizer-pg.onnx")
    registry.register("ulm", "ulm-pg-stage", model.as_method())
    lam = 1540.0 / 7.5e6
    params = BubbleParams(
        center_frequency_hz=7.5e6, concentration_per_mm2=3.0, spacing_m=(lam / 4, lam / 4)
    )
    b = simulate_bubbles(params, 16, 32, 32, seed=2)
    source = [IQEnsemble(spacing_m=params.spacing_m, iq=b.iq, prf_hz=500.0, frame_index=0)]
    probe = ProbeInfo(center_frequency_hz=7.5e6, bandwidth_fraction=0.7, pitch_m=0.8 * lam)
    errors = {}
    for given in ({"f_number": 1.5, "n_cycles": 1.0}, {"f_number": 1.5}):
        stage = OpStage("ulm", "ulm-pg-stage", params=given)
        with Pipeline([stage], probe_mode="doppler") as pipe:
            pipe.start(source, probe=probe)
            (result,) = [r for r in pipe.results(timeout_s=60) if r.processed or r.error]
        errors[len(given)] = result.error
    assert errors[2] is None  # the probe gave the bandwidth and the pitch
    assert errors[1] is not None and "n_cycles" in str(errors[1])


def test_ulm_cli_prints_sonoedge_warnings_as_plain_lines(tiny_npz: Path, tmp_path: Path) -> None:
    """The console entry point prints sonoedge's warnings as ``warning: ...`` lines, not with
    Python's file:line and source excerpt; other libraries' warnings keep Python's format."""
    import io
    import subprocess
    import sys

    from sonoedge.cli import PACKAGE_DIR, _show_warning

    code = "import sys; from sonoedge.cli import main; sys.argv[0] = 'sonoedge'; main()"
    args = ["ulm", str(tiny_npz), "-o", str(tmp_path / "m.npz"), "-p", "pitch_wavelengths=1.46"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--no-progress"], capture_output=True, timeout=300
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err[-2000:]
    assert (
        "warning: ulm-localizer: pitch_wavelengths=1.46 is outside the trained range 0.5..1" in err
    )
    assert "UserWarning" not in err and "self.localize(" not in err
    elsewhere = io.StringIO()
    _show_warning(UserWarning("other"), UserWarning, "/elsewhere/lib.py", 3, elsewhere, "x = 1")
    assert "lib.py:3: UserWarning: other" in elsewhere.getvalue()
    ours = io.StringIO()
    _show_warning(UserWarning("ours"), UserWarning, str(PACKAGE_DIR / "zoo" / "ulm.py"), 3, ours)
    assert ours.getvalue() == "warning: ours\n"
