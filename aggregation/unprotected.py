"""The no-privacy reference: exact, *unbounded* aggregates straight from the staged events.

NEVER published. This is what a pipeline without contribution bounding or noise would output
(the "floor" of the benchmarks), used to measure how far a release is from the data it was made
from: the error it reports is DP noise plus bounding bias, nothing else. Plain DuckDB SQL over the
staged Parquet files (CDR events only, as the indicators), one query each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import datetime as dt

    import polars as pl

    from schemas.geography import AdminLevel

_LEVELS = ("admin1", "admin2", "admin3")

_OD_TRIPS = """
WITH ev AS (
    SELECT pseudonym, local_date, event_time, {level} AS zone,
           lag({level}) OVER (PARTITION BY pseudonym, local_date
                              ORDER BY event_time, {level}) AS prev
    FROM read_parquet($files) WHERE source = 'cdr' AND local_date = $day
)
SELECT local_date AS date, prev AS origin, zone AS destination, count(*) AS true_value
FROM ev WHERE prev IS NOT NULL AND prev <> zone
GROUP BY ALL
"""

_PRESENCE = """
SELECT local_date AS date, {level} AS zone, count(DISTINCT pseudonym) AS true_value
FROM read_parquet($files) WHERE source = 'cdr' AND local_date = $day
GROUP BY ALL
"""


def _run(template: str, files: list[str], day: dt.date, level: AdminLevel) -> pl.DataFrame:
    if level not in _LEVELS:  # the only text put into the SQL; checked against a fixed list
        msg = f"level must be one of {_LEVELS}; got {level!r}"
        raise ValueError(msg)
    con = duckdb.connect()
    try:
        query = template.format(level=level)
        frame: pl.DataFrame = con.sql(query, params={"files": files, "day": day}).pl()
        return frame
    finally:
        con.close()


def od_trips(files: list[str], day: dt.date, level: AdminLevel) -> pl.DataFrame:
    """Every trip between distinct consecutive zones of ``day``: date, origin, destination."""
    return _run(_OD_TRIPS, files, day, level)


def presence(files: list[str], day: dt.date, level: AdminLevel) -> pl.DataFrame:
    """Distinct subscribers per zone of ``day``: date, zone, true_value."""
    return _run(_PRESENCE, files, day, level)
