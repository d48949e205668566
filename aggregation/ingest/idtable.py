"""The ids of one raw file met so far: position, pseudonym and shard of each.

Every row of a chunk needs the position of its raw id in the file's table of pseudonyms
(:mod:`~aggregation.ingest.pseudonymise`). A join would build a hash table of the file's ids for
every chunk; :class:`IdTable` keeps one open-addressing table for the whole file, and one compiled
pass per chunk (numba, without the GIL, so the writer threads go on meanwhile) finds each row's
id, or adds it when it is new. Each new id is keyed once (one HMAC per distinct id of the file).

A slot holds an id's first 16 bytes, its length and its position (24 bytes), so finding an id
compares the id itself, not a hash of it: two ids are never merged, whatever their hashes. The
bytes past the 16th (longer than any phone number) are kept aside and compared too. Finding an
id touches one slot, mostly one cache line. Memory grows with the file's distinct ids (about 100
bytes each: slots at most 70 % full, the 32-character pseudonym, shard and format check, and
arrays grown by half when full), not with its rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numba
import numpy as np
import polars as pl
import pyarrow as pa

from aggregation.ingest.pseudonymise import PSEUDONYM_CHARS, Utf8
from aggregation.ingest.validation import ID_OK
from schemas.errors import InternalError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed
    from aggregation.ingest.pseudonymise import Pseudonymiser


INLINE_BYTES = 16
"""Bytes of an id held in its slot; the rest are kept in the table's store."""
MAX_LOAD = 0.7
"""The table grows by half when more of its slots than this are taken."""
NO_ID = -1
"""Position given to a null id."""
MAX_IDS = 2**31 - 2
"""Distinct ids one table numbers (positions are int32, slots keep position + 1 in 32 bits)."""
_BLOCK = 32
"""Rows whose first slots are read ahead together (see :func:`_lookup`)."""
ScalarT = TypeVar("ScalarT", bound=np.generic)

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_P = np.uint64(0x9E3779B97F4A7C15)
_S33 = np.uint64(33)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_EIGHT = np.uint64(8)


@numba.njit(nogil=True, cache=True, inline="always")
def _mix(h: np.uint64) -> np.uint64:
    """MurmurHash3's 64-bit finaliser: every input bit changes about half the output bits."""
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


@numba.njit(nogil=True, cache=True, inline="always")
def _word(buf: NDArray[np.uint8], start: int | np.int64, count: int | np.int64) -> np.uint64:
    """Up to 8 bytes from ``buf[start]`` as a little-endian word, zero-padded."""
    w = np.uint64(0)
    for j in range(count):
        w |= np.uint64(buf[start + j]) << (_EIGHT * np.uint64(j))
    return w


@numba.njit(nogil=True, cache=True)
def _hash(
    w0: np.uint64,
    w1: np.uint64,
    n: int | np.int64,
    tail: NDArray[np.uint8],
    at: int | np.int64,
    mask: np.uint64,
) -> np.uint64:
    """Hash of an id: its first 16 bytes as two words, its length, the rest (``tail[at:]``)."""
    h = _mix(w0 + _P * np.uint64(n))
    h = _mix(h ^ w1)
    for j in range(0, n - INLINE_BYTES, 8):
        h = _mix(h ^ _word(tail, at + j, min(8, n - INLINE_BYTES - j)))
    return h & mask


@numba.njit(nogil=True, cache=True, inline="always")
def _home(h: np.uint64, slots: int) -> np.int64:
    """The first slot to probe for hash ``h`` (its top 32 bits scaled to the table)."""
    return np.int64(((h >> _S32) * np.uint64(slots)) >> _S32)


@numba.njit(nogil=True, cache=True, inline="always")
def _probe(  # noqa: PLR0913, PLR0917 - inlined into _lookup, which holds these in registers
    table: NDArray[np.uint64],
    store: NDArray[np.uint8],
    starts: NDArray[np.int64],
    data: NDArray[np.uint8],
    a: np.int64,
    n: np.int64,
    w0: np.uint64,
    w1: np.uint64,
    s: np.int64,
) -> np.int64:
    """The slot holding the id ``data[a : a + n]`` (words ``w0``, ``w1``) probing from ``s``, or
    the empty slot where it would go."""
    slots = table.shape[0]
    while table[s, 2] != 0:
        meta = table[s, 2]
        if table[s, 0] == w0 and table[s, 1] == w1 and np.int64(meta >> _S32) == n:
            tail = starts[np.int64(meta & _LOW32) - 1]
            same = True
            for j in range(n - INLINE_BYTES):
                if data[a + INLINE_BYTES + j] != store[tail + j]:
                    same = False
                    break
            if same:
                return s
        s = s + 1 if s + 1 < slots else np.int64(0)
    return s


