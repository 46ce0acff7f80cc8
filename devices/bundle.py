"""Signed model bundles: write, verify, open.

A bundle is a flat directory or .zip holding ``manifest.json``, ``manifest.sig`` (ed25519 over
the manifest bytes) and the files the manifest lists with their sha256. Opening a bundle checks,
in this order and before anything is parsed or run: the signature against the trusted keys, the
manifest against its JSON Schema, then the size and sha256 of every file, and that no file is
there that the manifest does not list. See docs/bundles.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sonoedge.devices import safezip, signing
from sonoedge.devices.errors import BundleError, SignatureError, UntrustedKeyError
from sonoedge.devices.schema import manifest_errors

log = logging.getLogger(__name__)

FORMAT = "sonoedge-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MANIFEST_BYTES = 2**20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A verified bundle: its manifest, the directory holding its files, and who signed it."""

    root: Path
    manifest: dict[str, Any]
    signer: str | None  # key id, or None for an unsigned bundle the caller allowed
    source: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def file(self, role: str) -> Path | None:
        """The first file with ``role`` (``onnx``, ``openvino-xml``, ...), or None."""
        for name, entry in self.manifest["files"].items():
            if entry["role"] == role:
                return self.root / name
        return None

    @property
    def size_bytes(self) -> int:
        return sum(int(e["size_bytes"]) for e in self.manifest["files"].values())

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def write_bundle(
    out: Path,
    manifest: Mapping[str, Any],
    files: Mapping[str, tuple[Path, str]],
    key: Ed25519PrivateKey | None,
    as_zip: bool = False,
) -> Path:
    """Write a bundle at ``out`` (a new directory, or a .zip when ``as_zip``).

    ``manifest`` holds every field but ``format``, ``files`` and ``created``; ``files`` maps the
    name in the bundle to (source path, role). With ``key=None`` the bundle is left unsigned."""
    entries: dict[str, dict[str, Any]] = {}
    for name, (src, role) in files.items():
        safezip.check_name(name)
        entries[name] = {"sha256": sha256_file(src), "size_bytes": src.stat().st_size, "role": role}
    full = {
        "format": FORMAT,
        **manifest,
        "files": entries,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    problems = manifest_errors(full)
    if problems:
        raise BundleError("the manifest is invalid: " + "; ".join(problems[:5]))
    data = (json.dumps(full, indent=2, sort_keys=True) + "\n").encode()
    members: dict[str, bytes | Path] = {MANIFEST: data}
    if key is not None:
        members[SIGNATURE] = (json.dumps(signing.sign(data, key), indent=2) + "\n").encode()
    members.update({name: src for name, (src, _) in files.items()})
    if out.exists():
        raise BundleError(f"{out} already exists", hint="choose another -o or remove it first")
    if as_zip:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in members.items():
                if isinstance(content, Path):
                    archive.write(content, name)
                else:
                    archive.writestr(name, content)
    else:
        out.mkdir(parents=True)
        for name, content in members.items():
            if isinstance(content, Path):
                shutil.copyfile(content, out / name)
            else:
                (out / name).write_bytes(content)
    return out


def open_bundle(
    path: str | Path,
    keys: Iterable[Path | Ed25519PublicKey] = (),
    allow_unsigned: bool = False,
) -> Bundle:
    """Verify and open a bundle directory or .zip.

    Refuses (:class:`SignatureError`) an unsigned bundle or one signed by a key that is not
    trusted, unless ``allow_unsigned``; a signature that does not match is refused always, and so
    is any file whose sha256 or size differs from the manifest (:class:`BundleError`).
    ``keys`` are extra trusted public key files (see :func:`sonoedge.devices.signing.trusted_keys`).
    """
    source = Path(path)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if source.is_dir():
        root = source
    elif source.is_file():
        tmp = tempfile.TemporaryDirectory(prefix="sonoedge-bundle-")
        root = Path(tmp.name)
        try:
            safezip.extract(source, root)
        except BaseException:
            tmp.cleanup()
            raise
    else:
        raise BundleError(f"bundle {source} does not exist", hint="pass a bundle directory or .zip")
    try:
        manifest, signer = _verify(root, keys, allow_unsigned, source)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    return Bundle(root=root, manifest=manifest, signer=signer, source=source, _tmp=tmp)


def _verify(
    root: Path,
    keys: Iterable[Path | Ed25519PublicKey],
    allow_unsigned: bool,
    shown: Path | None = None,
) -> tuple[dict[str, Any], str | None]:
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{root} has no {MANIFEST}: not a sonoedge bundle")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    data = manifest_path.read_bytes()
    signer = _check_signature(root, data, keys, allow_unsigned, shown or root)
    try:
        manifest = json.loads(data)
    except ValueError as err:
        raise BundleError(f"{MANIFEST} is not valid JSON: {err}") from None
    problems = manifest_errors(manifest)
    if problems:
        raise BundleError(
            f"{MANIFEST} does not follow the bundle schema: " + "; ".join(problems[:5])
        )
    listed = manifest["files"]
    for name, entry in listed.items():
        safezip.check_name(name)
        path = root / name
        if not path.is_file() or path.is_symlink():
            raise BundleError(f"bundle file {name} is missing")
        if path.stat().st_size != entry["size_bytes"] or sha256_file(path) != entry["sha256"]:
            raise BundleError(
                f"bundle file {name} does not match its sha256 in the manifest: it was modified",
                hint="get the bundle again from its source; do not run it",
            )
    unexpected = sorted(
        p.name for p in root.iterdir() if p.name not in {MANIFEST, SIGNATURE, *listed}
    )
    if unexpected:
        raise BundleError(f"bundle holds files its manifest does not list: {', '.join(unexpected)}")
    return manifest, signer


def _check_signature(
    root: Path,
    data: bytes,
    keys: Iterable[Path | Ed25519PublicKey],
    allow_unsigned: bool,
    shown: Path,
) -> str | None:
    sig_path = root / SIGNATURE
    if not sig_path.is_file():
        if allow_unsigned:
            log.warning(
                "bundle %s is unsigned; running it because unsigned bundles are allowed", shown
            )
            return None
        raise SignatureError(
            f"bundle {shown} is not signed",
            hint="sign it with `sonoedge package --key KEY`, or allow unsigned bundles explicitly",
        )
    try:
        record = json.loads(sig_path.read_bytes()[:MAX_MANIFEST_BYTES])
    except ValueError:
        raise SignatureError(f"{SIGNATURE} is not valid JSON") from None
    try:
        return signing.verify(data, record, signing.trusted_keys(keys)).key_id
    except UntrustedKeyError as err:
        if allow_unsigned:
            log.warning(
                "bundle %s: %s; running it because unsigned bundles are allowed", shown, err
            )
            return None
        raise
