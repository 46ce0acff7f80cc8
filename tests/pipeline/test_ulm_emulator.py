"""The virtual probe's ULM preset: microbubbles on a grid fine enough for localisation, and the
``ulm`` / ``ulm_student`` / ``ulm_guided`` pipeline presets running live on it end to end."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonoedge import open_probe
from sonoedge.errors import ConfigError
from sonoedge.firmware_bridge.virtual_probe import EmulatorConfig, VirtualProbe
from sonoedge.pipeline import Pipeline
from sonoedge.processing.ulm import UlmResult
from sonoedge.synth.live import LiveBubbleScene
from sonoedge.types import IQEnsemble, ProbeInfo

SMALL = "iq_shape=64x64&ensemble_rate_hz=4"


def _first_ensemble(cfg: EmulatorConfig) -> IQEnsemble:
    from sonoedge.firmware_bridge.decoder import Decoder
    from sonoedge.firmware_bridge.payloads import decode

    vp = VirtualProbe(cfg)
    vp._start(0.0)
    decoder = Decoder()
    for t in np.arange(0.0, 2.0, 0.05):
        for raw in vp.poll(float(t)):
            for msg in decoder.feed(raw):
                obj = decode(msg, 0.0)
                if isinstance(obj, IQEnsemble):
                    return obj
    raise AssertionError("the virtual probe sent no ensemble in 2 s")


def test_ulm_preset_streams_bubble_ensembles_on_a_sub_half_wavelength_grid() -> None:
    cfg = EmulatorConfig.from_preset("ulm", iq_shape=(32, 32))
    assert cfg.mode == "doppler" and cfg.scene == "bubbles"
    ens = _first_ensemble(cfg)
    wavelength = 1540.0 / cfg.info.center_frequency_hz
    # the network localiser refuses pixels coarser than one wavelength; ULM wants <= λ/2
    assert max(ens.spacing_m) <= wavelength / 2
    assert ens.iq.shape == (cfg.ensemble_frames, 32, 32) and ens.iq.dtype == np.complex64
    assert ens.grid == "cartesian" and ens.prf_hz == cfg.prf_hz


def test_the_tissue_doppler_preset_is_too_coarse_for_the_localiser() -> None:
    """Why the ULM preset exists: the Doppler preset's pixels exceed one wavelength."""
    ens = _first_ensemble(EmulatorConfig.from_preset("doppler", iq_shape=(32, 32)))
    assert max(ens.spacing_m) > 1540.0 / ProbeInfo().center_frequency_hz


def test_bubble_scene_is_repeatable_and_its_bubbles_lie_in_vessels() -> None:
    a = LiveBubbleScene(ProbeInfo(), seed=3, height=48, width=48)
    b = LiveBubbleScene(ProbeInfo(), seed=3, height=48, width=48)
    np.testing.assert_array_equal(a.iq_ensemble(0.5, 4, 1000.0), b.iq_ensemble(0.5, 4, 1000.0))
    pos = a.bubbles(0.5)
    assert len(pos) > 0
    px = np.rint((pos - np.asarray(a.origin_m)) / np.asarray(a.spacing_m)).astype(int)
    mask = cv2.dilate(a.vessel_mask().astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert mask[px[:, 0], px[:, 1]].mean() > 0.95


@pytest.mark.parametrize(
    ("url_option", "match"),
    [
        ("bubble_pixels_per_wavelength=1", "half a wavelength"),
        ("scene=ocean", "unknown"),
        ("bubble_snr_db=200", "snr_db"),
    ],
)
def test_bad_bubble_options_fail_when_the_probe_is_opened(url_option: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_probe(f"emulator://?preset=ulm&{url_option}")


@pytest.mark.parametrize("preset", ["ulm", "ulm_student", "ulm_guided"])
def test_ulm_pipelines_run_live_on_the_virtual_probe(preset: str) -> None:
    """Four maps from the live stream; the 30 s bound only guards against a hang (how fast it
    runs is the benchmarks' business: a loaded 2-core machine made 2 maps in 2.5 s)."""
    results = []
    with (
        open_probe(f"emulator://?preset=ulm&{SMALL}") as probe,
        Pipeline.from_preset(preset) as pipe,
    ):
        for r in pipe.run(probe, seconds=30.0):
            if r.processed:
                results.append(r)
            if len(results) == 4:
                break
    assert len(results) == 4, f"only {len(results)} ULM maps in 30 s"
    assert all(r.error is None for r in results), [r.error for r in results]
    res = results[-1].outputs["ulm_result"]
    assert isinstance(res, UlmResult)
    assert np.isfinite(results[-1].image).all() and float(results[-1].image.sum()) > 0
    # the localisations fall on the scene's vessels (same seed, probe and grid as the emulator)
    scene = LiveBubbleScene(ProbeInfo(), seed=0, height=64, width=64)
    assert res.spacing_m[0] < scene.spacing_m[0]  # maps on the λ/10 grid
    # tracked density (what ULM shows): on the vessels, not on noise or residual clutter
    mask = cv2.dilate(scene.vessel_mask().astype(np.uint8), np.ones((5, 5), np.uint8))
    density = np.sum([r.image for r in results], axis=0)
    up = cv2.resize(mask, density.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert float((density * up).sum() / density.sum()) > 0.85
