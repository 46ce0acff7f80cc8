"""Extract a bundle .zip without trusting it: flat names only, no links, bounded sizes.

The sizes in the zip directory are checked first and the bytes actually inflated are counted
again while extracting, so a member that lies about its size (a zip bomb) is stopped too.
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path

from sonoedge.devices.errors import BundleError

MAX_MEMBERS = 64
MAX_MEMBER_BYTES = 256 * 2**20
MAX_TOTAL_BYTES = 512 * 2**20
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK_BYTES = 2**20


def check_name(name: str) -> None:
    """Bundle members are plain file names: no directories, no ``..``, no absolute paths."""
    if not SAFE_NAME.match(name) or name in (".", ".."):
        raise BundleError(
            f"bundle member {name!r} is not a plain file name",
            hint="bundles are flat: a manifest and model files side by side",
        )


def extract(zip_path: Path, dest: Path) -> list[str]:
    """Extract ``zip_path`` into the (empty) directory ``dest``; returns the member names."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as err:
        raise BundleError(f"{zip_path} is not a readable zip file: {err}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise BundleError(f"{zip_path} has {len(members)} members (limit {MAX_MEMBERS})")
        total = 0
        for info in members:
            check_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG) or info.is_dir():
                raise BundleError(f"bundle member {info.filename!r} is not a regular file")
            if info.file_size > MAX_MEMBER_BYTES:
                raise BundleError(
                    f"bundle member {info.filename!r} is {info.file_size} bytes "
                    f"(limit {MAX_MEMBER_BYTES})"
                )
            total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise BundleError(f"{zip_path} inflates to {total} bytes (limit {MAX_TOTAL_BYTES})")
        names = []
        for info in members:
            try:
                _copy_member(archive, info, dest / info.filename)
            except FileExistsError:
                raise BundleError(f"{zip_path} holds {info.filename!r} twice") from None
            except (OSError, zipfile.BadZipFile) as err:
                raise BundleError(f"cannot extract {info.filename!r}: {err}") from None
            names.append(info.filename)
    return names


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    written = 0
    with archive.open(info) as src, open(target, "xb") as out:
        while chunk := src.read(_CHUNK_BYTES):
            written += len(chunk)
            if written > min(info.file_size, MAX_MEMBER_BYTES):
                raise BundleError(
                    f"bundle member {info.filename!r} inflates past its declared size"
                )
            out.write(chunk)
