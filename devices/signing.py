"""Ed25519 keys and manifest signatures (the ``cryptography`` package).

A signature covers the exact bytes of ``manifest.json``; the manifest in turn lists a sha256 for
every other file, so one signature vouches for the whole bundle. Keys are PEM files: the private
key PKCS#8 (written with mode 0600), the public key SubjectPublicKeyInfo. A key is named by its
*key id*, the first 16 hex digits of the sha256 of its 32 raw public bytes.

Trusted public keys: the project keys shipped in the package (every ``*.pub`` in
``data/keys/``: the key that signs the shipped bundles, and retired ones, so bundles they signed
still verify after a rotation), every ``*.pub`` in the user's key directory
(``$SONOEDGE_KEYS_DIR``, default ``~/.config/sonoedge/keys``) and any key passed explicitly.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sonoedge.devices.errors import SignatureError, UntrustedKeyError
from sonoedge.errors import ConfigError

PROJECT_KEYS_DIR = Path(__file__).resolve().parent / "data" / "keys"
"""The project's public keys (``*.pub``): the current release key and retired ones."""
ALGORITHM = "ed25519"


@dataclass(frozen=True)
class PublicKey:
    """A trusted ed25519 public key and where it came from."""

    key: Ed25519PublicKey
    source: str

    @property
    def key_id(self) -> str:
        return key_id(self.key)


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def user_keys_dir() -> Path:
    """Directory of the user's trusted public keys."""
    env = os.environ.get("SONOEDGE_KEYS_DIR")
    return Path(env) if env else Path.home() / ".config" / "sonoedge" / "keys"


def generate_keypair(directory: Path, name: str = "sonoedge") -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.pub`` in ``directory``; refuses to
    overwrite an existing private key."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    if private_path.exists():
        raise ConfigError(f"{private_path} already exists", hint="pick another --name or directory")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(
            f"cannot read private key {path}: {err}",
            hint="create one with `sonoedge keys generate`",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an ed25519 private key")
    return key


def load_public_key(path: Path) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read public key {path}: {err}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an ed25519 public key")
    return PublicKey(key, str(path))


def trusted_keys(extra: Iterable[Path | Ed25519PublicKey] = ()) -> list[PublicKey]:
    """The project keys, the user's key directory and ``extra`` keys (files or key objects)."""
    found = project_keys()
    directory = user_keys_dir()
    if directory.is_dir():
        found += [load_public_key(p) for p in sorted(directory.glob("*.pub"))]
    for item in extra:
        found.append(
            PublicKey(item, "caller")
            if isinstance(item, Ed25519PublicKey)
            else load_public_key(item)
        )
    return found


def project_keys() -> list[PublicKey]:
    """The project's public keys shipped in the package (:data:`PROJECT_KEYS_DIR`)."""
    return [load_public_key(p) for p in sorted(PROJECT_KEYS_DIR.glob("*.pub"))]


def sign(data: bytes, private: Ed25519PrivateKey) -> dict[str, str]:
    """The signature record written to ``manifest.sig``."""
    return {
        "algorithm": ALGORITHM,
        "key_id": key_id(private.public_key()),
        "signature": base64.b64encode(private.sign(data)).decode("ascii"),
    }


def verify(data: bytes, record: object, keys: Iterable[PublicKey]) -> PublicKey:
    """The trusted key that signed ``data``; raises :class:`SignatureError` otherwise."""
    if not isinstance(record, dict) or record.get("algorithm") != ALGORITHM:
        raise SignatureError("the signature record is malformed or not ed25519")
    wanted = str(record.get("key_id", ""))
    try:
        signature = base64.b64decode(str(record.get("signature", "")), validate=True)
    except ValueError:
        raise SignatureError("the signature is not valid base64") from None
    candidates = [k for k in keys if k.key_id == wanted]
    if not candidates:
        raise UntrustedKeyError(
            f"the bundle is signed by key {wanted!r}, which is not trusted here",
            hint="pass the signer's public key (--key KEY.pub) or add it to "
            f"{user_keys_dir()} (`sonoedge keys trust KEY.pub`)",
        )
    for candidate in candidates:
        try:
            candidate.key.verify(signature, data)
            return candidate
        except InvalidSignature:
            continue
    raise SignatureError(
        "the manifest signature does not match: the bundle was modified after signing",
        hint="get the bundle again from its source; do not run it",
    )
