"""Exact duplicates: rows identical in every raw column to an earlier row of the same file.

Duplicates are dropped and counted (they are not quarantined): the first occurrence is kept and
every later copy is dropped, whatever else is wrong with the row. Malformed CSV lines are never
treated as duplicates (they have no columns to compare); each one is quarantined.

Detection takes two steps so that memory stays bounded whatever the size of the file:

1. :func:`~aggregation.ingest.profiling.profile` hashes the (id, time) of every row before the
   chunked pass and keeps the hashes that more than one row has. Exact copies always share theirs;
   such rows are few.
2. :class:`Deduplicator` takes each chunk's hashes from those the scan kept in file order (or,
   when the scan went through part files, hashes the chunk's rows the same way) and compares the
   rows whose hash is shared exactly, chunk by chunk in file order, keeping the values of one row
   per distinct candidate in a set (memory grows with the file's duplicates, not its rows; each
   chunk costs what its own candidates cost). A hash shared by rows that differ therefore never
   drops one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from aggregation.ingest.profiling import duplicate_key
from aggregation.ingest.reading import MALFORMED
from schemas.errors import InternalError

if TYPE_CHECKING:
    import polars as pl
    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed


class Deduplicator:
    """Flags exact duplicates chunk by chunk; chunks must come in file order.

    ``keys``, when given, is the :func:`~aggregation.ingest.profiling.duplicate_key` of every row
    of the file in file order: each chunk then takes its rows' keys from it.
    """

    def __init__(
        self,
        shared: NDArray[np.uint64],
        feed: Feed,
        columns: list[str],
        keys: NDArray[np.uint64] | None = None,
    ) -> None:
        self._shared = shared
        self._key = duplicate_key(feed)
        self._keys = keys
        self._row = 0
        # a bit per slice of the hash space, set where a shared hash falls: most rows' hashes
        # miss it, and only the others are looked for in the sorted shared hashes
        bits = min(26, max(10, math.ceil(math.log2(64 * max(1, len(shared))))))
        self._shift = np.uint64(64 - bits)
        self._filter = np.zeros(1 << bits, dtype=bool)
        self._filter[shared >> self._shift] = True
        self._columns = columns
        self._seen: set[tuple[Any, ...]] = set()

    def duplicates(self, chunk: pl.DataFrame) -> NDArray[np.bool_]:
        """For each row of ``chunk``: is it a copy of an earlier row of the file?"""
        flags = np.zeros(len(chunk), dtype=bool)
        start, self._row = self._row, self._row + len(chunk)
        if len(self._shared) == 0 or len(chunk) == 0:
            return flags
        if self._keys is None:
            keys = chunk.select(self._key).to_series().to_numpy()
        elif self._row <= len(self._keys):
            keys = self._keys[start : self._row]
        else:
            msg = f"rows {start:,} to {self._row:,} asked of the keys of {len(self._keys):,} rows"
            raise InternalError(msg)
        malformed = chunk[MALFORMED].to_numpy()
        candidates = _candidates(keys, malformed, self._filter, self._shift, self._shared)
        copies = []
        rows = chunk.select(self._columns)[candidates]
        for at, values in zip(candidates, rows.iter_rows(), strict=True):  # in file order
            row = tuple(_comparable(v) for v in values)
            if row in self._seen:
                copies.append(at)
            else:
                self._seen.add(row)
        flags[copies] = True
        return flags


@numba.njit(nogil=True, cache=True)
def _candidates(
    keys: NDArray[np.uint64],
    malformed: NDArray[np.bool_],
    bitset: NDArray[np.bool_],
    shift: np.uint64,
    shared: NDArray[np.uint64],
) -> NDArray[np.int64]:
    """Rows (ascending) whose key is one of ``shared`` (sorted), malformed lines left out."""
    found = np.empty(len(keys), dtype=np.int64)
    n = 0
    for i in range(len(keys)):
        if malformed[i] or not bitset[keys[i] >> shift]:
            continue
        at = np.searchsorted(shared, keys[i])
        if at < len(shared) and shared[at] == keys[i]:
            found[n] = i
            n += 1
    return found[:n]


def _comparable(value: Any) -> Any:
    """``value`` as a set member: NaN (unequal to itself) stands for itself as a string."""
    return "NaN" if isinstance(value, float) and math.isnan(value) else value
