"""``sonoedge package``, ``sonoedge verify`` and ``sonoedge keys``: signed model bundles."""

from __future__ import annotations

from pathlib import Path

import typer

TARGETS_HELP = (
    "cpu|openvino-cpu|openvino-gpu|openvino-npu|jetson-orin-nano|jetson-orin-nx|jetson-orin-agx"
)

keys_app = typer.Typer(help="Signing keys for bundles (ed25519).", no_args_is_help=True)


def package(
    model: Path = typer.Argument(
        ..., help="Model: .onnx or OpenVINO .xml (card NAME.json beside)."
    ),
    target: str = typer.Option("cpu", "--target", "-t", help=TARGETS_HELP),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Bundle directory, or a .zip (default: NAME-TARGET.zip)."
    ),
    key: Path | None = typer.Option(
        None, "--key", "-k", help="Private key to sign with (default: $SONOEDGE_SIGNING_KEY)."
    ),
    unsigned: bool = typer.Option(False, "--unsigned", help="Write an unsigned bundle."),
    name: str | None = typer.Option(None, help="Bundle name (default: from the model card)."),
    version: str = typer.Option("1.0.0", help="Bundle version (semver)."),
    warmup: bool = typer.Option(
        False,
        "--warmup",
        help="Also compile it here for the target: TensorRT engines and OpenVINO cache.",
    ),
) -> None:
    """Package a model for a target as a signed bundle (manifest + sha256 + ed25519 signature).

    With --warmup the bundle is then loaded on this machine for the target, which builds the
    TensorRT engine and timing caches (keyed by GPU + TensorRT + ONNX Runtime versions) or the
    OpenVINO model cache ahead of time. Run it on the device itself.

    \b
    Examples:
      sonoedge keys generate -o ~/.sonoedge-keys
      sonoedge package runs/sonic/sonic-16.onnx -t openvino-cpu -k ~/.sonoedge-keys/sonoedge.key
      sonoedge package model.onnx -t jetson-orin-nano -k my.key --warmup -o model-nano.zip
    """
    from sonoedge.devices import package as pkg
    from sonoedge.devices.errors import BundleError

    signing_key = None if unsigned else pkg.signing_key(key)
    if signing_key is None and not unsigned:
        raise BundleError(
            "no signing key",
            hint=f"pass --key KEY, set ${pkg.SIGNING_KEY_ENV}, or write an --unsigned bundle",
        )
    out = out or Path(f"{(name or model.stem)}-{target}.zip")
    path = pkg.package(model, target, out, signing_key, name=name, version=version)
    typer.echo(f"wrote {path} ({'unsigned' if signing_key is None else 'signed'})")
    if warmup:
        from sonoedge.devices import load_bundle, signing

        keys = []
        if signing_key is not None:
            keys.append(signing.load_private_key(signing_key).public_key())
        with load_bundle(path, target, keys=keys, allow_unsigned=unsigned, warmup=True) as runner:
            typer.echo(f"warmed up on {runner.target} ({runner.backend_name})")


def verify(
    bundle: Path = typer.Argument(..., help="Bundle directory or .zip."),
    key: list[Path] = typer.Option([], "--key", "-k", help="Extra trusted public key (.pub)."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Check a bundle's signature, manifest schema and every file's sha256 (exit 0 when valid).

    \b
    Example:
      sonoedge verify sonic-16-openvino-cpu.zip --key colleague.pub
    """
    import json

    from sonoedge.devices.bundle import open_bundle

    opened = open_bundle(bundle, keys=key)
    try:
        m = opened.manifest
        if json_out:
            typer.echo(json.dumps({"signer": opened.signer, "manifest": m}, indent=2))
            return
        typer.echo(
            f"ok: {m['name']} {m['version']} ({m['task']}, {m['precision']}, target {m['target']})"
            f", signed by key {opened.signer}, {len(m['files'])} files, "
            f"{opened.size_bytes / 1e6:.2f} MB"
        )
    finally:
        opened.close()


@keys_app.command("generate")
def keys_generate(
    out: Path = typer.Option(Path("."), "--out", "-o", help="Directory for NAME.key and NAME.pub."),
    name: str = typer.Option("sonoedge", help="File name stem."),
    trust: bool = typer.Option(False, "--trust", help="Also trust the public key on this machine."),
) -> None:
    """Make an ed25519 key pair: NAME.key (private, mode 0600; keep it out of git) and NAME.pub.

    \b
    Example:
      sonoedge keys generate -o ~/.sonoedge-keys --trust
    """
    from sonoedge.devices import signing

    private, public = signing.generate_keypair(out, name)
    typer.echo(f"wrote {private} (private) and {public} (public)")
    if trust:
        keys_trust(public)


@keys_app.command("trust")
def keys_trust(public: Path = typer.Argument(..., help="Public key file (.pub).")) -> None:
    """Trust bundles signed by this public key on this machine (copies it to the key directory)."""
    import shutil

    from sonoedge.devices import signing

    loaded = signing.load_public_key(public)
    directory = signing.user_keys_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{loaded.key_id}.pub"
    shutil.copyfile(public, target)
    typer.echo(f"trusted key {loaded.key_id} ({target})")


@keys_app.command("list")
def keys_list() -> None:
    """The public keys bundles are verified against here."""
    from sonoedge.devices import signing

    for k in signing.trusted_keys():
        typer.echo(f"{k.key_id}  {k.source}")