@numba.njit(nogil=True, cache=True)
def _lookup(
    text: tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.bool_]],
    row: int,
    state: tuple[NDArray[np.uint64], NDArray[np.uint8], NDArray[np.int64], np.uint64],
    size: int,
    out: NDArray[np.int32],
    firsts: NDArray[np.int64],
) -> tuple[int, int, np.uint64]:
    """Positions of the ids of rows ``row`` onwards into ``out``.

    ``text`` is the chunk's ids (bytes, offsets, nulls); ``state`` the table's arrays and hash
    mask (see :class:`IdTable`) and ``size`` its ids. A new id takes the next position and its
    row goes to ``firsts`` (from 0 for each chunk). Stops before the id that would take the table
    past :data:`MAX_LOAD`, or overflow ``starts``; returns the next row, the new size and a
    checksum of the slots read ahead.

    Rows go by blocks: first each row's first slot is read (these reads are independent, so the
    processor overlaps their cache misses), then the rows are looked up one by one, from cache.
    One miss at a time would make the lookup 4 times slower.
    """
    data, offsets, nulls = text
    table, store, starts, mask = state
    slots = table.shape[0]
    limit = int(MAX_LOAD * slots)
    new = 0
    used = starts[size]
    w0s = np.empty(_BLOCK, dtype=np.uint64)
    w1s = np.empty(_BLOCK, dtype=np.uint64)
    homes = np.empty(_BLOCK, dtype=np.int64)
    ahead = np.uint64(0)
    while row < len(out):
        end = min(row + _BLOCK, len(out))
        for i in range(row, end):
            a, n = offsets[i], offsets[i + 1] - offsets[i]
            w0s[i - row] = _word(data, a, min(8, n))
            w1s[i - row] = _word(data, a + 8, min(8, max(0, n - 8)))
            homes[i - row] = _home(_hash(w0s[i - row], w1s[i - row], n, data, a + 16, mask), slots)
        for k in range(end - row):
            ahead ^= table[homes[k], 2]
        for i in range(row, end):
            if nulls[i]:
                out[i] = NO_ID
                continue
            a, n = offsets[i], offsets[i + 1] - offsets[i]
            w0, w1 = w0s[i - row], w1s[i - row]
            s = _probe(table, store, starts, data, a, n, w0, w1, homes[i - row])
            if table[s, 2] != 0:
                out[i] = np.int64(table[s, 2] & _LOW32) - 1
                continue
            if size >= limit or size + 2 > len(starts):
                return i, size, ahead
            table[s, 0] = w0
            table[s, 1] = w1
            table[s, 2] = (np.uint64(n) << _S32) | np.uint64(size + 1)
            for j in range(n - INLINE_BYTES):
                store[used + j] = data[a + INLINE_BYTES + j]
            used += max(0, n - INLINE_BYTES)
            starts[size + 1] = used
            firsts[new] = i
            new += 1
            out[i] = size
            size += 1
        row = end
    return row, size, ahead


@numba.njit(nogil=True, cache=True)
def _rehash(
    old: NDArray[np.uint64],
    new: NDArray[np.uint64],
    store: NDArray[np.uint8],
    starts: NDArray[np.int64],
    mask: np.uint64,
) -> None:
    """Put every id of ``old`` into the empty table ``new``."""
    slots = new.shape[0]
    for i in range(old.shape[0]):
        meta = old[i, 2]
        if meta == 0:
            continue
        n = np.int64(meta >> _S32)
        pos = np.int64(meta & _LOW32) - 1
        s = _home(_hash(old[i, 0], old[i, 1], n, store, starts[pos], mask), slots)
        while new[s, 2] != 0:
            s = s + 1 if s + 1 < slots else np.int64(0)
        new[s, 0], new[s, 1], new[s, 2] = old[i, 0], old[i, 1], meta


