"""The ids of one raw file met so far: position, pseudonym and shard of each.

Every row of a chunk needs the position of its raw id in the file's table of pseudonyms
(:mod:`~aggregation.ingest.pseudonymise`). A join would build a hash table of the file's ids for
every chunk; :class:`IdTable` keeps one open-addressing table for the whole file, and one compiled
pass per chunk (numba, without the GIL, so the writer threads go on meanwhile) finds each row's
id, or adds it when it is new. Each new id is keyed once (one HMAC per distinct id of the file).

Finding an id compares the id itself, byte for byte, not a hash of it: two distinct ids are never
merged, whatever their hashes (no probability enters). Each id has, by position:

- a *head* of 16 bytes. An id of at most :data:`INLINE_BYTES` (15) bytes, every phone number,
  is held whole in it with its length. A longer id keeps its first 8 bytes there and the number
  of its *tail*: its bytes past the 8th, kept one after the other in a store with one offset per
  long id (so only long ids pay for an offset);
- its pseudonym as the 16 bytes it shows in hex (not the 32 hex characters);
- its shard and whether it is well formed, in 2 bytes (a small array, gathered for every row).

The hash table's slots hold ``position + 1`` in the low bits of 4 bytes (0: empty), at most
:data:`MAX_LOAD` full, and in the bits the positions do not need yet a *tag*: other bits of the
id's hash, so that only ids of the same tag are compared (at 51.5 M ids, 6 bits: one foreign id
in 64 is compared). A lookup reads the row's home slot, then the head of the id there; both reads
of a block of rows are issued together so the processor overlaps their cache misses.

Memory grows with the file's distinct ids, not with its rows: 34 bytes per id in arrays grown by a
sixteenth in place (a ``realloc``, which the C library does by remapping pages for large arrays,
so a growth copies nothing and never holds two copies), plus 4 bytes per slot: from 41 to 47
bytes per short id (``benchmarks/bench_idtable.py`` measures it), against about 100 when slots
held the ids and the pseudonyms were kept as hex.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TypeVar

import numba
import numpy as np
import polars as pl
import pyarrow as pa

from aggregation.ingest.hmac_sha256 import take_hex
from aggregation.ingest.pseudonymise import PSEUDONYM_BYTES, PSEUDONYM_CHARS, Utf8
from aggregation.ingest.validation import ID_OK
from schemas.errors import InternalError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed
    from aggregation.ingest.pseudonymise import Pseudonymiser


INLINE_BYTES = 15
"""The longest id held whole in its head (with its length); a longer one keeps a tail."""
MAX_LOAD = 0.6
"""The slots are rebuilt half as many again when more of them than this are taken."""
GROWTH = 16
"""Arrays by position grow by ``1 / GROWTH`` of their length when full."""
NO_ID = -1
"""Position given to a null id."""
MAX_IDS = 2**31 - 2
"""Distinct ids one table numbers (positions are int32, slots keep position + 1 in 32 bits)."""
_BLOCK = 32
"""Rows whose first slots and heads are read ahead together (see :func:`_lookup`)."""
ScalarT = TypeVar("ScalarT", bound=np.generic)
_State = tuple[
    "NDArray[np.uint32]",
    "NDArray[np.uint64]",
    "NDArray[np.uint8]",
    "NDArray[np.int64]",
    np.uint64,
    np.uint64,
]
"""The table's slots, heads, tail store and tail starts, hash mask and position bits."""

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_P = np.uint64(0x9E3779B97F4A7C15)
_S33 = np.uint64(33)
_S32 = np.uint64(32)
_S56 = np.uint64(56)
_EIGHT = np.uint64(8)
_LONG = np.uint64(1 << 63)
"""Head bit: the id is longer than :data:`INLINE_BYTES`; the head's low 56 bits number its tail."""
_LOW56 = np.uint64((1 << 56) - 1)
_LENGTH = np.uint64(0x0F)
WELL_FORMED = 1 << 15
"""Bit of an id's ``_info`` (beside its shard, below :data:`~schemas.workspace.MAX_SHARDS`): the
id matches the table's ``id_format``."""


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
    rest: NDArray[np.uint8],
    at: int | np.int64,
    mask: np.uint64,
) -> np.uint64:
    """Hash of an id of ``n`` bytes: its bytes 0-7 and 8-15 as words (zero-padded), its length,
    and the bytes past the 16th (``rest[at:]``)."""
    h = _mix(w0 + _P * np.uint64(n))
    h = _mix(h ^ w1)
    for j in range(0, n - 16, 8):
        h = _mix(h ^ _word(rest, at + j, min(8, n - 16 - j)))
    return h & mask


