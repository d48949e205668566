"""One bounded-memory scan of a raw file before its rows are processed.

DuckDB reads only the id and time columns and returns what the chunked pass needs to know about the
whole file in advance: the distinct raw ids (each is keyed once, see
:mod:`~aggregation.ingest.pseudonymise`) and the rows that may be exact duplicates (see
:mod:`~aggregation.ingest.dedupe`). Its hash aggregations spill to the workspace's scratch
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

    ids: pl.Series
    """Distinct non-null raw ids (MSISDNs or device ids)."""
    candidates: pl.Series
    """Sorted row numbers (``_row``) whose (id, time) hash is shared with another row."""


def profile(source: Source, *, memory_limit_mb: int, spill_dir: Path) -> Profile:
    """Distinct ids and duplicate candidates of ``source``, in bounded memory."""
    id_col, time_col = ID_COLUMN[source.raw.feed], TIME_COLUMN[source.raw.feed]
    scan = source.scan_sql([id_col, time_col])
    # Only contract column names are interpolated; the path is a bound parameter.
    distinct = f'SELECT DISTINCT "{id_col}" AS id FROM {scan} WHERE "{id_col}" IS NOT NULL'  # noqa: S608
    shared = (
        f'WITH hashed AS (SELECT {ROW}, hash("{id_col}", "{time_col}") AS h FROM {scan}) '  # noqa: S608
        f"SELECT {ROW} FROM hashed WHERE h IN "
        "(SELECT h FROM hashed GROUP BY h HAVING count(*) > 1)"
    )
    params = {"path": str(source.parquet)}
    try:
        with bounded_connection(memory_limit_mb, spill_dir, preserve_insertion_order=False) as con:
            ids = con.sql(distinct, params=params).to_arrow_table().column("id")
            rows = con.sql(shared, params=params).to_arrow_table().column(ROW)
    except duckdb.Error as exc:
        raise source.unreadable(exc) from exc
    return Profile(
        ids=pl.Series("id", ids).cast(pl.String).sort(),
        candidates=pl.Series(ROW, np.sort(rows.to_numpy()), dtype=pl.Int64),
    )
