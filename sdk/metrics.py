"""Image-quality and task metrics used by every sonoedge evaluation.

Each function states its formula. Masks are boolean arrays of the image's shape; images are
indexed ``[axial, lateral]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sonoedge.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]


def _pair(reference: npt.ArrayLike, test: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    ref = np.asarray(reference, dtype=np.float64)
    tst = np.asarray(test, dtype=np.float64)
    if ref.shape != tst.shape:
        raise DataError(f"images differ in shape: reference {ref.shape} vs test {tst.shape}")
    if ref.size == 0:
        raise DataError("images are empty")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(tst))):
        raise DataError("images contain NaN/Inf")
    return ref, tst


def _data_range(ref: FloatArray, data_range: float | None) -> float:
    value = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if not value > 0:
        raise ConfigError(
            f"data_range={value!r} is invalid: expected > 0",
            hint="pass data_range explicitly for a constant reference image",
        )
    return value


def _region(image: npt.ArrayLike, mask: npt.ArrayLike, name: str) -> FloatArray:
    img = np.asarray(image, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if m.shape != img.shape:
        raise DataError(f"{name} has shape {m.shape}: expected the image shape {img.shape}")
    if m.sum() < 2:
        raise DataError(f"{name} selects {int(m.sum())} pixel(s): expected at least 2")
    return img[m]


def mse(reference: npt.ArrayLike, test: npt.ArrayLike) -> float:
    """Mean squared error ``mean((x - y)^2)``."""
    ref, tst = _pair(reference, test)
    return float(np.mean((ref - tst) ** 2))


def psnr(reference: npt.ArrayLike, test: npt.ArrayLike, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(L^2 / MSE)`` in dB.

    ``L`` is ``data_range`` (default: the reference's max - min). Identical images give ``inf``.
    """
    ref, tst = _pair(reference, test)
    peak = _data_range(ref, data_range)
    err = float(np.mean((ref - tst) ** 2))
    return float("inf") if err == 0 else float(10 * np.log10(peak**2 / err))


def ssim(
    reference: npt.ArrayLike,
    test: npt.ArrayLike,
    data_range: float | None = None,
    sigma_px: float = 1.5,
) -> float:
    """Mean structural similarity (Wang et al. 2004) with an 11x11 Gaussian window (sigma 1.5).

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`` with
    local Gaussian-weighted means/variances, ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, averaged over
    all pixels (reflected borders).
    """
    import cv2

    ref, tst = _pair(reference, test)
    if ref.ndim != 2:
        raise DataError(f"ssim needs 2-D images, got shape {ref.shape}")
    peak = _data_range(ref, data_range)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    ksize = (11, 11)

    def blur(a: FloatArray) -> FloatArray:
        return np.asarray(cv2.GaussianBlur(a, ksize, sigma_px, borderType=cv2.BORDER_REFLECT))

    mu_x, mu_y = blur(ref), blur(tst)
    var_x = blur(ref * ref) - mu_x**2
    var_y = blur(tst * tst) - mu_y**2
    cov = blur(ref * tst) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def cnr(image: npt.ArrayLike, target: npt.ArrayLike, background: npt.ArrayLike) -> float:
    """Contrast-to-noise ratio ``|mu_t - mu_b| / sqrt(s_t^2 + s_b^2)`` over two regions."""
    t = _region(image, target, "target")
    b = _region(image, background, "background")
    denom = float(np.sqrt(t.var() + b.var()))
    diff = abs(float(t.mean() - b.mean()))
    if denom == 0:
        return float("inf") if diff > 0 else 0.0
    return diff / denom


def gcnr(
    image: npt.ArrayLike, target: npt.ArrayLike, background: npt.ArrayLike, bins: int = 256
) -> float:
    """Generalized CNR (Rodriguez-Molares et al. 2020): ``1 - sum_k min(p_t[k], p_b[k])``.

    ``p_t``, ``p_b`` are the two regions' normalised histograms on ``bins`` shared bins; 1 means the
    distributions do not overlap, 0 that they are identical.
    """
    t = _region(image, target, "target")
    b = _region(image, background, "background")
    if bins < 2:
        raise ConfigError(f"bins={bins!r} is invalid: expected >= 2")
    lo, hi = float(min(t.min(), b.min())), float(max(t.max(), b.max()))
    if hi == lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    pt = np.histogram(t, edges)[0] / t.size
    pb = np.histogram(b, edges)[0] / b.size
    return float(1.0 - np.minimum(pt, pb).sum())


def enl(image: npt.ArrayLike, region: npt.ArrayLike) -> float:
    """Equivalent number of looks ``mu^2 / s^2`` over a homogeneous region (intensity image)."""
    r = _region(image, region, "region")
    var = float(r.var())
    return float("inf") if var == 0 else float(r.mean() ** 2 / var)


