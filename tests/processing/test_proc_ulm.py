import itertools

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing.hungarian import linear_sum_assignment, match_within
from sonoedge.processing.localization import LOCALIZERS, detect_peaks
from sonoedge.processing.tracking import link_tracks, smooth_tracks
from sonoedge.processing.ulm import render_maps, ulm, ulm_from_localizations


def _brute_force(cost):
    n, m = cost.shape
    if n <= m:
        return min(
            sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n)
        )
    return min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))


def test_hungarian_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(150):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        cost = rng.integers(0, 20, (n, m)).astype(float)
        rows, cols = linear_sum_assignment(cost)
        assert len(rows) == min(n, m)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force(cost))


def test_hungarian_edge_cases():
    rows, cols = linear_sum_assignment(np.zeros((0, 3)))
    assert rows.size == cols.size == 0
    rows, cols = linear_sum_assignment([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    assert rows.tolist() == [0, 1, 2] and cols.tolist() == [1, 0, 2]  # classic, total 5
    with pytest.raises(DataError, match="NaN"):
        linear_sum_assignment([[np.inf]])


def test_match_within_prefers_more_pairs():
    d = np.array([[0.1, 0.5], [0.2, 5.0]])
    rows, cols = match_within(d, 1.0)  # (0,1),(1,0): two pairs beat the single closest one
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    rows, _ = match_within(d, 0.05)
    assert rows.size == 0


def _spots(shape, centres, sigma=(1.2, 1.0)):
    z, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    img = np.zeros(shape)
    for cz, cx in centres:
        img += np.exp(-0.5 * (((z - cz) / sigma[0]) ** 2 + ((x - cx) / sigma[1]) ** 2))
    return img


TRUE = np.array([[10.3, 12.7], [20.6, 5.2], [15.45, 25.1]])


@pytest.mark.parametrize(
    ("name", "tol"), [("gaussian_fit", 1e-6), ("radial_symmetry", 0.08), ("weighted_centroid", 0.1)]
)
def test_localizers_sub_pixel_known_answer(name, tol):
    img = _spots((32, 32), TRUE)
    peaks = detect_peaks(img, -20.0, window_px=5)
    assert len(peaks) == 3
    est = LOCALIZERS[name](img, peaks, 5)
    order = np.argsort(est[:, 0])
    np.testing.assert_allclose(est[order], TRUE[np.argsort(TRUE[:, 0])], atol=tol)


def test_detect_peaks_threshold_plateau_and_limit():
    img = np.zeros((12, 12))
    img[5, 5] = img[5, 6] = 1.0  # plateau: one peak
    img[9, 2] = 0.05  # -26 dB
    assert detect_peaks(img, -20.0, window_px=3).tolist() == [[5, 5]]
    assert len(detect_peaks(img, -30.0, window_px=3)) == 2
    assert len(detect_peaks(img, -30.0, max_peaks=1, window_px=3)) == 1
    assert detect_peaks(np.zeros((8, 8))).shape == (0, 2)


def test_link_tracks_distance_and_length():
    frames = [
        np.array([[0.0, 0.0], [10.0, 10.0]]),
        np.array([[10.5, 10.0], [0.5, 0.0]]),
        np.array([[1.0, 0.0], [30.0, 30.0]]),  # second bubble jumps too far: its track ends
        np.array([[1.5, 0.0], [np.nan, np.nan]]),
    ]
    tracks = link_tracks(frames, max_linking_distance=1.0, min_track_length=2)
    assert len(tracks) == 2
    np.testing.assert_allclose(tracks[0][:, 1], [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(tracks[0][:, 0], [0, 1, 2, 3])
    np.testing.assert_allclose(tracks[1][:, 1:], [[10.0, 10.0], [10.5, 10.0]])
    assert len(link_tracks(frames, 1.0, min_track_length=3)) == 1


def test_smoothing_tracks_lowers_the_error_of_noisy_localisations():
    rng = np.random.default_rng(0)
    t = np.arange(30.0)
    truth = np.stack([t, 5.0 + 0.3 * t, 2.0 - 0.1 * t], axis=1)  # straight, uniform motion
    noisy = truth.copy()
    noisy[:, 1:] += 0.2 * rng.standard_normal((30, 2))
    short = np.array([[0.0, 1.0, 1.0], [1.0, 9.0, 9.0]])
    smoothed, kept = smooth_tracks([noisy, short], window_frames=2)
    err = np.sqrt(np.mean((noisy[:, 1:] - truth[:, 1:]) ** 2))
    err_smoothed = np.sqrt(np.mean((smoothed[:, 1:] - truth[:, 1:]) ** 2))
    assert err_smoothed < 0.65 * err  # 5-point line fits: about 1/sqrt(5) of the noise inside
    np.testing.assert_array_equal(smoothed[:, 0], t)  # frames unchanged
    np.testing.assert_array_equal(kept, short)  # under 3 points: as it was
    exact = smooth_tracks([truth], 3)[0]
    np.testing.assert_allclose(exact, truth, atol=1e-9)  # a line stays the line
    with pytest.raises(ConfigError, match="window_frames"):
        smooth_tracks([truth], 0)


def test_ulm_maps_from_smoothed_tracks():
    rng = np.random.default_rng(1)
    locs = [np.array([[1e-3 + 2e-6 * k, 1e-3 + 1e-5 * k]]) + 3e-6 * rng.standard_normal((1, 2))
            for k in range(20)]  # fmt: skip
    args = (locs, (40, 40), (5e-5, 5e-5), 2e-4, 1000.0)
    raw = ulm_from_localizations(*args, min_track_length=3)
    smooth = ulm_from_localizations(*args, min_track_length=3, smoothing_window=3)
    assert len(raw.tracks_m) == len(smooth.tracks_m) == 1
    truth_x = 1e-3 + 1e-5 * np.arange(20)
    assert (
        np.abs(smooth.tracks_m[0][:, 2] - truth_x).mean()
        < np.abs(raw.tracks_m[0][:, 2] - truth_x).mean()
    )
    for bad in (-1, 1.5, "3"):
        with pytest.raises(ConfigError, match="smoothing_window"):
            ulm_from_localizations(*args, smoothing_window=bad)


def test_render_maps_counts_each_track_once_per_pixel():
    track = np.array([[0, 0.0, 0.0], [1, 0.0, 1e-3], [2, 0.0, 2e-3]])  # 1 mm/frame lateral
    density, speed, vz = render_maps([track, track], (1e-3, 3e-3), (0.0, 0.0), 1e-4, 100.0)
    assert density.shape == (10, 30)
    assert density[0, :21].tolist() == [2.0] * 21 and density[1:].sum() == 0
    np.testing.assert_allclose(speed[0, :21], 0.1)  # 1 mm * 100 Hz
    np.testing.assert_allclose(vz, 0.0)


def test_ulm_end_to_end_two_bubbles():
    n, h, w = 20, 40, 40
    frames = np.stack(
        [_spots((h, w), [(10, 5 + 1.2 * t), (30 - 0.5 * t, 35 - 1.0 * t)]) for t in range(n)]
    )
    res = ulm(frames, (1e-4, 1e-4), wavelength_m=2e-4, prf_hz=1000.0, method="gaussian_fit")
    assert len(res.tracks_m) == 2 and all(len(t) == n for t in res.tracks_m)
    assert res.spacing_m == pytest.approx((2e-5, 2e-5))
    assert res.density.shape == (200, 200)
    speeds = res.speed_m_s[res.density > 0]
    expected = np.array([0.12, np.hypot(0.05, 0.1)])
    assert np.all(np.min(np.abs(speeds[:, None] - expected[None]), axis=1) < 1e-5)
    assert res.axial_velocity_m_s.max() == pytest.approx(0.05, rel=1e-3)  # moving up: +


def test_ulm_bad_inputs():
    with pytest.raises(DataError, match="NaN"):
        ulm(np.full((2, 8, 8), np.nan), (1e-4, 1e-4), 2e-4, 1000.0)
    with pytest.raises(DataError, match="shape"):
        ulm(np.ones((8, 8)), (1e-4, 1e-4), 2e-4, 1000.0)
    with pytest.raises(ConfigError, match="method"):
        ulm(np.ones((2, 8, 8)), (1e-4, 1e-4), 2e-4, 1000.0, method="magic")
    with pytest.raises(ConfigError, match="spacing_m"):
        ulm(np.ones((2, 8, 8)), (0.0, 1e-4), 2e-4, 1000.0)
