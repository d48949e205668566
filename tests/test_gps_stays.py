"""Stays from app GPS fixes: the rule on hand-made traces, and precision and recall against the
synthetic country's true itineraries."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

import polars as pl
import pytest

from aggregation.gps_stays import detect_stays, with_zones
from aggregation.ingest.zones import ZoneIndex
from sample_data.synth import SynthConfig, generate
from sample_data.synth.truth import score_stays, synthetic_fixes
from schemas.errors import ConfigurationError
from schemas.gps import StayRule
from tests.conftest import START

if TYPE_CHECKING:
    from pathlib import Path

DAY = dt.date(2026, 3, 2)
M_PER_DEG = 111_195.0
A = (3.0, 2.0)  # (lat, lon)
B = (3.0, 2.02)  # about 2.2 km east of A


def _at(place: tuple[float, float], east_m: float = 0.0, north_m: float = 0.0) -> tuple[float, ...]:
    lat, lon = place
    return (lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))))


def _fixes(
    rows: list[tuple[str, int, tuple[float, ...], float]], day: dt.date = DAY
) -> pl.DataFrame:
    """Fixes from (device, minute of the day, (lat, lon), accuracy)."""
    midnight = int(dt.datetime.combine(day, dt.time()).timestamp() * 1000)
    return pl.DataFrame(
        {
            "device": [r[0] for r in rows],
            "day": [day] * len(rows),
            "time_ms": [midnight + r[1] * 60_000 for r in rows],
            "lat": [r[2][0] for r in rows],
            "lon": [r[2][1] for r in rows],
            "accuracy_m": [r[3] for r in rows],
        }
    )


def _distance_m(lat: float, lon: float, place: tuple[float, float]) -> float:
    dy = (lat - place[0]) * M_PER_DEG
    dx = (lon - place[1]) * M_PER_DEG * math.cos(math.radians(place[0]))
    return math.hypot(dx, dy)


def test_a_day_of_two_places_with_jitter_an_outlier_and_a_passing_fix() -> None:
    trace = [
        ("d1", 480, _at(A, 15, -10), 12.0),
        ("d1", 500, _at(A, -20, 5), 20.0),
        ("d1", 530, _at(A, 800, 300), 15.0),  # a multipath jump: skipped, the stay goes on
        ("d1", 560, _at(A, 5, 25), 8.0),
        ("d1", 600, _at(A, -10, -15), 10.0),
        ("d1", 700, _at(B, 30, 0), 9.0),
        ("d1", 760, _at(B, -25, 10), 14.0),
        ("d1", 800, _at(B, 0, -30), 11.0),
        ("d1", 900, _at((3.01, 2.01)), 10.0),  # passing through: one fix is not a stay
    ]
    stays = detect_stays(_fixes(trace))
    assert stays["seq"].to_list() == [0, 1]
    assert stays["fixes"].to_list() == [4, 3]
    first, second = stays.rows(named=True)
    assert (first["end_ms"] - first["start_ms"]) == 120 * 60_000
    assert _distance_m(first["lat"], first["lon"], A) < 30
    assert _distance_m(second["lat"], second["lon"], B) < 30


def test_dwell_gap_accuracy_and_outlier_limits() -> None:
    short = _fixes([("d", 600, A, 10.0), ("d", 610, A, 10.0)])
    assert detect_stays(short).is_empty()
    assert detect_stays(short, StayRule(min_dwell_minutes=5)).height == 1

    # Seven hours without a fix: nothing says the device stayed.
    gap = _fixes([("d", 480, A, 10.0), ("d", 900, A, 10.0)])
    assert detect_stays(gap).is_empty()
    assert detect_stays(gap, StayRule(max_gap_minutes=480)).height == 1

    # Fixes less accurate than the rule's bound are left out.
    vague = _fixes([("d", 600, A, 300.0), ("d", 640, A, 300.0), ("d", 680, A, 10.0)])
    assert detect_stays(vague).is_empty()
    assert detect_stays(vague, StayRule(max_accuracy_m=500)).height == 1

    # Two fixes in a row away end the stay (one is forgiven by default).
    away = [("d", 600, A, 10.0), ("d", 625, A, 10.0), ("d", 630, B, 10.0),
            ("d", 635, B, 10.0), ("d", 650, A, 10.0)]  # fmt: skip
    ends = detect_stays(_fixes(away))
    assert ends["fixes"].to_list() == [2]
    assert detect_stays(_fixes(away), StayRule(max_outliers=2, min_dwell_minutes=5))[
        "fixes"
    ].to_list() == [3]


def test_stays_are_per_device_and_day() -> None:
    one = [("d1", 600, A, 10.0), ("d1", 660, A, 10.0), ("d2", 600, B, 10.0), ("d2", 640, B, 10.0)]
    two = [("d1", 600, A, 10.0), ("d1", 660, A, 10.0)]
    fixes = pl.concat([_fixes(one), _fixes(two, DAY + dt.timedelta(days=1))])
    stays = detect_stays(fixes.sample(fraction=1.0, shuffle=True, seed=1))
    assert stays.select("device", "day", "seq").rows() == [
        ("d1", DAY, 0), ("d1", DAY + dt.timedelta(days=1), 0), ("d2", DAY, 0),
    ]  # fmt: skip
    # A stay never joins the fixes of two devices, even at the same place and time.
    mixed = _fixes([("d1", 600, A, 10.0), ("d2", 630, A, 10.0)])
    assert detect_stays(mixed).is_empty()


def test_rules_out_of_range_are_refused_with_the_key_and_range() -> None:
    with pytest.raises(
        ConfigurationError, match=r"\[gps\] radius_m must be metres in \[10, 5000\]"
    ):
        StayRule(radius_m=5)
    with pytest.raises(ConfigurationError, match=r"max_gap_minutes .* at least min_dwell"):
        StayRule(min_dwell_minutes=60, max_gap_minutes=30)
    with pytest.raises(ConfigurationError, match=r"mobility.toml: \[gps\] radius: unknown key"):
        StayRule.from_mapping({"radius": 100}, "mobility.toml")
    with pytest.raises(ConfigurationError, match="max_outliers: must be a whole number"):
        StayRule.from_mapping({"max_outliers": 1.5}, "mobility.toml")
    assert StayRule.from_mapping({"radius_m": 150}, "x").radius_m == 150.0
    with pytest.raises(ConfigurationError, match="missing"):
        detect_stays(pl.DataFrame({"device": ["d"]}))


@pytest.fixture(scope="module")
def gps_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One day of a synthetic country where half the subscribers use the app."""
    out = tmp_path_factory.mktemp("gps") / "export"
    generate(SynthConfig(subscribers=1_500, days=1, start=START, seed=4, gps_share=0.5,
                         error_rate=0.0), out)  # fmt: skip
    return out


