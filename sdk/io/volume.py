"""Volume files with full LPS geometry: NRRD, NIfTI-1, MetaImage, and PNG projections.

Every writer stores spacing, origin and direction in mm so 3D Slicer places the volume where it
was reconstructed. NIfTI is RAS by definition: its affine is the LPS one with x and y negated.
Example::

    write_volume("sweep.nrrd", volume)          # or .nii / .nii.gz / .mha
    write_mips("sweep_mip.png", volume)
    volume = read_volume("sweep.nrrd")
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, RecordingError
from sonoedge.types import Volume

_NRRD_TYPE: dict[np.dtype, str] = {
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.int16): "int16",
    np.dtype(np.uint32): "uint32",
    np.dtype(np.int32): "int32",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}
_MET_TYPE: dict[np.dtype, str] = {
    np.dtype(np.uint8): "MET_UCHAR",
    np.dtype(np.int8): "MET_CHAR",
    np.dtype(np.uint16): "MET_USHORT",
    np.dtype(np.int16): "MET_SHORT",
    np.dtype(np.uint32): "MET_UINT",
    np.dtype(np.int32): "MET_INT",
    np.dtype(np.float32): "MET_FLOAT",
    np.dtype(np.float64): "MET_DOUBLE",
}
_NIFTI_TYPE = {
    np.dtype(np.uint8): 2,
    np.dtype(np.int16): 4,
    np.dtype(np.int32): 8,
    np.dtype(np.float32): 16,
    np.dtype(np.float64): 64,
    np.dtype(np.int8): 256,
    np.dtype(np.uint16): 512,
    np.dtype(np.uint32): 768,
}
SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".mha")


def _fmt(values: npt.ArrayLike) -> list[str]:
    return [f"{v:.10g}" for v in np.asarray(values, dtype=np.float64).ravel()]


def _checked(volume: Volume) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.float64]]:
    data = np.ascontiguousarray(volume.data)
    if data.ndim != 3 or data.dtype not in _NRRD_TYPE:
        raise ConfigError(f"volume data {data.shape} {data.dtype} is not a 3D numeric array")
    direction = np.asarray(volume.direction, dtype=np.float64).reshape(3, 3)
    return data.astype(data.dtype.newbyteorder("<"), copy=False), direction


def write_volume(path: str | Path, volume: Volume) -> Path:
    """Write ``volume`` to ``.nrrd``, ``.nii``/``.nii.gz`` or ``.mha`` (chosen by suffix)."""
    path = Path(path)
    name = path.name.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".nrrd"):
        _write_nrrd(path, volume)
    elif name.endswith((".nii", ".nii.gz")):
        _write_nifti(path, volume)
    elif name.endswith(".mha"):
        _write_mha(path, volume)
    else:
        raise ConfigError(f"volume file {path.name!r} has an unknown suffix: use one of {SUFFIXES}")
    return path


def _write_nrrd(path: Path, volume: Volume) -> None:
    data, direction = _checked(volume)
    spacing_mm = np.asarray(volume.spacing_m) * 1e3
    axes = [direction[:, a] * spacing_mm[a] for a in range(3)]
    nk, nj, ni = data.shape
    header = [
        "NRRD0004",
        f"type: {_NRRD_TYPE[data.dtype]}",
        "dimension: 3",
        "space: left-posterior-superior",
        f"sizes: {ni} {nj} {nk}",
        "space directions: " + " ".join("(" + ",".join(_fmt(v)) + ")" for v in axes),
        "kinds: domain domain domain",
        "endian: little",
        "encoding: gzip",
        "space origin: (" + ",".join(_fmt(np.asarray(volume.origin_m) * 1e3)) + ")",
        'space units: "mm" "mm" "mm"',
    ]
    body = gzip.compress(data.tobytes(), compresslevel=4, mtime=0)
    path.write_bytes(("\n".join(header) + "\n\n").encode("ascii") + body)


def _write_mha(path: Path, volume: Volume) -> None:
    data, direction = _checked(volume)
    nk, nj, ni = data.shape
    body = zlib.compress(data.tobytes(), 4)
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = True",
        f"CompressedDataSize = {len(body)}",
        "TransformMatrix = " + " ".join(_fmt(direction.T)),
        "Offset = " + " ".join(_fmt(np.asarray(volume.origin_m) * 1e3)),
        "CenterOfRotation = 0 0 0",
        "AnatomicalOrientation = RAI",
        "ElementSpacing = " + " ".join(_fmt(np.asarray(volume.spacing_m) * 1e3)),
        f"DimSize = {ni} {nj} {nk}",
        f"ElementType = {_MET_TYPE[data.dtype]}",
        "ElementDataFile = LOCAL",
    ]
    path.write_bytes(("\n".join(header) + "\n").encode("ascii") + body)


def _quaternion_bcd(rotation: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    r = rotation
    a = 0.5 * np.sqrt(max(1.0 + r[0, 0] + r[1, 1] + r[2, 2], 0.0))
    if a > 1e-6:
        return (
            0.25 * (r[2, 1] - r[1, 2]) / a,
            0.25 * (r[0, 2] - r[2, 0]) / a,
            0.25 * (r[1, 0] - r[0, 1]) / a,
        )
    # 180° rotation: largest diagonal element picks the axis (quaternion w = 0).
    i = int(np.argmax(np.diag(r)))
    v = np.zeros(3)
    v[i] = 0.5 * np.sqrt(max(1.0 + 2 * r[i, i] - np.trace(r), 0.0))
    for j in range(3):
        if j != i:
            v[j] = (r[i, j] + r[j, i]) / (4 * v[i])
    return float(v[0]), float(v[1]), float(v[2])


def _write_nifti(path: Path, volume: Volume) -> None:
    data, direction = _checked(volume)
    if data.dtype not in _NIFTI_TYPE:
        raise ConfigError(f"NIfTI cannot store {data.dtype}")
    nk, nj, ni = data.shape
    spacing_mm = np.asarray(volume.spacing_m, dtype=np.float64) * 1e3
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    rot = lps_to_ras @ direction
    origin = lps_to_ras @ (np.asarray(volume.origin_m) * 1e3)
    affine = rot * spacing_mm[None, :]
    qfac = 1.0
    if np.linalg.det(rot) < 0:
        qfac = -1.0
        rot = rot.copy()
        rot[:, 2] *= -1
    b, c, d = _quaternion_bcd(rot)
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    hdr[38] = ord("r")
    struct.pack_into("<8h", hdr, 40, 3, ni, nj, nk, 1, 1, 1, 1)
    itemsize = data.dtype.itemsize
    struct.pack_into("<hh", hdr, 70, _NIFTI_TYPE[data.dtype], 8 * itemsize)
    struct.pack_into("<8f", hdr, 76, qfac, *spacing_mm, 1, 1, 1, 1)
    struct.pack_into("<f", hdr, 108, 352.0)
    struct.pack_into("<f", hdr, 112, 1.0)
    hdr[123] = 2  # NIFTI_UNITS_MM
    hdr[148:160] = b"sonoedge\x00\x00\x00\x00"
    struct.pack_into("<hh", hdr, 252, 1, 1)
    struct.pack_into("<6f", hdr, 256, b, c, d, *origin)
    for row in range(3):
        struct.pack_into("<4f", hdr, 280 + 16 * row, *affine[row], origin[row])
    hdr[344:348] = b"n+1\x00"
    blob = bytes(hdr) + data.tobytes()
    if path.name.lower().endswith(".gz"):
        blob = gzip.compress(blob, compresslevel=4, mtime=0)
    path.write_bytes(blob)


def read_volume(path: str | Path) -> Volume:
    """Read a ``.mha`` or ``.nrrd`` volume (as written here or by PLUS/ITK/Slicer)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RecordingError(f"cannot read volume {path}: {err.strerror}") from err
    if raw.startswith(b"NRRD"):
        return _read_nrrd(path, raw)
    return _read_mha(path, raw)


