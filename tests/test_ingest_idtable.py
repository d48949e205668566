"""The per-file id table: exact positions across chunks, keys, empty ids, hash collisions."""

from __future__ import annotations

import hashlib
import hmac
import threading

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.ingest.idtable import IdTable, _word
from aggregation.ingest.pseudonymise import Pseudonymiser, Secret
from schemas.errors import InternalError

KEY = b"k" * 32
chunks = st.lists(
    st.lists(st.one_of(st.none(), st.text(max_size=6)), max_size=40), min_size=1, max_size=6
)
# Ids around the 16 bytes held in a slot, sharing long prefixes: a few letters, some of 2 bytes.
long_ids = st.lists(
    st.lists(st.one_of(st.none(), st.text(alphabet="ab\u00e9", max_size=24)), max_size=60),
    min_size=1,
    max_size=6,
)


def _check(table: IdTable, chunks: list[list[str | None]]) -> None:
    """Feed ``chunks`` in turn; every id keeps one position, with its own pseudonym and shard."""
    position: dict[str, int] = {}
    for chunk in chunks:
        got = table.positions(pl.Series(chunk, dtype=pl.String), "pid")
        assert got.dtype == pl.UInt32
        for raw, pos in zip(chunk, got.to_list(), strict=True):
            if raw is None:
                assert pos is None
            else:
                assert position.setdefault(raw, pos) == pos
        assert len(set(position.values())) == len(position) == len(table)
        pseudonyms = table.pseudonyms(got).to_list()
        shards = table.shards(got).to_list()
        for raw, pseudonym, shard in zip(chunk, pseudonyms, shards, strict=True):
            if raw is None:
                assert pseudonym is None
                assert shard is None
            else:
                mac = hmac.new(KEY, f"cdr:{raw}".encode(), hashlib.sha256).hexdigest()[:32]
                assert pseudonym == mac
                assert shard == int(mac[:8], 16) % 5