def test_stays_match_the_true_itineraries(gps_export: Path) -> None:
    rule = StayRule()
    fixes = synthetic_fixes(gps_export, START, "Africa/Lagos")
    stays = detect_stays(fixes, rule)
    dwell = round(rule.min_dwell_minutes * 60_000)
    scores = score_stays(stays, fixes, gps_export, min_dwell_ms=dwell)
    assert scores.detected > 500
    assert scores.precision >= 0.97, scores
    assert scores.recall >= 0.9, scores
    # The score can fail: stays moved 1 km away are all wrong.
    moved = stays.with_columns(pl.col("lat") + 1000 / M_PER_DEG)
    assert score_stays(moved, fixes, gps_export, min_dwell_ms=dwell).precision == 0.0

    zones = with_zones(stays, ZoneIndex.load(gps_export / "reference" / "zones.parquet"))
    assert zones["admin3"].null_count() == 0
    assert (zones["admin3"].str.slice(0, 6) == zones["admin2"]).all()


def test_fixes_sharing_a_time_give_the_same_stays_in_any_input_order() -> None:
    # Apps report two positions in one millisecond (a GPS and a network fix); the stays, and so
    # the aggregates an auditor recomputes, must not depend on the order the files list them in.
    trace = [("d", 600, A, 10.0), ("d", 620, A, 10.0), ("d", 640, A, 10.0), ("d", 640, B, 10.0),
             ("d", 650, B, 10.0), ("d", 660, B, 10.0), ("d", 700, B, 10.0), ("d", 700, A, 10.0),
             ("d", 720, B, 10.0)]  # fmt: skip
    fixes = _fixes(trace)
    expected = detect_stays(fixes)
    assert not expected.is_empty()
    for seed in range(8):
        shuffled = fixes.sample(fraction=1.0, shuffle=True, seed=seed)
        assert detect_stays(shuffled).equals(expected), seed