def _read_mha(path: Path, raw: bytes) -> Volume:
    marker = raw.find(b"ElementDataFile")
    if marker < 0:
        raise RecordingError(f"{path}: not a MetaImage file")
    end = raw.find(b"\n", marker) + 1
    header = {}
    for line in raw[:end].decode("latin-1").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            header[k.strip()] = v.strip()
    try:
        ni, nj, nk = (int(v) for v in header["DimSize"].split())
        dtype = {v: k for k, v in _MET_TYPE.items()}[header["ElementType"]]
        spacing = [float(v) for v in header.get("ElementSpacing", "1 1 1").split()]
        origin = [float(v) for v in header.get("Offset", "0 0 0").split()]
        tm = [float(v) for v in header.get("TransformMatrix", "1 0 0 0 1 0 0 0 1").split()]
    except (KeyError, ValueError) as err:
        raise RecordingError(f"{path}: bad MetaImage header ({err})") from err
    body = raw[end:]
    if header.get("CompressedData", "False").lower() == "true":
        try:
            body = zlib.decompress(body)
        except zlib.error as err:
            raise RecordingError(f"{path}: compressed data is corrupt ({err})") from err
    return _volume(path, body, dtype, (nk, nj, ni), spacing, origin, np.reshape(tm, (3, 3)).T)


