"""Bundles: round trip, signatures, tampering, unsigned and unknown keys, zip safety."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sonoedge.devices import load_bundle, safezip, signing
from sonoedge.devices.bundle import open_bundle
from sonoedge.devices.errors import BundleError, SignatureError, UntrustedKeyError
from sonoedge.devices.package import package
from sonoedge.devices.schema import manifest_errors


@pytest.fixture
def bundle_dir(tmp_path: Path, tiny_model: Path, keypair: tuple[Path, Path]) -> Path:
    return package(tiny_model, "cpu", tmp_path / "tiny-cpu", keypair[0])


@pytest.mark.parametrize("suffix", ["", ".zip"])
def test_round_trip_runs_like_the_model(
    tmp_path: Path, tiny_model: Path, keypair: tuple[Path, Path], suffix: str
) -> None:
    out = package(tiny_model, "cpu", tmp_path / f"b{suffix}", keypair[0])
    x = np.random.default_rng(1).standard_normal((2, 8, 20, 12)).astype(np.float32)
    with load_bundle(out, "cpu", keys=[keypair[1]]) as runner:
        assert runner.backend_name == "cpu"
        assert runner.manifest["inputs"][0]["shape"] == ["batch", 8, "height", "width"]
        got = runner.run(x)["y"]
    (want,) = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_manifest_follows_schema_and_lists_every_file(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest_errors(manifest) == []
    assert set(manifest["files"]) == {"model.onnx", "card.json"}
    assert manifest["provenance"]["command"] == "pytest"
    assert manifest["inputs"][0]["example_shape"] == [1, 8, 16, 16]


def test_image_models_get_an_example_shape_they_accept(
    tmp_path: Path, tiny_model: Path, keypair: tuple[Path, Path]
) -> None:
    """Without ``example_shape`` on the card, one is derived from ``min_size`` and
    ``size_multiple`` (what ``--warmup`` and ``bench model`` run)."""
    model = tmp_path / "image.onnx"
    shutil.copy(tiny_model, model)
    card = json.loads(tiny_model.with_suffix(".json").read_text(encoding="utf-8"))
    del card["input"]["example_shape"]
    card["input"].update(min_size=118, size_multiple=24)
    model.with_suffix(".json").write_text(json.dumps(card), encoding="utf-8")
    out = package(model, "cpu", tmp_path / "b", keypair[0])
    with load_bundle(out, "cpu", keys=[keypair[1]]) as runner:
        assert runner.inputs[0]["example_shape"] == [1, 8, 144, 144]  # 128 → a multiple of 24
        assert runner.example_inputs()["x"].shape == (1, 8, 144, 144)


def test_tampered_model_is_refused(bundle_dir: Path, keypair: tuple[Path, Path]) -> None:
    model = bundle_dir / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-5] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        open_bundle(bundle_dir, keys=[keypair[1]])
    with pytest.raises(BundleError, match="sha256"):  # allowing unsigned never skips hashes
        open_bundle(bundle_dir, keys=[keypair[1]], allow_unsigned=True)


def test_tampered_manifest_is_refused_even_when_unsigned_is_allowed(
    bundle_dir: Path, keypair: tuple[Path, Path]
) -> None:
    path = bundle_dir / "manifest.json"
    path.write_text(
        path.read_text(encoding="utf-8").replace('"cpu"', '"openvino-cpu"'), encoding="utf-8"
    )
    for allow in (False, True):
        with pytest.raises(SignatureError, match="modified after signing"):
            open_bundle(bundle_dir, keys=[keypair[1]], allow_unsigned=allow)


def test_unsigned_and_unknown_key_refused_unless_allowed(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UntrustedKeyError, match="not trusted"):
        open_bundle(bundle_dir)  # signed by the test key, which is not trusted here
    assert open_bundle(bundle_dir, allow_unsigned=True).signer is None
    (bundle_dir / "manifest.sig").unlink()
    with pytest.raises(SignatureError, match="not signed"):
        open_bundle(bundle_dir)
    assert open_bundle(bundle_dir, allow_unsigned=True).signer is None


def test_trusted_key_directory(bundle_dir: Path, keypair: tuple[Path, Path]) -> None:
    directory = signing.user_keys_dir()
    directory.mkdir(parents=True)
    shutil.copyfile(keypair[1], directory / "colleague.pub")
    opened = open_bundle(bundle_dir)
    assert opened.signer == signing.load_public_key(keypair[1]).key_id


def test_unlisted_and_missing_files_are_refused(
    bundle_dir: Path, keypair: tuple[Path, Path]
) -> None:
    (bundle_dir / "extra.onnx").write_bytes(b"x")
    with pytest.raises(BundleError, match="does not list"):
        open_bundle(bundle_dir, keys=[keypair[1]])
    (bundle_dir / "extra.onnx").unlink()
    (bundle_dir / "card.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        open_bundle(bundle_dir, keys=[keypair[1]])


def test_project_keys_are_public_only() -> None:
    paths = sorted(signing.PROJECT_KEYS_DIR.iterdir())
    assert paths and all(p.suffix == ".pub" for p in paths)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert "PUBLIC KEY" in text and "PRIVATE" not in text
    assert len({k.key_id for k in signing.project_keys()}) == len(paths)


def test_a_rotated_project_keyring_verifies_bundles_of_every_project_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotation: the new key's .pub joins the retired ones, so bundles signed by either verify;
    the release tool refuses a key that is not among them."""
    from sonoedge.devices import release

    keyring = tmp_path / "keyring"
    keyring.mkdir()
    old_key, old_pub = signing.generate_keypair(tmp_path / "old", "sonoedge-project")
    new_key, new_pub = signing.generate_keypair(tmp_path / "new", "sonoedge-project-2026-12-01")
    stranger, _ = signing.generate_keypair(tmp_path / "other", "someone")
    for pub in (old_pub, new_pub):
        (keyring / pub.name).write_bytes(pub.read_bytes())
    monkeypatch.setattr(signing, "PROJECT_KEYS_DIR", keyring)
    monkeypatch.setenv("SONOEDGE_KEYS_DIR", str(tmp_path / "no-user-keys"))
    data = b'{"name": "x"}'
    for key in (old_key, new_key):
        record = signing.sign(data, signing.load_private_key(key))
        assert signing.verify(data, record, signing.trusted_keys()).source.endswith(".pub")
    release.check_project_key(new_key)
    with pytest.raises(BundleError, match="not a project key"):
        release.check_project_key(stranger)
    foreign = signing.sign(data, signing.load_private_key(stranger))
    with pytest.raises(UntrustedKeyError):
        signing.verify(data, foreign, signing.trusted_keys())


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.onnx", "/abs.onnx", "sub/model.onnx", "..", "a\\b"])
def test_zip_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    path = _zip(tmp_path / "b.zip", {"manifest.json": b"{}", name: b"x"})
    with pytest.raises(BundleError, match="plain file name"):
        open_bundle(path)
    assert not (tmp_path / "evil.onnx").exists()


