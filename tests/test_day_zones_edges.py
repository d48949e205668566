"""Day-zone summaries (issue 21) on random hand-made events: homes at the edges of the night and
of the period, and distances of each subscriber-day, are the same from the summaries as from the
events. Split from tests/test_day_zones.py (which builds a 7-day synthetic country) so that the two
files run on different test workers.
"""

from __future__ import annotations

import datetime as dt
import shutil
from functools import partial
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation.bounding import BoundingKey
from aggregation.extract import (
    StagedSource,
    current_day_zones,
    daily_distances_frame,
    homes_frame,
    staged_day_zones,
)
from aggregation.extract.day_zones import homes_from_day_zones, staged_day_distances
from aggregation.release.digests import staged_digests
from aggregation.sql import SqlPlan, sql
from schemas.indicators import HomeRule, Period
from tests.indicators_helpers import ADMIN3, DAY0, Ev, write_staged, zone_set

if TYPE_CHECKING:
    from pathlib import Path

    from schemas.geography import AdminLevel

KEY = BoundingKey(b"day-zones-test-secret-0123456789")


def _homes_two_ways(root: Path, period: Period, level: AdminLevel, rule: HomeRule) -> None:
    source = StagedSource(root)
    current_day_zones(source, period.days(), partial(staged_digests, root))
    full = homes_frame(source, period, level, rule, KEY)
    plan = staged_day_zones(SqlPlan(), "events", source, period, level)
    plan = homes_from_day_zones(plan, "events", "homes", rule, KEY)
    summarised = plan.to_polars(sql("SELECT * FROM homes ORDER BY pseudonym"))
    assert summarised.equals(full)


_EVENT = st.tuples(
    st.sampled_from(["s1", "s2", "s3"]),
    st.integers(0, 3),  # day
    st.integers(0, 23),  # local hour
    st.sampled_from(sorted(ADMIN3)),
)


HOMES_EXAMPLES = {
    "events": st.lists(_EVENT, min_size=1, max_size=40),
    "start": st.integers(0, 2),
    "length": st.integers(1, 3),
    "night": st.sampled_from([(20, 7), (22, 5), (23, 1), (12, 11)]),
    "min_nights": st.integers(1, 3),
    "level": st.sampled_from(["admin1", "admin2", "admin3"]),
}


@pytest.mark.slow  # 60 examples in CI; the quick loop runs 15 (the _quick copy below)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**HOMES_EXAMPLES)
def test_homes_from_summaries_at_the_edges_of_the_night_and_the_period(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[str, int, int, str]],
    start: int,
    length: int,
    night: tuple[int, int],
    min_nights: int,
    level: AdminLevel,
) -> None:
    root = tmp_path_factory.mktemp("edges")
    evs = [Ev(who, day, hour, i % 60, zone) for i, (who, day, hour, zone) in enumerate(events)]
    write_staged(root, evs)
    first = DAY0 + dt.timedelta(days=start)
    period = Period(first, first + dt.timedelta(days=length - 1))
    rule = HomeRule(night_start_hour=night[0], night_end_hour=night[1], min_nights=min_nights)
    _homes_two_ways(root, period, level, rule)
    shutil.rmtree(root)


_MOVE = st.tuples(
    st.sampled_from(["s1", "s2", "s3"]),
    st.integers(0, 2),  # day
    st.integers(0, 23),  # local hour
    st.integers(0, 2),  # minute: few values, so that events share a timestamp
    st.sampled_from(sorted(ADMIN3)),
)


DISTANCE_EXAMPLES = {"events": st.lists(_MOVE, min_size=1, max_size=40), "start": st.integers(0, 2)}


@pytest.mark.slow  # 60 examples in CI; the quick loop runs 15 (the _quick copy below)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**DISTANCE_EXAMPLES)
def test_distances_from_summaries_are_those_of_the_events_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[str, int, int, int, str]],
    start: int,
) -> None:
    """Each summary row carries its subscriber-day's distance, measured from the day's events
    in order (ties in time broken by zone, as on events): the same as from the events."""
    root = tmp_path_factory.mktemp("distances")
    write_staged(
        root, [Ev(who, day, hour, minute, zone) for who, day, hour, minute, zone in events]
    )
    source, zones = StagedSource(root), zone_set("admin3")
    period = Period(DAY0 + dt.timedelta(days=start), DAY0 + dt.timedelta(days=2))
    current_day_zones(source, period.days(), partial(staged_digests, root), distance_zones=zones)
    full = daily_distances_frame(source, period, zones)
    plan = staged_day_distances(SqlPlan(), "dist", source, period, zones)
    summarised = plan.to_polars(sql("SELECT * FROM dist ORDER BY pseudonym, local_date"))
    assert summarised.equals(full)
    shutil.rmtree(root)


# The same two properties in the quick loop (``-m "not slow"``) on 15 examples, so that no run
# skips them; ``.hypothesis.inner_test`` is the undecorated test above (the checks are its own).
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**HOMES_EXAMPLES)
def test_homes_from_summaries_at_the_edges_of_the_night_and_the_period_quick(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[str, int, int, str]],
    start: int,
    length: int,
    night: tuple[int, int],
    min_nights: int,
    level: AdminLevel,
) -> None:
    test_homes_from_summaries_at_the_edges_of_the_night_and_the_period.hypothesis.inner_test(
        tmp_path_factory, events, start, length, night, min_nights, level
    )


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**DISTANCE_EXAMPLES)
def test_distances_from_summaries_are_those_of_the_events_in_order_quick(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[str, int, int, int, str]],
    start: int,
) -> None:
    test_distances_from_summaries_are_those_of_the_events_in_order.hypothesis.inner_test(
        tmp_path_factory, events, start
    )
