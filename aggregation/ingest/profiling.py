"""One bounded-memory scan of a raw file before its rows are processed.

DuckDB reads only the id and time columns and returns what the chunked pass needs to know about
the whole file in advance: the rows that may be exact duplicates (see
:mod:`~aggregation.ingest.dedupe`), found by grouping rows on a hash of (id, time). That grouping
holds one entry per row, and DuckDB does not spill it gracefully far beyond its memory limit (a
billion rows need about 2 GiB). So the scan is cut into passes, each grouping the rows of one
slice of the hash space: as many as ``[ingest] memory_limit_mb`` requires for the file's rows
(:data:`ROWS_PER_MB`), and twice as many again if a pass runs out of memory all the same. Memory
stays within the setting whatever the size of the file; a bigger file only takes more passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import polars as pl

from aggregation.extract import bounded_connection
from aggregation.ingest.reading import ID_COLUMN, ROW, TIME_COLUMN
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.ingest.reading import Source

ROWS_PER_MB = 400_000
"""Rows one MiB of DuckDB memory groups in one pass (measured: 10^9 rows pass in 2 GiB, not in
512 MiB); passes = rows / (memory_limit_mb x ROWS_PER_MB), rounded up."""
MAX_PASSES = 1024


@dataclass(frozen=True, slots=True)
class Profile:
    """What one scan of a raw file tells ingest before it processes the rows."""

    candidates: pl.Series
    """Sorted row numbers (``_row``) whose (id, time) hash is shared with another row."""
    passes: int
    """How many passes over the file the scan took."""


def profile(
    source: Source, *, memory_limit_mb: int, spill_dir: Path, rows_per_mb: int = ROWS_PER_MB
) -> Profile:
    """Duplicate candidates of ``source``, in bounded memory."""
    passes = max(1, math.ceil(source.rows_in / (memory_limit_mb * rows_per_mb)))
    while True:
        try:
            rows = _candidates(source, memory_limit_mb, spill_dir, passes)
        except duckdb.OutOfMemoryException as exc:
            if passes >= MAX_PASSES:
                msg = (
                    f"{source.raw.path}: the duplicate scan of {source.rows_in:,} rows ran out "
                    f"of memory in {passes} passes under [ingest] memory_limit_mb = "
                    f"{memory_limit_mb}. Raise it in mobility.toml, or split the export."
                )
                raise ConfigurationError(msg) from exc
            passes *= 2
            continue
        except duckdb.Error as exc:
            raise source.unreadable(exc) from exc
        return Profile(pl.Series(ROW, np.sort(rows), dtype=pl.Int64), passes)


def _candidates(source: Source, memory_limit_mb: int, spill_dir: Path, passes: int) -> np.ndarray:
    """Rows whose (id, time) hash another row has: per slice, the shared hashes (one grouping
    scan), then their rows (a second scan, joined against those few hashes). Two queries rather
    than one: in one, DuckDB kept the (row, hash) of every row to scan them twice, and spilled
    16 GiB of them for a billion rows."""
    id_col, time_col = ID_COLUMN[source.raw.feed], TIME_COLUMN[source.raw.feed]
    scan = source.scan_sql([id_col, time_col])
    hashed = f'SELECT {ROW}, hash("{id_col}", "{time_col}") AS h FROM {scan}'  # noqa: S608
    # Only contract column names are interpolated; the path and the slice are bound parameters.
    shared = (
        f"SELECT h FROM ({hashed}) "  # noqa: S608
        # UBIGINT on both sides: with an INTEGER parameter the modulo runs in HUGEINT, 3x slower
        "WHERE h % CAST($passes AS UBIGINT) = CAST($slice AS UBIGINT) "
        "GROUP BY h HAVING count(*) > 1"
    )
    rows = f"SELECT {ROW} FROM ({hashed}) SEMI JOIN shared_hashes USING (h)"  # noqa: S608
    found = []
    with bounded_connection(memory_limit_mb, spill_dir, preserve_insertion_order=False) as con:
        for piece in range(passes):
            params = {"path": str(source.parquet), "passes": passes, "slice": piece}
            hashes = con.sql(shared, params=params).to_arrow_table()
            if hashes.num_rows == 0:
                continue
            con.register("shared_hashes", hashes)
            found.append(con.sql(rows, params={"path": str(source.parquet)}).to_arrow_table())
            con.unregister("shared_hashes")
    return np.concatenate([t.column(ROW).to_numpy() for t in found] or [np.empty(0, np.int64)])
