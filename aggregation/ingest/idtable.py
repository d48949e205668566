"""The ids of one raw file met so far: position, pseudonym and shard of each, found by hash.

Every row of a chunk needs the position of its raw id in the file's table of pseudonyms
(:mod:`~aggregation.ingest.pseudonymise`). A join would build a hash table of the file's ids for
every chunk; :class:`IdTable` keeps one open-addressing table of their 64-bit hashes for the whole
file, and each chunk only hashes its ids, looks them up (compiled with numba, without the GIL, so
the writer threads go on meanwhile) and checks the ids found against the stored ones. Ids not
found are new: each is keyed once (one HMAC per distinct id of the file) and added.

The check makes the lookup exact: a hash shared by two different ids (about one pair in 40 000
files of 30 M subscribers) is noticed, and the later id is kept in a small dictionary instead.
Memory grows with the file's distinct ids (about 120 bytes each), not with its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np
import polars as pl
import pyarrow as pa

from schemas.errors import InternalError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed
    from aggregation.ingest.pseudonymise import Pseudonymiser

SEED = 0x5EED
EMPTY = -1
"""Slot value of an empty slot, and what :func:`_find` gives for a hash not in the table."""
PSEUDONYM_BYTES = 32


@numba.njit(nogil=True, cache=True)
def _slot(h: np.uint64, keys: NDArray[np.uint64], slots: NDArray[np.int32]) -> int:
    """The slot holding hash ``h``, or the empty slot where it would go (linear probing)."""
    mask = keys.shape[0] - 1
    s = h & mask
    while slots[s] != EMPTY and keys[s] != h:
        s = (s + 1) & mask
    return int(s)


@numba.njit(nogil=True, cache=True)
def _insert(
    hashes: NDArray[np.uint64], keys: NDArray[np.uint64], slots: NDArray[np.int32], first: int
) -> int:
    """Insert ``hashes[i]`` with value ``first + i``; return how many went in.

    Stops at the first hash already in the table and returns its index: the caller decides.
    """
    for i in range(len(hashes)):
        s = _slot(hashes[i], keys, slots)
        if slots[s] != EMPTY:
            return i
        keys[s] = hashes[i]
        slots[s] = first + i
    return len(hashes)


@numba.njit(nogil=True, cache=True)
def _find(
    hashes: NDArray[np.uint64],
    keys: NDArray[np.uint64],
    slots: NDArray[np.int32],
    out: NDArray[np.int32],
) -> None:
    """``out[i]`` = the value stored for ``hashes[i]``, or ``EMPTY``."""
    for i in range(len(hashes)):
        out[i] = slots[_slot(hashes[i], keys, slots)]


@numba.njit(nogil=True, cache=True)
def _differs(
    data: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    rows: NDArray[np.int64],
    store: NDArray[np.uint8],
    starts: NDArray[np.int64],
    at: NDArray[np.int32],
) -> NDArray[np.bool_]:
    """For each ``rows[i]``: do its bytes differ from those of stored id ``at[i]``?"""
    out = np.zeros(len(rows), dtype=np.bool_)
    for i in range(len(rows)):
        a, b = offsets[rows[i]], offsets[rows[i] + 1]
        c, d = starts[at[i]], starts[at[i] + 1]
        if b - a != d - c:
            out[i] = True
            continue
        for j in range(b - a):
            if data[a + j] != store[c + j]:
                out[i] = True
                break
    return out


class IdTable:
    """Distinct raw ids of one file, numbered in order of first appearance, with their keys."""

    def __init__(self, pseudonymiser: Pseudonymiser, feed: Feed) -> None:
        self._pseudonymiser = pseudonymiser
        self._feed = feed
        self._bytes = np.empty(1 << 16, dtype=np.uint8)
        """The ids' UTF-8 bytes, one after the other (id ``i`` from ``_starts[i]``)."""
        self._starts = np.zeros(1024 + 1, dtype=np.int64)
        self._hashes = np.empty(1024, dtype=np.uint64)
        self._keys = np.zeros(16, dtype=np.uint64)
        self._slots = np.full(16, EMPTY, dtype=np.int32)
        self._pseudonyms = np.empty((1024, PSEUDONYM_BYTES), dtype=np.uint8)
        self._shards = np.empty(1024, dtype=np.uint16)
        self._others: dict[str, int] = {}
        """Ids whose hash another id of the table has (practically never any)."""
        self.size = 0

    def __len__(self) -> int:
        return self.size

    # -- rows -> positions -----------------------------------------------------------------

    def positions(self, ids: pl.Series, name: str) -> pl.Series:
        """UInt32 position of each id (null where the id is null); new ids are keyed and added."""
        ids = ids.cast(pl.String)
        text = _Text.of(ids)
        hashes = _hash(ids)
        out = self._find(hashes)
        nulls = ids.is_null().to_numpy()
        if nulls.any():
            out[nulls] = EMPTY
        found = np.flatnonzero(out != EMPTY)
        if len(found):  # a hash shared with a stored id is not that id: treat the row as new
            out[found[self._mismatch(text, found, out[found])]] = EMPTY
        missing = out == EMPTY
        if nulls.any():
            missing &= ~nulls
        if missing.any():
            self._add(ids.filter(missing))
            rows = np.flatnonzero(missing)
            at = self._find(hashes[rows])
            wrong = self._mismatch(text, rows, at)
            if wrong.any():
                at[wrong] = [self._others[i] for i in ids.gather(rows[wrong]).to_list()]
            out[rows] = at
        return pl.Series(name, out).cast(pl.UInt32, strict=False)  # EMPTY (null id): null

    def shards(self, positions: pl.Series) -> pl.Series:
        """Shard (UInt16) of the id at each position (null where null)."""
        return pl.Series("shard", self._shards[: self.size]).gather(positions)

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
        offsets = np.arange(0, (len(at) + 1) * PSEUDONYM_BYTES, PSEUDONYM_BYTES, dtype=np.int32)
        return pa.StringArray.from_buffers(len(at), pa.py_buffer(offsets), pa.py_buffer(data))

    # -- internals ----------------------------------------------------------------------------

    def _find(self, hashes: NDArray[np.uint64]) -> NDArray[np.int32]:
        out = np.empty(len(hashes), dtype=np.int32)
        _find(hashes, self._keys, self._slots, out)
        return out

    def _mismatch(
        self, text: _Text, rows: NDArray[np.int64], at: NDArray[np.int32]
    ) -> NDArray[np.bool_]:
        """For each of ``rows``: is the id stored at ``at`` another one (with the same hash)?"""
        starts = self._starts[: self.size + 1]
        return _differs(text.data, text.offsets, rows, self._bytes, starts, at)

    def _add(self, new: pl.Series) -> None:
        """Key the ids of ``new`` (not in the table; repeats allowed) and add them."""
        if self._others:  # ids whose hash collided are already stored, aside
            new = new.filter(~new.is_in(list(self._others)))
        if new.is_empty():
            return
        keyed = self._pseudonymiser.pseudonyms(new, self._feed)
        start, n = self.size, len(keyed)
        self._reserve(start + n)
        self._pseudonyms[start : start + n] = _fixed_width(keyed["pseudonym"])
        self._shards[start : start + n] = keyed["shard"].to_numpy()
        ids = keyed["id"]
        text = _Text.of(ids)
        used = int(self._starts[start])
        added = text.data[text.offsets[0] : text.offsets[-1]]
        self._bytes = _grown(self._bytes, used + len(added))
        self._bytes[used : used + len(added)] = added
        self._starts[start + 1 : start + n + 1] = used + text.offsets[1:] - text.offsets[0]
        self._hashes[start : start + n] = _hash(ids)
        self.size += n
        self._index(start)

    def _reserve(self, size: int) -> None:
        if size <= len(self._shards):
            return
        capacity = 1 << (size - 1).bit_length()
        pseudonyms = np.empty((capacity, PSEUDONYM_BYTES), dtype=np.uint8)
        pseudonyms[: self.size] = self._pseudonyms[: self.size]
        shards = np.empty(capacity, dtype=np.uint16)
        shards[: self.size] = self._shards[: self.size]
        hashes = np.empty(capacity, dtype=np.uint64)
        hashes[: self.size] = self._hashes[: self.size]
        starts = np.zeros(capacity + 1, dtype=np.int64)
        starts[: self.size + 1] = self._starts[: self.size + 1]
        self._pseudonyms, self._shards, self._hashes = pseudonyms, shards, hashes
        self._starts = starts

    def _index(self, start: int) -> None:
        """Put ids ``start`` onwards in the hash table (all of them after a resize)."""
        if 2 * self.size > len(self._keys):  # load factor at most 1/2
            capacity = 1 << (2 * self.size - 1).bit_length()
            self._keys = np.zeros(capacity, dtype=np.uint64)
            self._slots = np.full(capacity, EMPTY, dtype=np.int32)
            start = 0
        while start < self.size:
            pending = self._hashes[start : self.size]
            start += int(_insert(pending, self._keys, self._slots, start))
            if start < self.size:  # a hash already taken: that id lives in the dictionary
                first, end = self._starts[start], self._starts[start + 1]
                self._others[self._bytes[first:end].tobytes().decode()] = start
                start += 1


