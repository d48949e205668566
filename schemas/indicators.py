"""The indicator catalogue as every layer needs it: names, scopes, bounds, key sets, contracts.

What schemas holds of an indicator is what a request is validated against and what its
published files look like: the :class:`Indicator` name, the generic types a request is made of
(:class:`Period`, :class:`Scope`, :class:`ContributionBounds`, :class:`HomeRule`,
:class:`ZoneSet`, :class:`KeySet`) and one :class:`IndicatorSpec` row per indicator in
:data:`SPECS`: its key set, value columns, scope, the bounds it uses and the sources it has a
definition for. Pure data: no function of an indicator lives here.

Everything else about one indicator is in its own module, ``aggregation/indicators/<name>.py``:
what it counts and from which records, why its bounds have their defaults, the per-unit bound
and the sensitivity derived from it, and the SQL of each unit's contribution. The neighbouring
relation and the two ways a sensitivity follows from a per-unit bound (day-local and home-based)
are in :mod:`aggregation.indicators.definition`; ``tests/test_sensitivity_properties.py`` checks
every derivation against the real aggregation code.
"""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from schemas.errors import ConfigurationError, InternalError
from schemas.geography import ADMIN_LEVELS, ZONES, AdminLevel

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pyarrow as pa


class Indicator(StrEnum):
    """The mobility indicators this pipeline releases (World Bank / Flowminder / Eurostat names)."""

    EVENT_COUNTS = "event_counts"
    PRESENCE = "presence"
    OD_TRIPS = "od_trips"
    OD_CONNECTIONS = "od_connections"
    RESIDENTS = "residents"
    HOME_AWAY = "home_away"
    MOBILITY_DISTANCE = "mobility_distance"
    RELOCATIONS = "relocations"


NEIGHBOURING = "add_remove_unit"
"""The neighbouring relation of every indicator: one privacy unit's records added or removed."""

ScopeField = Literal["days", "home_period", "previous_home_period"]

_HOURS = range(24)
_MAX_LAT, _MAX_LON = 90.0, 180.0


