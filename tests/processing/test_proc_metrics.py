import math

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.metrics import (
    cnr,
    dice,
    edge_fwhm,
    enl,
    false_bright_fraction,
    fwhm,
    gcnr,
    iou,
    localization_scores,
    mse,
    no_reference_scores,
    point_fwhm,
    psnr,
    snr,
    ssim,
    ulm_scores,
    vessel_scores,
)

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


def test_psnr_known_answer():
    ref = np.zeros((4, 4))
    test = ref + 0.1  # MSE 0.01 -> 20 dB with L = 1
    assert mse(ref, test) == pytest.approx(0.01)
    assert psnr(ref, test, data_range=1.0) == pytest.approx(20.0)
    assert psnr(ref, ref, data_range=1.0) == math.inf
    with pytest.raises(ConfigError, match="data_range"):
        psnr(ref, test)  # constant reference: range must be given
    with pytest.raises(DataError, match="shape"):
        psnr(ref, np.zeros((3, 4)), 1.0)


def test_ssim_known_answers():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32))
    assert ssim(img, img) == pytest.approx(1.0)
    # constant images: variances vanish, SSIM = (2 a b + C1) / (a^2 + b^2 + C1)
    a, b, peak = 0.2, 0.6, 1.0
    c1 = (0.01 * peak) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(np.full((16, 16), a), np.full((16, 16), b), data_range=peak)
    assert got == pytest.approx(expected, rel=1e-9)
    noisy = img + 0.3 * rng.standard_normal(img.shape)
    assert ssim(img, noisy) < 0.7


def test_contrast_metrics_known_answers():
    img = np.zeros((4, 4))
    img[:2] = [[1, 3, 1, 3], [1, 3, 1, 3]]  # mean 2, var 1
    img[2:] = [[4, 6, 4, 6], [4, 6, 4, 6]]  # mean 5, var 1
    top = np.zeros((4, 4), bool)
    top[:2] = True
    assert cnr(img, top, ~top) == pytest.approx(3 / math.sqrt(2))
    assert gcnr(img, top, ~top) == pytest.approx(1.0)  # disjoint histograms
    assert gcnr(img, top, top) == pytest.approx(0.0)
    assert enl(img, top) == pytest.approx(4.0)  # 2^2 / 1
    assert snr(img, ~top) == pytest.approx(5.0)  # 5 / 1


def test_speckle_statistics():
    rng = np.random.default_rng(1)
    env = np.abs(rng.standard_normal((256, 256)) + 1j * rng.standard_normal((256, 256)))
    every = np.ones(env.shape, bool)
    assert snr(env, every) == pytest.approx(1.91, abs=0.03)  # Rayleigh: sqrt(pi / (4 - pi))
    assert enl(env**2, every) == pytest.approx(1.0, abs=0.03)  # exponential intensity


def test_dice_iou_known():
    a = np.array([1, 1, 0, 0], bool)
    b = np.array([1, 0, 1, 0], bool)
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(1 / 3)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_vessel_scores_policies():
    truth = np.zeros((10, 10), bool)
    truth[:, 4:6] = True  # 20 % of the pixels
    power = np.where(truth, -5.0, -30.0) + np.linspace(0, 1, 100).reshape(10, 10)
    best = vessel_scores(power, truth, "best")
    assert best.dice == pytest.approx(1.0) and best.iou == pytest.approx(1.0)
    assert -30 + 1 < best.threshold <= -5 + 1
    fixed = vessel_scores(power, truth, "percentile", percentile=90.0)  # top 10 % only
    assert fixed.dice == pytest.approx(2 * 10 / (10 + 20), abs=0.05)
    assert fixed.iou == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ConfigError, match="policy"):
        vessel_scores(power, truth, "otsu")  # type: ignore[arg-type]


def test_fwhm_of_gaussian_and_edge():
    x = np.arange(-20, 21, dtype=float)
    sigma = 2.5
    assert fwhm(np.exp(-0.5 * (x / sigma) ** 2), 0.1) == pytest.approx(
        0.1 * FWHM_PER_SIGMA * sigma, rel=0.01
    )
    edge = np.array([0.5 * (1 + math.erf(v / (sigma * math.sqrt(2)))) for v in x])
    assert edge_fwhm(edge) == pytest.approx(FWHM_PER_SIGMA * sigma, rel=0.03)
    z, xx = np.mgrid[-15:16, -15:16].astype(float)
    spot = np.exp(-0.5 * ((z / 2.0) ** 2 + (xx / 3.0) ** 2))
    az, lat = point_fwhm(spot, (1e-4, 2e-4))
    assert az == pytest.approx(1e-4 * FWHM_PER_SIGMA * 2.0, rel=0.02)
    assert lat == pytest.approx(2e-4 * FWHM_PER_SIGMA * 3.0, rel=0.02)
    with pytest.raises(DataError, match="half"):
        fwhm(np.ones(10))


