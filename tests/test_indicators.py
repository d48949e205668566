"""Exact bounded aggregates of every indicator on small hand-checked data (real DuckDB)."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pytest

from aggregation.extract import StagedFiles, StagedSource
from aggregation.indicators import (
    DEFINITIONS,
    AggregateRequest,
    bounded_contributions,
    definition,
    exact_aggregate,
)
from schemas.errors import ConfigurationError
from schemas.geography import ZONES
from schemas.indicators import (
    SPECS,
    ContributionBounds,
    HomeRule,
    Indicator,
    Period,
    Scope,
    ZoneSet,
    spec,
)
from schemas.privacy import Sensitivity
from tests.indicators_helpers import ADMIN3, DAY0, KEY, Ev, parent, write_staged, zone_set

if TYPE_CHECKING:
    import duckdb

A, B, D, C, E = sorted(ADMIN3)  # NL010101, NL010102, NL010201, NL020101, NL020102
DAY1 = DAY0 + timedelta(days=1)
THREE_DAYS = Period(DAY0, DAY0 + timedelta(days=2))
RULE = HomeRule(min_nights=2)
HOURS = [0, 1, 5, 8, 12, 17, 20, 22, 23]  # mostly night hours, so homes exist


def run(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    indicator: Indicator,
    scope: Scope,
    *,
    zones: ZoneSet | None = None,
    keys: str = "public",
    shards: frozenset[int] | None = None,
    **kwargs: object,
) -> pl.DataFrame:
    req = AggregateRequest(
        indicator,
        StagedSource(root, shards),
        zones or zone_set("admin3"),
        scope,
        home_rule=RULE,
        **kwargs,  # type: ignore[arg-type]
    )
    return exact_aggregate(req, KEY, keys="observed" if keys == "observed" else "public", con=con)


def nonzero(frame: pl.DataFrame, value: str = "count") -> list[tuple[object, ...]]:
    return frame.filter(pl.col(value) != 0).rows()


DAY0_EVENTS = [
    Ev("s1", 0, 8, 0, A),
    Ev("s1", 0, 9, 0, B),
    Ev("s1", 0, 17, 0, A),
    Ev("s1", 0, 22, 0, A),
    Ev("s2", 0, 7, 30, C),
    Ev("s2", 0, 12, 0, C),
    Ev("s2", 0, 13, 0, A),
    Ev("s3", 0, 10, 0, A),
]


@pytest.fixture(scope="module")
def day0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("day0")
    write_staged(root, DAY0_EVENTS)
    return root


def test_od_trips_count_consecutive_distinct_zones_over_every_pair(
    con: duckdb.DuckDBPyConnection, day0: Path
) -> None:
    out = run(con, day0, Indicator.OD_TRIPS, Scope(days=Period.day(DAY0)))
    assert out.columns == ["date", "origin", "destination", "count"]
    assert out.height == 5 * 4  # every ordered pair of distinct zones, zeros included
    assert nonzero(out) == [(DAY0, A, B, 1), (DAY0, B, A, 1), (DAY0, C, A, 1)]
    observed = run(con, day0, Indicator.OD_TRIPS, Scope(days=Period.day(DAY0)), keys="observed")
    assert observed.rows() == nonzero(out)


def test_presence_counts_each_subscriber_once_per_zone_day(
    con: duckdb.DuckDBPyConnection, day0: Path
) -> None:
    out = run(con, day0, Indicator.PRESENCE, Scope(days=Period.day(DAY0)))
    assert out.rows() == [(DAY0, A, 3), (DAY0, B, 1), (DAY0, D, 0), (DAY0, C, 1), (DAY0, E, 0)]


def test_od_connections_count_unordered_pairs(con: duckdb.DuckDBPyConnection, day0: Path) -> None:
    out = run(con, day0, Indicator.OD_CONNECTIONS, Scope(days=Period.day(DAY0)))
    assert out.height == 5 * 4 // 2
    assert nonzero(out) == [(DAY0, A, B, 1), (DAY0, A, C, 1)]


def test_event_counts_per_zone_and_hour(con: duckdb.DuckDBPyConnection, day0: Path) -> None:
    out = run(con, day0, Indicator.EVENT_COUNTS, Scope(days=Period.day(DAY0)))
    assert out.height == 5 * 24
    assert out.schema["hour"] == pl.Int8
    expected = sorted((DAY0, parent(e.zone, "admin3"), e.hour, 1) for e in DAY0_EVENTS)
    assert nonzero(out) == expected


def test_every_indicator_aggregates_at_the_chosen_level(
    con: duckdb.DuckDBPyConnection, day0: Path
) -> None:
    out = run(con, day0, Indicator.OD_TRIPS, Scope(days=Period.day(DAY0)), zones=zone_set("admin2"))
    assert nonzero(out) == [(DAY0, "NL0201", "NL0101", 1)]  # A→B is inside NL0101
    pres = run(
        con, day0, Indicator.PRESENCE, Scope(days=Period.day(DAY0)), zones=zone_set("admin1")
    )
    assert pres.rows() == [(DAY0, "NL01", 3), (DAY0, "NL02", 1)]


def test_days_without_data_give_a_complete_vector_of_zeros(
    con: duckdb.DuckDBPyConnection, day0: Path
) -> None:
    days = Period(DAY0, DAY0 + timedelta(days=1))
    out = run(con, day0, Indicator.PRESENCE, Scope(days=days))
    assert out.height == 10
    assert out.filter(pl.col("date") == DAY1)["count"].to_list() == [0] * 5


HOME_EVENTS = [
    # s1: home A (nights 0, 1, 2); on day 1 also seen in B at noon.
    *[Ev("s1", d, 22, 0, A) for d in range(3)],
    Ev("s1", 1, 12, 0, B),
    # s2: one night in C, two in E: home E; on day 1 only at home.
    Ev("s2", 0, 23, 0, C),
    Ev("s2", 1, 23, 0, E),
    Ev("s2", 2, 21, 0, E),
    Ev("s2", 1, 12, 0, E),
    # s3: a single night: no home under min_nights = 2.
    Ev("s3", 0, 22, 0, A),
    Ev("s3", 1, 12, 0, C),
]


@pytest.fixture(scope="module")
def home_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("homes")
    write_staged(root, HOME_EVENTS)
    return root


def test_residents_count_home_zones(con: duckdb.DuckDBPyConnection, home_data: Path) -> None:
    out = run(con, home_data, Indicator.RESIDENTS, Scope(home_period=THREE_DAYS))
    assert out.columns == ["home_zone", "count"]
    assert out.rows() == [(A, 1), (B, 0), (D, 0), (C, 0), (E, 1)]


def test_home_away_counts_subscribers_seen_outside_home(
    con: duckdb.DuckDBPyConnection, home_data: Path
) -> None:
    scope = Scope(days=Period.day(DAY1), home_period=THREE_DAYS)
    out = run(con, home_data, Indicator.HOME_AWAY, scope)
    assert out.columns == ["date", "home_zone", "count"]
    assert nonzero(out) == [(DAY1, A, 1)]  # s1 in B; s2 stayed home; s3 has no home


def test_mobility_distance_sums_clipped_distance_and_counts(
    con: duckdb.DuckDBPyConnection, home_data: Path
) -> None:
    scope = Scope(days=Period.day(DAY1), home_period=THREE_DAYS)
    zones = zone_set("admin3")
    assert zones.centroids is not None
    cent = dict(zip(zones.zone_ids, zones.centroids, strict=True))
    # s1 on day 1: B (12:00) → A (22:00): one leg between the centroids of B and A.
    (lat1, lon1), (lat2, lon2) = cent[B], cent[A]
    hav = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1))
        * math.cos(math.radians(lat2))
        * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    leg = round(2000 * 6371.0088 * math.asin(math.sqrt(hav)))
    out = run(con, home_data, Indicator.MOBILITY_DISTANCE, scope)
    assert out.columns == ["date", "home_zone", "distance_m", "subscribers"]
    assert nonzero(out, "subscribers") == [(DAY1, A, leg, 1), (DAY1, E, 0, 1)]
    clipped = run(
        con,
        home_data,
        Indicator.MOBILITY_DISTANCE,
        scope,
        bounds=ContributionBounds(max_distance_km=1),
    )
    assert nonzero(clipped, "subscribers") == [(DAY1, A, 1000, 1), (DAY1, E, 0, 1)]


def test_mobility_distance_measures_at_a_finer_level_than_the_home(
    con: duckdb.DuckDBPyConnection, home_data: Path
) -> None:
    scope = Scope(days=Period.day(DAY1), home_period=THREE_DAYS)
    coarse = zone_set("admin1")
    out = run(
        con,
        home_data,
        Indicator.MOBILITY_DISTANCE,
        scope,
        zones=coarse,
        distance_zones=zone_set("admin3"),
    )
    assert out.filter(pl.col("home_zone") == "NL01")["distance_m"].item() > 0
    same_level = run(con, home_data, Indicator.MOBILITY_DISTANCE, scope, zones=coarse)
    assert same_level["distance_m"].sum() == 0  # A→B stays inside NL01


def test_relocations_pair_homes_of_two_periods(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    events = [
        *[Ev("s1", d, 22, 0, A) for d in (0, 1)],
        *[Ev("s1", d, 22, 0, C) for d in (2, 3)],
        *[Ev("s2", d, 22, 0, B) for d in range(4)],  # stays: no relocation
    ]
    write_staged(tmp_path, events)
    scope = Scope(
        previous_home_period=Period(DAY0, DAY1),
        home_period=Period(DAY0 + timedelta(days=2), DAY0 + timedelta(days=3)),
    )
    out = run(con, tmp_path, Indicator.RELOCATIONS, scope)
    assert out.columns == ["origin", "destination", "count"]
    assert out.height == 20
    assert nonzero(out) == [(A, C, 1)]


def test_shard_by_shard_aggregates_add_up_to_the_whole(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rng = random.Random(4)  # noqa: S311 - reproducible test data, not a secret
    events = [
        Ev(f"s{i}", rng.randrange(4), rng.choice(HOURS), rng.randrange(60), rng.choice(zones))
        for i in range(12)
        for zones in [rng.sample(sorted(ADMIN3), 2)]
        for _ in range(20)
    ]
    write_staged(tmp_path, events, shard_of=lambda who: int(who[1:]) % 3)
    four_days = Period(DAY0, DAY0 + timedelta(days=3))
    scopes = {
        Indicator.RESIDENTS: Scope(home_period=four_days),
        Indicator.HOME_AWAY: Scope(days=four_days, home_period=four_days),
        Indicator.MOBILITY_DISTANCE: Scope(days=four_days, home_period=four_days),
        Indicator.RELOCATIONS: Scope(
            previous_home_period=Period(DAY0, DAY1),
            home_period=Period(DAY0 + timedelta(days=2), four_days.end),
        ),
    }
    for indicator in Indicator:
        scope = scopes.get(indicator, Scope(days=four_days))
        whole = run(con, tmp_path, indicator, scope)
        parts = [run(con, tmp_path, indicator, scope, shards=frozenset({k})) for k in range(3)]
        keys = list(spec(indicator).key_columns)
        total = pl.concat(parts).group_by(keys).agg(pl.all().sum()).sort(keys)
        assert total.equals(whole.select(total.columns)), indicator
        assert whole.select(spec(indicator).value_columns).sum_horizontal().sum() > 0, indicator


def test_contributions_sum_to_the_aggregate(con: duckdb.DuckDBPyConnection, day0: Path) -> None:
    req = AggregateRequest(
        Indicator.OD_TRIPS, StagedSource(day0), zone_set(), Scope(days=Period.day(DAY0))
    )
    per_subscriber = bounded_contributions(req, KEY, con=con)
    assert per_subscriber.columns == ["pseudonym", "date", "origin", "destination", "count"]
    summed = per_subscriber.group_by("date", "origin", "destination").agg(pl.col("count").sum())
    assert sorted(summed.rows()) == exact_aggregate(req, KEY, keys="observed", con=con).rows()


# --- the catalogue: declared sensitivities and parameter checks -------------------------------

ONE_DAY = Scope(days=Period.day(DAY0))
ONE_DAY_HOME = Scope(days=Period.day(DAY0), home_period=Period.month(2026, 2))
SQRT2 = math.sqrt(2)


@pytest.mark.parametrize(
    ("indicator", "scope", "expected"),
    [
        # event_counts: M = 20 events/day, c = 4 per zone-hour: 5 cells of 4 → l2 = sqrt(5·16).
        (Indicator.EVENT_COUNTS, ONE_DAY, {"count": Sensitivity(20, math.sqrt(80), 4)}),
        # presence: z = 3 zones, 1 each.
        (Indicator.PRESENCE, ONE_DAY, {"count": Sensitivity(3, math.sqrt(3), 1)}),
        # od_trips: L = 4 trips, possibly all the same pair.
        (Indicator.OD_TRIPS, ONE_DAY, {"count": Sensitivity(4, 4.0, 4)}),
        # od_connections: C(3, 2) = 3 pairs, 1 each.
        (Indicator.OD_CONNECTIONS, ONE_DAY, {"count": Sensitivity(3, math.sqrt(3), 1)}),
        # residents: one subscriber-day can move a home: -1 in one zone, +1 in another.
        (
            Indicator.RESIDENTS,
            Scope(home_period=Period.month(2026, 3)),
            {"count": Sensitivity(2, SQRT2, 1)},
        ),
        (Indicator.HOME_AWAY, ONE_DAY_HOME, {"count": Sensitivity(2, SQRT2, 1)}),
        # mobility_distance: U = 100 km = 100 000 m moved between two home zones.
        (
            Indicator.MOBILITY_DISTANCE,
            ONE_DAY_HOME,
            {
                "distance_m": Sensitivity(200_000, SQRT2 * 100_000, 100_000),
                "subscribers": Sensitivity(2, SQRT2, 1),
            },
        ),
        (
            Indicator.RELOCATIONS,
            Scope(previous_home_period=Period.month(2026, 2), home_period=Period.month(2026, 3)),
            {"count": Sensitivity(2, SQRT2, 1)},
        ),
    ],
)
def test_declared_sensitivities_with_default_bounds(
    indicator: Indicator, scope: Scope, expected: dict[str, Sensitivity]
) -> None:
    got = definition(indicator).sensitivities(ContributionBounds(), scope)
    assert got.keys() == expected.keys()
    for column, s in expected.items():
        assert (got[column].l1, got[column].linf) == (s.l1, s.linf)
        assert got[column].l2 == pytest.approx(s.l2)


def test_multi_day_vectors_scale_with_the_days_a_unit_can_touch() -> None:
    week = Scope(days=Period(DAY0, DAY0 + timedelta(days=6)))
    trips = definition(Indicator.OD_TRIPS)
    # Daily units touch one day of a 7-day vector; weekly units up to all 7.
    assert trips.sensitivity(ContributionBounds(), week, "day") == Sensitivity(4, 4.0, 4)
    weekly = trips.sensitivity(ContributionBounds(), week, "week")
    assert (weekly.l1, weekly.linf) == (28, 4)
    assert weekly.l2 == pytest.approx(4 * math.sqrt(7))
    # A unit in the home period moves a home_away count on every release day: 2 per day.
    home_week = Scope(days=week.days, home_period=Period.month(2026, 2))
    away = definition(Indicator.HOME_AWAY).sensitivity(ContributionBounds(), home_week)
    assert (away.l1, away.linf) == (14, 1)
    assert away.l2 == pytest.approx(math.sqrt(14))


def test_event_counts_l2_packs_the_day_cap_into_full_cells() -> None:
    bounds = ContributionBounds(max_events_per_zone_hour=4, max_events_per_day=10)
    s = definition(Indicator.EVENT_COUNTS).sensitivity(bounds, ONE_DAY)
    assert (s.l1, s.linf) == (10, 4)
    assert s.l2 == pytest.approx(math.sqrt(4**2 + 4**2 + 2**2))


def test_keys_one_unit_can_touch_for_partition_selection() -> None:
    b = ContributionBounds()
    assert definition(Indicator.OD_TRIPS).max_keys(b, ONE_DAY) == 4
    assert definition(Indicator.MOBILITY_DISTANCE).max_keys(b, ONE_DAY_HOME) == 2
    assert definition(Indicator.OD_CONNECTIONS).max_keys(b, ONE_DAY) == 3


def test_windows_read_cover_every_day_of_the_input() -> None:
    march = Period.month(2026, 3)
    assert len(spec(Indicator.RESIDENTS).days_read(Scope(home_period=march))) == 31
    scope = Scope(days=Period.day(date(2026, 4, 2)), home_period=march)
    read = spec(Indicator.HOME_AWAY).days_read(scope)
    assert (len(read), read[0], read[-1]) == (32, date(2026, 3, 1), date(2026, 4, 2))


def test_key_counts_of_the_public_key_sets() -> None:
    two_days = Scope(days=Period(DAY0, DAY1))
    assert spec(Indicator.OD_TRIPS).key_count(5, two_days) == 40
    assert spec(Indicator.OD_CONNECTIONS).key_count(5, two_days) == 20
    assert spec(Indicator.EVENT_COUNTS).key_count(5, two_days) == 240
    assert spec(Indicator.RESIDENTS).key_count(5, Scope(home_period=Period.month(2026, 3))) == 5


def test_every_indicator_has_one_module_registered_with_its_spec() -> None:
    assert set(DEFINITIONS) == set(Indicator)
    for indicator, d in DEFINITIONS.items():
        assert d.spec is SPECS[indicator]
        assert d.contributions.__module__ == f"aggregation.indicators.{indicator}"


@pytest.mark.parametrize("indicator", list(Indicator))
def test_the_public_key_set_in_sql_has_every_key_its_type_counts_once(
    indicator: Indicator,
) -> None:
    s = spec(indicator)
    periods = {
        "days": Period(DAY0, DAY1),
        "home_period": Period(DAY0, DAY1),
        "previous_home_period": Period(DAY0 - timedelta(days=7), DAY0 - timedelta(days=1)),
    }
    scope = Scope(**{name: periods[name] for name in s.scope_fields})
    zones = zone_set("admin2")
    empty = AggregateRequest(indicator, StagedFiles(()), zones, scope)
    frame = exact_aggregate(empty, KEY)
    assert frame.columns == [*s.key_columns, *s.value_columns]
    assert frame.height == s.key_count(len(zones.zone_ids), scope) > 0
    assert not frame.select(s.key_columns).is_duplicated().any()
    assert frame.select(s.value_columns).sum_horizontal().sum() == 0


def test_every_indicator_has_a_spec_with_documented_columns() -> None:
    assert set(SPECS) == set(Indicator)
    for s in SPECS.values():
        assert s.key_columns
        assert s.value_columns
        assert set(s.bounds_used) <= set(ContributionBounds.__dataclass_fields__)


def test_bad_parameters_are_refused_with_the_value_and_the_rule() -> None:
    with pytest.raises(
        ConfigurationError, match=r"max_trips_per_day must be a positive integer; got 0"
    ):
        ContributionBounds(max_trips_per_day=0)
    with pytest.raises(
        ConfigurationError, match=r"does not use the bound\(s\) \['max_zones_per_day'\]"
    ):
        spec(Indicator.OD_TRIPS).bounds(max_zones_per_day=5)
    assert spec(Indicator.OD_TRIPS).bounds(max_trips_per_day=6).max_trips_per_day == 6
    with pytest.raises(ConfigurationError, match="max_zones_per_day >= 2"):
        definition(Indicator.OD_CONNECTIONS).sensitivity(
            ContributionBounds(max_zones_per_day=1), ONE_DAY
        )
    with pytest.raises(ConfigurationError, match=r"missing \['home_period'\]"):
        spec(Indicator.HOME_AWAY).check_scope(ONE_DAY)
    with pytest.raises(ConfigurationError, match="must end before the home period"):
        spec(Indicator.RELOCATIONS).check_scope(
            Scope(previous_home_period=Period.month(2026, 3), home_period=Period.month(2026, 3))
        )
    with pytest.raises(ConfigurationError, match="Unknown indicator 'od_trip'"):
        spec("od_trip")
    with pytest.raises(ConfigurationError, match="must not end before it starts"):
        Period(DAY1, DAY0)
    with pytest.raises(ConfigurationError, match="must run across midnight"):
        HomeRule(night_start_hour=1, night_end_hour=6)
    with pytest.raises(ConfigurationError, match="duplicate zone ids"):
        ZoneSet("admin3", (A, A))
    with pytest.raises(ConfigurationError, match="zone set has none"):
        AggregateRequest(
            Indicator.MOBILITY_DISTANCE,
            StagedSource(Path("/nonexistent")),
            ZoneSet("admin3", (A, B)),
            ONE_DAY_HOME,
        )


def test_requests_take_indicator_names() -> None:
    req = AggregateRequest(
        "mobility_distance",  # type: ignore[arg-type]
        StagedSource(Path("/nonexistent")),
        zone_set(),
        ONE_DAY_HOME,
    )
    assert req.indicator is Indicator.MOBILITY_DISTANCE
    assert req.days_read()[-1] == DAY0


def test_zone_sets_come_from_the_zones_table() -> None:
    rows = [
        {"zone_id": z, "name": z, "level": "admin3", "parent_id": z[:6], "population": 1}
        | {"area_km2": 1.0, "centroid_lat": lat, "centroid_lon": lon, "geometry_wkb": b""}
        for z, (lat, lon) in ADMIN3.items()
    ]
    rows.append(rows[0] | {"zone_id": "NL01", "level": "admin1", "parent_id": None})
    zones = ZoneSet.from_table(pa.Table.from_pylist(rows, schema=ZONES.schema), "admin3")
    assert zones == zone_set("admin3")
