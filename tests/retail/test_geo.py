"""Distances and the bounding-box prefilter, checked against values worked out by hand."""

import math

import pytest

from retail.geo import EARTH_RADIUS_M, bounding_box, haversine_m

PEOPLES_SQUARE = (31.2317, 121.4752)  # 人民广场
LUJIAZUI = (31.2397, 121.4998)  # 陆家嘴


def destination(lat: float, lng: float, bearing_deg: float, distance_m: float) -> tuple:
    """The point ``distance_m`` from (lat, lng) on a great circle heading ``bearing_deg``."""
    angular = distance_m / EARTH_RADIUS_M
    phi, lam, theta = math.radians(lat), math.radians(lng), math.radians(bearing_deg)
    phi2 = math.asin(
        math.sin(phi) * math.cos(angular) + math.cos(phi) * math.sin(angular) * math.cos(theta)
    )
    lam2 = lam + math.atan2(
        math.sin(theta) * math.sin(angular) * math.cos(phi),
        math.cos(angular) - math.sin(phi) * math.sin(phi2),
    )
    return math.degrees(phi2), math.degrees(lam2)


def inside(box: tuple, point: tuple, *, slack: float = 0.0) -> bool:
    min_lat, max_lat, min_lng, max_lng = box
    return (
        min_lat - slack <= point[0] <= max_lat + slack
        and min_lng - slack <= point[1] <= max_lng + slack
    )


def test_peoples_square_to_lujiazui():
    # dlat 0.008° = 889.6 m north, dlng 0.0246° = 2338.8 m east at cos(31.2357°): 2502.3 m.
    assert haversine_m(*PEOPLES_SQUARE, *LUJIAZUI) == pytest.approx(2502.33, abs=1)
    assert haversine_m(*LUJIAZUI, *PEOPLES_SQUARE) == haversine_m(*PEOPLES_SQUARE, *LUJIAZUI)


def test_reference_distances():
    assert haversine_m(*PEOPLES_SQUARE, *PEOPLES_SQUARE) == 0
    # One degree of a great circle is R·π/180; half the Earth round is R·π.
    assert haversine_m(0, 0, 1, 0) == pytest.approx(111_195.08, abs=0.01)
    assert haversine_m(0, 0, 0, 180) == pytest.approx(20_015_114.44, abs=0.01)


def test_the_box_of_ten_kilometres_around_peoples_square():
    # 10 km is 0.089932° of latitude; the longitude half-width is wider by 1 / cos(31.2317°).
    assert bounding_box(*PEOPLES_SQUARE, 10_000) == pytest.approx(
        (31.141768, 31.321632, 121.370026, 121.580374), abs=1e-6
    )


@pytest.mark.parametrize("latitude", [31.2317, 60.0, -45.0])
def test_every_point_at_the_radius_is_inside_the_box(latitude):
    # At 60° a box of radius / (R cos lat) would miss the circle's widest points by 0.0002°;
    # the slack of 1e-9° (0.1 mm) only absorbs float rounding at the due north and south points.
    radius = 100_000
    box = bounding_box(latitude, 121.4752, radius)

    on_the_circle = [destination(latitude, 121.4752, bearing, radius) for bearing in range(360)]

    assert all(inside(box, point, slack=1e-9) for point in on_the_circle)
    assert haversine_m(latitude, 121.4752, *on_the_circle[90]) == pytest.approx(radius, abs=0.01)


@pytest.mark.parametrize("bearing", [0, 90, 180, 270])
def test_a_point_beyond_the_radius_is_outside_the_box(bearing):
    box = bounding_box(*PEOPLES_SQUARE, 10_000)

    assert inside(box, destination(*PEOPLES_SQUARE, bearing, 9_999))
    assert not inside(box, destination(*PEOPLES_SQUARE, bearing, 10_001))


def test_near_a_pole_the_box_is_clamped_and_takes_every_longitude():
    north = bounding_box(89.95, 10.0, 10_000)
    south = bounding_box(-89.95, 10.0, 10_000)

    assert north == pytest.approx((89.860068, 90.0, -180.0, 180.0), abs=1e-6)
    assert south == pytest.approx((-90.0, -89.860068, -180.0, 180.0), abs=1e-6)


def test_across_the_180th_meridian_the_box_takes_every_longitude():
    box = bounding_box(0.0, 179.95, 10_000)

    assert box == pytest.approx((-0.089932, 0.089932, -180.0, 180.0), abs=1e-6)
    assert inside(box, (0.0, -179.99))


def test_a_zero_radius_box_is_the_point_and_a_negative_one_is_refused():
    assert bounding_box(*PEOPLES_SQUARE, 0) == (31.2317, 31.2317, 121.4752, 121.4752)
    with pytest.raises(ValueError, match="radius_m"):
        bounding_box(*PEOPLES_SQUARE, -1)
