import math

import numpy as np
import pytest

from sonoedge.errors import ConfigError, DataError
from sonoedge.processing.scan_convert import scan_convert, scan_convert_frame, scan_maps
from sonoedge.types import BmodeFrame, ProbeInfo

DR = 2e-4
DTH = 0.02
N_R, N_B = 100, 61
TH0 = -DTH * (N_B - 1) / 2


def _polar(radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(N_R)[:, None] * DR + np.zeros((1, N_B))
    th = TH0 + np.arange(N_B)[None, :] * DTH + np.zeros((N_R, 1))
    return r.astype(np.float32), th.astype(np.float32)


@pytest.mark.parametrize(("geometry", "radius"), [("phased", 0.0), ("convex", 0.03)])
def test_scan_convert_maps_range_and_angle(geometry, radius):
    r, th = _polar(radius)
    out_r, spacing, origin = scan_convert(r, geometry, (DR, DTH), (0.0, TH0), radius)
    out_t, _, _ = scan_convert(th, geometry, (DR, DTH), (0.0, TH0), radius, fill=np.nan)
    z = origin[0] + np.arange(out_r.shape[0])[:, None] * spacing[0]
    x = origin[1] + np.arange(out_r.shape[1])[None, :] * spacing[1]
    expect_r = np.hypot(x, z + radius) - radius
    expect_t = np.arctan2(x, z + radius)
    inside = np.isfinite(out_t)
    assert inside.mean() > 0.3
    # fixed-point remap tables are accurate to 1/32 pixel
    np.testing.assert_allclose(out_r[inside], expect_r[inside], atol=DR / 16)
    np.testing.assert_allclose(out_t[inside], expect_t[inside], atol=DTH / 16)
    assert spacing == (DR, DR)
    # the fan's apex row is at the top centre: depth 0 at x = 0
    assert origin[0] == pytest.approx((radius + 0) * math.cos(TH0) - radius, abs=1e-9)


def test_maps_are_cached():
    r, _ = _polar(0.0)
    scan_convert(r, "phased", (DR, DTH), (0.0, TH0))
    info = scan_maps.cache_info()
    scan_convert(r, "phased", (DR, DTH), (0.0, TH0))
    assert scan_maps.cache_info().hits == info.hits + 1


def test_frame_conversion_and_geometry_errors():
    r, _ = _polar(0.0)
    frame = BmodeFrame(
        spacing_m=(DR, DTH), origin_m=(0.0, TH0), grid="polar", image=(r * 1e4).astype(np.uint8)
    )
    phased = ProbeInfo(geometry="phased", n_elements=64, pitch_m=2e-4)
    out = scan_convert_frame(frame, phased)
    assert out.grid == "cartesian" and out.image.dtype == np.uint8
    with pytest.raises(ConfigError, match="linear"):
        scan_convert_frame(frame, ProbeInfo())
    with pytest.raises(DataError, match="polar"):
        scan_convert_frame(BmodeFrame(spacing_m=(DR, DR), image=r), phased)
    with pytest.raises(ConfigError, match="radius_m"):
        scan_convert(r, "convex", (DR, DTH), (0.0, TH0), radius_m=0.0)
    with pytest.raises(ConfigError, match="geometry"):
        scan_convert(r, "linear", (DR, DTH))
