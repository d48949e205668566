"""Exact duplicates: rows identical in every raw column to an earlier row of the same file.

Duplicates are dropped and counted (they are not quarantined): the first occurrence is kept and
every later copy is dropped, whatever else is wrong with the row. Malformed CSV lines are never
treated as duplicates (they have no columns to compare); each one is quarantined.

Detection takes two steps so that memory stays bounded whatever the size of the file:

1. :func:`~aggregation.ingest.profiling.profile` scans the id and time columns of the file with
   DuckDB, in bounded memory, for the rows whose (id, time) hash is shared with another row.
   Exact copies always are; candidates are few.
2. :class:`Deduplicator` compares candidates exactly, chunk by chunk in file order, keeping the
   values of one row per distinct candidate in a set (memory grows with the file's duplicates,
   not its rows; each chunk costs what its own candidates cost); a hash collision therefore
   never drops a row.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from aggregation.ingest.reading import ROW

if TYPE_CHECKING:
    from numpy.typing import NDArray


class Deduplicator:
    """Flags exact duplicates chunk by chunk; chunks must come in file order."""

    def __init__(self, candidates: pl.Series, columns: list[str]) -> None:
        self._candidates = candidates
        self._columns = columns
        self._seen: set[tuple[Any, ...]] = set()

    def duplicates(self, chunk: pl.DataFrame) -> pl.Series:
        """For each row of ``chunk``: is it a copy of an earlier row of the file?"""
        rows = chunk[ROW].to_numpy()
        none = pl.Series(np.zeros(len(chunk), dtype=bool))
        if self._candidates.is_empty() or len(rows) == 0:
            return none
        low, high = int(rows.min()), int(rows.max())
        start = self._candidates.search_sorted(low, side="left")
        stop = self._candidates.search_sorted(high, side="right")
        mine = self._candidates.slice(start, stop - start).to_numpy()  # candidates among these
        is_candidate = _members(rows, mine)
        if not is_candidate.any():
            return none
        new = chunk.filter(is_candidate).select(ROW, *self._columns)
        copies = []
        for number, *values in new.iter_rows():  # in file order
            row = tuple(_comparable(v) for v in values)
            if row in self._seen:
                copies.append(number)
            else:
                self._seen.add(row)
        return pl.Series(_members(rows, np.sort(np.array(copies, dtype=np.int64))))


def _comparable(value: Any) -> Any:
    """``value`` as a set member: NaN (unequal to itself) stands for itself as a string."""
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def _members(values: NDArray[np.int64], sorted_set: NDArray[np.int64]) -> NDArray[np.bool_]:
    """For each of ``values``: is it in ``sorted_set`` (sorted ascending)?"""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_set, values).clip(max=len(sorted_set) - 1)
    return np.asarray(sorted_set[at] == values)