def test_zip_symlink_and_bomb_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = zipfile.ZipInfo("model.onnx")
    link.external_attr = (0o120777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as z:
        z.writestr(link, "/etc/passwd")
    with pytest.raises(BundleError, match="not a regular file"):
        open_bundle(tmp_path / "link.zip")
    bomb = _zip(tmp_path / "bomb.zip", {"model.onnx": bytes(4096)})
    monkeypatch.setattr(safezip, "MAX_MEMBER_BYTES", 1024)
    with pytest.raises(BundleError, match="limit"):
        open_bundle(bomb)


def test_zip_member_lying_about_its_size_is_stopped(tmp_path: Path) -> None:
    path = _zip(tmp_path / "lie.zip", {"model.onnx": bytes(10_000)})
    data = bytearray(path.read_bytes())
    # Patch the uncompressed size in the central directory to claim 100 bytes.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        open_bundle(path)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        open_bundle(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        open_bundle(tmp_path / "d")
    (tmp_path / "f.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a readable zip"):
        open_bundle(tmp_path / "f.zip")


def test_inputs_are_checked(bundle_dir: Path, keypair: tuple[Path, Path]) -> None:
    from sonoedge.errors import DataError

    with load_bundle(bundle_dir, "cpu", keys=[keypair[1]]) as runner:
        with pytest.raises(DataError, match="shape"):
            runner.run(np.zeros((1, 3, 8, 8), np.float32))
        with pytest.raises(DataError, match="dtype"):
            runner.run(np.zeros((1, 8, 8, 8), np.int32))
        with pytest.raises(DataError, match="missing"):
            runner.run({"z": np.zeros((1, 8, 8, 8), np.float32)})
        out = runner.run(np.zeros((1, 8, 8, 8), np.float64))  # floats are cast
        assert out["y"].dtype == np.float32


def test_newer_runtime_required_is_refused(
    tmp_path: Path, tiny_model: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sonoedge.devices import package as pkg

    monkeypatch.setattr(pkg, "MIN_ONNXRUNTIME", "99.0")
    out = package(tiny_model, "cpu", tmp_path / "new", keypair[0])
    with pytest.raises(BundleError, match=r"onnxruntime >= 99\.0"):
        load_bundle(out, "cpu", keys=[keypair[1]])
