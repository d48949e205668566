"""The duplicate scan: the same shared keys sorted in memory or spread over part files."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from test_ingest_rules import _cdr_row, _cdr_table, local

from aggregation.ingest.drops import discover
from aggregation.ingest.profiling import duplicate_key, profile
from aggregation.ingest.reading import MALFORMED, ROW, Source, open_source

if TYPE_CHECKING:
    from pathlib import Path

ROWS = 2_000
MIB = 2**20


def _source(tmp_path: Path, rows: list[dict[str, Any]]) -> Source:
    path = tmp_path / "cdr_2026-03-02.parquet"
    pq.write_table(_cdr_table(rows), path)
    (raw,) = discover([path])
    return open_source(raw, tmp_path)


@pytest.fixture
def source(tmp_path: Path) -> Source:
    """A CDR drop where every 7th row repeats the (msisdn, time) of the row before it."""
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = []
    for i in range(ROWS):
        if i % 7 == 6:
            rows.append(dict(rows[-1], record_id=f"r{i}"))
            continue
        when = local("2026-03-02 10:00:00") + dt.timedelta(seconds=int(rng.integers(0, 50_000)))
        rows.append(_cdr_row(f"r{i}", msisdn=f"23480{rng.integers(0, 300):08d}", event_time=when))
    return _source(tmp_path, rows)


def _repeating_rows(source: Source) -> list[int]:
    """Rows whose (msisdn, event_time) another row has, worked out without hashes."""
    table = pq.read_table(source.parquet, columns=["msisdn", "event_time"]).to_pylist()
    keys = [(r["msisdn"], r["event_time"]) for r in table]
    counts = {k: keys.count(k) for k in set(keys)}
    return [i + 1 for i, k in enumerate(keys) if counts[k] > 1]


def _rows_with_shared_keys(source: Source, shared: np.ndarray) -> list[int]:
    frame = source.scan().select(ROW, duplicate_key(source.raw.feed)).collect()
    return frame.filter(pl.col("_dupe_key").is_in(shared.tolist()))[ROW].to_list()


def test_shared_keys_are_those_of_repeating_rows(source: Source, tmp_path: Path) -> None:
    found = profile(source, memory_limit_mb=64, scratch=tmp_path / "keys", scan_rows=300)
    assert found.parts == 1
    assert np.all(np.diff(found.shared.astype(np.float64)) > 0)  # sorted and distinct
    assert _rows_with_shared_keys(source, found.shared) == _repeating_rows(source)
    assert len(found.shared) >= ROWS // 7
    every = source.scan().select(duplicate_key(source.raw.feed)).collect().to_series()
    assert found.keys is not None
    assert found.keys.tolist() == every.to_list()  # kept in file order for the chunked pass


def test_part_files_give_the_same_keys(source: Source, tmp_path: Path) -> None:
    one = profile(source, memory_limit_mb=64, scratch=tmp_path / "keys")
    # 1 MiB at MiB/450 bytes a row holds 450 rows: 2 000 rows go to 6 parts of 360 on average
    parts = profile(
        source, memory_limit_mb=1, scratch=tmp_path / "keys", scan_rows=300, row_bytes=MIB // 450
    )
    assert parts.parts == 6
    assert np.array_equal(parts.shared, one.shared)
    assert parts.keys is None  # not kept: the chunked pass hashes its rows
    assert not list((tmp_path / "keys").iterdir())  # part files are removed


def test_an_over_full_part_is_read_in_blocks(tmp_path: Path) -> None:
    """Most rows repeat one (msisdn, time): its part holds more rows than memory allows."""
    when = local("2026-03-02 10:00:00")
    rows = [_cdr_row(f"r{i}", msisdn="2348000000001", event_time=when) for i in range(900)]
    rows += [
        _cdr_row(f"s{i}", msisdn=f"23480{i:08d}", event_time=when + dt.timedelta(seconds=i % 50))
        for i in range(100)
    ]
    rows += [dict(rows[-1], record_id="last")]  # one more repeated key, in another block
    source = _source(tmp_path, rows)
    found = profile(
        source, memory_limit_mb=1, scratch=tmp_path / "keys", scan_rows=64, row_bytes=MIB // 200
    )
    assert found.parts == 7  # 1 001 rows in parts of 160 on average; one holds 900 or more
    assert _rows_with_shared_keys(source, found.shared) == _repeating_rows(source)
    assert len(found.shared) == 2


def test_malformed_lines_have_no_key(tmp_path: Path) -> None:
    path = tmp_path / "cdr_2026-03-02.csv"
    header = "record_id,msisdn,event_time,cell_id,event_type,direction,duration_s,volume_bytes\n"
    good = "r1,2348000000001,2026-03-02 10:00:00,C1,call,in,5,\n"
    bad = "oops\n"
    path.write_text(header + good + bad + bad + good.replace("r1", "r2"))
    (raw,) = discover([path])
    source = open_source(raw, tmp_path)
    found = profile(source, memory_limit_mb=64, scratch=tmp_path / "keys")
    frame = source.scan().select(ROW, MALFORMED, duplicate_key("cdr")).collect()
    assert frame[MALFORMED].to_list() == [False, True, True, False]
    assert found.shared.tolist() == [frame["_dupe_key"][0]]  # the two good rows, not the bad