@numba.njit(nogil=True, cache=True, inline="always")
def _home(h: np.uint64, slots: int) -> np.int64:
    """The first slot to probe for hash ``h`` (its top 32 bits scaled to the table)."""
    return np.int64(((h >> _S32) * np.uint64(slots)) >> _S32)


@numba.njit(nogil=True, cache=True, inline="always")
def _same(  # noqa: PLR0913, PLR0917 - inlined into _lookup, which holds these in registers
    heads: NDArray[np.uint64],
    tail: NDArray[np.uint8],
    tail_starts: NDArray[np.int64],
    p: np.int64,
    data: NDArray[np.uint8],
    a: np.int64,
    n: np.int64,
    w0: np.uint64,
    key: np.uint64,
) -> bool:
    """Whether the id at position ``p`` is ``data[a : a + n]`` (first word ``w0``, head's second
    word ``key`` when short)."""
    if heads[p, 0] != w0:
        return False
    second = heads[p, 1]
    if n <= INLINE_BYTES:
        return bool(second == key)
    if second & _LONG == 0:
        return False
    k = np.int64(second & _LOW56)
    start = tail_starts[k]
    if tail_starts[k + 1] - start != n - 8:
        return False
    j = 0
    while j < n - 8 and data[a + 8 + j] == tail[start + j]:
        j += 1
    return j == n - 8


@numba.njit(nogil=True, cache=True, inline="always")
def _find(  # noqa: PLR0913, PLR0917 - inlined into _lookup, which holds these in registers
    slots: NDArray[np.uint32],
    heads: NDArray[np.uint64],
    tail: NDArray[np.uint8],
    tail_starts: NDArray[np.int64],
    bits: np.uint64,
    data: NDArray[np.uint8],
    a: np.int64,
    n: np.int64,
    w0: np.uint64,
    key: np.uint64,
    tag: np.uint64,
    s: np.int64,
) -> np.int64:
    """The slot holding the id ``data[a : a + n]`` (tag ``tag``) probing from ``s``, or the empty
    slot where it would go. Only ids of the same tag are compared."""
    low = (np.uint64(1) << bits) - np.uint64(1)
    while slots[s] != 0:
        v = np.uint64(slots[s])
        if v >> bits == tag and _same(
            heads, tail, tail_starts, np.int64(v & low) - 1, data, a, n, w0, key
        ):
            break
        s = s + 1 if s + 1 < len(slots) else np.int64(0)
    return s


@numba.njit(nogil=True, cache=True, inline="always")
def _add(  # noqa: PLR0913, PLR0917 - inlined into _lookup, which holds these in registers
    heads: NDArray[np.uint64],
    tail: NDArray[np.uint8],
    tail_starts: NDArray[np.int64],
    size: int,
    longs: int,
    data: NDArray[np.uint8],
    a: np.int64,
    n: np.int64,
    w0: np.uint64,
    key: np.uint64,
) -> int:
    """Write the head (and tail, when long) of the id ``data[a : a + n]`` at position ``size``;
    returns the long ids then."""
    heads[size, 0] = w0
    if n <= INLINE_BYTES:
        heads[size, 1] = key
        return longs
    heads[size, 1] = _LONG | np.uint64(longs)
    used = tail_starts[longs]
    for j in range(n - 8):
        tail[used + j] = data[a + 8 + j]
    tail_starts[longs + 1] = used + n - 8
    return longs + 1


