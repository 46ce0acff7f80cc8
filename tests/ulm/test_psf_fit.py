"""The joint PSF fit in IQ (``sonoedge.processing.psf_fit``) and its ``psf_fit`` option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing import psf_fit
from sonoedge.synth.imaging import Grid, Imager
from sonoedge.synth.microbubbles import BubbleParams
from sonoedge.synth.transducer import psf as transducer_psf

F0 = 7.6e6
LAM = 1540.0 / F0
SPACING = (LAM / 4, LAM / 4)
PARAMS = BubbleParams(center_frequency_hz=F0, f_number=1.5, n_cycles=2.0, pitch_m=0.75 * LAM)
GUIDE = {"bandwidth_fraction": 0.77, "f_number": 1.5, "n_cycles": 2.0, "pitch_wavelengths": 0.75}


def _psf() -> psf_fit.SeparablePsf:
    return psf_fit.psf_for(GUIDE, SPACING, LAM)


def _frame(
    positions_px: list[tuple[float, float]], phases: list[float], snr_db: float, seed: int = 0
) -> np.ndarray:
    """One 40 x 40 IQ frame of unit bubbles at ``positions_px`` (the simulator's imaging)
    plus complex noise ``snr_db`` below a bubble's peak power."""
    grid = Grid((40, 40), SPACING, (0.01, 0.0))
    imager = Imager(PARAMS.probe(), grid, f_number=1.5, n_cycles=2.0)
    z = [0.01 + p[0] * SPACING[0] for p in positions_px]
    x = [p[1] * SPACING[1] for p in positions_px]
    # the phase of each bubble's echo: move it by a fraction of the two-way wavelength
    z = [zi + ph / (2 * imager.k_rad_m) for zi, ph in zip(z, phases, strict=True)]
    truth = [((zi - 0.01) / SPACING[0], xi / SPACING[1]) for zi, xi in zip(z, x, strict=True)]
    iq = imager.render(np.asarray(z), np.asarray(x), np.ones(len(z)))
    peak = float(np.abs(imager.kernel).max())
    sigma = peak * 10 ** (-snr_db / 20) / np.sqrt(2)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((2, 40, 40)) * sigma
    return iq + noise[0] + 1j * noise[1], np.asarray(truth)


def _errors_wavelengths(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    d = np.hypot(*(found[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    return d.min(axis=0) * SPACING[0] / LAM


def test_the_fit_psf_is_the_transducer_psf() -> None:
    """At whole-pixel offsets the tabulated separable PSF equals the simulator's kernel (the
    pulse and beam of ``sonoedge.synth.transducer``), so the fit models what the probe images."""
    model = _psf()
    kernel = transducer_psf(PARAMS.probe(), SPACING, f_number=1.5, n_cycles=2.0)
    kh, kw = kernel.shape
    a, _, lat, _ = model.factors(np.array([kh // 2]), np.array([kw // 2]), kh, kw)
    np.testing.assert_allclose(np.outer(a[0], lat[0]), kernel, atol=2e-3)


def test_the_fit_localises_an_isolated_bubble_to_a_fiftieth_of_a_wavelength() -> None:
    frame, truth = _frame([(20.3, 19.6)], [0.4], snr_db=40.0)
    start = truth + np.array([[0.5, -0.4]])  # 0.16 lambda off
    fit = psf_fit.refine(frame, start, _psf())
    assert len(fit.positions_px) == 1
    assert _errors_wavelengths(fit.positions_px, truth)[0] < 0.02
    assert fit.sigma_m[0] < 0.01 * LAM  # alone, its uncertainty is its own
    assert fit.sigma_m[0] == pytest.approx(fit.sigma_alone_m[0], rel=0.05)


@pytest.mark.parametrize("phases", [[0.0, 0.0], [0.0, 2.0]])
def test_a_pair_seen_as_one_bubble_is_split_into_two(phases: list[float]) -> None:
    """Two bubbles half a wavelength apart laterally (the lateral PSF is 1.8 wavelengths wide):
    one detection between them becomes two bubbles near the true ones; the neighbour inflates
    each one's uncertainty."""
    frame, truth = _frame([(20.0, 18.0), (20.2, 20.0)], phases, snr_db=30.0, seed=1)
    start = truth.mean(axis=0, keepdims=True)
    fit = psf_fit.refine(frame, start, _psf())
    assert len(fit.positions_px) == 2
    assert _errors_wavelengths(fit.positions_px, truth).max() < 0.08
    assert np.all(fit.sigma_m > 1.5 * fit.sigma_alone_m)
    no_split = psf_fit.refine(frame, start, _psf(), split_rounds=0)
    assert len(no_split.positions_px) == 1


def test_a_residual_axial_carrier_is_removed_before_the_fit() -> None:
    """IQ demodulated with another convention turns by a phase per axial pixel (PyMUST's by
    about π per λ/4 pixel): the ramp is measured and removed, and the bubbles are found where
    they are found without it."""
    frame, truth = _frame([(12.3, 14.6), (26.0, 25.2)], [0.4, 1.0], snr_db=30.0, seed=3)
    turned = frame * np.exp(2.9j * np.arange(40))[:, None]
    model = _psf()
    assert psf_fit.carrier_rad_per_px(turned[None], model) == pytest.approx(2.9, abs=0.05)
    assert abs(psf_fit.carrier_rad_per_px(frame[None], model)) < 0.05
    start = [truth + 0.3]
    plain = psf_fit.refine_frames(frame[None], start, model)[0]
    found = psf_fit.refine_frames(turned[None], start, model)[0]
    assert len(found) == len(plain) == 2
    np.testing.assert_allclose(np.sort(found, axis=0), np.sort(plain, axis=0), atol=0.05)
    assert _errors_wavelengths(found, truth).max() < 0.03


def test_noise_alone_is_not_split() -> None:
    frame, truth = _frame([(20.3, 19.6)], [1.0], snr_db=20.0, seed=2)
    fit = psf_fit.refine(frame, truth, _psf())
    assert len(fit.positions_px) == 1


def test_reliable_keeps_precise_or_uncrowded_bubbles() -> None:
    fit = psf_fit.PsfFit(
        np.zeros((4, 2)),
        np.ones(4, complex),
        sigma_m=np.array([0.01, 0.2, 0.2, 0.03]),
        sigma_alone_m=np.array([0.001, 0.15, 0.05, 0.001]),
        noise_power=1.0,
    )
    assert fit.reliable(0.02, 1.5).tolist() == [True, True, False, False]


def test_bad_input_is_refused_and_empty_frames_give_empty_results() -> None:
    model = _psf()
    frame, truth = _frame([(20.3, 19.6)], [0.0], snr_db=30.0)
    with pytest.raises(DataError, match="complex IQ frame"):
        psf_fit.refine(np.abs(frame), truth, model)
    bad = frame.copy()
    bad[3, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        psf_fit.refine(bad, truth, model)
    with pytest.raises(DataError, match="at most 1000 bubbles per frame, got 1001"):
        psf_fit.refine(frame, np.zeros((1001, 2)), model)
    with pytest.raises(ConfigError, match="split_rounds"):
        psf_fit.refine(frame, truth, model, split_rounds=-1)
    with pytest.raises(ConfigError, match="needs the frames' f_number, n_cycles"):
        psf_fit.psf_for({"bandwidth_fraction": 0.7, "pitch_wavelengths": 1.0}, SPACING, LAM)
    with pytest.raises(ConfigError, match=r"bandwidth_fraction=-1\.0 is invalid"):
        psf_fit.psf_for({**GUIDE, "bandwidth_fraction": -1.0}, SPACING, LAM)
    with pytest.raises(ConfigError, match="max_sigma_inflation"):
        psf_fit.refine_frames(frame[None], [truth], model, max_sigma_inflation=-1)
    empty = psf_fit.refine_frames(np.zeros((2, 40, 40), complex), [np.zeros((0, 2))] * 2, model)
    assert [e.shape for e in empty] == [(0, 2), (0, 2)]


def test_psf_fit_lowers_the_error_of_the_guided_network_in_crowded_frames() -> None:
    """The shipped guided network on crowded validation sequences (30 dB, 0.15 bubbles/λ²):
    with ``psf_fit`` the localisation RMSE falls and the Jaccard index does not fall much."""
    from sonoedge.train import config as cfgmod
    from sonoedge.train import ulm as train_ulm
    from sonoedge.zoo import ulm as zu

    model = zu.load("ulm-localizer-pg", threads=1)
    cfg = cfgmod.merge(cfgmod.load("ulm"), model.card["provenance"]["config"])
    cfg["eval"]["n_frames"] = 3
    seqs = train_ulm.eval_sequences(cfg, 30.0, 0.15, salt=5, count=3)
    fns = {
        "network": train_ulm.localizer_fns(model, {}, ())["network"],
        "fit": train_ulm.psf_fit_fn(model),
    }
    scores = train_ulm.score_cell(fns, seqs)
    assert scores["fit"]["rmse_lambda"] < scores["network"]["rmse_lambda"] - 0.01
    assert scores["fit"]["jaccard"] > scores["network"]["jaccard"] - 0.05


def test_localize_with_psf_fit_needs_iq_and_the_psf_parameters() -> None:
    from sonoedge.zoo import ulm as zu

    model = zu.load("ulm-localizer-pg", threads=1)
    frame, _ = _frame([(20.3, 19.6)], [0.0], snr_db=30.0)
    with pytest.raises(DataError, match="psf_fit needs complex IQ frames"):
        model.localize(np.abs(frame), SPACING, LAM, params=GUIDE, psf_fit=True)
    blind = zu.load("ulm-localizer", threads=1)
    with pytest.raises(ConfigError, match="PSF fit needs the frames' bandwidth_fraction"):
        blind.localize(frame, SPACING, LAM, psf_fit=True)
    found = blind.localize(frame, SPACING, LAM, params=GUIDE, psf_fit=True)
    assert len(found) == 1 and len(found[0]) == 1


def test_ulm_cli_refines_with_psf_fit(tmp_path: Path) -> None:
    """``sonoedge ulm … -p psf_fit=true`` runs the fit on the clutter-filtered IQ; a bad value
    is refused with its name."""
    from sonoedge.cli import app
    from sonoedge.synth.microbubbles import simulate_bubbles

    params = BubbleParams(
        center_frequency_hz=F0,
        concentration_per_mm2=2.0,
        snr_db=30.0,
        clutter_db=-30.0,
        spacing_m=SPACING,
        n_cycles=2.0,
        pitch_m=0.75 * LAM,
    )
    b = simulate_bubbles(params, 8, 32, 32, seed=4)
    src = tmp_path / "mb.npz"
    np.savez(
        src,
        iq=b.iq,
        z_m=0.008 + np.arange(32) * SPACING[0],
        x_m=np.arange(32) * SPACING[1],
        prf_hz=500.0,
        center_frequency_hz=F0,
    )
    guide = [arg for k, v in GUIDE.items() for arg in ("-p", f"{k}={v}")]
    common = ["ulm", str(src), "-m", "ulm-localizer-pg", *guide]
    runner = CliRunner()
    out = tmp_path / "fit.npz"
    ok = runner.invoke(app, [*common, "-o", str(out), "-p", "psf_fit=true", "--no-progress"])
    assert ok.exit_code == 0, ok.output
    with np.load(out) as maps:
        assert maps["density"].sum() > 0
    bad = runner.invoke(app, [*common, "-o", str(tmp_path / "x.npz"), "-p", "psf_fit=maybe"])
    assert "psf_fit='maybe' is invalid" in str(bad.exception)
