"""Parameters shared by the endpoints, validated into requests before any work is done.

Days are ``YYYY-MM-DD`` and nothing else (no Unix timestamps, no ``20260302``), between
:data:`FIRST_DAY` and :data:`LAST_DAY`; a period spans at most :data:`MAX_PERIOD_DAYS` days; ε lies
in [:data:`EPSILON_MIN`, :data:`EPSILON_MAX`] and k in [0, K_MAX], the bounds of
:mod:`schemas.privacy`. Outside them the answer is a 422 that says what is accepted, before
anything is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Depends, Query
from pydantic import BeforeValidator, WithJsonSchema

from aggregation.export import ExportRequest
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator, Period
from schemas.privacy import EPSILON_RANGE

Level = Literal["admin1", "admin2", "admin3"]

FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2099, 12, 31)
MAX_PERIOD_DAYS = 732
"""Longest period of one request (two years); ask for longer spans in several requests."""
EPSILON_MIN, EPSILON_MAX = EPSILON_RANGE
"""The ε a release may ask for: the bounds of the one validation every door applies
(:func:`schemas.privacy.release_parameter_problems`), stated in the OpenAPI document."""

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> date:
    """``value`` as a day if it is written ``YYYY-MM-DD`` within the accepted range."""
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str) and _ISO_DAY.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            msg = f"{value!r} is not a day of the calendar; use YYYY-MM-DD, e.g. 2026-03-02"
            raise ValueError(msg) from None
    else:
        msg = f"use YYYY-MM-DD, e.g. 2026-03-02 (got {value!r})"
        raise ValueError(msg)
    if not FIRST_DAY <= day <= LAST_DAY:
        msg = f"{day} is out of range; give a day from {FIRST_DAY} to {LAST_DAY}"
        raise ValueError(msg)
    return day


_DAY_PATTERN = r"^(19[7-9][0-9]|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
"""``YYYY-MM-DD`` from 1970 to 2099 (:data:`FIRST_DAY`, :data:`LAST_DAY`), for the document."""

Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DAY_PATTERN}),
]
"""A day written ``YYYY-MM-DD`` (``format: date`` in the OpenAPI document), and only that."""

_RANGE = f"YYYY-MM-DD, {FIRST_DAY} to {LAST_DAY}"
From = Annotated[Day, Query(alias="from", description=f"First day wanted ({_RANGE}).")]
To = Annotated[
    Day | None,
    Query(alias="to", description=f"Last day wanted [default: from]; the period spans at most "
                                  f"{MAX_PERIOD_DAYS} days."),
]  # fmt: skip
LevelQuery = Annotated[Level, Query(description="Admin level of the zones released.")]
Zones = Annotated[
    list[str] | None,
    Query(description="Zone codes (repeat, or comma-separate); coarser codes select the zones "
                      "inside them [default: every zone]."),
]  # fmt: skip
BaselineFrom = Annotated[Day | None, Query(description="First day of the baseline period.")]
BaselineTo = Annotated[Day | None, Query(description="Last day of the baseline period.")]
Source = Literal["cdr", "gps"]
SourceQuery = Annotated[
    Source,
    Query(description="Data released from: cdr (subscribers' records) or gps (app fixes, "
                      "devices). Releases of the two are never mixed."),
]  # fmt: skip


def zones_of(values: list[str] | None) -> tuple[str, ...]:
    """``zones=A,B&zones=C`` as ``("A", "B", "C")``."""
    return tuple(z.strip() for v in values or [] for z in v.split(",") if z.strip())


def period_of(start: date, end: date | None) -> Period:
    """The period ``from``..``to`` (422 if reversed or longer than :data:`MAX_PERIOD_DAYS`)."""
    last = end or start
    if last < start:
        msg = f"'to' ({last}) is before 'from' ({start}); give the days in order."
        raise ConfigurationError(msg)
    days = (last - start).days + 1
    if days > MAX_PERIOD_DAYS:
        msg = (
            f"{start}..{last} spans {days} days; ask for at most {MAX_PERIOD_DAYS} days per "
            "request (split a longer span into several)."
        )
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


def _cdr_export_request(
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
    """The export the query asks for, from CDR releases."""
    period = period_of(start, end)
    return ExportRequest(
        indicator, period.start, period.end, level=level, zones=zones_of(zones), value=value,
        baseline=baseline_of(baseline_from, baseline_to),
    )  # fmt: skip


def export_request(
    asked: Annotated[ExportRequest, Depends(_cdr_export_request)], source: SourceQuery = "cdr"
) -> ExportRequest:
    """The export the query asks for, from the releases of ``source``."""
    return replace(asked, source=source)


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