def _positive_int(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{owner}.{name} must be a positive integer; got {value!r}."
        raise ConfigurationError(msg)


@dataclass(frozen=True, slots=True)
class Period:
    """An inclusive range of local calendar days, ``start`` to ``end``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            msg = f"A period must not end before it starts; got {self.start} to {self.end}."
            raise ConfigurationError(msg)

    @classmethod
    def day(cls, day: date) -> Period:
        """The period holding the single day ``day``."""
        return cls(day, day)

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        """The calendar month ``year``-``month``."""
        last = calendar.monthrange(year, month)[1]
        return cls(date(year, month, 1), date(year, month, last))

    @property
    def n_days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days + 1

    def days(self) -> tuple[date, ...]:
        """Every day of the period, in order."""
        return tuple(self.start + timedelta(days=i) for i in range(self.n_days))

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}..{self.end}"

    @classmethod
    def parse(cls, text: str) -> Period:
        """The period ``str(period)`` wrote: ``2026-03-02`` or ``2026-03-02..2026-03-08``
        (``ValueError`` for text that is not one)."""
        start, _, end = text.partition("..")
        return cls(date.fromisoformat(start), date.fromisoformat(end or start))


@dataclass(frozen=True, slots=True)
class Scope:
    """The days a release is about and the periods its home zones are computed over.

    ``days``: the release days (the ``date`` key) of a daily indicator. ``home_period``: the period
    over which home zones are computed (for ``residents`` the period released; for ``relocations``
    the *later* period). ``previous_home_period``: the earlier period of ``relocations``.
    Which fields an indicator needs is :attr:`IndicatorSpec.scope_fields`.
    """

    days: Period | None = None
    home_period: Period | None = None
    previous_home_period: Period | None = None

    def days_read(self) -> tuple[date, ...]:
        """Every day whose staged data the release reads, in order: the windows it is charged."""
        found: set[date] = set()
        for p in (self.days, self.home_period, self.previous_home_period):
            if p is not None:
                found.update(p.days())
        return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class ContributionBounds:
    """Caps on what one subscriber contributes per local day, enforced before aggregation.

    Each indicator uses some of the fields (:attr:`IndicatorSpec.bounds_used`); why each default
    is what it is, and what it does to the sensitivity, is said in the module of the indicator
    that uses it (``aggregation/indicators/<name>.py``): ``max_events_per_zone_hour = 4`` and
    ``max_events_per_day = 20`` (event_counts), ``max_zones_per_day = 3`` (presence,
    od_connections), ``max_trips_per_day = 4`` (od_trips), ``max_distance_km = 100``
    (mobility_distance).
    """

    max_events_per_zone_hour: int = 4
    max_events_per_day: int = 20
    max_zones_per_day: int = 3
    max_trips_per_day: int = 4
    max_distance_km: int = 100

    def __post_init__(self) -> None:
        for f in fields(self):
            _positive_int("ContributionBounds", f.name, getattr(self, f.name))

    @property
    def max_distance_m(self) -> int:
        """The distance clip ``U`` in metres, the unit of the distance sums."""
        return self.max_distance_km * 1000


@dataclass(frozen=True, slots=True)
class HomeRule:
    """How a subscriber's home zone over a period is found.

    Home = the zone in which the subscriber was seen on the most distinct *nights* of the period,
    where a night-time event is one whose local hour is in [``night_start_hour``, 24) or
    [0, ``night_end_hour``) and events before ``night_end_hour`` belong to the previous evening's
    night. Ties are broken by a keyed hash of (secret, pseudonym, zone), so they do not depend on
    anyone else's data. A subscriber has no home (and is left out of home-based indicators) unless
    the home zone was seen on at least ``min_nights`` distinct nights.
    """

    night_start_hour: int = 20
    night_end_hour: int = 7
    min_nights: int = 3

    def __post_init__(self) -> None:
        _positive_int("HomeRule", "min_nights", self.min_nights)
        for name in ("night_start_hour", "night_end_hour"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value not in _HOURS:
                msg = f"HomeRule.{name} must be an hour in 0-23; got {value!r}."
                raise ConfigurationError(msg)
        if self.night_start_hour <= self.night_end_hour:
            msg = (
                "HomeRule: the night must run across midnight (night_start_hour > night_end_hour); "
                f"got {self.night_start_hour} to {self.night_end_hour}."
            )
            raise ConfigurationError(msg)

    @property
    def evening_hours(self) -> tuple[int, ...]:
        """Night hours that belong to the night starting on the same day."""
        return tuple(range(self.night_start_hour, 24))

    @property
    def morning_hours(self) -> tuple[int, ...]:
        """Night hours that belong to the night that started the previous day."""
        return tuple(range(self.night_end_hour))


@dataclass(frozen=True, slots=True)
class ZoneSet:
    """The public zones of one admin level: the key set of every indicator at that level.

    ``centroids`` (``(lat, lon)`` per zone, WGS84) are needed only to measure distances.
    """

    level: AdminLevel
    zone_ids: tuple[str, ...]
    centroids: tuple[tuple[float, float], ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.level not in ADMIN_LEVELS:
            msg = f"ZoneSet.level must be one of {list(ADMIN_LEVELS)}; got {self.level!r}."
            raise ConfigurationError(msg)
        if not self.zone_ids:
            msg = f"ZoneSet for {self.level} is empty; a key set needs at least one zone."
            raise ConfigurationError(msg)
        if len(set(self.zone_ids)) != len(self.zone_ids):
            dupes = sorted(z for z, n in Counter(self.zone_ids).items() if n > 1)
            msg = f"ZoneSet for {self.level} has duplicate zone ids {dupes[:5]}."
            raise ConfigurationError(msg)
        if self.centroids is not None:
            if len(self.centroids) != len(self.zone_ids):
                msg = (
                    f"ZoneSet for {self.level} has {len(self.centroids)} centroids for "
                    f"{len(self.zone_ids)} zones; give one (lat, lon) per zone."
                )
                raise ConfigurationError(msg)
            for zone, (lat, lon) in zip(self.zone_ids, self.centroids, strict=True):
                if not (abs(lat) <= _MAX_LAT and abs(lon) <= _MAX_LON):
                    msg = f"Zone {zone!r} has centroid ({lat}, {lon}) outside WGS84 ranges."
                    raise ConfigurationError(msg)

    @classmethod
    def from_table(cls, zones: pa.Table, level: AdminLevel) -> ZoneSet:
        """The zones of ``level`` in a table conforming to :data:`schemas.geography.ZONES`."""
        ZONES.validate(zones, source="zones table")
        rows = [
            r
            for r in zones.select(["zone_id", "level", "centroid_lat", "centroid_lon"]).to_pylist()
            if r["level"] == level
        ]
        rows.sort(key=lambda r: r["zone_id"])
        return cls(
            level=level,
            zone_ids=tuple(r["zone_id"] for r in rows),
            centroids=tuple((r["centroid_lat"], r["centroid_lon"]) for r in rows),
        )


class ZoneKeys(StrEnum):
    """How the zones of a key set combine: one zone, or a pair of distinct zones."""

    ZONE = "zone"
    ORDERED_PAIR = "ordered_pair"
    """Two zones, ``origin != destination``: a move from one to the other."""
    UNORDERED_PAIR = "unordered_pair"
    """Two zones, ``zone_a < zone_b``: both seen, in no order."""


@dataclass(frozen=True, slots=True)
class KeySet:
    """The public key set a vector ranges over: (date ×) zones (× hour).

    Zones are those of one admin level (public), combined as :attr:`zones` says under the names
    ``zone_columns``; ``dated`` vectors have one block of cells per release day (key ``date``),
    ``hourly`` ones one cell per local hour 0-23 (key ``hour``). Every key exists whether or not
    anything was observed: :func:`aggregation.indicators.keys.key_set` enumerates them in SQL,
    :meth:`size` counts them.
    """

    zones: ZoneKeys
    zone_columns: tuple[str, ...]
    dated: bool = False
    hourly: bool = False

    def __post_init__(self) -> None:
        wanted = 1 if self.zones is ZoneKeys.ZONE else 2
        if len(self.zone_columns) != wanted:
            msg = f"A {self.zones} key set names {wanted} zone column(s); got {self.zone_columns}."
            raise InternalError(msg)

    @property
    def columns(self) -> tuple[str, ...]:
        """The key columns, in order: ``date``, the zone columns, ``hour``."""
        dated = ("date",) if self.dated else ()
        return (*dated, *self.zone_columns, *(("hour",) if self.hourly else ()))

    def size(self, n_zones: int, n_days: int = 1) -> int:
        """Number of keys with ``n_zones`` zones and (if dated) ``n_days`` release days."""
        per_day = {
            ZoneKeys.ZONE: n_zones,
            ZoneKeys.ORDERED_PAIR: n_zones * (n_zones - 1),
            ZoneKeys.UNORDERED_PAIR: n_zones * (n_zones - 1) // 2,
        }[self.zones] * (len(_HOURS) if self.hourly else 1)
        return per_day * (n_days if self.dated else 1)

    def __str__(self) -> str:
        parts = ["date"] if self.dated else []
        parts.append(str(self.zones))
        return "×".join([*parts, *(["hour"] if self.hourly else [])])


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """What a request for one indicator is checked against, and the shape of what it returns.

    ``key_set`` the public keys its vector ranges over (its key columns, in order);
    ``value_columns`` the columns of its exact aggregate after the keys; ``scope_fields`` the
    :class:`Scope` fields it needs (a ``home_period`` makes it home-based); ``bounds_used`` the
    :class:`ContributionBounds` fields that shape it and ``min_bounds`` the least value of those
    that need more than 1; ``sources`` the feeds it has a definition from (``cdr`` always,
    ``gps`` for the indicators with a GPS definition: one device's fixes are bounded like one
    subscriber's records, so the sensitivity is the same function of the bounds). What it
    counts, its sensitivity and its SQL: ``aggregation/indicators/<name>.py``.

    ``epsilon_shares`` how its ε is split between its value columns, each released (and
    charged) on its own: ``(column, share)`` for every value column, the shares summing to 1;
    empty, an even split. ``distance_level`` the admin level whose zone centroids measure its
    distances (``mobility_distance``: admin3, the finest), None for an indicator that measures
    none; the release plan hands it those zones.
    """

    indicator: Indicator
    description: str
    key_set: KeySet
    value_columns: tuple[str, ...]
    scope_fields: tuple[ScopeField, ...]
    bounds_used: tuple[str, ...]
    sources: tuple[str, ...] = ("cdr",)
    min_bounds: tuple[tuple[str, int], ...] = ()
    epsilon_shares: tuple[tuple[str, float], ...] = ()
    distance_level: AdminLevel | None = None

    def __post_init__(self) -> None:
        if self.key_set.dated != ("days" in self.scope_fields):
            msg = f"{self.indicator}: a dated key set goes with release days, and only then."
            raise InternalError(msg)
        if self.epsilon_shares and (
            sorted(c for c, _ in self.epsilon_shares) != sorted(self.value_columns)
            or sum(share for _, share in self.epsilon_shares) != 1
        ):
            msg = f"{self.indicator}: ε shares name each value column once and sum to 1."
            raise InternalError(msg)

    def epsilon_share(self, value_column: str) -> float:
        """The share of this indicator's ε that the release of ``value_column`` is charged."""
        if not self.epsilon_shares:
            return 1.0 / len(self.value_columns)
        return dict(self.epsilon_shares)[value_column]

    def check_source(self, source: str) -> None:
        """Refuse a source this indicator has no definition for, naming those that have one."""
        if source not in self.sources:
            with_gps = [s.indicator.value for s in SPECS.values() if "gps" in s.sources]
            msg = (
                f"{self.indicator} has no definition from {source!r} data; it is computed from "
                f"{list(self.sources)}. Indicators with a GPS definition: {with_gps}."
            )
            raise ConfigurationError(msg)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The key columns of its exact aggregate, in order."""
        return self.key_set.columns

    @property
    def daily(self) -> bool:
        """Whether the vector has a ``date`` key (one block of cells per release day)."""
        return self.key_set.dated

    @property
    def home_based(self) -> bool:
        """Whether it finds homes over a home period (so one unit there can move a home)."""
        return "home_period" in self.scope_fields

    def bounds(self, **overrides: int) -> ContributionBounds:
        """Default bounds with ``overrides``, refusing fields this indicator does not use."""
        unused = sorted(set(overrides) - set(self.bounds_used))
        if unused:
            msg = (
                f"{self.indicator} does not use the bound(s) {unused}; "
                f"it uses {list(self.bounds_used) or 'none'}."
            )
            raise ConfigurationError(msg)
        return replace(ContributionBounds(), **overrides)

    def check_bounds(self, bounds: ContributionBounds) -> None:
        """Refuse bounds below what the indicator needs (``od_connections``: 2 zones a day)."""
        for name, least in self.min_bounds:
            if getattr(bounds, name) < least:
                msg = (
                    f"{self.indicator} needs {name} >= {least} (below that it has nothing to "
                    f"count); got {getattr(bounds, name)}."
                )
                raise ConfigurationError(msg)

    def check_scope(self, scope: Scope) -> None:
        """Raise :class:`ConfigurationError` unless ``scope`` gives exactly what this needs."""
        given = {n for n in ("days", "home_period", "previous_home_period") if getattr(scope, n)}
        missing = sorted(set(self.scope_fields) - given)
        extra = sorted(given - set(self.scope_fields))
        if missing or extra:
            msg = (
                f"{self.indicator} needs the scope fields {list(self.scope_fields)}; "
                f"missing {missing}, not used {extra}."
            )
            raise ConfigurationError(msg)
        prev, home = scope.previous_home_period, scope.home_period
        if prev is not None and home is not None and prev.end >= home.start:
            msg = (
                f"{self.indicator}: the previous home period ({prev}) must end before the home "
                f"period ({home}) starts."
            )
            raise ConfigurationError(msg)

    def days_read(self, scope: Scope) -> tuple[date, ...]:
        """The days whose data the release reads; the ledger charges each one's window."""
        self.check_scope(scope)
        return scope.days_read()

    def key_count(self, n_zones: int, scope: Scope) -> int:
        """Number of cells of the public key set with ``n_zones`` zones."""
        return self.key_set.size(n_zones, scope.days.n_days if scope.days is not None else 1)


_BOTH = ("cdr", "gps")
_DAYS: tuple[ScopeField, ...] = ("days",)
_DAYS_HOME: tuple[ScopeField, ...] = ("days", "home_period")
_ZONE, _ORDERED, _UNORDERED = ZoneKeys.ZONE, ZoneKeys.ORDERED_PAIR, ZoneKeys.UNORDERED_PAIR
_COUNT = ("count",)

SPECS: Mapping[Indicator, IndicatorSpec] = {
    s.indicator: s
    for s in (
        IndicatorSpec(
            Indicator.EVENT_COUNTS,
            "Events per zone per local hour per day.",
            KeySet(_ZONE, ("zone",), dated=True, hourly=True),
            _COUNT,
            _DAYS,
            ("max_events_per_zone_hour", "max_events_per_day"),
        ),
        IndicatorSpec(
            Indicator.PRESENCE,
            "Unique subscribers seen in each zone per day (present population).",
            KeySet(_ZONE, ("zone",), dated=True),
            _COUNT,
            _DAYS,
            ("max_zones_per_day",),
            sources=_BOTH,
        ),
        IndicatorSpec(
            Indicator.OD_TRIPS,
            "Trips between consecutive distinct zones per day (origin → destination).",
            KeySet(_ORDERED, ("origin", "destination"), dated=True),
            _COUNT,
            _DAYS,
            ("max_trips_per_day",),
            sources=_BOTH,
        ),
        IndicatorSpec(
            Indicator.OD_CONNECTIONS,
            "Subscribers seen in both zones of an unordered pair on the same day.",
            KeySet(_UNORDERED, ("zone_a", "zone_b"), dated=True),
            _COUNT,
            _DAYS,
            ("max_zones_per_day",),
            min_bounds=(("max_zones_per_day", 2),),
        ),
        IndicatorSpec(
            Indicator.RESIDENTS,
            "Subscribers per home zone over a period (home: modal night-time zone).",
            KeySet(_ZONE, ("home_zone",)),
            _COUNT,
            ("home_period",),
            (),
        ),
        IndicatorSpec(
            Indicator.HOME_AWAY,
            "Subscribers seen outside their home zone that day, per home zone per day.",
            KeySet(_ZONE, ("home_zone",), dated=True),
            _COUNT,
            _DAYS_HOME,
            (),
        ),
        IndicatorSpec(
            Indicator.MOBILITY_DISTANCE,
            "Sum of clipped daily distance travelled and subscriber count, per home zone per day.",
            KeySet(_ZONE, ("home_zone",), dated=True),
            ("distance_m", "subscribers"),
            _DAYS_HOME,
            ("max_distance_km",),
            sources=_BOTH,
            # Its useful output is the mean distance per home zone, the ratio of the two noisy
            # sums: why 3/4 and 1/4, see aggregation/indicators/mobility_distance.py.
            epsilon_shares=(("distance_m", 0.75), ("subscribers", 0.25)),
            distance_level="admin3",
        ),
        IndicatorSpec(
            Indicator.RELOCATIONS,
            "Subscribers whose home zone changed between two periods (origin → destination home).",
            KeySet(_ORDERED, ("origin", "destination")),
            _COUNT,
            ("previous_home_period", "home_period"),
            (),
        ),
    )
}
"""The catalogue: one :class:`IndicatorSpec` per :class:`Indicator`; the rest of each
indicator's definition is its module, ``aggregation/indicators/<name>.py``."""


def spec(indicator: Indicator | str) -> IndicatorSpec:
    """The spec of ``indicator``, with a helpful message for an unknown name."""
    try:
        return SPECS[Indicator(indicator)]
    except ValueError:
        msg = f"Unknown indicator {indicator!r}; choose one of {[i.value for i in Indicator]}."
        raise ConfigurationError(msg) from None
