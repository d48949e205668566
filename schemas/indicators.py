"""The indicator catalogue: what each indicator counts, over which keys, and its sensitivity.

Every indicator is an exact *bounded* aggregate: contributions are capped per privacy unit first
(:class:`ContributionBounds`), then summed over a public key set. Its declared
:class:`~schemas.privacy.Sensitivity` is a function of the bounds only, never of the data, and is
derived below; ``tests/test_sensitivity_properties.py`` checks every derivation against the real
aggregation code.

Neighbouring relation (the same for every indicator)
----------------------------------------------------
Add/remove one privacy unit: two staged datasets are neighbours when one is the other plus all
records of one *privacy unit*, that is one subscriber's records within one accounting window (one
local calendar day by default; see :data:`schemas.privacy.AccountingWindow`). Replacing a unit's
records is two such steps.

How the sensitivities are derived
---------------------------------
Bounding guarantees, for each indicator, a *per-subscriber bound* ``B = (B1, B2, Binf)``: one
subscriber's contribution ``c`` to the cells of one release day (for daily indicators) or to the
whole vector (for period indicators) is non-negative with ``|c|_1 <= B1``, ``|c|_2 <= B2`` and
``|c|_inf <= Binf``. From ``B`` the sensitivity follows in one of two ways:

* **Day-local** indicators (``event_counts``, ``presence``, ``od_trips``, ``od_connections``): the
  subscriber's contribution on day ``d`` depends only on their own records of day ``d`` (bounding
  is per subscriber-day with a keyed order of their own records). Adding or removing a unit turns
  ``c`` into ``0`` (or back) on each release day the unit covers, ``k = min(release days, days in
  the accounting window)``: ``l1 = k*B1``, ``l2 = sqrt(k)*B2``, ``linf = Binf``.
* **Home-based** indicators (``residents``, ``home_away``, ``mobility_distance``, ``relocations``):
  the contribution depends on a home zone computed over a reference period, so one unit anywhere
  in that period can *move* the contribution: ``c`` becomes another ``c'`` obeying the same bound.
  Because both are non-negative, ``|c - c'|_1 <= 2*B1``, ``|c - c'|_inf <= Binf`` and
  ``|c - c'|_2^2 = |c|^2 + |c'|^2 - 2<c, c'> <= 2*B2^2``. A change of home affects every release
  day, so with ``k`` release days (1 for period indicators): ``l1 = 2*k*B1``,
  ``l2 = sqrt(2*k)*B2``, ``linf = Binf``. This holds for any accounting window: whatever subset
  of one subscriber's records a unit is, the subscriber contributes within ``B`` before and after.

The per-subscriber bound of each indicator is derived in the docstring of its ``_*_bound``
function below. Summary with the defaults (``z`` zones/day, ``L`` trips/day, ``M`` events/day,
``c`` events per zone-hour, ``U`` metres of daily distance), one release day, daily units:

=================  =================  ==================================  ==========================
indicator          per-subscriber B1  declared l1 / l2 / linf             with the defaults
=================  =================  ==================================  ==========================
event_counts       M                  M / sqrt(⌊M/c⌋c² + r²) / c          20 / 8.94 / 4
presence           z                  z / sqrt(z) / 1                     3 / 1.73 / 1
od_trips           L                  L / L / L                           4 / 4 / 4
od_connections     C(z, 2)            C(z,2) / sqrt(C(z,2)) / 1           3 / 1.73 / 1
residents          1                  2 / sqrt(2) / 1                     2 / 1.41 / 1
home_away          1 per day          2 / sqrt(2) / 1                     2 / 1.41 / 1
mobility_distance  U m; 1 per day     2U / sqrt(2)U / U; 2 / sqrt(2) / 1  200000 / 141421 / 100000 m
relocations        1                  2 / sqrt(2) / 1                     2 / 1.41 / 1
=================  =================  ==================================  ==========================

App GPS fixes as a source
-------------------------
``presence``, ``od_trips`` and ``mobility_distance`` also have a GPS definition
(:attr:`IndicatorSpec.sources`; ``source = "gps"`` in a release). The privacy unit is then one
*device's* fixes within one accounting window (``device-day`` by default): devices are keyed by
their own pseudonyms, which cannot be linked to subscribers', so a GPS release is charged to the
same windows and caps as a CDR release (one person may be in both; the window's spend bounds
what that person loses through both sources). Each definition reads only the device's own fixes
of the day (and, for homes, of the home period), and is bounded with the same bounds and the same
keyed order as for subscribers, so the per-device bound ``B`` and the sensitivity are those of the
table above, derived the same way (``tests/test_sensitivity_properties.py`` checks GPS too):

* ``presence``: 1 in each zone where one of the device-day's fixes (accurate enough for the stay
  rule, :class:`schemas.gps.StayRule` ``max_accuracy_m``) lies, at most ``z`` zones: day-local,
  ``B = (z, sqrt(z), 1)``.
* ``od_trips``: the device-day's stays (:mod:`aggregation.gps_stays`) in time order, each in the
  zone of its fix nearest its centre; a trip is a change of zone between consecutive stays; at
  most ``L`` trips: day-local, ``B = (L, L, L)``.
* ``mobility_distance``: the device-day's path length through its fixes (each fix of a stay
  replaced by the stay's centre, so the jitter of a device at rest adds nothing), clipped to
  ``[0, U]``, in the cell of the device's home zone (modal night-time zone of its fixes over the
  home period, :class:`HomeRule`); and 1 in the count: home-based, ``B = (U, U, U)`` and
  ``(1, 1, 1)``.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from schemas.errors import ConfigurationError
from schemas.geography import ADMIN_LEVELS, ZONES, AdminLevel
from schemas.privacy import AccountingWindow, Sensitivity

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

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

KeySet = Literal[
    "date×zone×hour",
    "date×zone",
    "date×ordered_pair",
    "date×unordered_pair",
    "zone",
    "ordered_pair",
]
"""The public key set a vector ranges over. Zones are those of one admin level (public); ordered
pairs have ``origin != destination``; unordered pairs have ``zone_a < zone_b``; hours are 0-23."""

ScopeField = Literal["days", "home_period", "previous_home_period"]

_HOURS = range(24)
_MAX_LAT, _MAX_LON = 90.0, 180.0

WINDOW_DAYS: dict[AccountingWindow, int] = {"day": 1, "week": 7, "month": 31}
"""The most calendar days one accounting window can span."""


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

    Each indicator uses some of the fields (:attr:`IndicatorSpec.bounds_used`). Defaults and why:

    * ``max_events_per_zone_hour = 4`` (event_counts): a subscriber makes a handful of CDR events
      in one hour; bursts beyond 4 are mostly data sessions re-opened every few minutes and say
      little about how many people were there. Caps the change of one cell.
    * ``max_events_per_day = 20`` (event_counts): the median subscriber-day in CDR has well under
      20 events, so the cap trims the heavy tail only; the noise scale grows linearly with it.
    * ``max_zones_per_day = 3`` (presence, od_connections): home, work and one other place cover
      most subscriber-days at admin2/admin3; each extra zone adds 1 to presence's l1 and
      ``z`` to od_connections' (C(z,2) pairs).
    * ``max_trips_per_day = 4`` (od_trips): home→work→other→home is 3 trips; 4 keeps typical days
      whole while the noise scale stays small (l1 = 4). Which trips are kept beyond 4 is a keyed
      random choice, so the cut is not biased towards morning trips.
    * ``max_distance_km = 100`` (mobility_distance): daily distance between zone centroids is
      clipped to [0, 100 km], covering commutes; long-distance travel days are clipped.
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


# --- per-subscriber bounds, one per indicator (derivations in the docstrings) -------------------


def _event_counts_bound(b: ContributionBounds) -> dict[str, Sensitivity]:
    """Per subscriber-day: at most ``c`` events per (zone, hour) cell and ``M`` in total.

    ``B1 = M``; ``Binf = min(M, c)``. The largest ``|c|_2`` with total ``M`` and cells ``<= c`` puts
    ``c`` in ``q = M // c`` cells and the remainder ``r = M % c`` in one more:
    ``B2 = sqrt(q*c^2 + r^2)`` (convexity: concentrating mass maximises the sum of squares).
    """
    cap = min(b.max_events_per_zone_hour, b.max_events_per_day)
    q, r = divmod(b.max_events_per_day, cap)
    return {
        "count": Sensitivity(l1=b.max_events_per_day, l2=math.sqrt(q * cap * cap + r * r), linf=cap)
    }


def _presence_bound(b: ContributionBounds) -> dict[str, Sensitivity]:
    """Per subscriber-day: 1 in each of at most ``z`` distinct zones.

    ``B1 = z``, ``B2 = sqrt(z)``, ``Binf = 1``.
    """
    z = b.max_zones_per_day
    return {"count": Sensitivity(l1=z, l2=math.sqrt(z), linf=1)}


def _od_trips_bound(b: ContributionBounds) -> dict[str, Sensitivity]:
    """Per subscriber-day: at most ``L`` trips, each adding 1 to its (origin, destination) cell.

    ``B1 = L``. All ``L`` kept trips can be the same ordered pair (A→B, B→A, A→B, … keeps A→B
    ``L`` times when the keyed choice falls that way), so ``Binf = L`` and ``B2 = L``.
    """
    n = b.max_trips_per_day
    return {"count": Sensitivity(l1=n, l2=float(n), linf=n)}


def _od_connections_bound(b: ContributionBounds) -> dict[str, Sensitivity]:
    """Per subscriber-day: 1 for each unordered pair of the at most ``z`` zones kept.

    ``B1 = C(z, 2)``, ``B2 = sqrt(C(z, 2))``, ``Binf = 1``. Needs ``z >= 2``.
    """
    pairs = math.comb(b.max_zones_per_day, 2)
    if pairs < 1:
        msg = (
            "od_connections needs max_zones_per_day >= 2 (it counts pairs of zones); "
            f"got {b.max_zones_per_day}."
        )
        raise ConfigurationError(msg)
    return {"count": Sensitivity(l1=pairs, l2=math.sqrt(pairs), linf=1)}


def _one_home_bound(_: ContributionBounds) -> dict[str, Sensitivity]:
    """Per subscriber (per period, or per release day): 1 in the cell of their home zone (pair).

    ``B1 = B2 = Binf = 1``.
    """
    return {"count": Sensitivity(l1=1, l2=1.0, linf=1)}


def _one_key(_: ContributionBounds) -> int:
    return 1


def _mobility_distance_bound(b: ContributionBounds) -> dict[str, Sensitivity]:
    """Per subscriber-day: their daily distance, clipped to ``[0, U]`` metres, in their home cell;
    and 1 in the same cell of the subscriber count.

    ``distance_m``: ``B1 = B2 = Binf = U``. ``subscribers``: ``B1 = B2 = Binf = 1``. The mean
    distance is the ratio of the two noisy vectors: post-processing, no extra cost.
    """
    u = b.max_distance_m
    return {
        "distance_m": Sensitivity(l1=u, l2=float(u), linf=u),
        "subscribers": Sensitivity(l1=1, l2=1.0, linf=1),
    }


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """What one indicator computes and what one privacy unit can change of it.

    ``key_columns`` and ``value_columns`` are the columns of its exact aggregate (in order);
    ``key_set`` the public keys it ranges over; ``scope_fields`` the :class:`Scope` fields it needs;
    ``bounds_used`` the :class:`ContributionBounds` fields that shape it; ``day_local`` whether a
    subscriber's contribution on a day depends only on their records of that day (see the module
    docstring for what this means for the sensitivity); ``per_subscriber`` the per-subscriber
    bound ``B`` of each value column and ``per_subscriber_keys`` how many keys one subscriber can
    touch (per release day, or per period).
    """

    indicator: Indicator
    description: str
    key_columns: tuple[str, ...]
    value_columns: tuple[str, ...]
    key_set: KeySet
    scope_fields: tuple[ScopeField, ...]
    bounds_used: tuple[str, ...]
    day_local: bool
    per_subscriber: Callable[[ContributionBounds], dict[str, Sensitivity]] = field(repr=False)
    per_subscriber_keys: Callable[[ContributionBounds], int] = field(repr=False)
    sources: tuple[str, ...] = ("cdr",)
    """The feeds it can be computed from: ``cdr`` always, ``gps`` for the indicators with a GPS
    definition (module docstring); one device's fixes are bounded like one subscriber's records,
    so the sensitivity is the same function of the bounds."""

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
    def daily(self) -> bool:
        """Whether the vector has a ``date`` key (one block of cells per release day)."""
        return "date" in self.key_columns

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
        n_days = scope.days.n_days if scope.days is not None else 1
        per_day = {
            "date×zone×hour": n_zones * 24,
            "date×zone": n_zones,
            "date×ordered_pair": n_zones * (n_zones - 1),
            "date×unordered_pair": n_zones * (n_zones - 1) // 2,
            "zone": n_zones,
            "ordered_pair": n_zones * (n_zones - 1),
        }[self.key_set]
        return per_day * (n_days if self.daily else 1)

    def sensitivities(
        self, bounds: ContributionBounds, scope: Scope, window: AccountingWindow = "day"
    ) -> dict[str, Sensitivity]:
        """Declared sensitivity of each value column, for one unit of ``window``.

        Day-local: ``l1 = k*B1, l2 = sqrt(k)*B2, linf = Binf`` with ``k`` the release days one
        unit covers; home-based: ``l1 = 2k*B1, l2 = sqrt(2k)*B2, linf = Binf`` with ``k`` the
        release days (derivation in the module docstring).
        """
        k, m = self._units(scope, window)
        return {
            column: Sensitivity(l1=k * m * b.l1, l2=math.sqrt(k * m) * b.l2, linf=b.linf)
            for column, b in self.per_subscriber(bounds).items()
        }

    def _units(self, scope: Scope, window: AccountingWindow) -> tuple[int, int]:
        """``(k, m)``: release days one unit can affect and the factor of a moved contribution."""
        self.check_scope(scope)
        if window not in WINDOW_DAYS:
            msg = f"Accounting window must be one of {list(WINDOW_DAYS)}; got {window!r}."
            raise ConfigurationError(msg)
        release_days = scope.days.n_days if scope.days is not None else 1
        if self.day_local:
            return min(release_days, WINDOW_DAYS[window]), 1
        return release_days, 2

    def max_keys(
        self, bounds: ContributionBounds, scope: Scope, window: AccountingWindow = "day"
    ) -> int:
        """The most keys one privacy unit can change (``l0``, for DP partition selection)."""
        k, m = self._units(scope, window)
        return k * m * self.per_subscriber_keys(bounds)

    def sensitivity(
        self,
        bounds: ContributionBounds,
        scope: Scope,
        window: AccountingWindow = "day",
        *,
        value: str | None = None,
    ) -> Sensitivity:
        """Declared sensitivity of the value column ``value`` (default: the only one)."""
        all_ = self.sensitivities(bounds, scope, window)
        if value is None:
            if len(all_) != 1:
                msg = f"{self.indicator} has several value columns {list(all_)}; name one."
                raise ConfigurationError(msg)
            return next(iter(all_.values()))
        if value not in all_:
            msg = f"{self.indicator} has no value column {value!r}; it has {list(all_)}."
            raise ConfigurationError(msg)
        return all_[value]


_BOTH = ("cdr", "gps")
_DAYS: tuple[ScopeField, ...] = ("days",)
_DAYS_HOME: tuple[ScopeField, ...] = ("days", "home_period")

SPECS: Mapping[Indicator, IndicatorSpec] = {
    s.indicator: s
    for s in (
        IndicatorSpec(
            Indicator.EVENT_COUNTS,
            "Events per zone per local hour per day.",
            ("date", "zone", "hour"),
            ("count",),
            "date×zone×hour",
            _DAYS,
            ("max_events_per_zone_hour", "max_events_per_day"),
            day_local=True,
            per_subscriber=_event_counts_bound,
            per_subscriber_keys=lambda b: b.max_events_per_day,
        ),
        IndicatorSpec(
            Indicator.PRESENCE,
            "Unique subscribers seen in each zone per day (present population).",
            ("date", "zone"),
            ("count",),
            "date×zone",
            _DAYS,
            ("max_zones_per_day",),
            day_local=True,
            per_subscriber=_presence_bound,
            per_subscriber_keys=lambda b: b.max_zones_per_day,
            sources=_BOTH,
        ),
        IndicatorSpec(
            Indicator.OD_TRIPS,
            "Trips between consecutive distinct zones per day (origin → destination).",
            ("date", "origin", "destination"),
            ("count",),
            "date×ordered_pair",
            _DAYS,
            ("max_trips_per_day",),
            day_local=True,
            per_subscriber=_od_trips_bound,
            per_subscriber_keys=lambda b: b.max_trips_per_day,
            sources=_BOTH,
        ),
        IndicatorSpec(
            Indicator.OD_CONNECTIONS,
            "Subscribers seen in both zones of an unordered pair on the same day.",
            ("date", "zone_a", "zone_b"),
            ("count",),
            "date×unordered_pair",
            _DAYS,
            ("max_zones_per_day",),
            day_local=True,
            per_subscriber=_od_connections_bound,
            per_subscriber_keys=lambda b: math.comb(b.max_zones_per_day, 2),
        ),
        IndicatorSpec(
            Indicator.RESIDENTS,
            "Subscribers per home zone over a period (home: modal night-time zone).",
            ("home_zone",),
            ("count",),
            "zone",
            ("home_period",),
            (),
            day_local=False,
            per_subscriber=_one_home_bound,
            per_subscriber_keys=_one_key,
        ),
        IndicatorSpec(
            Indicator.HOME_AWAY,
            "Subscribers seen outside their home zone that day, per home zone per day.",
            ("date", "home_zone"),
            ("count",),
            "date×zone",
            _DAYS_HOME,
            (),
            day_local=False,
            per_subscriber=_one_home_bound,
            per_subscriber_keys=_one_key,
        ),
        IndicatorSpec(
            Indicator.MOBILITY_DISTANCE,
            "Sum of clipped daily distance travelled and subscriber count, per home zone per day.",
            ("date", "home_zone"),
            ("distance_m", "subscribers"),
            "date×zone",
            _DAYS_HOME,
            ("max_distance_km",),
            day_local=False,
            per_subscriber=_mobility_distance_bound,
            per_subscriber_keys=_one_key,
            sources=_BOTH,
        ),
        IndicatorSpec(
            Indicator.RELOCATIONS,
            "Subscribers whose home zone changed between two periods (origin → destination home).",
            ("origin", "destination"),
            ("count",),
            "ordered_pair",
            ("previous_home_period", "home_period"),
            (),
            day_local=False,
            per_subscriber=_one_home_bound,
            per_subscriber_keys=_one_key,
        ),
    )
}
"""The catalogue: one :class:`IndicatorSpec` per :class:`Indicator`."""


UNIT_HOLDER = {"cdr": "subscriber", "gps": "device"}
"""Whose records one privacy unit holds, per source."""


def privacy_unit(source: str, window: AccountingWindow) -> str:
    """The privacy unit of a release from ``source`` under ``window``: ``subscriber-day``,
    ``device-week`` …"""
    if source not in UNIT_HOLDER:
        msg = f"Unknown source {source!r}; choose one of {list(UNIT_HOLDER)}."
        raise ConfigurationError(msg)
    return f"{UNIT_HOLDER[source]}-{window}"


def spec(indicator: Indicator | str) -> IndicatorSpec:
    """The spec of ``indicator``, with a helpful message for an unknown name."""
    try:
        return SPECS[Indicator(indicator)]
    except ValueError:
        msg = f"Unknown indicator {indicator!r}; choose one of {[i.value for i in Indicator]}."
        raise ConfigurationError(msg) from None
