"""``sonoedge ulm``: ultrasound localisation microscopy maps from IQ ensembles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

DEFAULT_METHOD = "ulm-localizer"
OUTPUT_SUFFIXES = (".h5", ".hdf5", ".npz")


def ulm(
    input_path: Path = typer.Argument(
        ...,
        metavar="INPUT",
        help="IQ ensembles: a .h5 recording, or .npz/.npy with `iq` (N, H, W) complex.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Maps file: .h5 or .npz (a .png picture is written beside it)."
    ),
    method: str = typer.Option(
        DEFAULT_METHOD,
        "--method",
        "-m",
        help="Localiser: ulm-localizer (network), ulm-localizer-pg (network given the "
        "transducer and pulse: -p bandwidth_fraction, f_number, n_cycles, pitch_wavelengths; "
        "a recording gives the first and last), weighted_centroid, radial_symmetry, "
        "gaussian_fit, or any 'ulm' method of `sonoedge process --method list`.",
    ),
    svd_low: int | None = typer.Option(
        None, "--svd-low", help="SVD clutter filter: singular values removed (0: no filter)."
    ),
    prf_hz: float | None = typer.Option(
        None, "--prf-hz", help="Frame rate of the ensembles, when the input does not say."
    ),
    center_frequency_hz: float | None = typer.Option(
        None, "--center-frequency-hz", help="Probe centre frequency, when the input does not say."
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="Method parameter KEY=VALUE (repeatable): e.g. threshold=0.6 (network), "
        "threshold_db=-15 (conventional), min_track_length=3, grid_fraction=10, "
        "smoothing_window=2 (refine each track by a line through its points within 2 frames), "
        "psf_fit=true (network: refine the bubbles by a joint fit of coherent PSFs to the IQ, "
        "split pairs seen as one, keep the well-determined ones; needs bandwidth_fraction, "
        "f_number, n_cycles, pitch_wavelengths; seconds per crowded frame).",
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Localise microbubbles, track them and render density and velocity maps (lambda/10 grid).

    Each IQ ensemble is SVD clutter filtered, bubbles are localised (by the shipped network or a
    conventional localiser), linked into tracks (Hungarian) and rendered; maps of all ensembles
    of a recording add up. OUT gets `density` (tracks per pixel), `speed_m_s`,
    `axial_velocity_m_s`, pixel coordinates `z_m`/`x_m` and the settings; OUT.png shows the
    density and axial velocity.

    \b
    Examples:
      sonoedge ulm rec.h5 -o maps.h5
      sonoedge ulm scan.npz -o maps.npz --method weighted_centroid -p threshold_db=-15
      sonoedge ulm scan.npz -o maps.h5 --prf-hz 1000 --center-frequency-hz 15.6e6 --svd-low 4
      sonoedge ulm rec.h5 -o maps.h5 -m ulm-localizer-pg -p f_number=1.5 -p n_cycles=2
      sonoedge ulm rec.h5 -o maps.h5 -m ulm-localizer-pg -p f_number=1.5 -p n_cycles=2 \
          -p psf_fit=true
    """
    import numpy as np
    from rich.progress import Progress

    from sonoedge.cli.process import _parse_params
    from sonoedge.errors import ConfigError, DataError
    from sonoedge.processing import registry
    from sonoedge.processing.apply import check_params
    from sonoedge.processing.files import read_input
    from sonoedge.processing.localization import LOCALIZERS
    from sonoedge.processing.ulm import ulm as conventional_ulm
    from sonoedge.types import SPEED_OF_SOUND_M_S

    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"--out {out} has suffix {out.suffix!r}: expected .h5 or .npz")
    fn = registry.get_method("ulm", method, load=True)  # a shipped model loads (or fails) now
    params = _parse_params(param)
    if method in LOCALIZERS:  # the conventional methods pass their options to ulm()
        check_params(conventional_ulm, params, method)
    for name, value in (("--prf-hz", prf_hz), ("--center-frequency-hz", center_frequency_hz)):
        if value is not None and not value > 0:
            raise ConfigError(f"{name} {value!r} is invalid: expected > 0")
    source = read_input(input_path, "ulm")
    if source.kind != "iq":
        raise DataError(f"{input_path} holds images: ULM needs complex IQ ensembles ('iq')")
    f0 = center_frequency_hz or source.center_frequency_hz
    if f0 is None:
        raise DataError(
            f"{input_path} does not give the probe's centre frequency",
            hint="pass --center-frequency-hz (or store center_frequency_hz in the NPZ)",
        )
    wavelength = SPEED_OF_SOUND_M_S / float(f0)
    _guide_parameters(fn, params, source.probe, wavelength, method)
    total: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    n_frames = n_locs = n_tracks = 0
    with Progress(transient=True, disable=no_progress or source.count < 2) as progress:
        task = progress.add_task(f"ulm ({method})", total=source.count)
        for item in source.items():
            data = np.asarray(item.data)
            if not np.iscomplexobj(data) or data.ndim != 3:
                raise DataError(
                    f"ULM needs complex IQ ensembles (N, H, W), got {data.dtype} {data.shape}"
                )
            prf = prf_hz or item.prf_hz
            if item.spacing_m is None or not prf:
                missing = [n for n, v in (("x_m/z_m", item.spacing_m), ("prf_hz", prf)) if not v]
                raise DataError(
                    f"{input_path} does not give {', '.join(missing)}",
                    hint="store x_m/z_m pixel coordinates in the NPZ; pass --prf-hz",
                )
            if item.grid != "cartesian":
                raise DataError("ULM needs Cartesian (linear-array) IQ data")
            opts = {"origin_m": tuple(item.origin_m), **params}
            res = fn(data, item.spacing_m, wavelength, prf, svd_low=svd_low, **opts)
            _accumulate(total, meta, res)
            n_frames += data.shape[0]
            n_locs += sum(len(p) for p in res.localizations_m)
            n_tracks += len(res.tracks_m)
            progress.advance(task)
    maps = _finish(total)
    info = {
        "method": method,
        "wavelength_m": wavelength,
        "center_frequency_hz": float(f0),
        "n_ensembles": source.count,
        "n_frames": n_frames,
        "n_localizations": n_locs,
        "n_tracks": n_tracks,
        **meta,
    }
    _write(out, maps, info)
    picture = _picture(out.with_suffix(".png"), maps)
    typer.echo(
        f"ulm/{method}: {n_frames} frames, {n_locs} localisations, {n_tracks} tracks -> density "
        f"{tuple(maps['density'].shape)} on a {meta['spacing_m'][0] * 1e6:.1f} um grid: {out}, "
        f"{picture}"
    )