@numba.njit(nogil=True, cache=True, inline="always")
def _tag(h: np.uint64, bits: np.uint64) -> np.uint64:
    """The tag a slot keeps beside a position of ``bits`` bits: the hash's lowest ``32 - bits``
    (the home slot comes from its highest 32)."""
    return h & ((np.uint64(1) << (np.uint64(32) - bits)) - np.uint64(1))


@numba.njit(nogil=True, cache=True)
def _lookup(
    text: tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.bool_]],
    row: int,
    state: _State,
    counts: tuple[int, int],
    out: NDArray[np.int32],
    firsts: NDArray[np.int64],
) -> tuple[int, int, int, np.uint64]:
    """Positions of the ids of rows ``row`` onwards into ``out``.

    ``text`` is the chunk's ids (bytes, offsets, nulls); ``state`` the table's arrays, hash mask
    and position bits, and ``counts`` its ids and long ids (see :class:`IdTable`). A new id takes
    the next position and its row goes to ``firsts`` (from 0 for each chunk). Stops before the
    id that would take the table past :data:`MAX_LOAD` or overflow an array; returns the next
    row, the new counts and a checksum of the slots and heads read ahead.

    Rows go by blocks: first each row's home slot is read, then the head of the id in it when
    its tag is the row's (these reads are independent, so the processor overlaps their cache
    misses), then the rows are looked up one by one, mostly from cache. One miss at a time
    would make the lookup 4 times slower.
    """
    data, offsets, nulls = text
    slots, heads, tail, tail_starts, mask, bits = state
    size, longs = counts
    capacity = min(int(MAX_LOAD * len(slots)), len(heads))
    low = (np.uint64(1) << bits) - np.uint64(1)
    new = 0
    w0s = np.empty(_BLOCK, dtype=np.uint64)
    keys = np.empty(_BLOCK, dtype=np.uint64)
    tags = np.empty(_BLOCK, dtype=np.uint64)
    homes = np.empty(_BLOCK, dtype=np.int64)
    taken = np.empty(_BLOCK, dtype=np.uint64)
    ahead = np.uint64(0)
    while row < len(out):
        end = min(row + _BLOCK, len(out))
        for i in range(row, end):
            a, n = offsets[i], offsets[i + 1] - offsets[i]
            w0 = _word(data, a, min(8, n))
            w1 = _word(data, a + 8, min(8, max(0, n - 8)))
            h = _hash(w0, w1, n, data, a + 16, mask)
            w0s[i - row] = w0
            keys[i - row] = w1 | (np.uint64(n) << _S56)  # the head of a short id (n <= 15)
            tags[i - row] = _tag(h, bits)
            homes[i - row] = _home(h, len(slots))
        for k in range(end - row):
            taken[k] = np.uint64(slots[homes[k]])
        for k in range(end - row):
            if taken[k] != 0 and taken[k] >> bits == tags[k]:
                ahead ^= heads[np.int64(taken[k] & low) - 1, 0]
        for i in range(row, end):
            if nulls[i]:
                out[i] = NO_ID
                continue
            a, n = offsets[i], offsets[i + 1] - offsets[i]
            w0, key, tag = w0s[i - row], keys[i - row], tags[i - row]
            s = _find(
                slots, heads, tail, tail_starts, bits, data, a, n, w0, key, tag, homes[i - row]
            )
            if slots[s] != 0:
                out[i] = np.int64(np.uint64(slots[s]) & low) - 1
                continue
            if size >= capacity or (
                n > INLINE_BYTES
                and (longs + 2 > len(tail_starts) or tail_starts[longs] + n - 8 > len(tail))
            ):
                return i, size, longs, ahead
            slots[s] = np.uint32((tag << bits) | np.uint64(size + 1))
            longs = _add(heads, tail, tail_starts, size, longs, data, a, n, w0, key)
            firsts[new] = i
            new += 1
            out[i] = size
            size += 1
        row = end
    return row, size, longs, ahead


