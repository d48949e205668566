"""Extraction from staged events: stays, trips, home zones and daily distances (real DuckDB)."""

from __future__ import annotations

import itertools
import math
from datetime import date, timedelta
from typing import TYPE_CHECKING

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation.extract import (
    EARTH_RADIUS_KM,
    StagedFiles,
    StagedSource,
    daily_distances_frame,
    homes_frame,
    staged_events,
    stays_frame,
    trips_frame,
)
from aggregation.sql import SqlPlan, bounded_connection, sql
from schemas.errors import InternalError
from schemas.indicators import HomeRule, Period, ZoneSet
from tests.indicators_helpers import DAY0, KEY, OTHER_KEY, Ev, write_staged

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

A, B, C = "NL010101", "NL010102", "NL020101"
TWO_DAYS = Period(DAY0, DAY0 + timedelta(days=1))


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = duckdb.connect()
    yield c
    c.close()


def staged(tmp_path: Path, events: list[Ev]) -> StagedSource:
    write_staged(tmp_path, events)
    return StagedSource(tmp_path)


def test_stays_and_trips_follow_consecutive_distinct_zones(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    src = staged(
        tmp_path,
        [
            Ev("s1", 0, 8, 0, A),
            Ev("s1", 0, 9, 0, A),
            Ev("s1", 0, 10, 0, B),
            Ev("s1", 0, 12, 0, B),
            Ev("s1", 0, 18, 0, A),
            Ev("s1", 0, 23, 0, C),
            Ev("s1", 1, 0, 30, A),  # next day: starts a stay, not a trip across midnight
        ],
    )
    stays = stays_frame(src, TWO_DAYS, "admin3", con)
    assert stays.select("seq", "zone", "n_events").rows() == [
        (0, A, 2),
        (1, B, 2),
        (2, A, 1),
        (3, C, 1),
        (0, A, 1),
    ]
    trips = trips_frame(src, TWO_DAYS, "admin3", con)
    assert trips.select("origin", "destination").rows() == [(A, B), (B, A), (A, C)]
    first = trips.row(0, named=True)
    assert (first["depart_time"].hour, first["arrival_time"].hour) == (9, 10)


def test_trips_at_a_coarser_level_ignore_moves_inside_a_zone(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    # A and B are both in admin2 NL0101; C is in NL0201.
    src = staged(tmp_path, [Ev("s1", 0, 8, 0, A), Ev("s1", 0, 9, 0, B), Ev("s1", 0, 10, 0, C)])
    assert trips_frame(src, TWO_DAYS, "admin2", con).select("origin", "destination").rows() == [
        ("NL0101", "NL0201")
    ]


def test_same_second_events_are_ordered_by_zone_deterministically(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    src = staged(tmp_path, [Ev("s1", 0, 8, 0, B), Ev("s1", 0, 8, 0, A), Ev("s1", 0, 9, 0, C)])
    rows = trips_frame(src, TWO_DAYS, "admin3", con).select("origin", "destination").rows()
    assert rows == [(A, B), (B, C)]


def test_home_is_the_zone_of_most_distinct_nights(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    events = [
        # B: many events but on one night only; A: three distinct nights.
        *[Ev("s1", 0, 21, m, B) for m in range(10)],
        Ev("s1", 0, 2, 0, A),  # 02:00 on day 0 belongs to the night before day 0
        Ev("s1", 1, 22, 0, A),
        Ev("s1", 2, 6, 59, A),  # 06:59 on day 2 belongs to the night of day 1: already counted
        Ev("s1", 2, 20, 0, A),
        Ev("s1", 1, 12, 0, C),  # daytime: ignored
        Ev("s1", 1, 13, 0, C),
    ]
    src = staged(tmp_path, events)
    period = Period(DAY0, DAY0 + timedelta(days=2))
    homes = homes_frame(src, period, "admin3", HomeRule(min_nights=3), KEY, con)
    assert homes.rows() == [("s1", A, 3)]
    assert homes_frame(src, period, "admin3", HomeRule(min_nights=4), KEY, con).is_empty()


def test_home_ties_are_broken_by_the_keyed_hash(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    events = []
    for i in range(40):  # 40 subscribers, each one night in A and one night in B
        events += [Ev(f"s{i}", 0, 22, 0, A), Ev(f"s{i}", 1, 22, 0, B)]
    src = staged(tmp_path, events)
    rule = HomeRule(min_nights=1)
    homes = homes_frame(src, TWO_DAYS, "admin3", rule, KEY, con)
    assert homes.height == 40
    chosen = set(homes["home_zone"])
    assert chosen == {A, B}  # not always the first or the smallest zone
    again = homes_frame(src, TWO_DAYS, "admin3", rule, KEY, con)
    assert again.equals(homes)  # deterministic
    other = homes_frame(src, TWO_DAYS, "admin3", rule, OTHER_KEY, con)
    assert not other.equals(homes)  # a different secret gives a different choice


def test_daily_distance_sums_great_circle_legs_in_whole_metres(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    zones = ZoneSet("admin3", (A, B, C), ((0.0, 0.0), (0.0, 1.0), (1.0, 1.0)))
    src = staged(
        tmp_path,
        [
            Ev("s1", 0, 8, 0, A),
            Ev("s1", 0, 9, 0, B),
            Ev("s1", 0, 10, 0, B),
            Ev("s1", 0, 11, 0, C),
            Ev("s2", 0, 8, 0, C),  # no trip: 0 m
            Ev("s3", 0, 8, 0, A),
            Ev("s3", 0, 9, 0, "NL010201"),  # zone without a centroid: the leg adds 0
        ],
    )
    one_degree = round(1000 * EARTH_RADIUS_KM * math.radians(1))  # 111 195 m along a meridian
    dist = daily_distances_frame(src, Period.day(DAY0), zones, con)
    assert dist.select("pseudonym", "distance_m").rows() == [
        ("s1", 2 * one_degree),
        ("s2", 0),
        ("s3", 0),
    ]


def test_staged_source_lists_days_and_shards(tmp_path: Path) -> None:
    write_staged(tmp_path, [Ev("s1", 0, 8, 0, A), Ev("s2", 0, 8, 0, A), Ev("s2", 2, 8, 0, A)])
    src = StagedSource(tmp_path)
    assert len(src.files_for([DAY0])) == 2
    assert len(StagedSource(tmp_path, frozenset({2})).files_for(TWO_DAYS.days())) == 1
    assert src.missing_days(TWO_DAYS.days()) == [DAY0 + timedelta(days=1)]


def test_explicit_file_lists_are_filtered_by_local_date(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    units = write_staged(
        tmp_path, [Ev("s1", 0, 8, 0, A), Ev("s1", 0, 9, 0, B), Ev("s1", 1, 9, 0, A)]
    )
    files = StagedFiles(tuple(f for fs in units.values() for f in fs))
    trips = trips_frame(files, Period.day(DAY0 + timedelta(days=1)), "admin3", con)
    assert trips.is_empty()


def test_no_staged_files_gives_an_empty_typed_result(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    trips = trips_frame(StagedSource(tmp_path), Period.day(date(2020, 1, 1)), "admin3", con)
    assert trips.is_empty()
    assert trips.columns == [
        "pseudonym",
        "local_date",
        "origin",
        "destination",
        "depart_time",
        "arrival_time",
    ]


def test_sql_text_takes_identifiers_only() -> None:
    assert sql("SELECT {c} FROM {t}", c=("a", "b"), t="events") == "SELECT a, b FROM events"
    with pytest.raises(InternalError, match="not a plain SQL identifier"):
        sql("SELECT * FROM {t}", t="events; DROP TABLE x")
    plan = SqlPlan().with_cte("x", sql("SELECT 1 AS one"), p=1)
    with pytest.raises(InternalError, match="two different values"):
        plan.with_cte("y", sql("SELECT 2"), p=2)
    with pytest.raises(InternalError, match="defined twice"):
        plan.with_cte("x", sql("SELECT 2"))


def test_events_are_read_with_bound_file_parameters(tmp_path: Path) -> None:
    write_staged(tmp_path, [Ev("s1", 0, 8, 0, A)])
    plan = staged_events(SqlPlan(), "events", StagedSource(tmp_path), TWO_DAYS, "admin2")
    text = plan.text(sql("SELECT * FROM events"))
    assert str(tmp_path) not in text
    assert "$events_files" in text
    assert plan.to_polars(sql("SELECT zone FROM events")).rows() == [("NL0101",)]


def test_a_bounded_connection_holds_its_limit_and_removes_what_it_spilled(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    with bounded_connection(200, spill) as bounded:
        limit = bounded.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
        where = bounded.sql("SELECT current_setting('temp_directory')").fetchall()[0][0]
        # a hash aggregation larger than the limit still completes (it spills)
        rows = bounded.sql(
            "SELECT count(*) FROM (SELECT i % 3000000 AS k, count(*) AS n, "
            "string_agg(i::VARCHAR, ',') AS s FROM range(6000000) t(i) GROUP BY k)"
        ).fetchall()
    assert limit == "190.7 MiB"  # 200 MB
    assert where == str(spill)
    assert rows == [(3_000_000,)]
    assert not spill.exists()


_events = st.lists(
    st.builds(
        Ev,
        who=st.sampled_from(["s1", "s2", "s3"]),
        day=st.integers(0, 1),
        hour=st.integers(0, 23),
        minute=st.integers(0, 1),
        zone=st.sampled_from([A, B, C]),
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_events)
def test_trips_are_the_zone_changes_of_each_subscriber_day(
    tmp_path_factory: pytest.TempPathFactory, events: list[Ev]
) -> None:
    """Against a direct reading of the definition (the query skips one-zone days: same result)."""
    expected = []
    for who in sorted({e.who for e in events}):
        for day in sorted({e.time.date() for e in events}):
            mine = sorted((e.time, e.zone) for e in events if e.who == who and e.time.date() == day)
            expected += [
                (who, day, a[1], b[1]) for a, b in itertools.pairwise(mine) if a[1] != b[1]
            ]
    root = tmp_path_factory.mktemp("trips")
    write_staged(root, events)
    with duckdb.connect() as con:
        got = trips_frame(StagedSource(root), TWO_DAYS, "admin3", con)
    rows = got.select("pseudonym", "local_date", "origin", "destination").rows()
    assert sorted(rows) == sorted(expected)
