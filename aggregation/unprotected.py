"""The no-privacy reference: exact, *unbounded* aggregates straight from the staged events.

NEVER published. This is what a pipeline without contribution bounding or noise would output
(the "floor" of the benchmarks), used to measure how far a release is from the data it was made
from: the error it reports is DP noise plus bounding bias, nothing else. The same staged events
and the same trips as the indicators (:mod:`aggregation.extract`: CDR events only), summed with
no cap, one DuckDB query each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.extract import StagedFiles, staged_events, trips
from aggregation.sql import SqlPlan, sql
from schemas.indicators import Period

if TYPE_CHECKING:
    import datetime as dt

    import polars as pl

    from schemas.geography import AdminLevel


def _events(files: list[str], day: dt.date, level: AdminLevel) -> SqlPlan:
    return staged_events(SqlPlan(), "events", StagedFiles(tuple(files)), Period.day(day), level)


def od_trips(files: list[str], day: dt.date, level: AdminLevel) -> pl.DataFrame:
    """Every trip between distinct consecutive zones of ``day``: date, origin, destination."""
    plan = trips(_events(files, day, level), "events", "trips")
    return plan.to_polars(
        sql("""SELECT local_date AS date, origin, destination, count(*) AS true_value
FROM trips GROUP BY ALL""")
    )


def presence(files: list[str], day: dt.date, level: AdminLevel) -> pl.DataFrame:
    """Distinct subscribers per zone of ``day``: date, zone, true_value."""
    return _events(files, day, level).to_polars(
        sql("""SELECT local_date AS date, zone, count(DISTINCT pseudonym) AS true_value
FROM events GROUP BY ALL""")
    )
