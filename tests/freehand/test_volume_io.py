"""Volume files keep their geometry: NRRD/MHA round trips, NIfTI's RAS affine, PNG MIPs."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonoedge.errors import ConfigError, RecordingError
from sonoedge.io.volume import mips, read_volume, write_mips, write_volume
from sonoedge.types import Volume


def _volume(dtype: type = np.uint8) -> Volume:
    data = np.arange(4 * 5 * 6).reshape(4, 5, 6).astype(dtype)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return Volume(data, (0.5e-3, 0.25e-3, 1e-3), (-0.01, 0.02, 0.03), rot)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_roundtrip_keeps_geometry(tmp_path: Path, suffix: str, dtype: type) -> None:
    vol = _volume(dtype)
    back = read_volume(write_volume(tmp_path / f"v{suffix}", vol))
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.spacing_m, vol.spacing_m)
    np.testing.assert_allclose(back.origin_m, vol.origin_m)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-12)


def test_nrrd_header_is_lps_in_mm(tmp_path: Path) -> None:
    text = write_volume(tmp_path / "v.nrrd", _volume()).read_bytes().split(b"\n\n")[0].decode()
    assert "space: left-posterior-superior" in text
    assert "sizes: 6 5 4" in text
    assert "space origin: (-10,20,30)" in text
    assert "space directions: (0,0.5,0) (-0.25,0,0) (0,0,1)" in text


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_nifti_affine_is_ras(tmp_path: Path, name: str) -> None:
    vol = _volume(np.int16)
    blob = write_volume(tmp_path / name, vol).read_bytes()
    if name.endswith(".gz"):
        blob = gzip.decompress(blob)
    assert struct.unpack_from("<i", blob, 0)[0] == 348 and blob[344:348] == b"n+1\x00"
    dims = struct.unpack_from("<8h", blob, 40)
    assert dims[:4] == (3, 6, 5, 4)
    srow = np.array([struct.unpack_from("<4f", blob, 280 + 16 * r) for r in range(3)])
    # LPS → RAS flips x and y of the axes and the origin.
    expected = np.diag([-1.0, -1.0, 1.0]) @ vol.direction * (np.array(vol.spacing_m) * 1e3)
    np.testing.assert_allclose(srow[:, :3], expected, atol=1e-6)
    np.testing.assert_allclose(srow[:, 3], [10, -20, 30], atol=1e-5)
    data = np.frombuffer(blob[352:], "<i2").reshape(4, 5, 6)
    np.testing.assert_array_equal(data, vol.data)


def test_mips_and_png(tmp_path: Path) -> None:
    vol = _volume()
    proj = mips(vol)
    assert [p.shape for p in proj] == [(5, 6), (4, 6), (4, 5)]
    assert proj[0].max() == vol.data.max()
    img = cv2.imread(str(write_mips(tmp_path / "m.png", vol)), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (5, 6 + 6 + 5 + 8) and img.max() == 255


def test_bad_volume_requests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="suffix"):
        write_volume(tmp_path / "v.vtk", _volume())
    with pytest.raises(ConfigError, match="3D"):
        write_volume(tmp_path / "v.nrrd", Volume(np.zeros((2, 2)), (1e-3,) * 3))
    path = write_volume(tmp_path / "v.mha", _volume())
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(RecordingError):
        read_volume(path)
