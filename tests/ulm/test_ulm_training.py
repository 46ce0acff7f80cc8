"""ULM task: quick training end to end, exports that match torch, config and data checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.train import config as cfgmod
from sonoedge.train import ulm_data as ud


def test_quick_run_writes_both_models_with_cards(ulm_run: Path) -> None:
    for name in ("generator.pt", "localizer.pt", "generated.npz", "metrics.json"):
        assert (ulm_run / name).is_file(), name
    card = json.loads((ulm_run / "ulm-localizer.json").read_text(encoding="utf-8"))
    assert card["task"] == "ulm" and card["input"]["pixels_per_wavelength"] == 4
    assert 0 < card["decode"]["threshold"] < 1
    assert card["provenance"]["command"].startswith("sonoedge train ulm")
    assert card["metrics"]["export_parity_max_abs"] <= 1e-4
    gcard = json.loads((ulm_run / "ulm-generator.json").read_text(encoding="utf-8"))
    assert gcard["task"] == "ulm-generator"
    assert list(gcard["input"]["param_ranges"]) == list(ud.PARAM_NAMES)
    assert (ulm_run / "ulm-localizer.md").read_text(encoding="utf-8").startswith("# ulm-localizer")


def test_localizer_runtime_matches_torch(ulm_run: Path) -> None:
    from sonoedge.train import ulm as task
    from sonoedge.zoo import ulm as zu

    net, _ = task.load_localizer(ulm_run / "localizer.pt")
    model = zu.load(ulm_run / "ulm-localizer.onnx")
    x = np.random.default_rng(0).uniform(-1, 2, (3, 24, 40)).astype(np.float32)
    assert model.mirror_average == 2  # the default config decodes with lateral-flip averaging
    np.testing.assert_allclose(model.maps(x), task.predict_maps(net, x, flip=True), atol=1e-4)
    np.testing.assert_allclose(model._maps(x), task.predict_maps(net, x), atol=1e-4)
    # averaging a frame with its mirror image makes the maps mirror-symmetric
    m, mirrored = model.maps(x), model.maps(np.ascontiguousarray(x[:, :, ::-1]))
    np.testing.assert_allclose(m[:, :2], mirrored[:, :2, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(m[:, 2], -mirrored[:, 2, :, ::-1], atol=1e-5)
    # with the axial mirror images too (decode.axial_average, or asked for): axially symmetric
    four = model.maps(x, mirror_average=4)
    np.testing.assert_allclose(four, task.predict_maps(net, x, True, axial=True), atol=1e-4)
    flipped = model.maps(np.ascontiguousarray(x[:, ::-1]), mirror_average=4)
    np.testing.assert_allclose(four[:, [0, 2]], flipped[:, [0, 2], ::-1], atol=1e-5)
    np.testing.assert_allclose(four[:, 1], -flipped[:, 1, ::-1], atol=1e-5)
    np.testing.assert_allclose(model.maps(x, mirror_average=1), model._maps(x), atol=1e-6)
    with pytest.raises(ConfigError, match="mirror_average=3 is invalid"):
        model.localize(x, mirror_average=3)
    odd = model.maps(x[:, :23, :37])  # reflect-padded to even sizes and cropped back
    assert odd.shape == (3, 3, 23, 37) and np.all(np.isfinite(odd))


GUIDE = {"bandwidth_fraction": 0.7, "f_number": 1.5, "n_cycles": 2.0, "pitch_wavelengths": 0.8}


def test_physics_guided_localizer_takes_the_psf_parameters(ulm_pg_run: Path) -> None:
    import warnings

    from sonoedge.train import ulm as task
    from sonoedge.zoo import ulm as zu

    assert task.GUIDE_PARAMETERS == zu.GUIDE_PARAMETERS
    assert not (ulm_pg_run / "generator.pt").exists()  # the shipped generator drew its frames
    card = json.loads((ulm_pg_run / "ulm-localizer-pg.json").read_text(encoding="utf-8"))
    assert card["input"]["params"]["names"] == list(task.GUIDE_PARAMETERS)
    assert card["architecture"]["n_params"] == 4 and "ulm-generator" in card["generator"]["weights"]
    net, _ = task.load_localizer(ulm_pg_run / "localizer.pt")
    model = zu.load(ulm_pg_run / "ulm-localizer-pg.onnx")
    assert model.param_names == task.GUIDE_PARAMETERS
    x = np.random.default_rng(0).uniform(-1, 2, (3, 24, 40)).astype(np.float32)
    guide = model.guide(GUIDE)
    assert guide is not None and guide.shape == (4,)
    torch_maps = task.predict_maps(net, x, True, np.repeat(guide[None], 3, axis=0))
    np.testing.assert_allclose(model.maps(x, GUIDE), torch_maps, atol=1e-4)
    other = model.maps(x, {**GUIDE, "n_cycles": 3.0})  # the parameters reach the network
    assert np.abs(other - model.maps(x, GUIDE)).max() > 1e-4
    with pytest.raises(ConfigError, match="needs the frames' f_number, n_cycles"):
        model.localize(x, params={"bandwidth_fraction": 0.7, "pitch_wavelengths": 0.8})
    with pytest.raises(ConfigError, match="f_number=4 is far outside"):
        model.localize(x, params={**GUIDE, "f_number": 4.0})
    with pytest.raises(ConfigError, match="not all numbers"):
        model.localize(x, params={**GUIDE, "f_number": "wide"})  # type: ignore[dict-item]
    with pytest.warns(UserWarning, match=r"f_number=2.2 is outside the trained range 1\.\.2"):
        model.localize(x, params={**GUIDE, "f_number": 2.2})
    # the pitch the config accepts (localizer.accepted_pitch_wavelengths) replaces the default
    # refusal (half the range's width outside it, 1.25 for pitch)
    assert card["input"]["params"]["accepted"] == {"pitch_wavelengths": [0.25, 2.0]}
    with pytest.warns(UserWarning, match=r"pitch_wavelengths=1.9 is outside .* 0\.5\.\.1"):
        model.localize(x, params={**GUIDE, "pitch_wavelengths": 1.9})
    with pytest.raises(ConfigError, match=r"pitch_wavelengths=2.1 is far outside .* 0\.25\.\.2\)"):
        model.localize(x, params={**GUIDE, "pitch_wavelengths": 2.1})
    blind = zu.load()  # a blind model is not guided: it only warns outside its trained box
    with pytest.warns(UserWarning, match=r"ulm-localizer: f_number=9 is outside .* 1\.\.2"):
        a = blind.localize(x, params={**GUIDE, "f_number": 9.0})
    assert all(np.array_equal(p, q) for p, q in zip(a, blind.localize(x), strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blind.localize(x, params=GUIDE)


def test_generator_runtime_matches_torch_and_is_seeded(ulm_run: Path) -> None:
    from sonoedge.models import ulm_generator as gen
    from sonoedge.train import ulm as task
    from sonoedge.zoo import ulm as zu

    net, _ = task.load_generator(ulm_run / "generator.pt")
    model = zu.load_generator(ulm_run / "ulm-generator.onnx")
    assert model.pos_channels == net.arch.pos_channels == 3  # the config's phase channels
    assert model.margin_px == net.arch.margin_px == 2  # maps 2 px beyond each edge
    exponent = cfgmod.load("ulm", quick=True)["generator"]["display_exponent"]
    assert model.display_exponent == net.arch.display_exponent == exponent
    rng = np.random.default_rng(1)
    pm = rng.uniform(-1, 1, (2, 3, 20, 20)).astype(np.float32)
    cond = rng.uniform(-1, 1, (2, 7)).astype(np.float32)
    noise = rng.standard_normal((2, 1, 16, 16)).astype(np.float32)
    assert model.mirror_average == 4  # the config's sampler averages over four mirror images
    ref = gen.sample(net, pm, cond, steps=3, noise=noise, mirror_average=4)
    got = model.sample(pm, cond, steps=3, noise=noise)
    np.testing.assert_allclose(got, ref, atol=1e-3)
    plain = gen.sample(net, pm, cond, steps=3, noise=noise)
    np.testing.assert_allclose(model.sample(pm, cond, 0, 3, noise, 1), plain, atol=1e-3)
    assert np.abs(plain - ref).max() > 1e-3
    # times crowded towards t = 0 (time_power), the same in both samplers
    model.time_power = 2.0
    ref2 = gen.sample(net, pm, cond, steps=3, noise=noise, time_power=2.0, mirror_average=4)
    np.testing.assert_allclose(model.sample(pm, cond, steps=3, noise=noise), ref2, atol=1e-3)
    assert np.abs(ref2 - ref).max() > 1e-3
    model.time_power = 1.0
    a, b = model.sample(pm, cond, seed=5), model.sample(pm, cond, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.sample(pm, cond, seed=6))
    with pytest.raises(DataError, match="conditioning channel"):
        model.sample(pm[:, 0], cond)


def test_mirror_averaged_sampler_mirrors_its_frames_with_the_scene(ulm_run: Path) -> None:
    from sonoedge.zoo import ulm as zu

    model = zu.load_generator(ulm_run / "ulm-generator.onnx")
    rng = np.random.default_rng(2)
    pos = rng.uniform(-1, 16, (3, 6, 2))
    pm = np.stack([zu.conditioning_maps(p, 1.0, (16, 16), 3, 2) for p in pos])
    cond = rng.uniform(-1, 1, (3, 7)).astype(np.float32)
    noise = rng.standard_normal((3, 1, 16, 16)).astype(np.float32)
    for lateral, axial in ((True, False), (False, True), (True, True)):
        mirrored = pos.copy()
        if lateral:
            mirrored[..., 1] = 15 - mirrored[..., 1]
        if axial:
            mirrored[..., 0] = 15 - mirrored[..., 0]
        pm_m = np.stack([zu.conditioning_maps(p, 1.0, (16, 16), 3, 2) for p in mirrored])
        noise_m = np.ascontiguousarray(noise[..., :: -1 if axial else 1, :: -1 if lateral else 1])
        a = model.sample(pm, cond, steps=2, noise=noise)
        b = model.sample(pm_m, cond, steps=2, noise=noise_m)
        np.testing.assert_allclose(
            b[:, :: -1 if axial else 1, :: -1 if lateral else 1], a, atol=2e-5
        )
        # one copy: the (untrained) network alone is not mirror-symmetric
        a1 = model.sample(pm, cond, steps=2, noise=noise, mirror_average=1)
        b1 = model.sample(pm_m, cond, steps=2, noise=noise_m, mirror_average=1)
        assert np.abs(b1[:, :: -1 if axial else 1, :: -1 if lateral else 1] - a1).max() > 1e-3
    with pytest.raises(ConfigError, match="mirror_average"):
        model.sample(pm, cond, mirror_average=3)


@pytest.mark.parametrize(("rows", "margin"), [(12, 0), (12, 2), (13, 0), (13, 4)])
def test_mirror_conditioning_gives_the_maps_of_the_mirrored_scene(rows: int, margin: int) -> None:
    from sonoedge.zoo.ulm import conditioning_maps, mirror_conditioning

    pos = np.random.default_rng(rows + margin).uniform(-margin, rows, (7, 2))
    amp = np.linspace(0.5, 2.0, 7)
    maps = conditioning_maps(pos, amp, (rows, 10), 3, margin)[None]
    for lateral, axial in ((True, False), (False, True), (True, True)):
        mirrored = pos.copy()
        if lateral:
            mirrored[:, 1] = 9 - mirrored[:, 1]
        if axial:
            mirrored[:, 0] = rows - 1 - mirrored[:, 0]
        want = conditioning_maps(mirrored, amp, (rows, 10), 3, margin)[None]
        np.testing.assert_allclose(mirror_conditioning(maps, lateral, axial), want, atol=1e-6)
        one = mirror_conditioning(maps[:, :1], lateral, axial)
        np.testing.assert_allclose(one, want[:, :1], atol=1e-6)


def test_display_exponent_maps_the_networks_scale_back_to_the_display() -> None:
    import torch

    from sonoedge.models import ulm_generator as gen
    from sonoedge.zoo.ulm import from_network_scale, to_network_scale

    d = np.array([0.0, 0.01, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(to_network_scale(d, 0.5), [-1.0, -0.8, 0.0, 2 * 0.5**0.5 - 1, 1.0])
    np.testing.assert_allclose(from_network_scale(to_network_scale(d, 0.5), 0.5), d, atol=1e-6)
    np.testing.assert_array_equal(from_network_scale([-3.0, 3.0], 0.5), [0.0, 1.0])
    # the same weights on the square-root scale give the squares of the linear-scale frames
    torch.manual_seed(0)
    linear = gen.build(gen.GeneratorArch(8, pos_channels=3, margin_px=2))
    root = gen.build(gen.GeneratorArch(8, pos_channels=3, margin_px=2, display_exponent=0.5))
    root.load_state_dict(linear.state_dict())
    rng = np.random.default_rng(0)
    pm = rng.uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    cond = rng.uniform(-1, 1, (2, 7)).astype(np.float32)
    a = gen.sample(linear, pm, cond, steps=2, seed=3)
    b = gen.sample(root, pm, cond, steps=2, seed=3)
    assert a.std() > 0
    np.testing.assert_allclose(b, a**2, atol=1e-6)
    with pytest.raises(ConfigError, match="display_exponent"):
        gen.GeneratorArch(8, display_exponent=0.1)


def test_sample_times_crowd_towards_zero_with_the_power() -> None:
    from sonoedge.zoo.ulm import sample_times

    np.testing.assert_allclose(sample_times(4), [1.0, 0.75, 0.5, 0.25, 0.0])
    t = sample_times(10, 2.0)
    assert t[0] == 1.0 and t[-1] == 0.0 and np.all(np.diff(t) < 0)
    assert t[-2] == pytest.approx(0.01)  # the last step starts at t = 0.01, not 0.1


def test_conditioning_maps_carry_each_bubbles_echo_phase() -> None:
    from sonoedge.zoo.ulm import conditioning_maps, position_map

    pos, amp = np.array([[4.0, 5.0], [7.5, 2.25]]), np.array([1.0, 2.0])
    maps = conditioning_maps(pos, amp, (12, 10), channels=3)
    assert maps.shape == (3, 12, 10)
    np.testing.assert_array_equal(maps[0], position_map(pos, amp, (12, 10)))
    # row 4: phase -4 pi, phasor +1 at one pixel; row 7.5: phase -7.5 pi = +pi/2 (mod 2 pi),
    # phasor 2j split over rows 7 and 8 (and columns 2 and 3)
    assert maps[1, 4, 5] == pytest.approx(1.0) and maps[2, 4, 5] == pytest.approx(0.0, abs=1e-6)
    assert maps[1, 7:9, 2:4].sum() == pytest.approx(0.0, abs=1e-6)
    assert maps[2, 7:9, 2:4].sum() == pytest.approx(2.0)
    # two bubbles half a wavelength apart in depth (2 rows) echo in phase, a quarter apart in
    # antiphase: that is what decides whether their PSFs add up or cancel
    same = conditioning_maps(np.array([[3.0, 3.0], [5.0, 3.0]]), 1.0, (8, 8), 3)
    assert same[1, 3, 3] == pytest.approx(same[1, 5, 3]) and abs(same[1, 3, 3]) == pytest.approx(1)
    anti = conditioning_maps(np.array([[3.0, 3.0], [4.0, 3.0]]), 1.0, (8, 8), 3)
    assert anti[1, 3, 3] == pytest.approx(-anti[1, 4, 3])
    assert conditioning_maps(pos, amp, (12, 10)).shape == (1, 12, 10)
    # with a margin the same maps sit inside a larger grid, and a bubble 2 px beyond the top
    # edge, invisible without it, is kept
    wide = conditioning_maps(np.vstack([pos, [[-2.0, 3.0]]]), [1.0, 2.0, 1.0], (12, 10), 3, 2)
    assert wide.shape == (3, 16, 14)
    np.testing.assert_allclose(wide[:, 2:-2, 2:-2], maps, atol=1e-6)
    assert wide[0, 0, 5] == pytest.approx(1.0) and maps[0].sum() == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="channels"):
        conditioning_maps(pos, amp, (12, 10), channels=2)


def test_eval_quick_writes_results(ulm_run: Path, ulm_pg_run: Path, tmp_path: Path) -> None:
    from sonoedge.train import ulm as task

    models = [str(ulm_run / "ulm-localizer.onnx"), str(ulm_pg_run / "ulm-localizer-pg.onnx")]
    metrics = task.evaluate(models, None, tmp_path, name="u", quick=True, command="t")
    saved = json.loads((tmp_path / "u.json").read_text(encoding="utf-8"))
    assert saved["command"] == "t" and (tmp_path / "u.png").is_file()
    cell = next(iter(metrics["localization"].values()))
    assert set(cell["scores"]) == {
        "network",
        "network_ulm-localizer-pg",
        "network_psf_fit",  # the first network refined by the PSF fit, on the grid only
        *task.CONVENTIONAL,
    }
    assert 0 <= cell["scores"]["network_psf_fit"]["jaccard"] <= 1
    assert metrics["beside"]["network_ulm-localizer-pg"]["parameters"] == list(
        task.GUIDE_PARAMETERS
    )
    assert "network_ulm-localizer-pg" in metrics["saturation"]["frames_to_level"]
    # beyond the guided model's accepted pitch (2) too: its refusal is lifted to measure it
    far = metrics["pitch_extrapolation"]["cells"]["pitch2.5_d0.15"]
    assert far["pitch_wavelengths"] == 2.5
    assert set(far["scores"]) == set(cell["scores"]) - {"network_psf_fit"}
    assert 0 <= far["scores"]["network_ulm-localizer-pg"]["jaccard"] <= 1
    assert "ssim_mean" in metrics["generator"] and "frames_to_level" in metrics["saturation"]
    averaged = metrics["generator"]["secondary_ssim_of_averages"]
    assert -1 <= averaged["ssim"] <= 1 and 0 < averaged["ceiling_physics_vs_physics"] <= 1
    assert "secondary" in averaged["definition"]
    corner = metrics["generator"]["ssim_clean_corner"]
    assert (corner["snr_db"], corner["clutter_db"]) == (40.0, -40.0)
    assert -1 <= corner["ssim"] <= 1 and corner["ceiling_physics_vs_physics"] > 0.9
    assert 0 <= corner["ssim_standard_error"] < 0.5
    assert "generator_ssim_ge_0.97_clean_corner" in metrics["targets"]
    assert metrics["generator"]["noise_texture_ratio"] > 0
    assert metrics["generator"]["mirror_average"] == 4  # the quick run's card
    assert metrics["generator"]["ms_per_frame_generator_one_copy"] > 0
    assert all(b["texture_ratio"] > 0 for b in metrics["generator"]["ssim_by_snr"].values())
    assert set(metrics["targets"]) >= {
        "rmse_le_0.1_lambda_at_30db",
        "rmse_le_0.1_lambda_at_30db_psf_fit",
        "jaccard_above_every_conventional_at_high_concentration_psf_fit",
        "generator_ssim_ge_0.97",
    }
    assert "SNR" in task.summarize(metrics)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"data": {"size": 30}}, "multiple of 4"),
        ({"localizer": {"width": 12}}, "multiple of 8"),
        ({"data": {"density": [0.5, 0.1]}}, "data.density"),
        ({"localizer": {"n_generated": 0}}, "n_generated"),
        ({"generator": {"display_exponent": 0.1}}, "display_exponent"),
        ({"generator": {"sample_time_power": 0.5}}, "sample_time_power"),
        ({"generator": {"mirror_average": 3}}, "mirror_average"),
        ({"localizer": {"accepted_pitch_wavelengths": [0.6, 2.0]}}, "contain the trained range"),
        ({"localizer": {"axial_average": True, "flip_average": False}}, "needs localizer.flip"),
        ({"localizer": {"accepted_pitch_wavelengths": [0.25, 0.9]}}, "accepted_pitch"),
    ],
)
def test_bad_configs_are_refused(override: dict[str, object], match: str) -> None:
    from sonoedge.train import ulm as task

    cfg = cfgmod.merge(cfgmod.load("ulm", quick=True), override)
    with pytest.raises(ConfigError, match=match):
        task.check_config(cfg)


def test_parameter_splits_and_range_checks() -> None:
    rng = np.random.default_rng(0)
    lo, hi = ud.HELD_OUT_F0_MHZ
    train = [ud.draw_params(rng, "train").center_frequency_mhz for _ in range(300)]
    held = [ud.draw_params(rng, "held_out").center_frequency_mhz for _ in range(50)]
    assert not any(lo <= f <= hi for f in train) and min(train) < lo and max(train) > hi
    assert all(lo <= f <= hi for f in held)
    assert ud.check_params(ud.FrameParams()) == []
    (note,) = ud.check_params(ud.FrameParams(snr_db=45.0))
    assert "10..40" in note
    with pytest.raises(ConfigError, match=r"far outside the trained range 1\.\.2"):
        ud.check_params(ud.FrameParams(f_number=4.0))
    v = ud.normalise(ud.FrameParams(center_frequency_mhz=3.0, snr_db=40.0))
    assert v[0] == pytest.approx(-1.0) and v[5] == pytest.approx(1.0)


def test_physics_render_is_seeded_and_peaks_at_the_bubble() -> None:
    r = ud.Renderer(ud.FrameParams(snr_db=40.0, clutter_db=-40.0), (32, 32))
    a = r.render([[14.3, 17.6]], [1.0], seed=3)
    np.testing.assert_array_equal(a, r.render([[14.3, 17.6]], [1.0], seed=3))
    assert not np.array_equal(a, r.render([[14.3, 17.6]], [1.0], seed=4))
    peak = np.unravel_index(np.argmax(np.abs(a)), a.shape)
    assert abs(peak[0] - 14.3) <= 1 and abs(peak[1] - 17.6) <= 1
    disp = r.display(a)
    assert 0.35 < disp.max() <= 0.6 and disp.min() >= 0


def test_vessel_draws_crowd_bubbles_and_uniform_draws_are_unchanged() -> None:
    from scipy.spatial import cKDTree

    def crowded(pos: list[np.ndarray]) -> float:
        near = []
        for p in pos:
            if len(p) > 1:
                d, _ = cKDTree(p).query(p, 2)
                near.extend(d[:, 1] < ud.PIXELS_PER_WAVELENGTH)  # within one wavelength
        return float(np.mean(near))

    rng = np.random.default_rng(0)
    vessel = [ud.draw_vessel_bubbles(rng, (32, 32), 0.15)[0] for _ in range(100)]
    uniform = [ud.draw_bubbles(rng, (32, 32), 0.15)[0] for _ in range(100)]
    assert crowded(vessel) > crowded(uniform) + 0.2
    # with vessel_fraction 0 the sampler makes exactly the old uniform draws (caches stay valid)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    pos_a, _ = ud.draw_any_bubbles(a, (16, 16), (0.0, 0.2), 0.0, (0.0, 0.3))
    pos_b, _ = ud.draw_bubbles(b, (16, 16), float(b.uniform(0.0, 0.2)))
    np.testing.assert_array_equal(pos_a, pos_b)


def test_offsets_are_supervised_around_each_bubble_and_decoded_within_the_clip() -> None:
    from sonoedge.train import ulm as task
    from sonoedge.zoo.ulm import decode

    pos = [np.array([[5.3, 7.6]])]
    _, off0, mask0 = task.heatmap_targets(pos, (12, 12), 1.0, offset_radius=0)
    _, off1, mask1 = task.heatmap_targets(pos, (12, 12), 1.0, offset_radius=1)
    assert mask0.sum() == 1 and mask1.sum() == 9
    np.testing.assert_allclose(off0[0, :, 5, 8], [0.3, -0.4], atol=1e-6)
    np.testing.assert_allclose(off1[0, :, 4, 7], [1.3, 0.6], atol=1e-6)  # a neighbour pixel
    # a peak one pixel off still decodes to the bubble when the card's clip allows it
    maps = np.zeros((1, 3, 12, 12), np.float32)
    maps[0, 0, 4, 7] = 0.9
    maps[0, 1:, 4, 7] = off1[0, :, 4, 7]
    np.testing.assert_allclose(decode(maps, 0.5, offset_clip=2.0)[0], [[5.3, 7.6]], atol=1e-6)
    np.testing.assert_allclose(decode(maps, 0.5)[0], [[5.0, 7.6]], atol=1e-6)  # old clip: 1 px
    assert task.offset_clip_px({"localizer": {"offset_radius_px": 1}}) == 2.0
