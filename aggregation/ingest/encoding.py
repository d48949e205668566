"""Staged columns built from numbers: partition grouping and dictionary encoding, compiled.

The writer holds every string column of a chunk as numbers into a table (pseudonyms, places, event
types). :func:`group_by_partition` sorts a chunk's rows into partitions (local day, shard) in one
counting sort; :func:`encoded` turns numbers into a Parquet dictionary column holding only the
values a row group uses; :class:`Compacted` and :class:`Coded` do the same for the columns of the
place table (cells or GPS zones), from the few distinct places of a row group.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.errors import InternalError

if TYPE_CHECKING:
    from numpy.typing import NDArray


@numba.njit(nogil=True, cache=True)
def group_by_partition(
    keep: NDArray[np.bool_],
    pid: NDArray[np.uint32],
    place: NDArray[np.uint32],
    event_ms: NDArray[np.int64],
    local_days: NDArray[np.int32],
    local_hour: NDArray[np.int8],
    event_type: NDArray[np.uint8],
    shard: NDArray[np.uint16],
) -> tuple[np.int64, np.int64, NDArray[np.int64], Any, Any, Any, Any, Any, Any, Any]:
    """The kept rows grouped by partition (local day, shard), in file order within each: a
    counting sort, one pass to count and one to move every field.

    Returns the first day and the number of shards spanned (partition ``k`` is day
    ``first + k // shards``, shard ``k % shards``), where each partition starts and ends, and
    the fields of the grouped rows.
    """
    n = 0
    first, last, top = np.int64(2**62), np.int64(-(2**62)), np.int64(1)
    for i in range(len(keep)):
        if keep[i]:
            n += 1
            first = min(first, np.int64(local_days[i]))
            last = max(last, np.int64(local_days[i]))
            top = max(top, np.int64(shard[i]) + 1)
    if n == 0:
        first = last = np.int64(0)
    bounds = np.zeros((last - first + 1) * top + 1, dtype=np.int64)
    for i in range(len(keep)):
        if keep[i]:
            bounds[(local_days[i] - first) * top + shard[i] + 1] += 1
    for k in range(len(bounds) - 1):
        bounds[k + 1] += bounds[k]
    at = bounds[:-1].copy()
    out = (
        np.empty(n, pid.dtype),
        np.empty(n, place.dtype),
        np.empty(n, event_ms.dtype),
        np.empty(n, local_days.dtype),
        np.empty(n, local_hour.dtype),
        np.empty(n, event_type.dtype),
        np.empty(n, shard.dtype),
    )
    for i in range(len(keep)):
        if keep[i]:
            k = (local_days[i] - first) * top + shard[i]
            j = at[k]
            at[k] = j + 1
            out[0][j] = pid[i]
            out[1][j] = place[i]
            out[2][j] = event_ms[i]
            out[3][j] = local_days[i]
            out[4][j] = local_hour[i]
            out[5][j] = event_type[i]
            out[6][j] = shard[i]
    return first, top, bounds, out[0], out[1], out[2], out[3], out[4], out[5], out[6]


@numba.njit(nogil=True, cache=True)
def _compact(
    values: NDArray[np.integer[Any]], code_of: NDArray[np.int32]
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """Distinct ``values`` in order of first appearance, and each value's code.

    ``code_of`` is scratch space, -1 everywhere, longer than the largest value; it is left so.
    """
    distinct = np.empty(len(values), dtype=np.int64)
    codes = np.empty(len(values), dtype=np.int32)
    k = 0
    for i in range(len(values)):
        v = values[i]
        c = code_of[v]
        if c < 0:
            c = k
            code_of[v] = k
            distinct[k] = v
            k += 1
        codes[i] = c
    for j in range(k):
        code_of[distinct[j]] = -1
    return distinct[:k], codes


class Values(Protocol):
    """Strings by number: a :class:`pyarrow.Array`, or the pseudonyms of an ``IdTable``."""

    def __len__(self) -> int: ...

    def take(self, indices: NDArray[np.int64], /) -> pa.Array: ...


_scratch = threading.local()


def compacted(
    numbers: NDArray[np.integer[Any]], size: int
) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """:func:`_compact` of ``numbers``, all below ``size``."""
    code_of: NDArray[np.int32] | None = getattr(_scratch, "code_of", None)
    if code_of is None or len(code_of) < size:  # one per thread, as long as the longest table
        code_of = _scratch.code_of = np.full(max(size, 1024), -1, dtype=np.int32)
    return _compact(numbers, code_of)


def encoded(numbers: NDArray[np.integer[Any]], values: Values) -> pa.DictionaryArray:
    """``values[numbers]`` as a dictionary array holding only the values used.

    ``values`` must be distinct and non-null: Parquet takes the dictionary as it is.
    """
    distinct, codes = compacted(numbers, len(values))
    return pa.DictionaryArray.from_arrays(codes, values.take(distinct), safe=False)


@dataclass(frozen=True, slots=True)
class Compacted:
    """The place numbers of a row group as its distinct places and each row's code among them,
    so that each place column is encoded from the few distinct places, not from every row."""

    distinct: NDArray[np.int64]
    codes: NDArray[np.int32]

    @classmethod
    def of(cls, place: NDArray[np.uint32]) -> Compacted:
        return cls(*compacted(place, int(place.max()) + 1 if len(place) else 0))


@dataclass(frozen=True, slots=True)
class Coded:
    """A column of the place table as codes into its distinct values."""

    codes: NDArray[np.int32] | None
    """Code of each place's value; None when the column is empty (GPS fixes have no cell)."""
    values: pa.Array

    @classmethod
    def of(cls, column: pa.ChunkedArray) -> Coded:
        encoded = pc.dictionary_encode(column.combine_chunks())
        if encoded.null_count == len(encoded):
            return cls(None, pa.array([], column.type))
        if encoded.null_count:
            msg = "a place table column holds nulls beside values"
            raise InternalError(msg)
        return cls(encoded.indices.to_numpy().astype(np.int32), encoded.dictionary)

    def encoded(self, places: Compacted) -> pa.Array:
        """The column's value for each row's place."""
        if self.codes is None:
            rows = len(places.codes)
            return pa.DictionaryArray.from_arrays(pa.nulls(rows, pa.int32()), self.values)
        distinct, codes = compacted(self.codes[places.distinct], len(self.values))
        return pa.DictionaryArray.from_arrays(
            codes[places.codes], self.values.take(distinct), safe=False
        )