class IdTable:
    """Distinct raw ids of one file, numbered in order of first appearance, with their keys.

    ``id_format`` (a regular expression) is checked once per distinct id (see
    :meth:`well_formed`). ``hash_mask`` keeps only some bits of each hash: tests use it to make
    ids collide.
    """

    def __init__(
        self,
        pseudonymiser: Pseudonymiser,
        feed: Feed,
        *,
        id_format: str | None = None,
        hash_mask: int = 2**64 - 1,
    ) -> None:
        self._pseudonymiser = pseudonymiser
        self._feed = feed
        self._format = id_format
        self._mask = np.uint64(hash_mask)
        self._table = np.zeros((1024, 3), dtype=np.uint64)
        """Per slot: the id's bytes 0-7 and 8-15 (zero-padded), and (length << 32 | position + 1),
        0 when the slot is empty."""
        self._store = np.empty(1 << 12, dtype=np.uint8)
        """The ids' bytes past the 16th, one after the other (id ``i``'s from ``_starts[i]``)."""
        self._starts = np.zeros(1024 + 1, dtype=np.int64)
        self._pseudonyms = np.empty((1024, PSEUDONYM_CHARS), dtype=np.uint8)
        self._shards = np.empty(1024, dtype=np.uint16)
        self._well_formed = np.empty(1024, dtype=np.bool_)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    # -- rows -> positions -----------------------------------------------------------------

    def positions(self, ids: pl.Series, name: str) -> pl.Series:
        """UInt32 position of each id (null where the id is null); new ids are keyed and added."""
        ids = ids.cast(pl.String)
        text = Utf8.of(ids)
        nulls = ids.is_null().to_numpy()
        out = np.empty(len(ids), dtype=np.int32)
        firsts = np.empty(len(ids), dtype=np.int64)
        chunk = (text.data, text.offsets, nulls)
        base = size = self.size
        row = 0
        used = int(self._starts[size])
        self._store = _grown(self._store, used + int(text.offsets[-1] - text.offsets[0]))
        while True:
            state = (self._table, self._store, self._starts, self._mask)
            row, size, _ = _lookup(chunk, row, state, size, out, firsts[size - base :])
            if row == len(ids):
                break
            self._grow(size)
        if size > MAX_IDS:
            msg = f"{size:,} distinct ids in one file: more than the table numbers ({MAX_IDS:,})"
            raise InternalError(msg)
        if size > base:
            self._key(ids.gather(firsts[: size - base]), base)
        self.size = size  # published once keyed: other threads take pseudonyms below it
        return pl.Series(name, out).cast(pl.UInt32, strict=False)  # NO_ID (null id): null

    def shards(self, positions: pl.Series) -> pl.Series:
        """Shard (UInt16) of the id at each position (null where null)."""
        return pl.Series("shard", self._shards[: self.size]).gather(positions)

    def well_formed(self, positions: pl.Series) -> pl.Series:
        """Whether the id at each position matches ``id_format`` (null where null)."""
        return pl.Series(ID_OK, self._well_formed[: self.size]).gather(positions)

    def pseudonyms(self, positions: pl.Series) -> pl.Series:
        """Pseudonym of the id at each position (null where null)."""
        valid = positions.is_not_null()
        taken = pl.Series("pseudonym", self.take(positions.filter(valid).to_numpy()))
        if len(taken) == len(positions):
            return taken
        out = pl.Series("pseudonym", [None] * len(positions), dtype=pl.String)
        return out.scatter(valid.arg_true(), taken)

    def take(self, positions: pa.Array | NDArray[np.integer]) -> pa.Array:
        """Pseudonyms at ``positions`` (non-null), as a string array."""
        at = np.asarray(positions, dtype=np.int64)
        if len(at) and int(at.max()) >= self.size:
            msg = f"pseudonym {int(at.max())} asked of a table of {self.size}"
            raise InternalError(msg)
        data = self._pseudonyms[at]
        offsets = np.arange(0, (len(at) + 1) * PSEUDONYM_CHARS, PSEUDONYM_CHARS, dtype=np.int32)
        return pa.StringArray.from_buffers(len(at), pa.py_buffer(offsets), pa.py_buffer(data))

    # -- internals ----------------------------------------------------------------------------

    def _grow(self, size: int) -> None:
        """Room for more than ``size`` ids: more slots past the load limit, a longer ``_starts``."""
        if size >= int(MAX_LOAD * len(self._table)):
            table = np.zeros((len(self._table) * 3 // 2, 3), dtype=np.uint64)
            _rehash(self._table, table, self._store, self._starts, self._mask)
            self._table = table
        if size + 2 > len(self._starts):
            self._starts = _grown(self._starts, len(self._starts) * 3 // 2)

    def _key(self, new: pl.Series, start: int) -> None:
        """Key ``new``, the ids given positions ``start`` onwards (distinct, in that order)."""
        text = Utf8.of(new)
        pseudonyms, shards = self._pseudonymiser.keys(text.data, text.offsets, self._feed)
        end = start + len(new)
        if end > len(self._shards):
            self._pseudonyms = _grown(self._pseudonyms, end)
            self._shards = _grown(self._shards, end)
            self._well_formed = _grown(self._well_formed, end)
        self._pseudonyms[start:end] = pseudonyms
        self._shards[start:end] = shards
        self._well_formed[start:end] = (
            new.str.contains(self._format).to_numpy() if self._format is not None else True
        )


def _grown(buffer: NDArray[ScalarT], size: int) -> NDArray[ScalarT]:
    """``buffer``, or a copy half as long again (at least ``size``) when it is shorter."""
    if size <= len(buffer):
        return buffer
    grown = np.zeros((max(size, len(buffer) * 3 // 2), *buffer.shape[1:]), dtype=buffer.dtype)
    grown[: len(buffer)] = buffer
    return grown
