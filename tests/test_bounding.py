"""Contribution bounding: caps hold, and which records are kept depends only on the subscriber.

The kept set of a subscriber is compared with and without other subscribers present (guarantee 3
of docs/design.md): it must be identical, for every indicator that bounds.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation.bounding import BoundingKey
from aggregation.extract import StagedFiles, StagedSource, staged_events
from aggregation.indicators import AggregateRequest, bounded_contributions
from aggregation.indicators.event_counts import contributions as event_counts
from aggregation.indicators.od_trips import contributions as od_trips
from aggregation.sql import SqlPlan, keyed_order, sql
from schemas.errors import ConfigurationError
from schemas.indicators import ContributionBounds, HomeRule, Indicator, Period, Scope
from tests.indicators_helpers import ADMIN3, DAY0, KEY, OTHER_KEY, Ev, write_staged, zone_set

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

ZONES = sorted(ADMIN3)
DAYS = Period(DAY0, DAY0 + timedelta(days=1))
TIGHT = ContributionBounds(
    max_events_per_zone_hour=2, max_events_per_day=5, max_zones_per_day=2, max_trips_per_day=2
)


def request(
    indicator: Indicator, files: list[str], bounds: ContributionBounds = TIGHT
) -> AggregateRequest:
    scope = Scope(home_period=DAYS) if indicator is Indicator.RESIDENTS else Scope(days=DAYS)
    return AggregateRequest(
        indicator,
        StagedFiles(tuple(files)),
        zone_set("admin3"),
        scope,
        bounds,
        HomeRule(min_nights=1),
    )


def ping_pong(who: str, n_trips: int, day: int = 0) -> list[Ev]:
    """A subscriber-day alternating between two zones: ``n_trips`` trips, one per 10 minutes."""
    return [Ev(who, day, 6 + i // 6, (i % 6) * 10, ZONES[i % 2]) for i in range(n_trips + 1)]


def test_trips_are_capped_per_subscriber_day(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    write_staged(tmp_path, [*ping_pong("s1", 7), *ping_pong("s1", 1, day=1), *ping_pong("s2", 2)])
    req = AggregateRequest(
        Indicator.OD_TRIPS, StagedSource(tmp_path), zone_set(), Scope(days=DAYS), TIGHT
    )
    kept = bounded_contributions(req, KEY, con=con)
    per_unit = (
        kept.group_by("pseudonym", "date").agg(pl.col("count").sum()).sort("pseudonym", "date")
    )
    assert per_unit.rows() == [
        ("s1", DAY0, 2),
        ("s1", DAY0 + timedelta(days=1), 1),
        ("s2", DAY0, 2),
    ]


def test_kept_trips_are_a_keyed_random_choice_not_the_first_by_time(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    # 60 subscribers with 8 trips each (ping-pong), cap 2: which positions in the day survive?
    events = [e for i in range(60) for e in ping_pong(f"s{i}", 8)]
    write_staged(tmp_path, events)
    req = AggregateRequest(
        Indicator.OD_TRIPS, StagedSource(tmp_path), zone_set(), Scope(days=DAYS), TIGHT
    )
    plan, _ = od_trips(req, KEY)
    kept = plan.to_polars(sql("SELECT arrival_time FROM kept"), con)
    assert kept.height == 120
    positions = Counter((t.hour - 6) * 6 + t.minute // 10 for t in kept["arrival_time"])
    assert set(positions) == set(range(1, 9))  # every trip of the day can be kept
    assert max(positions.values()) < 40  # far from "always the first two" (60 each)
    again = plan.to_polars(sql("SELECT arrival_time FROM kept ORDER BY ALL"), con)
    assert again.equals(kept.sort("arrival_time"))  # deterministic for a given secret
    other_plan, _ = od_trips(req, OTHER_KEY)
    other = other_plan.to_polars(sql("SELECT arrival_time FROM kept ORDER BY ALL"), con)
    assert not other.equals(again)  # and the secret matters


def test_event_counts_cap_each_zone_hour_then_the_day(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    # 6 events in one zone-hour, 3 in another, 3 in a third: cell cap 2, day cap 5.
    events = [Ev("s1", 0, 9, m, ZONES[0]) for m in range(6)]
    events += [Ev("s1", 0, 10, m, ZONES[1]) for m in range(3)]
    events += [Ev("s1", 0, 11, m, ZONES[2]) for m in range(3)]
    write_staged(tmp_path, events)
    req = AggregateRequest(
        Indicator.EVENT_COUNTS, StagedSource(tmp_path), zone_set(), Scope(days=DAYS), TIGHT
    )
    kept = bounded_contributions(req, KEY, con=con)
    assert kept["count"].sum() == 5
    assert kept["count"].max() == 2


def test_event_counts_one_window_over_every_cell_keeps_what_the_keyed_order_keeps(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    # Light and heavy subscriber-days side by side. The cap runs one window over every cell,
    # ordered by the keyed hash then zone and hour within the subscriber-day; it must keep
    # exactly what the keyed order of (pseudonym, day, zone, hour) keeps, computed here the way
    # it was before: a window over the days over the cap only, the others kept whole.
    events = [
        Ev(f"s{i}", day, 6 + (j * 7 + i) % 14, j % 60, ZONES[(i + j) % len(ZONES)])
        for i in range(40)
        for day in (0, 1)
        for j in range(i % 13)
    ]
    write_staged(tmp_path, events)
    req = AggregateRequest(
        Indicator.EVENT_COUNTS, StagedSource(tmp_path), zone_set(), Scope(days=DAYS), TIGHT
    )
    plan, _ = event_counts(req, KEY)
    heavy_days = sql(
        """SELECT pseudonym, local_date FROM kept_cells