@settings(deadline=None)  # the first call compiles the lookup
@given(chunks)
def test_positions_are_stable_and_exact_across_chunks(chunks: list[list[str | None]]) -> None:
    _check(IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr"), chunks)


@settings(deadline=None)
@given(long_ids)
def test_ids_longer_than_a_slot_are_told_apart(chunks: list[list[str | None]]) -> None:
    _check(IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr"), chunks)


@settings(deadline=None)
@given(st.one_of(chunks, long_ids), st.sampled_from([0, 1, 3]))
def test_hash_collisions_do_not_merge_ids(chunks: list[list[str | None]], mask: int) -> None:
    """With all but the lowest bits of the hash masked, most ids share a hash with another."""
    _check(IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr", hash_mask=mask), chunks)


@pytest.mark.parametrize("mask", [2**64 - 1, 0xFF])
def test_the_table_grows_past_its_first_capacity(mask: int) -> None:
    """Ids of 20 bytes (4 beyond the slot), many new in each chunk, with or without collisions."""
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr", hash_mask=mask)
    _check(table, [[f"{i:020d}" for i in range(s, s + 1500)] for s in range(0, 6000, 1000)])
    assert len(table) == 6500


def test_a_position_outside_the_table_is_refused() -> None:
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr")
    table.positions(pl.Series(["a", "b"]), "pid")
    with pytest.raises(InternalError, match="asked of a table of 2"):
        table.take(np.array([0, 2]))


@pytest.mark.parametrize("mask", [2**64 - 1, 0])
def test_ids_differing_in_one_byte_anywhere_stay_apart(mask: int) -> None:
    """Every byte of an id counts: the first 8, the next 8 and those kept aside past 16."""
    base = "0123456789abcdefghij"
    ids: list[str | None] = [base[:n] for n in range(len(base) + 1)]
    ids += [base[:i] + "X" + base[i + 1 :] for i in range(len(base))]
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr", hash_mask=mask)
    _check(table, [ids, ids[::-1], ids[::2]])
    assert len(table) == len(set(ids))


@settings(deadline=None)
@given(st.binary(max_size=20), st.data())
def test_a_word_is_the_bytes_it_covers_little_endian(buf: bytes, data: st.DataObject) -> None:
    """The word holds exactly ``count`` bytes, wherever they are in the buffer."""
    start = data.draw(st.integers(0, len(buf)))
    count = data.draw(st.integers(0, min(8, len(buf) - start)))
    got = _word(np.frombuffer(buf, dtype=np.uint8), start, count)
    assert int(got) == int.from_bytes(buf[start : start + count], "little")


def test_an_id_at_the_end_of_a_chunk_is_the_same_id_elsewhere() -> None:
    """An id is found whether its bytes end the chunk's buffer or other ids follow them."""
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr")
    first = table.positions(pl.Series(["234012", "9" * 20, "2340123456789"]), "pid")
    then = table.positions(pl.Series(["2340123456789", "9" * 20, "234012"]), "pid")
    assert first.to_list() == [0, 1, 2]
    assert then.to_list() == [2, 1, 0]


def test_ids_are_checked_against_the_format_once_each() -> None:
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr", id_format=r"^[0-9]{6,15}$")
    ids = pl.Series(["2348000000001", "12345", None, "23480000000x1", "2348000000001", "+234800"])
    pid = table.positions(ids, "pid")
    assert table.well_formed(pid).to_list() == [True, False, None, False, True, False]
    assert table.well_formed(table.positions(pl.Series(["12345", "123456"]), "pid")).to_list() == [
        False,
        True,
    ]


def test_zero_bytes_and_lengths_tell_ids_apart() -> None:
    """A head is zero-padded: an id and the same id with zero bytes after it stay apart, short
    (held whole in the head) or long (with a tail), and around the 15 bytes a head holds."""
    stems = ["", "a", "0" * 7, "0" * 8, "1" * 14, "1" * 15, "1" * 16, "1" * 23, "1" * 24]
    ids: list[str | None] = [s + "\0" * k for s in stems for k in range(3)]
    ids += ["\0" * n for n in range(20)]
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr")
    _check(table, [ids, ids[::-1]])
    assert len(table) == len(set(ids))


def test_the_table_holds_at_most_48_bytes_per_phone_number() -> None:
    """The memory of issue 21: 16 bytes of head, 16 of pseudonym, 4 per slot (at most 60 % full)
    and arrays grown by an eighth."""
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr")
    numbers = np.arange(2_340_000_000_000, 2_340_000_300_000, 7)
    for chunk in np.array_split(numbers, 4):
        table.positions(pl.Series(chunk).cast(pl.String), "pid")
    assert len(table) == len(numbers)
    assert table.nbytes <= 48 * len(table)


def test_pseudonyms_are_taken_while_the_table_grows() -> None:
    """Another thread takes pseudonyms below ``size`` while the preparing thread adds ids and
    the arrays move: each is the id's own."""
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr")
    chunks = [[f"{i:013d}" for i in range(s, s + 3000)] for s in range(0, 60_000, 3000)]
    failures: list[str] = []
    done = threading.Event()

    def take() -> None:
        while not done.is_set():
            size = table.size
            if size:
                at = np.arange(0, size, 97)
                got = table.take(at).to_pylist()
                want = [_mac(f"{int(p):013d}") for p in at]
                if got != want:
                    failures.append(f"wrong pseudonyms below {size}")

    reader = threading.Thread(target=take)
    reader.start()
    try:
        for chunk in chunks:
            table.positions(pl.Series(chunk), "pid")
    finally:
        done.set()
        reader.join()
    assert failures == []
    assert len(table) == 60_000


def _mac(raw: str) -> str:
    return hmac.new(KEY, f"cdr:{raw}".encode(), hashlib.sha256).hexdigest()[:32]


def test_an_id_longer_than_the_tail_store_is_kept_whole() -> None:
    """An id of 20 000 bytes (the store of tails starts at 4 KiB) and one differing in its last
    byte stay apart and are found again."""
    big = "7" * 20_000
    ids: list[str | None] = [big, big[:-1] + "8", "x" * 5_000, big[:-1]]
    table = IdTable(Pseudonymiser(Secret(KEY), shards=5), "cdr")
    _check(table, [ids, ids[::-1]])
    assert len(table) == len(ids)
