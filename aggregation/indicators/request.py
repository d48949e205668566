"""What one exact bounded aggregate is computed from: :class:`AggregateRequest`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from aggregation.extract.source import StagedSource
from schemas.errors import ConfigurationError
from schemas.gps import StayRule
from schemas.indicators import (
    SPECS,
    ContributionBounds,
    HomeRule,
    Indicator,
    IndicatorSpec,
    Scope,
    ZoneSet,
    spec,
)

if TYPE_CHECKING:
    from datetime import date

    from aggregation.extract import EventSource
    from schemas.staged import Source

HOME_BASED = frozenset(i for i, s in SPECS.items() if s.home_based)
"""Indicators that find homes over a home period: the readers of day-zone summaries."""

KeyStrategy = Literal["public", "observed"]
"""``public``: every key of the public key set, zeros included (the default; noise goes on every
cell). ``observed``: only keys with a positive value, for DP partition selection downstream."""


@dataclass(frozen=True, slots=True)
class AggregateRequest:
    """One indicator over one scope, at the admin level of ``zones``, with its bounds.

    ``distance_zones`` (``mobility_distance`` only) are the zones whose centroids measure
    distances, usually admin3; by default ``zones`` themselves (which then need centroids).
    The bounding secret is not part of the request: it is passed separately and never shown.

    ``feed`` says what ``source`` holds: staged CDR events (``cdr``, the default) or the staged
    GPS fixes sidecar (``gps``: ``staged/_fixes``), whose stays follow ``stay_rule``.
    """

    indicator: Indicator
    source: EventSource
    zones: ZoneSet
    scope: Scope
    bounds: ContributionBounds = field(default_factory=ContributionBounds)
    home_rule: HomeRule = field(default_factory=HomeRule)
    distance_zones: ZoneSet | None = None
    feed: Source = "cdr"
    stay_rule: StayRule = field(default_factory=StayRule)
    day_zones: bool = False
    """Home-based CDR indicators: find homes (and ``home_away``'s zones seen) in the day-zone
    summaries of ``source`` (:mod:`aggregation.extract.day_zones`) instead of its events; the
    same aggregate. The caller makes the summaries current first (``current_day_zones``)."""

    def __post_init__(self) -> None:
        s = spec(self.indicator)  # refuses unknown names
        object.__setattr__(self, "indicator", s.indicator)  # "od_trips" → Indicator.OD_TRIPS
        s.check_source(self.feed)
        s.check_scope(self.scope)
        s.check_bounds(self.bounds)  # refuses bounds the indicator cannot use (e.g. z < 2)
        if s.distance_level is not None:
            if self.centroid_zones.centroids is None:
                msg = (
                    f"{self.indicator} measures distances between zone centroids, but the "
                    f"{self.centroid_zones.level} zone set has none; build it with "
                    "ZoneSet.from_table(zones_table, level)."
                )
                raise ConfigurationError(msg)
        elif self.distance_zones is not None:
            measuring = [str(i.indicator) for i in SPECS.values() if i.distance_level is not None]
            msg = f"Only {', '.join(measuring)} uses distance_zones; {self.indicator} does not."
            raise ConfigurationError(msg)
        if self.day_zones and (
            self.indicator not in HOME_BASED
            or self.feed != "cdr"
            or not isinstance(self.source, StagedSource)
        ):
            msg = (
                f"Day-zone summaries serve home-based CDR indicators over a staged directory; "
                f"not {self.indicator} ({self.feed}, {type(self.source).__name__})."
            )
            raise ConfigurationError(msg)

    @property
    def spec(self) -> IndicatorSpec:
        """The catalogue entry of the indicator."""
        return spec(self.indicator)

    @property
    def centroid_zones(self) -> ZoneSet:
        """The zones whose centroids measure distances."""
        return self.distance_zones if self.distance_zones is not None else self.zones

    def days_read(self) -> tuple[date, ...]:
        """Every day whose data the aggregate reads: the accounting windows to charge."""
        return self.spec.days_read(self.scope)
