"""PLUS toolkit sequence files (``.igs.mha``, ``.igs.nrrd``, ``.seq.nrrd``) and device-set configs.

A sequence file is one 3D image (``DimSize = cols rows frames``) whose header carries per-frame
fields named ``Seq_Frame0000_<Name>``: ``<From>To<To>Transform`` (16 numbers, row-major, mm),
``<...>TransformStatus`` (``OK``/``INVALID``), ``Timestamp`` (s) and the global
``UltrasoundImageOrientation`` (``MF``, ``MN``, ``UF``, ``UN``). MetaImage data may be zlib
compressed (``CompressedData = True``); NRRD data raw or gzip. Example::

    seq = read_sequence("NwirePhantomFreehand.igs.mha")
    probe_to_tracker, ok = seq.transforms("ProbeToTracker")
    config = read_plus_config("PlusDeviceSet.xml")
    image_to_probe = config.transform("Image", "Probe")
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, RecordingError

_MET_TYPES: dict[str, type[np.generic]] = {
    "MET_UCHAR": np.uint8,
    "MET_CHAR": np.int8,
    "MET_USHORT": np.uint16,
    "MET_SHORT": np.int16,
    "MET_UINT": np.uint32,
    "MET_INT": np.int32,
    "MET_FLOAT": np.float32,
    "MET_DOUBLE": np.float64,
}
_NRRD_TYPES: dict[str, type[np.generic]] = {
    "uchar": np.uint8,
    "unsigned char": np.uint8,
    "uint8": np.uint8,
    "uint8_t": np.uint8,
    "signed char": np.int8,
    "int8": np.int8,
    "int8_t": np.int8,
    "ushort": np.uint16,
    "unsigned short": np.uint16,
    "uint16": np.uint16,
    "short": np.int16,
    "int16": np.int16,
    "uint": np.uint32,
    "unsigned int": np.uint32,
    "uint32": np.uint32,
    "int": np.int32,
    "int32": np.int32,
    "float": np.float32,
    "double": np.float64,
}
_FRAME_KEY = re.compile(r"^Seq_Frame(\d+)_(.+)$")
ORIENTATIONS = ("MF", "MN", "UF", "UN")


@dataclass
class SequenceFile:
    """Frames ``[n, rows, cols]`` (or ``[n, rows, cols, comps]``) with per-frame PLUS fields."""

    frames: npt.NDArray[np.generic]
    frame_fields: list[dict[str, str]]
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.frame_fields)

    @property
    def image_orientation(self) -> str:
        """The two-letter ultrasound image orientation (``MF`` when the file says nothing)."""
        value = self.fields.get("UltrasoundImageOrientation", "MF").strip().upper()
        return value[:2] if value[:2] in ORIENTATIONS else "MF"

    @property
    def timestamps_s(self) -> npt.NDArray[np.float64]:
        """Per-frame ``Timestamp`` (frame index when a frame has none)."""
        out = np.arange(self.n_frames, dtype=np.float64)
        for i, ff in enumerate(self.frame_fields):
            if "Timestamp" in ff:
                try:
                    out[i] = float(ff["Timestamp"])
                except ValueError:
                    out[i] = np.nan
        return out

    def transform_names(self) -> list[str]:
        """Names of the per-frame transforms, without the ``Transform`` suffix."""
        names: set[str] = set()
        for ff in self.frame_fields:
            names.update(k[: -len("Transform")] for k in ff if k.endswith("Transform"))
        return sorted(names)

    def transforms(self, name: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Per-frame 4x4 matrices (mm) of ``<name>Transform`` and whether each is valid.

        A frame is invalid when the field is missing, unparsable, not finite, or its status is
        not ``OK``; its matrix is then the identity.
        """
        mats = np.tile(np.eye(4), (self.n_frames, 1, 1))
        valid = np.zeros(self.n_frames, dtype=bool)
        for i, ff in enumerate(self.frame_fields):
            text = ff.get(f"{name}Transform")
            status = ff.get(f"{name}TransformStatus", "OK").strip().upper()
            if text is None or status != "OK":
                continue
            try:
                values = np.array([float(v) for v in text.split()], dtype=np.float64)
            except ValueError:
                continue
            if values.size not in (12, 16) or not np.all(np.isfinite(values)):
                continue
            mats[i, : values.size // 4] = values.reshape(-1, 4)
            valid[i] = True
        return mats, valid


def frames_to_mf(frames: npt.NDArray[np.generic], orientation: str) -> npt.NDArray[np.generic]:
    """Flip frames ``[n, rows, cols, ...]`` from ``orientation`` into PLUS's ``MF`` orientation."""
    code = orientation.strip().upper()[:2]
    if code not in ORIENTATIONS:
        raise ConfigError(f"orientation={orientation!r} is invalid: expected one of {ORIENTATIONS}")
    out = frames
    if code[0] == "U":
        out = out[:, :, ::-1]
    if code[1] == "N":
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def read_sequence(path: str | Path) -> SequenceFile:
    """Read a PLUS sequence file (``.mha`` MetaImage or ``.nrrd``), checking every size."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RecordingError(f"cannot read sequence file {path}: {err.strerror}") from err
    if raw.startswith(b"NRRD"):
        return _read_nrrd(path, raw)
    if b"ElementDataFile" in raw[: 1 << 26] or path.suffix.lower() in (".mha", ".mhd"):
        return _read_mha(path, raw)
    raise RecordingError(
        f"{path} is not a PLUS sequence file",
        hint="expected a MetaImage (.igs.mha) or NRRD (.seq.nrrd) sequence",
    )


class FrameSample(NamedTuple):
    """Frames drawn from a sequence by :func:`sample_frames`."""

    frames: list[npt.NDArray[np.float32]]
    indices: list[int]
    origin_px: tuple[int, int]  # (row, column) of the crops' top-left corner in each frame


def sample_frames(path: str | Path, n_frames: int, crop_px: int) -> FrameSample:
    """``n_frames`` evenly spaced frames of a PLUS sequence (first component), as float32 in
    ``[0, 1]`` (8-bit divided by 255, others by their maximum), each cropped to its central
    ``crop_px`` square (or less, where the frame is smaller)."""
    frames = np.asarray(read_sequence(path).frames)
    if frames.ndim == 4:
        frames = frames[..., 0]
    picks = [int(i) for i in np.linspace(0, len(frames) - 1, n_frames).round()]
    h, w = frames.shape[1:]
    z0, x0 = max(0, (h - crop_px) // 2), max(0, (w - crop_px) // 2)
    scale = 255.0 if frames.dtype == np.uint8 else float(frames.max())
    out = [
        np.ascontiguousarray(frames[i, z0 : z0 + crop_px, x0 : x0 + crop_px], np.float32) / scale
        for i in picks
    ]
    return FrameSample(out, picks, (z0, x0))


def _split_fields(path: Path, header: dict[str, str]) -> tuple[dict[str, str], list[int], dict]:
    fields: dict[str, str] = {}
    per_frame: dict[int, dict[str, str]] = {}
    for key, value in header.items():
        m = _FRAME_KEY.match(key)
        if m:
            per_frame.setdefault(int(m.group(1)), {})[m.group(2)] = value.strip()
        else:
            fields[key] = value.strip()
    return fields, sorted(per_frame), per_frame


def _decode_pixels(
    path: Path,
    payload: bytes,
    dtype: type[np.generic],
    shape: tuple[int, ...],
    compression: str,
    big_endian: bool,
) -> npt.NDArray[np.generic]:
    try:
        if compression == "zlib":
            payload = zlib.decompress(payload)
        elif compression == "gzip":
            payload = gzip.decompress(payload)
    except (zlib.error, OSError, EOFError) as err:
        raise RecordingError(f"{path}: compressed pixel data is corrupt ({err})") from err
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(payload) < n_bytes:
        raise RecordingError(
            f"{path}: pixel data is truncated: {len(payload)} bytes, header says {n_bytes}"
        )
    dt = np.dtype(dtype).newbyteorder(">" if big_endian else "<")
    arr = np.frombuffer(payload, dtype=dt, count=int(np.prod(shape))).reshape(shape)
    return arr.astype(np.dtype(dtype), copy=False)


def _read_mha(path: Path, raw: bytes) -> SequenceFile:
    header: dict[str, str] = {}
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise RecordingError(f"{path}: MetaImage header has no ElementDataFile line")
        line = raw[pos:end].decode("latin-1").strip()
        pos = end + 1
        if not line:
            continue
        if "=" not in line:
            raise RecordingError(f"{path}: malformed MetaImage header line {line[:80]!r}")
        key, value = (s.strip() for s in line.split("=", 1))
        header[key] = value
        if key == "ElementDataFile":
            break
    if header["ElementDataFile"] != "LOCAL":
        raise RecordingError(f"{path}: only ElementDataFile = LOCAL sequence files are supported")
    try:
        dims = [int(v) for v in header.get("DimSize", "").split()]
        dtype = _MET_TYPES[header.get("ElementType", "MET_UCHAR")]
        comps = int(header.get("ElementNumberOfChannels", "1"))
    except (ValueError, KeyError) as err:
        raise RecordingError(f"{path}: bad DimSize/ElementType in header ({err})") from err
    if len(dims) != 3 or min(dims) < 0:
        raise RecordingError(f"{path}: DimSize {dims} is not a 3D sequence (cols rows frames)")
    fields, indices, per_frame = _split_fields(path, header)
    cols, rows, n = dims
    shape: tuple[int, ...] = (n, rows, cols) if comps == 1 else (n, rows, cols, comps)
    compressed = header.get("CompressedData", "False").lower() == "true"
    if compressed and "CompressedDataSize" in header:
        payload = raw[pos : pos + int(header["CompressedDataSize"])]
    else:
        payload = raw[pos:]
    big = header.get("BinaryDataByteOrderMSB", "False").lower() == "true"
    frames = _decode_pixels(path, payload, dtype, shape, "zlib" if compressed else "raw", big)
    return _assemble(path, frames, fields, indices, per_frame, n)


def _read_nrrd(path: Path, raw: bytes) -> SequenceFile:
    end = raw.find(b"\n\n")
    if end < 0:
        raise RecordingError(f"{path}: NRRD header has no end (blank line)")
    header: dict[str, str] = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if not line or line.startswith("#"):
            continue
        if ":=" in line:
            key, value = line.split(":=", 1)
        elif ": " in line:
            key, value = line.split(": ", 1)
        else:
            raise RecordingError(f"{path}: malformed NRRD header line {line[:80]!r}")
        header[key.strip()] = value.strip()
    try:
        sizes = [int(v) for v in header["sizes"].split()]
        dtype = _NRRD_TYPES[header["type"]]
    except (ValueError, KeyError) as err:
        raise RecordingError(f"{path}: bad sizes/type in NRRD header ({err})") from err
    kinds = header.get("kinds", "").split()
    if len(sizes) == 4 or (kinds and kinds[0] not in ("domain", "space")):
        comps, cols, rows, n = sizes if len(sizes) == 4 else (1, *sizes)
    elif len(sizes) == 3:
        comps, (cols, rows, n) = 1, sizes
    else:
        raise RecordingError(f"{path}: NRRD sizes {sizes} is not a 3D sequence")
    if "data file" in header or "datafile" in header:
        raise RecordingError(f"{path}: detached NRRD data files are not supported")
    encoding = header.get("encoding", "raw")
    if encoding not in ("raw", "gzip", "gz"):
        raise RecordingError(f"{path}: NRRD encoding {encoding!r} is not supported")
    fields, indices, per_frame = _split_fields(path, header)
    shape: tuple[int, ...] = (n, rows, cols) if comps == 1 else (n, rows, cols, comps)
    big = header.get("endian", "little") == "big"
    frames = _decode_pixels(
        path, raw[end + 2 :], dtype, shape, "raw" if encoding == "raw" else "gzip", big
    )
    for key in ("type", "dimension", "sizes", "kinds", "encoding", "endian", "space directions"):
        fields.pop(key, None)
    return _assemble(path, frames, fields, indices, per_frame, n)


def _assemble(
    path: Path,
    frames: npt.NDArray[np.generic],
    fields: dict[str, str],
    indices: list[int],
    per_frame: dict[int, dict[str, str]],
    n: int,
) -> SequenceFile:
    if indices and indices[-1] >= max(n, 1) and frames.size:
        raise RecordingError(f"{path}: field for frame {indices[-1]} but only {n} frames of data")
    n_records = max(n, indices[-1] + 1 if indices else 0)
    frame_fields = [per_frame.get(i, {}) for i in range(n_records)]
    return SequenceFile(frames=frames, frame_fields=frame_fields, fields=fields)


def write_sequence(path: str | Path, seq: SequenceFile, compress: bool = True) -> Path:
    """Write ``seq`` as PLUS does: MetaImage for ``.mha``, NRRD for ``.nrrd`` (zlib/gzip)."""
    path = Path(path)
    frames = np.ascontiguousarray(seq.frames)
    n = seq.n_frames
    if frames.ndim < 3 or frames.shape[0] != n:
        raise RecordingError(f"frames shape {frames.shape} does not match {n} frame records")
    rows, cols = frames.shape[1:3]
    comps = frames.shape[3] if frames.ndim == 4 else 1
    payload = frames.astype(frames.dtype.newbyteorder("<"), copy=False).tobytes()
    globals_ = {"UltrasoundImageOrientation": "MF", **seq.fields}
    per_frame = [
        (f"Seq_Frame{i:04d}_{k}", v) for i, ff in enumerate(seq.frame_fields) for k, v in ff.items()
    ]
    if path.suffix.lower() == ".nrrd":
        type_name = {np.dtype(v): k for k, v in _NRRD_TYPES.items() if "_" not in k}
        sizes = f"{cols} {rows} {n}" if comps == 1 else f"{comps} {cols} {rows} {n}"
        kinds = "domain domain list" if comps == 1 else "vector domain domain list"
        lines = [
            "NRRD0004",
            f"type: {type_name[frames.dtype]}",
            f"dimension: {3 if comps == 1 else 4}",
            f"sizes: {sizes}",
            f"kinds: {kinds}",
            "endian: little",
            f"encoding: {'gzip' if compress else 'raw'}",
        ]
        lines += [f"{k}:={v}" for k, v in globals_.items()]
        lines += [f"{k}:={v}" for k, v in per_frame]
        data = gzip.compress(payload, compresslevel=6, mtime=0) if compress else payload
        path.write_bytes(("\n".join(lines) + "\n\n").encode("latin-1") + data)
        return path
    met_type = {np.dtype(v): k for k, v in _MET_TYPES.items()}
    data = zlib.compress(payload, 6) if compress else payload
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "AnatomicalOrientation = RAI",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CenterOfRotation = 0 0 0",
        f"CompressedData = {compress}",
    ]
    if compress:
        lines.append(f"CompressedDataSize = {len(data)}")
    lines += [
        f"DimSize = {cols} {rows} {n}",
        "Kinds = domain domain list",
        "ElementSpacing = 1 1 1",
        f"ElementType = {met_type[frames.dtype]}",
        "Offset = 0 0 0",
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
    ]
    if comps != 1:
        lines.append(f"ElementNumberOfChannels = {comps}")
    lines += [f"{k} = {v}" for k, v in globals_.items()]
    lines += [f"{k} = {v}" for k, v in per_frame]
    lines.append("ElementDataFile = LOCAL")
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1") + data)
    return path


def format_matrix(matrix: npt.ArrayLike) -> str:
    """A 4x4 matrix as PLUS writes it in sequence files (16 numbers, row-major)."""
    return " ".join(f"{v:.9g}" for v in np.asarray(matrix, dtype=np.float64).reshape(16))


# --- device-set configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class ReconstructionConfig:
    """The ``VolumeReconstruction`` element of a PLUS device-set config (PLUS's defaults)."""

    image_frame: str = "Image"
    reference_frame: str = "Reference"
    output_spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output_origin_mm: tuple[float, float, float] | None = None
    output_extent: tuple[int, int, int, int, int, int] | None = None
    clip_rectangle_origin: tuple[int, int] = (0, 0)
    clip_rectangle_size: tuple[int, int] = (0, 0)
    fan_angles_deg: tuple[float, float] | None = None
    fan_origin_px: tuple[float, float] = (0.0, 0.0)
    fan_radius_start_px: float = 0.0
    fan_radius_stop_px: float = 0.0
    interpolation: str = "NEAREST_NEIGHBOR"
    compounding: str = "MEAN"
    fill_holes: bool = False
    hole_filling: tuple[dict[str, str], ...] = ()
    pixel_rejection_threshold: float | None = None


@dataclass(frozen=True)
class PlusConfig:
    """Coordinate definitions and volume reconstruction settings of a PLUS device-set config."""

    transforms: dict[tuple[str, str], npt.NDArray[np.float64]]
    reconstruction: ReconstructionConfig | None
    path: Path | None = None

    def transform(self, from_frame: str, to_frame: str) -> npt.NDArray[np.float64]:
        """The static ``<from>To<to>`` matrix (mm), or ConfigError naming what is missing."""
        if (from_frame, to_frame) in self.transforms:
            return self.transforms[(from_frame, to_frame)]
        if (to_frame, from_frame) in self.transforms:
            return np.asarray(np.linalg.inv(self.transforms[(to_frame, from_frame)]), np.float64)
        raise ConfigError(
            f"{self.path or 'config'} has no {from_frame}To{to_frame} transform",
            hint=f'add <Transform From="{from_frame}" To="{to_frame}" Matrix="..."/> '
            "to CoordinateDefinitions",
        )


def _numbers(text: str | None, count: int, what: str, path: Path) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError as err:
        raise ConfigError(f"{path}: {what}={text!r} is not {count} numbers") from err
    if len(values) != count or not all(np.isfinite(values)):
        raise ConfigError(f"{path}: {what}={text!r} is not {count} finite numbers")
    return values


def read_plus_config(path: str | Path, require_reconstruction: bool = True) -> PlusConfig:
    """Read ``CoordinateDefinitions`` transforms and the ``VolumeReconstruction`` element."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise ConfigError(f"cannot read PLUS config {path}: {err}") from err
    transforms: dict[tuple[str, str], npt.NDArray[np.float64]] = {}
    for el in root.iter("Transform"):
        src, dst = el.get("From"), el.get("To")
        values = _numbers(el.get("Matrix"), 16, f"Transform {src}To{dst} Matrix", path)
        if src and dst and values is not None:
            transforms[(src, dst)] = np.array(values).reshape(4, 4)
    recon = root.find(".//VolumeReconstruction")
    if recon is None:
        if require_reconstruction:
            raise ConfigError(
                f"{path} has no VolumeReconstruction element",
                hint="add <VolumeReconstruction OutputSpacing=... ClipRectangleOrigin=.../>",
            )
        return PlusConfig(transforms, None, path)
    return PlusConfig(transforms, _reconstruction(recon, path), path)


def _extent6(values: tuple[float, ...]) -> tuple[int, int, int, int, int, int]:
    e = [int(v) for v in values]
    return e[0], e[1], e[2], e[3], e[4], e[5]


def _reconstruction(el: ET.Element, path: Path) -> ReconstructionConfig:
    a = el.attrib
    spacing = _numbers(a.get("OutputSpacing"), 3, "OutputSpacing", path)
    if spacing is None:
        raise ConfigError(f"{path}: VolumeReconstruction has no OutputSpacing (mm)")
    if min(spacing) <= 0:
        raise ConfigError(f"{path}: OutputSpacing={spacing} must be > 0 mm")
    origin = _numbers(a.get("OutputOrigin"), 3, "OutputOrigin", path)
    extent = _numbers(a.get("OutputExtent"), 6, "OutputExtent", path)
    clip_o = _numbers(a.get("ClipRectangleOrigin"), 2, "ClipRectangleOrigin", path) or (0, 0)
    clip_s = _numbers(a.get("ClipRectangleSize"), 2, "ClipRectangleSize", path) or (0, 0)
    fan = _numbers(a.get("FanAnglesDeg", a.get("FanAngles")), 2, "FanAnglesDeg", path)
    fan_o = _numbers(a.get("FanOriginPixel", a.get("FanOrigin")), 2, "FanOriginPixel", path)
    r_start = _numbers(a.get("FanRadiusStartPixel"), 1, "FanRadiusStartPixel", path)
    r_stop = _numbers(a.get("FanRadiusStopPixel", a.get("FanDepth")), 1, "FanRadiusStopPixel", path)
    interp = a.get("Interpolation", "NEAREST_NEIGHBOR").upper()
    if interp not in ("NEAREST_NEIGHBOR", "LINEAR"):
        raise ConfigError(f"{path}: Interpolation={interp!r}: expected NEAREST_NEIGHBOR or LINEAR")
    mode = a.get("CompoundingMode")
    if mode is None:  # older PLUS configs: Calculation + Compounding
        mode = "MAXIMUM" if a.get("Calculation", "").upper() == "MAXIMUM" else "MEAN"
        if a.get("Compounding", "ON").upper() == "OFF" and "Calculation" not in a:
            mode = "LATEST"
    mode = mode.upper()
    if mode not in ("MEAN", "MAXIMUM", "LATEST", "IMPORTANCE_MASK"):
        raise ConfigError(
            f"{path}: CompoundingMode={mode!r}: expected MEAN, MAXIMUM, LATEST or IMPORTANCE_MASK"
        )
    holes = tuple(dict(h.attrib) for h in el.iter("HoleFillingElement"))
    threshold = _numbers(a.get("PixelRejectionThreshold"), 1, "PixelRejectionThreshold", path)
    return ReconstructionConfig(
        image_frame=a.get("ImageCoordinateFrame", "Image"),
        reference_frame=a.get("ReferenceCoordinateFrame", "Reference"),
        output_spacing_mm=(spacing[0], spacing[1], spacing[2]),
        output_origin_mm=None if origin is None else (origin[0], origin[1], origin[2]),
        output_extent=None if extent is None else _extent6(extent),
        clip_rectangle_origin=(int(clip_o[0]), int(clip_o[1])),
        clip_rectangle_size=(int(clip_s[0]), int(clip_s[1])),
        fan_angles_deg=None if fan is None else (fan[0], fan[1]),
        fan_origin_px=(0.0, 0.0) if fan_o is None else (fan_o[0], fan_o[1]),
        fan_radius_start_px=0.0 if r_start is None else r_start[0],
        fan_radius_stop_px=0.0 if r_stop is None else r_stop[0],
        interpolation=interp,
        compounding=mode,
        fill_holes=a.get("FillHoles", "OFF").upper() == "ON",
        hole_filling=holes,
        pixel_rejection_threshold=None if threshold is None else threshold[0],
    )