def _guide_parameters(
    fn: Any, params: dict[str, Any], probe: Any, wavelength_m: float, method: str
) -> None:
    """A network localiser's parameters: the recording's probe gives the bandwidth and the pitch
    unless ``-p`` does (a blind network checks them against its trained box); a physics-guided
    one needs the rest from ``-p`` (a clear error names them)."""
    from sonoedge.errors import ConfigError
    from sonoedge.zoo.ulm import probe_guide

    if not hasattr(fn, "param_names"):  # not a network localiser
        return
    names = fn.param_names
    params.update(probe_guide(params, probe, wavelength_m))
    missing = [n for n in names if n not in params]
    if missing:
        raise ConfigError(
            f"{method} is physics-guided and needs the frames' {', '.join(missing)}",
            hint=" ".join(f"-p {n}=VALUE" for n in missing)
            + " (or use --method ulm-localizer, which needs none)",
        )


def _accumulate(total: dict[str, Any], meta: dict[str, Any], res: Any) -> None:
    import numpy as np

    from sonoedge.errors import DataError

    if not total:
        meta["spacing_m"] = tuple(float(v) for v in res.spacing_m)
        meta["origin_m"] = tuple(float(v) for v in res.origin_m)
        total["density"] = np.zeros_like(res.density, np.float64)
        total["speed_sum"] = np.zeros_like(res.density, np.float64)
        total["vz_sum"] = np.zeros_like(res.density, np.float64)
    if res.density.shape != total["density"].shape or not np.allclose(
        res.origin_m, meta["origin_m"]
    ):
        raise DataError("the ensembles of this input are on different grids: map them separately")
    total["density"] += res.density
    total["speed_sum"] += res.speed_m_s * res.density
    total["vz_sum"] += res.axial_velocity_m_s * res.density


def _finish(total: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    d = total["density"]
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.where(d > 0, total["speed_sum"] / d, 0.0)
        vz = np.where(d > 0, total["vz_sum"] / d, 0.0)
    return {
        "density": d.astype(np.float32),
        "speed_m_s": speed.astype(np.float32),
        "axial_velocity_m_s": vz.astype(np.float32),
    }


def _write(path: Path, maps: dict[str, Any], info: dict[str, Any]) -> None:
    import numpy as np

    from sonoedge.errors import DataError

    (nz, nx), (dz, dx), (z0, x0) = maps["density"].shape, info["spacing_m"], info["origin_m"]
    coords = {"z_m": z0 + np.arange(nz) * dz, "x_m": x0 + np.arange(nx) * dx}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.suffix.lower() == ".npz":
            content: dict[str, Any] = {**maps, **coords}
            content.update({k: np.asarray(v) for k, v in info.items()})
            np.savez_compressed(path, allow_pickle=False, **content)
            return
        import h5py

        with h5py.File(path, "w") as f:
            for key, arr in {**maps, **coords}.items():
                f.create_dataset(key, data=arr, compression="gzip" if arr.ndim == 2 else None)
            for key, value in info.items():
                f.attrs[key] = value
    except OSError as err:
        raise DataError(f"could not write {path}: {err}") from None


def _picture(path: Path, maps: dict[str, Any]) -> Path:
    """Density (log-compressed, hot) beside axial velocity (blue away, red towards the probe)."""
    import cv2
    import numpy as np

    d = maps["density"].astype(np.float64)
    dens = np.log1p(d) / max(float(np.log1p(d.max())), 1e-9)
    vz = maps["axial_velocity_m_s"].astype(np.float64)
    vmax = max(float(np.abs(vz).max()), 1e-12)
    hot = cv2.applyColorMap(np.round(dens * 255).astype(np.uint8), cv2.COLORMAP_HOT)
    vel = cv2.applyColorMap(np.round((vz / vmax + 1) * 127.5).astype(np.uint8), cv2.COLORMAP_JET)
    vel[d <= 0] = 0
    scale = max(1, 256 // max(d.shape))
    pair = cv2.hconcat([hot, np.zeros((d.shape[0], 4, 3), np.uint8), vel])
    if scale > 1:
        pair = cv2.resize(pair, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), pair)
    return path