@dataclass(frozen=True, slots=True)
class _Text:
    """The UTF-8 bytes of a string series and where each one starts (Arrow's layout)."""

    data: NDArray[np.uint8]
    offsets: NDArray[np.int64]

    @classmethod
    def of(cls, strings: pl.Series) -> _Text:
        array = strings.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(pa.large_string())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        ends = np.frombuffer(array.buffers()[1], np.int64)
        offsets = ends[array.offset : array.offset + len(array) + 1]
        data = array.buffers()[2]
        return cls(
            np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8), offsets
        )


def _grown(buffer: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """``buffer``, or a copy at least twice as long when it is shorter than ``size``."""
    if size <= len(buffer):
        return buffer
    grown = np.empty(max(size, 2 * len(buffer)), dtype=buffer.dtype)
    grown[: len(buffer)] = buffer
    return grown


def _hash(ids: pl.Series) -> NDArray[np.uint64]:
    return ids.hash(SEED).to_numpy()


def _fixed_width(pseudonyms: pl.Series) -> NDArray[np.uint8]:
    """The pseudonyms' bytes, one row of :data:`PSEUDONYM_BYTES` each."""
    text = _Text.of(pseudonyms)
    if not np.array_equal(np.diff(text.offsets), np.full(len(pseudonyms), PSEUDONYM_BYTES)):
        msg = f"pseudonyms must be {PSEUDONYM_BYTES} characters long"
        raise InternalError(msg)
    data = text.data[text.offsets[0] : text.offsets[-1]]
    return data.reshape(len(pseudonyms), PSEUDONYM_BYTES)
