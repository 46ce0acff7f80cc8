import numpy as np
import pytest

from sonoedge.errors import DataError
from sonoedge.processing.apply import process_source
from sonoedge.processing.files import coordinates, read_input, write_output


def test_npz_metadata_is_read(tmp_path):
    path = tmp_path / "a.npz"
    z = 2e-3 + np.arange(6) * 1e-4
    x = np.arange(5) * 2e-4
    np.savez(path, image=np.ones((6, 5), np.uint8), z_m=z, x_m=x, prf_hz=500.0)
    src = read_input(path, "despeckle")
    (item,) = list(src.items())
    assert src.kind == "image" and item.prf_hz == 500.0
    assert item.spacing_m == pytest.approx((1e-4, 2e-4))
    assert item.origin_m == pytest.approx((2e-3, 0.0))
    np.testing.assert_allclose(coordinates((6, 5), item.spacing_m, item.origin_m)["z_m"], z)


def test_stack_of_images_is_processed_frame_by_frame(tmp_path):
    path = tmp_path / "stack.npz"
    np.savez(path, image=np.stack([np.full((8, 8), v, np.float32) for v in (0.2, 0.4, 0.6)]))
    out = process_source(read_input(path, "despeckle"), "despeckle", "median")
    assert out.arrays["image"].shape == (3, 8, 8)
    np.testing.assert_allclose(out.arrays["image"][:, 0, 0], [0.2, 0.4, 0.6], rtol=1e-6)


def test_npy_kind_follows_dtype(tmp_path):
    np.save(tmp_path / "iq.npy", np.ones((4, 6, 6), np.complex64))
    np.save(tmp_path / "img.npy", np.ones((6, 6), np.float32))
    assert read_input(tmp_path / "iq.npy", "doppler").kind == "iq"
    assert read_input(tmp_path / "img.npy", "despeckle").kind == "image"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"image": np.ones((4, 4)), "z_m": np.arange(3.0), "x_m": np.arange(4.0)}, "z_m"),
        ({"image": np.ones((4, 4)), "z_m": np.arange(4.0)}, "both"),
        ({"image": np.ones((4, 4)), "prf_hz": -1.0}, "prf_hz"),
        ({"iq": np.ones((2, 3, 4, 5), np.complex64)}, "expected complex"),
        ({"image": np.ones((4, 4), np.complex64)}, "real"),
        ({"data": np.ones((4, 4))}, "exactly one"),
    ],
)
def test_bad_npz_files(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        read_input(path, "despeckle")


def test_unknown_suffixes(tmp_path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="suffix"):
        read_input(tmp_path / "a.txt", "bmode")
    with pytest.raises(DataError, match="suffix"):
        write_output(tmp_path / "o.txt", {"image": np.ones((2, 2))}, {})
