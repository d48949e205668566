"""One bounded-memory scan of a raw file before its rows are processed.

DuckDB reads only the id and time columns and returns what the chunked pass needs to know about the
whole file in advance: the rows that may be exact duplicates (see
:mod:`~aggregation.ingest.dedupe`). Its hash aggregation spills to the workspace's scratch
directory beyond ``[ingest] memory_limit_mb``, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import polars as pl

from aggregation.extract import bounded_connection
from aggregation.ingest.reading import ID_COLUMN, ROW, TIME_COLUMN

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.ingest.reading import Source


@dataclass(frozen=True, slots=True)
class Profile:
    """What one scan of a raw file tells ingest before it processes the rows."""

    candidates: pl.Series
    """Sorted row numbers (``_row``) whose (id, time) hash is shared with another row."""


def profile(source: Source, *, memory_limit_mb: int, spill_dir: Path) -> Profile:
    """Duplicate candidates of ``source``, in bounded memory."""
    id_col, time_col = ID_COLUMN[source.raw.feed], TIME_COLUMN[source.raw.feed]
    scan = source.scan_sql([id_col, time_col])
    # Only contract column names are interpolated; the path is a bound parameter.
    shared = (
        f'WITH hashed AS (SELECT {ROW}, hash("{id_col}", "{time_col}") AS h FROM {scan}) '  # noqa: S608
        f"SELECT {ROW} FROM hashed WHERE h IN "
        "(SELECT h FROM hashed GROUP BY h HAVING count(*) > 1)"
    )
    params = {"path": str(source.parquet)}
    try:
        with bounded_connection(memory_limit_mb, spill_dir, preserve_insertion_order=False) as con:
            rows = con.sql(shared, params=params).to_arrow_table().column(ROW)
    except duckdb.Error as exc:
        raise source.unreadable(exc) from exc
    return Profile(
        candidates=pl.Series(ROW, np.sort(rows.to_numpy()), dtype=pl.Int64),
    )
