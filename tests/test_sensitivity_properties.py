"""Sensitivity is enforced, not assumed: one privacy unit moves every aggregate within its bound.

Hypothesis builds small staged datasets (one Parquet file per subscriber-day, so one privacy unit
is one file), removes one subscriber-day (and, for weekly units, one subscriber's whole week),
recomputes every indicator's exact bounded aggregate with the real code on real DuckDB, and checks
that the change is within the declared l1, l2 and linf of :mod:`aggregation.indicators`
(add/remove-one-unit neighbouring; adding the unit back is the same change reversed).
``hypothesis.target`` steers the search towards the largest changes. The GPS definitions of
``presence``, ``od_trips`` and ``mobility_distance`` are checked the same way on staged fixes
(one file per device-day: stays, trips and paths are recomputed without it).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from aggregation.extract import StagedFiles
from aggregation.indicators import AggregateRequest, exact_aggregate, sensitivities
from schemas.gps import StayRule
from schemas.indicators import ContributionBounds, HomeRule, Indicator, Period, Scope, spec
from schemas.staged import STAGED_FIXES
from tests.indicators_helpers import (
    ADMIN3,
    DAY0,
    KEY,
    SMALL_BOUNDS,
    Ev,
    unit_datasets,
    write_staged,
    zone_set,
)

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from schemas.geography import AdminLevel
    from schemas.privacy import AccountingWindow

N_DAYS = 4
ALL_DAYS = Period(DAY0, DAY0 + timedelta(days=N_DAYS - 1))
FIRST_HALF = Period(DAY0, DAY0 + timedelta(days=1))
SECOND_HALF = Period(DAY0 + timedelta(days=2), ALL_DAYS.end)

HOURS = [0, 2, 8, 12, 18, 21, 23]  # few hours, night ones included: cells fill up, homes exist
datasets = unit_datasets(hours=HOURS, subscribers=4, days=N_DAYS, max_events=9, max_units=10)


def scope_of(indicator: Indicator, release: Period) -> Scope:
    """Daily indicators over all days; home-based ones with homes over all days (overlapping)."""
    if indicator is Indicator.RESIDENTS:
        return Scope(home_period=ALL_DAYS)
    if indicator is Indicator.RELOCATIONS:
        return Scope(previous_home_period=FIRST_HALF, home_period=SECOND_HALF)
    if indicator in (Indicator.HOME_AWAY, Indicator.MOBILITY_DISTANCE):
        return Scope(days=release, home_period=ALL_DAYS)
    return Scope(days=ALL_DAYS)


CDR_EXAMPLES = {
    "data": datasets,
    "bounds": SMALL_BOUNDS,
    "min_nights": st.integers(1, 2),
    "level": st.sampled_from(["admin3", "admin2"]),
    "release": st.sampled_from([Period.day(d) for d in ALL_DAYS.days()] + [ALL_DAYS]),
    "pick": st.integers(0, 1000),
}


@pytest.mark.slow  # ~10 s on 2 idle cores: 50 examples × 24 DuckDB queries
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(**CDR_EXAMPLES)
def test_one_subscriber_day_moves_every_aggregate_within_its_declared_sensitivity(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    data: dict[tuple[str, int], list[tuple[int, int, str]]],
    bounds: ContributionBounds,
    min_nights: int,
    level: AdminLevel,
    release: Period,
    pick: int,
) -> None:
    _check_one_subscriber(tmp_path_factory, con, data, bounds, min_nights, level, release, pick)


# The same property in the quick loop (``-m "not slow"``), so that no run skips the sensitivity
# check: each example recomputes every indicator and column for both neighbouring windows, so 10
# examples still put every declared bound to work on each run (the thorough 50 run in CI).
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(**CDR_EXAMPLES)
def test_one_subscriber_day_moves_every_aggregate_within_its_declared_sensitivity_quick(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    data: dict[tuple[str, int], list[tuple[int, int, str]]],
    bounds: ContributionBounds,
    min_nights: int,
    level: AdminLevel,
    release: Period,
    pick: int,
) -> None:
    _check_one_subscriber(tmp_path_factory, con, data, bounds, min_nights, level, release, pick)


def _check_one_subscriber(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    data: dict[tuple[str, int], list[tuple[int, int, str]]],
    bounds: ContributionBounds,
    min_nights: int,
    level: AdminLevel,
    release: Period,
    pick: int,
) -> None:
    events = [Ev(who, day, h, m, z) for (who, day), evs in data.items() for h, m, z in evs]
    units = write_staged(tmp_path_factory.mktemp("staged"), events)
    everyone = sorted({f for files in units.values() for f in files})
    who, day = sorted(units)[pick % len(units)]  # the privacy unit removed
    without_day = [f for f in everyone if f not in units[who, day]]
    week = {f for (w, _), files in units.items() if w == who for f in files}
    without_week = [f for f in everyone if f not in week]  # all 4 days lie in one week
    neighbours: list[tuple[list[str], AccountingWindow]] = [
        (without_day, "day"),
        (without_week, "week"),
    ]
    zones, fine = zone_set(level), zone_set("admin3")
    rule = HomeRule(min_nights=min_nights)

    for indicator in Indicator:

        def request(files: list[str], indicator: Indicator = indicator) -> AggregateRequest:
            return AggregateRequest(
                indicator,
                StagedFiles(tuple(files)),
                zones,
                scope_of(indicator, release),
                bounds,
                rule,
                distance_zones=fine if indicator is Indicator.MOBILITY_DISTANCE else None,
            )

        before = exact_aggregate(request(everyone), KEY, con=con)
        for files, window in neighbours:
            after = exact_aggregate(request(files), KEY, con=con)
            assert before.height == after.height  # the same public key set
            for column, s in sensitivities(request(everyone), window).items():
                diff: list[int] = (before[column] - after[column]).abs().to_list()
                l1, linf, l2 = sum(diff), max(diff, default=0), math.sqrt(sum(d * d for d in diff))
                where = (
                    f"{indicator}.{column}, one subscriber-{window} removed: change l1={l1} "
                    f"l2={l2:.3f} linf={linf}, declared {s}"
                )
                assert l1 <= s.l1, where
                assert linf <= s.linf, where
                assert l2 <= s.l2 + 1e-9, where
                target(l1 / s.l1, label=f"{indicator}.{column} {window} l1 / declared")
                target(linf / s.linf, label=f"{indicator}.{column} {window} linf / declared")


# --- GPS: one device-day removed ----------------------------------------------------------------

GPS_INDICATORS = [i for i in Indicator if "gps" in spec(i).sources]
device_fixes = st.lists(
    st.tuples(
        st.integers(0, 23 * 60 + 59),  # minute of the day
        st.sampled_from(sorted(ADMIN3)),
        st.integers(-3, 3),  # position error, in units of 20 m
        st.sampled_from([5.0, 50.0, 300.0]),  # accuracy: the last is left out
    ),
    min_size=1,
    max_size=14,
)
gps_datasets = st.dictionaries(
    keys=st.tuples(st.sampled_from(["d0", "d1", "d2", "d3"]), st.integers(0, N_DAYS - 1)),
    values=device_fixes,
    min_size=1,
    max_size=8,
)


def _write_fixes(
    root: Path, data: dict[tuple[str, int], list[tuple[int, str, int, float]]]
) -> dict[tuple[str, int], str]:
    """One staged-fixes file per device-day: removing a file removes one privacy unit."""
    files = {}
    for n, ((who, day), fixes) in enumerate(sorted(data.items())):
        rows = []
        for minute, zone, error, accuracy in sorted(set(fixes)):
            lat, lon = ADMIN3[zone]
            t = datetime(DAY0.year, DAY0.month, DAY0.day, tzinfo=UTC) + timedelta(
                days=day, minutes=minute
            )
            rows.append({
                "pseudonym": who, "event_time": t, "local_date": t.date(), "local_hour": t.hour,
                "lat": lat + error * 0.00018, "lon": lon, "accuracy_m": accuracy,
                "admin1": zone[:4], "admin2": zone[:6], "admin3": zone,
            })  # fmt: skip
        path = root / f"date={(DAY0 + timedelta(days=day)).isoformat()}" / f"shard={n:03d}"
        path.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(rows, schema=STAGED_FIXES.schema)
        pq.write_table(table, path / "gps.parquet")
        files[who, day] = str(path / "gps.parquet")
    return files


GPS_EXAMPLES = {
    "data": gps_datasets,
    "bounds": SMALL_BOUNDS,
    "level": st.sampled_from(["admin3", "admin2"]),
    "release": st.sampled_from([Period.day(d) for d in ALL_DAYS.days()] + [ALL_DAYS]),
    "pick": st.integers(0, 1000),
    "dwell": st.sampled_from([10.0, 20.0]),
}


@pytest.mark.slow  # ~10 s: 40 examples × 9 DuckDB queries with stay detection
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(**GPS_EXAMPLES)
def test_one_device_day_or_week_moves_every_gps_aggregate_within_its_declared_sensitivity(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    data: dict[tuple[str, int], list[tuple[int, str, int, float]]],
    bounds: ContributionBounds,
    level: AdminLevel,
    release: Period,
    pick: int,
    dwell: float,
) -> None:
    _check_one_device(tmp_path_factory, con, data, bounds, level, release, pick, dwell)


# The same property in the quick loop, as for CDR above (every GPS indicator, both windows).
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(**GPS_EXAMPLES)
def test_one_device_day_or_week_moves_every_gps_aggregate_within_its_declared_sensitivity_quick(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    data: dict[tuple[str, int], list[tuple[int, str, int, float]]],
    bounds: ContributionBounds,
    level: AdminLevel,
    release: Period,
    pick: int,
    dwell: float,
) -> None:
    _check_one_device(tmp_path_factory, con, data, bounds, level, release, pick, dwell)


def _check_one_device(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    data: dict[tuple[str, int], list[tuple[int, str, int, float]]],
    bounds: ContributionBounds,
    level: AdminLevel,
    release: Period,
    pick: int,
    dwell: float,
) -> None:
    units = _write_fixes(tmp_path_factory.mktemp("fixes"), data)
    everyone = sorted(units.values())
    removed = sorted(units)[pick % len(units)]
    without_day = [f for u, f in sorted(units.items()) if u != removed]
    without_week = [f for u, f in sorted(units.items()) if u[0] != removed[0]]  # one week
    neighbours: list[tuple[list[str], AccountingWindow]] = [
        (without_day, "day"),
        (without_week, "week"),
    ]
    rule = StayRule(min_dwell_minutes=dwell)
    zones = zone_set(level)
    for indicator in GPS_INDICATORS:

        def request(files: list[str], indicator: Indicator = indicator) -> AggregateRequest:
            return AggregateRequest(
                indicator, StagedFiles(tuple(files)), zones, scope_of(indicator, release),
                bounds, HomeRule(min_nights=1), feed="gps", stay_rule=rule,
            )  # fmt: skip

        before = exact_aggregate(request(everyone), KEY, con=con)
        for files, window in neighbours:
            after = exact_aggregate(request(files), KEY, con=con)
            assert before.height == after.height
            for column, s in sensitivities(request(everyone), window).items():
                diff: list[int] = (before[column] - after[column]).abs().to_list()
                l1, linf = sum(diff), max(diff, default=0)
                l2 = math.sqrt(sum(d * d for d in diff))
                where = (
                    f"GPS {indicator}.{column}, one device-{window} removed: l1={l1} "
                    f"linf={linf}, declared {s}"
                )
                assert l1 <= s.l1, where
                assert linf <= s.linf, where
                assert l2 <= s.l2 + 1e-9, where
                target(l1 / s.l1, label=f"gps {indicator}.{column} {window} l1 / declared")