def _read_nrrd(path: Path, raw: bytes) -> Volume:
    end = raw.find(b"\n\n")
    header = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if ": " in line and not line.startswith("#"):
            k, v = line.split(": ", 1)
            header[k.strip()] = v.strip()
    try:
        ni, nj, nk = (int(v) for v in header["sizes"].split())
        dtype = {v: k for k, v in _NRRD_TYPE.items()}[header["type"]]
        dirs = [
            [float(x) for x in g.strip("()").split(",")]
            for g in header.get("space directions", "(1,0,0) (0,1,0) (0,0,1)").split()
        ]
        origin = [float(x) for x in header.get("space origin", "(0,0,0)").strip("()").split(",")]
    except (KeyError, ValueError) as err:
        raise RecordingError(f"{path}: bad NRRD header ({err})") from err
    axes = np.array(dirs, dtype=np.float64).T
    spacing = np.linalg.norm(axes, axis=0)
    body = raw[end + 2 :]
    if header.get("encoding", "raw") in ("gzip", "gz"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as err:
            raise RecordingError(f"{path}: gzip data is corrupt ({err})") from err
    return _volume(path, body, dtype, (nk, nj, ni), spacing, origin, axes / spacing)


def _volume(
    path: Path,
    body: bytes,
    dtype: np.dtype,
    shape: tuple[int, int, int],
    spacing_mm: npt.ArrayLike,
    origin_mm: npt.ArrayLike,
    direction: npt.NDArray[np.float64],
) -> Volume:
    count = int(np.prod(shape))
    if len(body) < count * dtype.itemsize:
        raise RecordingError(f"{path}: data is truncated ({len(body)} bytes for {shape})")
    data = np.frombuffer(body, dtype=dtype.newbyteorder("<"), count=count).reshape(shape)
    sp = np.asarray(spacing_mm, dtype=np.float64) * 1e-3
    org = np.asarray(origin_mm, dtype=np.float64) * 1e-3
    return Volume(
        data=data.astype(dtype),
        spacing_m=(float(sp[0]), float(sp[1]), float(sp[2])),
        origin_m=(float(org[0]), float(org[1]), float(org[2])),
        direction=np.asarray(direction, dtype=np.float64),
    )


def mips(volume: Volume) -> list[npt.NDArray[np.float64]]:
    """Maximum-intensity projections along k, j and i (each a 2D float array)."""
    data = np.asarray(volume.data, dtype=np.float64)
    return [data.max(axis=0), data.max(axis=1), data.max(axis=2)]


def write_mips(path: str | Path, volume: Volume, gap_px: int = 4) -> Path:
    """Write the three maximum-intensity projections side by side as one 8-bit PNG."""
    import cv2

    path = Path(path)
    images = mips(volume)
    hi = max(float(np.percentile(np.concatenate([m.ravel() for m in images]), 99.9)), 1e-12)
    lo = min(float(m.min()) for m in images)
    height = max(m.shape[0] for m in images)
    canvas = np.zeros((height, sum(m.shape[1] for m in images) + gap_px * 2), dtype=np.uint8)
    x = 0
    for m in images:
        scaled = np.clip((m - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255).astype(np.uint8)
        canvas[: m.shape[0], x : x + m.shape[1]] = scaled
        x += m.shape[1] + gap_px
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise RecordingError(f"cannot write {path}")
    return path