@numba.njit(nogil=True, cache=True)
def _rebuild(
    slots: NDArray[np.uint32],
    heads: NDArray[np.uint64],
    tail: NDArray[np.uint8],
    tail_starts: NDArray[np.int64],
    size: int,
    mask: np.uint64,
    bits: np.uint64,
) -> None:
    """Put the ids at positions ``0 .. size - 1`` (all distinct) into the empty ``slots``."""
    for p in range(size):
        w0, second = heads[p, 0], heads[p, 1]
        if second & _LONG:
            k = np.int64(second & _LOW56)
            start = tail_starts[k]
            n = tail_starts[k + 1] - start + 8
            w1 = _word(tail, start, min(8, n - 8))
            h = _hash(w0, w1, n, tail, start + 8, mask)
        else:
            n = np.int64((second >> _S56) & _LENGTH)
            h = _hash(w0, second & _LOW56, n, tail, 0, mask)
        s = _home(h, len(slots))
        while slots[s] != 0:
            s = s + 1 if s + 1 < len(slots) else np.int64(0)
        slots[s] = np.uint32((_tag(h, bits) << bits) | np.uint64(p + 1))


def _position_bits(heads: int) -> int:
    """Bits a slot needs for ``position + 1`` below ``heads`` (the rest hold a tag)."""
    return min(32, heads.bit_length())


