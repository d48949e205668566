"""Exact duplicates among candidates, across chunks: first kept, later identical copies dropped."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from aggregation.ingest.dedupe import Deduplicator
from aggregation.ingest.profiling import duplicate_key
from aggregation.ingest.reading import MALFORMED, ROW
from schemas.errors import InternalError

T = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)


def _frame() -> pl.DataFrame:
    nan = float("nan")
    return pl.DataFrame(
        {
            ROW: [1, 2, 3, 4, 5, 6, 7, 8, 9],
            MALFORMED: [False] * 7 + [True, True],
            "msisdn": ["a", "a", "b", "a", "b", None, None, None, None],
            "event_time": [T, T, T, T, T, None, None, None, None],
            "x": [1.0, 1.0, nan, 2.0, nan, None, None, None, None],
        }
    )


def test_only_identical_later_rows_are_copies_across_chunks() -> None:
    frame = _frame()
    # every key shared: a shared key says nothing; only equal values make a copy
    every = np.unique(frame.select(duplicate_key("cdr")).to_series().to_numpy())
    dedupe = Deduplicator(every, "cdr", ["msisdn", "event_time", "x"])
    first = dedupe.duplicates(frame.slice(0, 3)).tolist()
    later = dedupe.duplicates(frame.slice(3, 6)).tolist()
    assert first == [False, True, False]  # row 2 repeats row 1 in the same chunk
    # 5 repeats 3 (NaN too), 7 repeats 6; malformed 8 and 9 are never copies
    assert later == [False, True, False, True, False, False]


def test_keys_kept_in_file_order_flag_the_same_rows() -> None:
    """Chunks take their keys from the file's keys (as the scan kept them) by position."""
    frame = _frame()
    keys = frame.select(duplicate_key("cdr")).to_series().to_numpy()
    every = np.unique(keys)
    dedupe = Deduplicator(every, "cdr", ["msisdn", "event_time", "x"], keys)
    flags = [*dedupe.duplicates(frame.slice(0, 3)), *dedupe.duplicates(frame.slice(3, 6))]
    assert flags == [False, True, False, False, True, False, True, False, False]
    # the keys are taken, not computed: a copy given a key nobody shares is not compared
    unshared = keys.copy()
    unshared[1] = next(k for k in range(2**64) if k not in set(every.tolist()))
    dedupe = Deduplicator(every, "cdr", ["msisdn", "event_time", "x"], unshared)
    assert dedupe.duplicates(frame).tolist() == [False, False, *flags[2:]]
    with pytest.raises(InternalError, match="rows 9 to 10 asked of the keys of 9 rows"):
        dedupe.duplicates(frame.slice(0, 1))


def test_rows_whose_key_is_not_shared_are_not_compared() -> None:
    frame = _frame()
    keys = frame.select(duplicate_key("cdr")).to_series().to_numpy()
    only_b = np.unique(keys[2:3])  # b's key: rows 3 and 5
    dedupe = Deduplicator(only_b, "cdr", ["msisdn", "event_time", "x"])
    assert dedupe.duplicates(frame).tolist() == [False] * 4 + [True] + [False] * 4


def test_no_shared_keys_no_copies() -> None:
    frame = _frame()
    dedupe = Deduplicator(np.empty(0, np.uint64), "cdr", ["msisdn", "event_time", "x"])
    assert not dedupe.duplicates(frame).any()
