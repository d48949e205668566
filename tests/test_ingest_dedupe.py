"""Exact duplicates among candidates, across chunks: first kept, later identical copies dropped."""

from __future__ import annotations

import polars as pl

from aggregation.ingest.dedupe import Deduplicator
from aggregation.ingest.reading import ROW


def test_only_identical_later_rows_are_copies_across_chunks() -> None:
    nan = float("nan")
    frame = pl.DataFrame(
        {
            ROW: [1, 2, 3, 4, 5, 6, 7, 8],
            "id": ["a", "a", "b", "a", "b", None, None, "c"],
            "x": [1.0, 1.0, nan, 2.0, nan, None, None, 1.0],
        }
    )
    # every row a candidate but 8: a hash shared says nothing; only equal values make a copy
    dedupe = Deduplicator(pl.Series(ROW, [1, 2, 3, 4, 5, 6, 7]), ["id", "x"])
    first = dedupe.duplicates(frame.slice(0, 3)).to_list()
    later = dedupe.duplicates(frame.slice(3, 5)).to_list()
    assert first == [False, True, False]  # row 2 repeats row 1 in the same chunk
    assert later == [False, True, False, True, False]  # 5 repeats 3 (NaN too), 7 repeats 6


def test_no_candidates_no_copies() -> None:
    frame = pl.DataFrame({ROW: [1, 2], "id": ["a", "a"]})
    assert not Deduplicator(pl.Series(ROW, [], pl.Int64), ["id"]).duplicates(frame).any()