class IdTable:
    """Distinct raw ids of one file, numbered in order of first appearance, with their keys.

    ``id_format`` (a regular expression) is checked once per distinct id (see
    :meth:`well_formed`). ``hash_mask`` keeps only some bits of each hash: tests use it to make
    ids collide.

    One thread (ingest's preparing thread) calls :meth:`positions`, :meth:`shards` and
    :meth:`well_formed`; others may call :meth:`take` and :meth:`pseudonyms` meanwhile, for
    positions below :attr:`size`.
    """

    def __init__(
        self,
        pseudonymiser: Pseudonymiser,
        feed: Feed,
        *,
        id_format: str | None = None,
        hash_mask: int = 2**64 - 1,
    ) -> None:
        if pseudonymiser.shards > WELL_FORMED:
            msg = f"{pseudonymiser.shards} shards: an id table numbers at most {WELL_FORMED}"
            raise InternalError(msg)
        self._pseudonymiser = pseudonymiser
        self._feed = feed
        self._format = id_format
        self._mask = np.uint64(hash_mask)
        self._slots = np.zeros(1024, dtype=np.uint32)
        """Per slot: the id's tag above its position + 1 (:func:`_position_bits` bits); 0 when
        the slot is empty."""
        self._heads = np.zeros((1024, 2), dtype=np.uint64)
        """Per id: its bytes 0-7, then its bytes 8-14 and length (bits 56-59), or (long ids)
        :data:`_LONG` and the number of its tail."""
        self._bits = _position_bits(len(self._heads))
        self._tail = np.zeros(1 << 12, dtype=np.uint8)
        """The long ids' bytes past the 8th, one after the other (long id ``k``'s from
        ``_tail_starts[k]`` to ``_tail_starts[k + 1]``)."""
        self._tail_starts = np.zeros(64 + 1, dtype=np.int64)
        self._longs = 0
        self._info = np.zeros(1024, dtype=np.uint16)
        """Per id: its shard, and the :data:`WELL_FORMED` bit."""
        self._digests = np.zeros((1024, PSEUDONYM_BYTES), dtype=np.uint8)
        """Per id: the bytes its pseudonym shows in hex."""
        self._digests_lock = threading.Lock()
        """Held while ``_digests`` is read or moved (grown in place)."""
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        """Bytes held by the table's arrays."""
        arrays = (self._slots, self._heads, self._tail, self._tail_starts, self._info)
        return sum(a.nbytes for a in arrays) + self._digests.nbytes

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
        longs = self._longs
        row = 0
        while True:
            arrays = (self._slots, self._heads, self._tail, self._tail_starts)
            state = (*arrays, self._mask, np.uint64(self._bits))
            row, size, longs, _ = _lookup(
                chunk, row, state, (size, longs), out, firsts[size - base :]
            )
            self._longs = longs
            if row == len(ids):
                break
            self._grow(size, int(text.offsets[row + 1] - text.offsets[row]))
        if size > MAX_IDS:
            msg = f"{size:,} distinct ids in one file: more than the table numbers ({MAX_IDS:,})"
            raise InternalError(msg)
        if size > base:
            self._key(ids.gather(firsts[: size - base]), base)
        self.size = size  # published once keyed: other threads take pseudonyms below it
        return pl.Series(name, out).cast(pl.UInt32, strict=False)  # NO_ID (null id): null

    def shards(self, positions: pl.Series) -> pl.Series:
        """Shard (UInt16) of the id at each position (null where null)."""
        return pl.Series("shard", self._info[: self.size]).gather(positions) & (WELL_FORMED - 1)

    def well_formed(self, positions: pl.Series) -> pl.Series:
        """Whether the id at each position matches ``id_format`` (null where null)."""
        info = pl.Series(ID_OK, self._info[: self.size]).gather(positions)
        return info >= WELL_FORMED

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
        data = np.empty((len(at), PSEUDONYM_BYTES), dtype=np.uint16)
        with self._digests_lock:
            take_hex(self._digests, at, data)
        offsets = np.arange(0, (len(at) + 1) * PSEUDONYM_CHARS, PSEUDONYM_CHARS, dtype=np.int32)
        return pa.StringArray.from_buffers(len(at), pa.py_buffer(offsets), pa.py_buffer(data))

    # -- internals ----------------------------------------------------------------------------

    def _grow(self, size: int, length: int) -> None:
        """Room for more than ``size`` ids, the next of ``length`` bytes: longer arrays, and the
        slots rebuilt (half as many again) past the load limit, or when positions take another
        bit from the tags."""
        _resize(self._heads, size + 1)
        _resize(self._tail_starts, self._longs + 2)
        _resize(self._tail, int(self._tail_starts[self._longs]) + length)
        bits = _position_bits(len(self._heads))
        full = size >= int(MAX_LOAD * len(self._slots))
        if full or bits != self._bits:
            slots = len(self._slots) * 3 // 2 if full else len(self._slots)
            self._slots = np.zeros(0, dtype=np.uint32)  # freed before the new slots are taken
            self._slots = np.zeros(slots, dtype=np.uint32)
            self._bits = bits
            args = (self._tail, self._tail_starts, size, self._mask, np.uint64(bits))
            _rebuild(self._slots, self._heads, *args)

    def _key(self, new: pl.Series, start: int) -> None:
        """Key ``new``, the ids given positions ``start`` onwards (distinct, in that order)."""
        text = Utf8.of(new)
        digests = self._pseudonymiser.digests(text.data, text.offsets, self._feed)
        end = start + len(new)
        with self._digests_lock:
            _resize(self._digests, end)
        self._digests[start:end] = digests
        _resize(self._info, end)
        info = self._pseudonymiser.shards_of(digests)
        if self._format is not None:
            info[new.str.contains(self._format).to_numpy()] |= WELL_FORMED
        else:
            info |= WELL_FORMED
        self._info[start:end] = info


def _resize(buffer: NDArray[ScalarT], size: int) -> None:
    """Make ``buffer`` at least ``size`` long, in place (zero-filled), growing by at least
    ``1 / GROWTH`` of its length. No view of it may be alive: its memory may move."""
    if size <= len(buffer):
        return
    length = max(size, len(buffer) + len(buffer) // GROWTH)
    buffer.resize((length, *buffer.shape[1:]), refcheck=False)
