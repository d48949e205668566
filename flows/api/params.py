"""Query parameters shared by the export and chart endpoints, validated into requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from fastapi import Query

from aggregation.export import ExportRequest
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator, Period

Level = Literal["admin1", "admin2", "admin3"]

From = Annotated[date, Query(alias="from", description="First day wanted (YYYY-MM-DD).")]
To = Annotated[date | None, Query(alias="to", description="Last day wanted [default: from].")]
LevelQuery = Annotated[Level, Query(description="Admin level of the zones released.")]
Zones = Annotated[
    list[str] | None,
    Query(description="Zone codes (repeat, or comma-separate); coarser codes select the zones "
                      "inside them [default: every zone]."),
]  # fmt: skip
BaselineFrom = Annotated[date | None, Query(description="First day of the baseline period.")]
BaselineTo = Annotated[date | None, Query(description="Last day of the baseline period.")]


def zones_of(values: list[str] | None) -> tuple[str, ...]:
    """``zones=A,B&zones=C`` as ``("A", "B", "C")``."""
    return tuple(z.strip() for v in values or [] for z in v.split(",") if z.strip())


def period_of(start: date, end: date | None) -> Period:
    """The period ``from``..``to`` (422 if reversed)."""
    last = end or start
    if last < start:
        msg = f"'to' ({last}) is before 'from' ({start}); give the days in order."
        raise ConfigurationError(msg)
    return Period(start, last)


def baseline_of(start: date | None, end: date | None) -> Period | None:
    """The baseline period (both bounds or neither)."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        msg = "Give both 'baseline_from' and 'baseline_to', or neither."
        raise ConfigurationError(msg)
    return period_of(start, end)


def export_request(
    indicator: Indicator,
    start: From,
    end: To = None,
    level: LevelQuery = "admin2",
    zones: Zones = None,
    value: Annotated[
        str | None,
        Query(description="One value column of an indicator with several [default: all]."),
    ] = None,
    baseline_from: BaselineFrom = None,
    baseline_to: BaselineTo = None,
) -> ExportRequest:
    """The export the query asks for."""
    period = period_of(start, end)
    return ExportRequest(
        indicator, period.start, period.end, level=level, zones=zones_of(zones), value=value,
        baseline=baseline_of(baseline_from, baseline_to),
    )  # fmt: skip


@dataclass(frozen=True)
class ChartQuery:
    """What a chart is drawn over: days, level, zones and the baseline (if any)."""

    period: Period
    level: Level
    zones: tuple[str, ...]
    baseline: Period | None


def chart_query(
    start: From,
    end: To = None,
    level: LevelQuery = "admin2",
    zones: Zones = None,
    baseline_from: BaselineFrom = None,
    baseline_to: BaselineTo = None,
) -> ChartQuery:
    """The chart the query asks for."""
    return ChartQuery(
        period_of(start, end), level, zones_of(zones), baseline_of(baseline_from, baseline_to)
    )