def snr(image: npt.ArrayLike, region: npt.ArrayLike) -> float:
    """Speckle signal-to-noise ratio ``mu / s`` over a region (1.91 for fully developed speckle
    on the envelope)."""
    r = _region(image, region, "region")
    std = float(r.std())
    return float("inf") if std == 0 else float(r.mean() / std)


def dice(prediction: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Dice coefficient ``2 |A & B| / (|A| + |B|)`` of two boolean masks (1 when both empty)."""
    a, b = np.asarray(prediction, bool), np.asarray(truth, bool)
    if a.shape != b.shape:
        raise DataError(f"masks differ in shape: {a.shape} vs {b.shape}")
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def iou(prediction: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Intersection over union ``|A & B| / |A | B|`` of two boolean masks (1 when both empty)."""
    a, b = np.asarray(prediction, bool), np.asarray(truth, bool)
    if a.shape != b.shape:
        raise DataError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


@dataclass(frozen=True)
class SegmentationScore:
    """Dice and IoU of a thresholded map and the threshold that produced them."""

    dice: float
    iou: float
    threshold: float
    policy: str


def vessel_scores(
    power: npt.ArrayLike,
    vessel_mask: npt.ArrayLike,
    policy: Literal["best", "percentile"] = "best",
    percentile: float = 90.0,
) -> SegmentationScore:
    """Dice/IoU of a power-Doppler map thresholded into a vessel mask (``power >= T``).

    Threshold policies: ``"best"`` picks the ``T`` that maximises Dice against the truth (an upper
    bound, found exactly over all distinct values); ``"percentile"`` fixes ``T`` at the map's
    ``percentile``-th percentile (no access to the truth; ``100 - percentile`` % of pixels flagged).
    """
    p = np.asarray(power, dtype=np.float64)
    truth = np.asarray(vessel_mask, dtype=bool)
    if p.shape != truth.shape:
        raise DataError(f"power has shape {p.shape}: expected the mask shape {truth.shape}")
    if p.size == 0 or not np.all(np.isfinite(p)):
        raise DataError("power is empty or contains NaN/Inf")
    if policy == "percentile":
        if not 0 <= percentile <= 100:
            raise ConfigError(f"percentile={percentile!r} is invalid: expected 0..100")
        thr = float(np.percentile(p, percentile))
        pred = p >= thr
        return SegmentationScore(dice(pred, truth), iou(pred, truth), thr, "percentile")
    if policy != "best":
        raise ConfigError(f"policy={policy!r} is invalid: expected 'best' or 'percentile'")
    flat, t = p.ravel(), truth.ravel()
    order = np.argsort(-flat, kind="stable")
    values, hits = flat[order], t[order].astype(np.int64)
    last = np.r_[values[1:] != values[:-1], True]  # end of each run of equal values
    k = np.arange(1, flat.size + 1)[last]
    tp = np.cumsum(hits)[last]
    dices = 2 * tp / (k + t.sum())
    best = int(np.argmax(dices))
    thr = float(values[last][best])
    pred = p >= thr
    return SegmentationScore(dice(pred, truth), iou(pred, truth), thr, "best")


def no_reference_scores(image: npt.ArrayLike, reference: npt.ArrayLike) -> dict[str, float]:
    """Scores of a processed frame that has no ground truth, against its input ``reference``:
    estimated white-noise σ (Immerkaer), mean gradient magnitude (edge content), mean of the
    brightest 0.1 % of pixels (bright reflectors kept or dimmed) and the mean absolute change."""
    from sonoedge.processing.noise import noise_sigma

    ref, img = _pair(reference, image)
    gz, gx = np.gradient(img.astype(np.float64))
    top = np.sort(img.ravel())[-max(1, img.size // 1000) :]
    return {
        "noise_sigma": round(noise_sigma(img), 5),
        "mean_gradient": round(float(np.mean(np.hypot(gz, gx))), 6),
        "bright_targets_mean": round(float(top.mean()), 4),
        "mean_abs_change": round(float(np.mean(np.abs(img - ref))), 5),
    }


def false_bright_fraction(
    image: npt.ArrayLike,
    reference: npt.ArrayLike,
    dark_below: float = 0.05,
    bright_above: float = 0.25,
) -> float:
    """Fraction of the ``reference``'s dark pixels (below ``dark_below``: anechoic regions) that
    ``image`` shows brighter than ``bright_above``: structure a method made up. Images of any
    matching shape (a stack pools its frames); values on the [0, 1] display scale; nan when the
    reference has no dark pixel."""
    if not 0.0 <= dark_below < bright_above:
        raise ConfigError(
            f"dark_below = {dark_below}, bright_above = {bright_above}: expected "
            "0 <= dark_below < bright_above"
        )
    ref, img = _pair(reference, image)
    dark = ref < dark_below
    n_dark = int(dark.sum())
    return float(np.sum(img[dark] > bright_above) / n_dark) if n_dark else float("nan")


def fwhm(profile: npt.ArrayLike, spacing: float = 1.0) -> float:
    """Full width at half maximum of a 1-D peak: distance between the two linearly interpolated
    crossings of ``max/2`` on each side of the maximum, times ``spacing``."""
    y = np.asarray(profile, dtype=np.float64).ravel()
    if y.size < 3 or not np.all(np.isfinite(y)):
        raise DataError(f"profile has {y.size} finite-checked samples: expected >= 3 finite values")
    peak = int(np.argmax(y))
    half = y[peak] / 2.0
    below_left = np.nonzero(y[:peak] < half)[0]
    below_right = np.nonzero(y[peak:] < half)[0]
    if y[peak] <= 0 or below_left.size == 0 or below_right.size == 0:
        raise DataError("profile does not fall below half its maximum on both sides of the peak")
    i = int(below_left[-1])
    left = i + (half - y[i]) / (y[i + 1] - y[i])
    j = peak + int(below_right[0])
    right = (j - 1) + (y[j - 1] - half) / (y[j - 1] - y[j])
    return float((right - left) * spacing)


def point_fwhm(image: npt.ArrayLike, spacing_m: Sequence[float]) -> tuple[float, float]:
    """Axial and lateral FWHM (m) of a point target: :func:`fwhm` of the row and column through
    the brightest pixel."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise DataError(f"image has shape {img.shape}: expected 2-D")
    z, x = np.unravel_index(int(np.argmax(img)), img.shape)
    return fwhm(img[:, x], spacing_m[0]), fwhm(img[z, :], spacing_m[1])


def edge_fwhm(profile: npt.ArrayLike, spacing: float = 1.0) -> float:
    """Edge sharpness: FWHM of ``|d profile / dx|`` (the line-spread function of an edge
    profile); an error-function edge of width ``sigma`` gives ``2 sqrt(2 ln 2) sigma``."""
    y = np.asarray(profile, dtype=np.float64).ravel()
    return fwhm(np.abs(np.gradient(y)), spacing)


def _frames(points: Any) -> list[FloatArray]:
    if isinstance(points, np.ndarray) and points.ndim == 2:
        return [np.asarray(points, np.float64)]
    return [np.asarray(p, np.float64).reshape(-1, 2) for p in points]


def localization_scores(
    estimated_m: Any,
    truth_m: Any,
    wavelength_m: float,
    tolerance_lambda: float = 0.5,
) -> dict[str, float]:
    """ULM detection and localisation scores (PALA, Heiles et al. 2022) at one tolerance.

    Per frame, estimates and true positions (``(n, 2)`` arrays, metres) are paired one-to-one by
    the Hungarian method using only pairs closer than ``tolerance_lambda * wavelength``; pairs are
    true positives (TP), unpaired estimates false positives (FP), unpaired truths false negatives
    (FN), summed over frames. ``rmse_lambda = sqrt(mean |e - t|^2) / lambda`` over TP pairs;
    ``jaccard = TP / (TP + FP + FN)``, ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``.
    Pass one array or a sequence of per-frame arrays.
    """
    from sonoedge.processing.hungarian import match_within

    if not wavelength_m > 0 or not tolerance_lambda > 0:
        raise ConfigError("wavelength_m and tolerance_lambda must be > 0")
    est_frames, true_frames = _frames(estimated_m), _frames(truth_m)
    if len(est_frames) != len(true_frames):
        raise DataError(f"{len(est_frames)} estimated frame(s) vs {len(true_frames)} true frame(s)")
    tp = fp = fn = 0
    sq: list[FloatArray] = []
    for est, true in zip(est_frames, true_frames, strict=True):
        dist = np.linalg.norm(est[:, None, :] - true[None, :, :], axis=2)
        rows, cols = match_within(dist, tolerance_lambda * wavelength_m)
        tp += rows.size
        fp += est.shape[0] - rows.size
        fn += true.shape[0] - rows.size
        sq.append(dist[rows, cols] ** 2)
    errors = np.concatenate(sq) if sq else np.zeros(0)
    rmse = float(np.sqrt(errors.mean()) / wavelength_m) if errors.size else float("nan")
    return {
        "rmse_lambda": rmse,
        "jaccard": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
    }


def ulm_scores(
    estimated_m: Any,
    truth_m: Any,
    wavelength_m: float,
    tolerances_lambda: Sequence[float] = (0.25, 0.5),
) -> dict[str, dict[str, float]]:
    """:func:`localization_scores` at each pairing tolerance, keyed ``"0.25"``, ``"0.5"``..."""
    return {
        f"{tol:g}": localization_scores(estimated_m, truth_m, wavelength_m, tol)
        for tol in tolerances_lambda
    }
