"""PLUS sequence files and device-set configs: read, write, and refuse bad ones clearly."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sonoedge.errors import ConfigError, RecordingError
from sonoedge.io.plus import (
    SequenceFile,
    format_matrix,
    frames_to_mf,
    read_plus_config,
    read_sequence,
    sample_frames,
    write_sequence,
)


def _small_sequence(n: int = 3) -> SequenceFile:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (n, 5, 7), dtype=np.uint8)
    fields = []
    for i in range(n):
        m = np.eye(4)
        m[:3, 3] = [i, 2 * i, 3.5]
        fields.append(
            {
                "ProbeToTrackerTransform": format_matrix(m),
                "ProbeToTrackerTransformStatus": "OK" if i != 1 else "INVALID",
                "Timestamp": f"{10 + 0.05 * i:.6f}",
            }
        )
    return SequenceFile(frames, fields, {"UltrasoundImageOrientation": "MF"})


def test_reads_nwire_phantom_sweep(plus_data: Any) -> None:
    seq = read_sequence(plus_data.nwire)
    assert seq.frames.shape == (97, 616, 820) and seq.frames.dtype == np.uint8
    assert seq.image_orientation == "MF"
    assert set(seq.transform_names()) == {"ProbeToTracker", "ReferenceToTracker", "StylusToTracker"}
    mats, ok = seq.transforms("ProbeToTracker")
    assert ok.all()
    np.testing.assert_allclose(mats[0, 0], [0.956683, -0.263308, 0.124204, -190.886])
    stylus_ok = seq.transforms("StylusToTracker")[1]
    assert not stylus_ok.any()  # status INVALID in every frame
    assert seq.timestamps_s[0] == pytest.approx(345.627957)


@pytest.mark.parametrize("suffix", [".igs.mha", ".seq.nrrd", ".igs.nrrd"])
@pytest.mark.parametrize("compress", [True, False])
def test_roundtrip(tmp_path: Path, suffix: str, compress: bool) -> None:
    seq = _small_sequence()
    path = write_sequence(tmp_path / f"s{suffix}", seq, compress=compress)
    back = read_sequence(path)
    np.testing.assert_array_equal(back.frames, seq.frames)
    assert back.frame_fields == seq.frame_fields
    mats, ok = back.transforms("ProbeToTracker")
    assert ok.tolist() == [True, False, True]
    np.testing.assert_allclose(mats[2, :3, 3], [2, 4, 3.5])
    np.testing.assert_allclose(back.timestamps_s, [10.0, 10.05, 10.1])


def test_orientation_flips_to_mf() -> None:
    frames = np.arange(6).reshape(1, 2, 3)
    np.testing.assert_array_equal(frames_to_mf(frames, "UN")[0], [[5, 4, 3], [2, 1, 0]])
    np.testing.assert_array_equal(frames_to_mf(frames, "MFA"), frames)
    with pytest.raises(ConfigError, match="orientation"):
        frames_to_mf(frames, "XX")


def test_invalid_transform_values_are_invalid_frames(tmp_path: Path) -> None:
    seq = _small_sequence()
    seq.frame_fields[0]["ProbeToTrackerTransform"] = "1 0 0 nan 0 1 0 0 0 0 1 0 0 0 0 1"
    seq.frame_fields[2]["ProbeToTrackerTransform"] = "1 2 3"
    back = read_sequence(write_sequence(tmp_path / "s.igs.mha", seq))
    assert back.transforms("ProbeToTracker")[1].tolist() == [False, False, False]


def test_corrupted_sequences_raise_recording_error(tmp_path: Path) -> None:
    good = write_sequence(tmp_path / "good.igs.mha", _small_sequence()).read_bytes()
    header, _, _ = good.partition(b"ElementDataFile = LOCAL\n")
    cases = {
        "truncated.igs.mha": good[:-20],
        "badzlib.igs.mha": header + b"ElementDataFile = LOCAL\n" + b"\x00" * 80,
        "noend.igs.mha": header,
        "baddim.igs.mha": good.replace(b"DimSize = 7 5 3", b"DimSize = 7 5"),
        "garbage.mha": b"\x89PNG not a sequence",
    }
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(RecordingError):
            read_sequence(path)
    with pytest.raises(RecordingError, match="cannot read"):
        read_sequence(tmp_path / "missing.igs.mha")
    nrrd = write_sequence(tmp_path / "s.seq.nrrd", _small_sequence()).read_bytes()
    (tmp_path / "cut.seq.nrrd").write_bytes(nrrd[: len(nrrd) - 10])
    with pytest.raises(RecordingError):
        read_sequence(tmp_path / "cut.seq.nrrd")


def test_uncompressed_mha_size_is_checked(tmp_path: Path) -> None:
    blob = write_sequence(tmp_path / "a.igs.mha", _small_sequence(), compress=False).read_bytes()
    (tmp_path / "b.igs.mha").write_bytes(blob[:-1])
    with pytest.raises(RecordingError, match="truncated"):
        read_sequence(tmp_path / "b.igs.mha")
    assert zlib.compress(b"x")  # zlib present: compressed files are exercised above


def test_reads_nwire_config(plus_data: Any) -> None:
    cfg = read_plus_config(plus_data.config)
    np.testing.assert_allclose(
        cfg.transform("Image", "Probe")[0], [-0.0094, -0.0739, -0.0028, -103.5322]
    )
    np.testing.assert_allclose(cfg.transform("Reference", "Phantom"), np.eye(4))
    rc = cfg.reconstruction
    assert rc is not None
    assert rc.interpolation == "LINEAR" and rc.compounding == "MEAN" and not rc.fill_holes
    assert rc.clip_rectangle_origin == (167, 62) and rc.clip_rectangle_size == (495, 488)
    assert rc.output_spacing_mm == (0.5, 0.5, 0.5)
    with pytest.raises(ConfigError, match="StylusToProbe"):
        cfg.transform("Stylus", "Probe")


def test_config_without_needed_elements(tmp_path: Path) -> None:
    path = tmp_path / "c.xml"
    path.write_text(
        "<PlusConfiguration><CoordinateDefinitions/></PlusConfiguration>", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="no VolumeReconstruction"):
        read_plus_config(path)
    assert read_plus_config(path, require_reconstruction=False).reconstruction is None
    path.write_text(
        '<PlusConfiguration><VolumeReconstruction Interpolation="LINEAR"/></PlusConfiguration>',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="OutputSpacing"):
        read_plus_config(path)
    path.write_text(
        '<PlusConfiguration><VolumeReconstruction OutputSpacing="0.5 x 0.5"/></PlusConfiguration>',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="OutputSpacing"):
        read_plus_config(path)
    path.write_text("<PlusConfiguration><unclosed></PlusConfiguration>", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        read_plus_config(path)
    path.write_text(
        '<PlusConfiguration><VolumeReconstruction OutputSpacing="1 1 1" CompoundingMode="AVG"/>'
        "</PlusConfiguration>",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="CompoundingMode"):
        read_plus_config(path)


def test_sample_frames_are_evenly_spaced_central_crops_in_unit_range(tmp_path: Path) -> None:
    seq = _small_sequence(5)
    path = write_sequence(tmp_path / "s.igs.mha", seq)
    sample = sample_frames(path, 3, 3)
    assert sample.indices == [0, 2, 4] and sample.origin_px == (1, 2)
    for i, frame in zip(sample.indices, sample.frames, strict=True):
        assert frame.dtype == np.float32 and frame.shape == (3, 3)
        np.testing.assert_allclose(frame, seq.frames[i, 1:4, 2:5] / 255.0, rtol=1e-6)
    assert sample_frames(path, 2, 64).frames[0].shape == (5, 7)  # smaller frames: whole frame
