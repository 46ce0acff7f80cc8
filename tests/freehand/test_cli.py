"""``sonoedge sweep2vol`` end to end: PLUS file with config, simulated sweeps, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from sonoedge.cli import app
from sonoedge.io.volume import read_volume

runner = CliRunner()


def test_help_teaches() -> None:
    result = runner.invoke(app, ["sweep2vol", "--help"])
    assert result.exit_code == 0
    assert "--plus-config" in result.output and "Examples" in result.output


def test_plus_file_with_config(plus_data: Any, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sweep2vol",
            str(plus_data.nwire),
            "--plus-config",
            str(plus_data.config),
            "-o",
            str(tmp_path),
            "--weights",
            "--format",
            "mha",
        ],
    )
    assert result.exit_code == 0, result.output
    vol = read_volume(tmp_path / "NwirePhantomFreehand.mha")
    assert vol.data.shape == (74, 104, 101)
    assert vol.origin_m[0] == pytest.approx(-22.2573e-3, abs=1e-6)
    assert (tmp_path / "NwirePhantomFreehand_weights.mha").exists()
    assert (tmp_path / "NwirePhantomFreehand_mip.png").exists()
    report = json.loads(
        (tmp_path / "NwirePhantomFreehand_quality.json").read_text(encoding="utf-8")
    )
    assert report["n_frames"] == 97 and report["n_frames_skipped"] == 0
    assert 0 <= report["hole_fraction"] < 0.2


def test_simulated_fan_with_options(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sweep2vol",
            "sim:fan",
            "-o",
            str(tmp_path),
            "--spacing",
            "1.0",
            "--interp",
            "nn",
            "--compound",
            "max",
            "--fill-holes",
            "nearest",
            "--format",
            "nii.gz",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sim_fan.nii.gz").exists()
    report = json.loads((tmp_path / "sim_fan_quality.json").read_text(encoding="utf-8"))
    assert report["heading_drift_dps"] < 1.0 and "time_offset_ms" in report


def test_bad_inputs(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sweep2vol", str(tmp_path / "missing.igs.mha")])
    assert result.exit_code != 0 and "does not exist" in str(result.exception)
    bad = tmp_path / "bad.igs.mha"
    bad.write_bytes(
        b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 2\nElementType = MET_UCHAR\n"
        b"CompressedData = True\nElementDataFile = LOCAL\n\x01\x02garbage"
    )
    result = runner.invoke(app, ["sweep2vol", str(bad), "-o", str(tmp_path)])
    assert result.exit_code == 1 and "corrupt" in result.output
    result = runner.invoke(app, ["sweep2vol", "sim:fan", "--interp", "cubic"])
    assert result.exit_code != 0 and "--interp" in str(result.exception)


def test_absurd_spacing_is_refused_with_size(plus_data: Any, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sweep2vol",
            str(plus_data.nwire),
            "--plus-config",
            str(plus_data.config),
            "-o",
            str(tmp_path),
            "--max-memory-gb",
            "0.001",
        ],
    )
    assert result.exit_code == 1 and "would need" in result.output
    assert not (tmp_path / "NwirePhantomFreehand.nrrd").exists()


def test_config_output_grid_and_motion_check(plus_data: Any, tmp_path: Path) -> None:
    text = plus_data.config.read_text(encoding="utf-8").replace(
        'OutputSpacing="0.5 0.5 0.5"',
        'OutputSpacing="1 1 1" OutputOrigin="-20 -130 -50" OutputExtent="2 11 0 9 0 4"',
    )
    config = tmp_path / "grid.xml"
    config.write_text(text, encoding="utf-8")
    result = runner.invoke(
        app, ["sweep2vol", str(plus_data.nwire), "--plus-config", str(config), "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    vol = read_volume(tmp_path / "NwirePhantomFreehand.nrrd")
    assert vol.data.shape == (5, 10, 10)
    assert vol.origin_m == pytest.approx((-18e-3, -130e-3, -50e-3))
    result = runner.invoke(
        app, ["sweep2vol", str(plus_data.nwire), "--motion", "fan", "-o", str(tmp_path)]
    )
    assert result.exit_code == 1 and "tracked" in result.output


def test_invalid_transforms_are_skipped_and_counted(tmp_path: Path) -> None:
    from sonoedge.io.plus import SequenceFile, format_matrix, write_sequence

    frames = np.full((4, 20, 30), 120, np.uint8)
    fields = []
    for i in range(4):
        m = np.eye(4)
        m[2, 3] = 1.5 * i  # 1 mm pixels, frames 1.5 mm apart
        fields.append(
            {
                "ImageToReferenceTransform": format_matrix(m),
                "ImageToReferenceTransformStatus": "INVALID" if i == 2 else "OK",
                "Timestamp": f"{0.1 * i:.3f}",
            }
        )
    path = write_sequence(tmp_path / "s.igs.mha", SequenceFile(frames, fields))
    result = runner.invoke(app, ["sweep2vol", str(path), "-o", str(tmp_path), "--spacing", "1"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 of 4" in result.output
    report = json.loads((tmp_path / "s_quality.json").read_text(encoding="utf-8"))
    assert report["n_frames_skipped"] == 1 and report["n_valid_poses"] == 3


def test_config_hole_filling_and_rejection(plus_data: Any, tmp_path: Path) -> None:
    text = (
        plus_data.config.read_text(encoding="utf-8")
        .replace('FillHoles="OFF"', 'FillHoles="ON" PixelRejectionThreshold="1"')
        .replace(
            "/>\n  \n</PlusConfiguration>",
            '>\n<HoleFilling><HoleFillingElement Type="STICK" StickLengthLimit="5" '
            'NumberOfSticksToUse="1"/></HoleFilling></VolumeReconstruction>\n</PlusConfiguration>',
        )
    )
    assert "HoleFillingElement" in text
    config = tmp_path / "holes.xml"
    config.write_text(text, encoding="utf-8")
    args = ["sweep2vol", str(plus_data.nwire), "-o", str(tmp_path / "a"), "--plus-config"]
    assert runner.invoke(app, [*args, str(plus_data.config)]).exit_code == 0
    result = runner.invoke(app, [*args[:3], str(tmp_path / "b"), "--plus-config", str(config)])
    assert result.exit_code == 0, result.output
    plain = read_volume(tmp_path / "a" / "NwirePhantomFreehand.nrrd").data
    filled = read_volume(tmp_path / "b" / "NwirePhantomFreehand.nrrd").data
    assert (filled > 0).sum() > (plain > 0).sum()  # holes filled by sticks