GROUP BY pseudonym, local_date HAVING sum(n) > $kept_day_cap"""
    )
    oracle = sql(
        """SELECT * FROM (
    SELECT c.* FROM kept_cells c ANTI JOIN ({heavy_days}) h USING (pseudonym, local_date)
    UNION ALL
    SELECT pseudonym, local_date, zone, local_hour, least(n, $kept_day_cap - before) AS n
    FROM (
        SELECT *, coalesce(sum(n) OVER (
            PARTITION BY pseudonym, local_date ORDER BY {order}
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
        FROM (SELECT c.* FROM kept_cells c SEMI JOIN ({heavy_days}) h USING (pseudonym, local_date))
    )
    WHERE before < $kept_day_cap
) ORDER BY ALL""",
        heavy_days=heavy_days,
        order=keyed_order("pseudonym", "local_date", "zone", "local_hour"),
    )
    kept = plan.to_polars(sql("SELECT * FROM kept ORDER BY ALL"), con)
    heavy = plan.to_polars(
        sql("SELECT count(*) AS n FROM ({heavy_days})", heavy_days=heavy_days), con
    )
    assert 0 < heavy["n"][0] < len(kept.unique(["pseudonym", "local_date"]))
    assert kept.equals(plan.to_polars(oracle, con))
    per_day = kept.group_by("pseudonym", "local_date").agg(pl.col("n").sum())
    assert per_day["n"].max() == TIGHT.max_events_per_day


def test_presence_and_connections_keep_the_same_zones(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    events = [Ev(f"s{i}", 0, 8 + j, 0, z) for i in range(20) for j, z in enumerate(ZONES)]
    write_staged(tmp_path, events)
    files = StagedSource(tmp_path).files_for(DAYS.days())
    presence = bounded_contributions(request(Indicator.PRESENCE, files), KEY, con=con)
    pairs = bounded_contributions(request(Indicator.OD_CONNECTIONS, files), KEY, con=con)
    assert presence.group_by("pseudonym").len()["len"].max() == 2
    for who, group in presence.group_by("pseudonym"):
        zones = sorted(group["zone"])
        pair = pairs.filter(pl.col("pseudonym") == who[0]).select("zone_a", "zone_b").rows()
        assert pair == [tuple(zones)]


BOUNDED = [
    Indicator.EVENT_COUNTS,
    Indicator.PRESENCE,
    Indicator.OD_TRIPS,
    Indicator.OD_CONNECTIONS,
    Indicator.RESIDENTS,
]

event = st.builds(
    Ev,
    who=st.sampled_from(["s1", "s2", "s3"]),
    day=st.integers(0, 1),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    zone=st.sampled_from(ZONES),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(others=st.lists(event, max_size=30), seed=st.integers(0, 10_000))
def test_kept_records_do_not_depend_on_other_subscribers(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    others: list[Ev],
    seed: int,
) -> None:
    # s0 over-contributes on every bound: many events, zones, trips, and tied nights.
    rng = [(seed * 7919 + i * 104729) % 997 for i in range(40)]
    heavy = [Ev("s0", r % 2, (r // 2) % 24, r % 60, ZONES[(r // 48) % len(ZONES)]) for r in rng]
    root = tmp_path_factory.mktemp("staged")
    units = write_staged(root, heavy + others)
    alone = [f for (who, _), fs in units.items() if who == "s0" for f in fs]
    everyone = sorted({f for fs in units.values() for f in fs})
    for indicator in BOUNDED:
        with_others = bounded_contributions(request(indicator, everyone), KEY, con=con)
        by_itself = bounded_contributions(request(indicator, alone), KEY, con=con)
        mine = with_others.filter(pl.col("pseudonym") == "s0")
        assert mine.equals(by_itself), indicator


def test_the_secret_is_never_shown_or_written_into_sql(tmp_path: Path) -> None:
    secret = b"do-not-print-me-0123456789"
    key = BoundingKey(secret)
    assert "do-not-print" not in repr(key)
    write_staged(tmp_path, ping_pong("s1", 3))
    req = AggregateRequest(Indicator.OD_TRIPS, StagedSource(tmp_path), zone_set(), Scope(days=DAYS))
    plan, contrib = od_trips(req, key)
    assert "do-not-print" not in plan.text(sql("SELECT * FROM {c}", c=contrib))
    assert "do-not-print" not in repr(req)


def test_secrets_must_be_long_enough() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes; got 5"):
        BoundingKey.from_secret("short")
    assert (
        BoundingKey.from_secret("a-long-enough-text-secret").secret == b"a-long-enough-text-secret"
    )


def test_an_empty_source_bounds_nothing(con: duckdb.DuckDBPyConnection) -> None:
    plan = staged_events(SqlPlan(), "events", StagedFiles(()), DAYS, "admin3")
    assert plan.to_polars(sql("SELECT count(*) AS n FROM events"), con).item() == 0
