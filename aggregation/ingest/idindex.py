"""Raw ids → position of their pseudonym, by a table built once per file.

Every chunk of a file needs, for each row, the position of its raw id in the file's table of
pseudonyms (:mod:`~aggregation.ingest.pseudonymise`). A join would build a hash table of all the
file's ids for every chunk; :class:`IdIndex` builds one open-addressing table of their 64-bit
hashes once per file, and each chunk only hashes its ids and looks them up (compiled with numba,
without the GIL, so the writer threads go on meanwhile).

The lookup is exact without comparing the ids themselves: every non-null id of the file is among
the ids the table was built from (:func:`~aggregation.ingest.profiling.profile` found them), and
the table is only used when the hash is injective on those ids. Should two ids share a hash (about
one file in 40 000 at 30 M distinct ids), the table is rebuilt with the next seed.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from schemas.errors import InternalError

SEEDS = (0x5EED, 0xC0FFEE, 0xBADC0DE, 0xFACADE)
"""Hash seeds tried in turn until the hash is injective on a file's ids."""
EMPTY = -1
"""Slot value of an empty slot, and the position given to an id not in the table."""


@numba.njit(nogil=True, cache=True)
def _build(hashes: np.ndarray, keys: np.ndarray, slots: np.ndarray) -> int:
    """Insert ``hashes[i] → i``; return the first ``i`` whose hash is already there, or -1."""
    mask = keys.shape[0] - 1
    for i in range(hashes.shape[0]):
        h = hashes[i]
        s = h & mask
        while slots[s] != EMPTY:
            if keys[s] == h:
                return i
            s = (s + 1) & mask
        keys[s] = h
        slots[s] = i
    return -1


@numba.njit(nogil=True, cache=True)
def _find(hashes: np.ndarray, keys: np.ndarray, slots: np.ndarray, out: np.ndarray) -> None:
    """``out[i]`` = the slot value stored for ``hashes[i]``, or ``EMPTY``."""
    mask = keys.shape[0] - 1
    for i in range(hashes.shape[0]):
        h = hashes[i]
        s = h & mask
        found = EMPTY
        while slots[s] != EMPTY:
            if keys[s] == h:
                found = slots[s]
                break
            s = (s + 1) & mask
        out[i] = found


class IdIndex:
    """Positions of raw ids in a fixed list of distinct ids (a file's table of pseudonyms)."""

    def __init__(self, ids: pl.Series, *, seeds: tuple[int, ...] = SEEDS) -> None:
        if ids.null_count():
            msg = "IdIndex needs non-null ids"
            raise InternalError(msg)
        self.size = len(ids)
        capacity = 1 << max(4, (2 * self.size - 1).bit_length())  # load factor at most 1/2
        self._keys = np.zeros(capacity, dtype=np.uint64)
        self._slots = np.empty(capacity, dtype=np.int32)
        for seed in seeds:
            self._slots.fill(EMPTY)
            if _build(self._hashes(ids, seed), self._keys, self._slots) < 0:
                self._seed = seed
                return
        msg = f"{self.size} ids: repeated, or their hashes collide under every seed {seeds}"
        raise InternalError(msg)

    @staticmethod
    def _hashes(ids: pl.Series, seed: int) -> np.ndarray:
        return ids.cast(pl.String).hash(seed).to_numpy()

    def positions(self, ids: pl.Series, name: str) -> pl.Series:
        """UInt32 position of each id (null where the id is null).

        Every non-null id must be among those the index was built from: the result would be
        wrong for another id, so it is refused.
        """
        out = np.empty(len(ids), dtype=np.int32)
        _find(self._hashes(ids, self._seed), self._keys, self._slots, out)
        nulls = ids.is_null().to_numpy()
        if nulls.any():
            out[nulls] = EMPTY
        if np.count_nonzero(out == EMPTY) != np.count_nonzero(nulls):
            msg = "an id of the chunk is not among the file's ids found by the profile"
            raise InternalError(msg)
        return pl.Series(name, out).cast(pl.UInt32, strict=False)  # EMPTY (null id): null