def test_localization_scores_known_counts():
    lam = 1e-4
    truth = [np.array([[0.0, 0.0], [1e-3, 1e-3], [2e-3, 0.0]]), np.zeros((0, 2))]
    est = [
        np.array([[0.2e-4, 0.0], [1e-3 + 0.4e-4, 1e-3], [5e-3, 5e-3]]),  # 0.2, 0.4 lambda, FP
        np.array([[0.0, 0.0]]),  # FP
    ]
    s = ulm_scores(est, truth, lam)
    tight, loose = s["0.25"], s["0.5"]
    assert (tight["tp"], tight["fp"], tight["fn"]) == (1, 3, 2)
    assert tight["rmse_lambda"] == pytest.approx(0.2)
    assert (loose["tp"], loose["fp"], loose["fn"]) == (2, 2, 1)
    assert loose["rmse_lambda"] == pytest.approx(math.sqrt((0.2**2 + 0.4**2) / 2))
    assert loose["jaccard"] == pytest.approx(2 / 5)
    assert loose["precision"] == pytest.approx(0.5)
    assert loose["recall"] == pytest.approx(2 / 3)


def test_localization_pairing_is_one_to_one():
    lam = 1.0
    truth = np.array([[0.0, 0.0], [0.0, 0.3]])
    est = np.array([[0.0, 0.1]])  # close to both: only one pair
    s = localization_scores(est, truth, lam, 0.5)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 0, 1)
    assert s["rmse_lambda"] == pytest.approx(0.1)


def test_no_reference_scores_see_noise_blur_and_dimmed_reflectors() -> None:
    """Real frames have no ground truth: the scores must tell added noise, lost edges and dimmed
    bright reflectors from the input, and refuse mismatched frames."""
    import cv2

    rng = np.random.default_rng(0)
    frame = np.zeros((128, 128), np.float32)
    frame[40:48, 30:90] = 0.95  # a bright reflector on a black background
    frame[90:, :] = 0.4 + 0.2 * ((np.arange(128) // 2) % 2)  # fine detail blur removes
    same = no_reference_scores(frame, frame)
    assert same["mean_abs_change"] == 0.0
    assert same["bright_targets_mean"] == pytest.approx(0.95, abs=1e-4)
    noisy = no_reference_scores(frame + rng.normal(0, 0.02, frame.shape).astype(np.float32), frame)
    assert noisy["noise_sigma"] > 10 * max(same["noise_sigma"], 1e-4)
    blurred = no_reference_scores(cv2.GaussianBlur(frame, (0, 0), 3.0), frame)
    assert blurred["mean_gradient"] < 0.5 * same["mean_gradient"]
    dimmed = no_reference_scores(frame * 0.9, frame)
    assert dimmed["bright_targets_mean"] == pytest.approx(0.855, abs=1e-4)
    assert dimmed["mean_abs_change"] > 0
    with pytest.raises(DataError, match="shape"):
        no_reference_scores(frame[:64], frame)


def test_false_bright_fraction_counts_structure_made_up_in_dark_regions() -> None:
    """A blob painted into an anechoic region counts; brightening tissue does not; stacks pool."""
    target = np.zeros((64, 64), np.float32)
    target[:, 32:] = 0.6  # tissue on the right, anechoic on the left (2048 dark pixels)
    assert false_bright_fraction(target, target) == 0.0
    out = target.copy()
    out[10:20, 5:15] = 0.8  # a made-up 10x10 blob in the dark half
    out[:, 40:] = 1.0  # tissue brightened: not made-up structure
    assert false_bright_fraction(out, target) == pytest.approx(100 / 2048)
    faint = target.copy()
    faint[10:20, 5:15] = 0.2  # below bright_above: a grey haze, not a structure
    assert false_bright_fraction(faint, target) == 0.0
    stack = false_bright_fraction(np.stack([out, target]), np.stack([target, target]))
    assert stack == pytest.approx(100 / 4096)
    assert math.isnan(false_bright_fraction(target[:, 32:], target[:, 32:]))  # nothing dark
    with pytest.raises(DataError, match="shape"):
        false_bright_fraction(out[:32], target)
    with pytest.raises(ConfigError, match="dark_below"):
        false_bright_fraction(out, target, dark_below=0.3, bright_above=0.2)
