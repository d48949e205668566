"""The staged writer: partitions, row order within a partition, row groups, string columns."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aggregation.ingest.staging import StagedRows, StagedWriter, contract_problems
from schemas.errors import InternalError
from schemas.staged import STAGED_EVENT_TYPES, STAGED_EVENTS

if TYPE_CHECKING:
    from pathlib import Path

DAY = (dt.date(2026, 3, 2) - dt.date(1970, 1, 1)).days
PSEUDONYMS = pa.array([f"{i:032x}" for i in range(50)])
PLACES = pa.table(
    {
        "cell_id": [f"C{i}" for i in range(7)],
        "admin1": ["N"] * 7,
        "admin2": ["N1", "N1", "N2", "N2", "N2", "N3", "N3"],
        "admin3": [f"N{i}x" for i in range(7)],
    }
)


def _rows(n: int, seed: int = 0) -> StagedRows:
    rng = np.random.default_rng(seed)
    pid = rng.integers(0, len(PSEUDONYMS), n).astype(np.uint32)
    return StagedRows(
        pid=pid,
        place=rng.integers(0, PLACES.num_rows, n).astype(np.uint32),
        event_ms=np.arange(n, dtype=np.int64) * 1000 + 1_772_400_000_000,
        local_days=(DAY - (rng.random(n) < 0.1)).astype(np.int32),
        local_hour=rng.integers(0, 24, n).astype(np.int8),
        event_type=rng.integers(0, 3, n).astype(np.uint8),
        shard=(pid % 3).astype(np.uint16),
    )


def _write(root: Path, rows: StagedRows, cuts: list[int]) -> dict[str, int]:
    writer = StagedWriter(
        root, "drop", pseudonyms=PSEUDONYMS, places=PLACES, source="cdr", row_group_rows=100
    )
    for start, stop in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        writer.add(rows.slice(start, stop))
    return writer.close()


def test_the_bytes_written_do_not_depend_on_how_rows_arrive(tmp_path: Path) -> None:
    rows = _rows(2_000)
    one = _write(tmp_path / "one", rows, [])
    many = _write(tmp_path / "many", rows, [1, 99, 100, 101, 777, 1_500, 1_999])
    assert one == many
    assert sum(one.values()) == len(rows)
    for rel in one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "many" / rel).read_bytes()
        sizes = [
            pq.ParquetFile(tmp_path / "one" / rel).metadata.row_group(i).num_rows
            for i in range(pq.ParquetFile(tmp_path / "one" / rel).metadata.num_row_groups)
        ]
        assert all(size == 100 for size in sizes[:-1])


def test_each_partition_holds_its_rows_in_file_order_with_their_strings(tmp_path: Path) -> None:
    rows = _rows(1_000, seed=1)
    written = _write(tmp_path, rows, [333, 666])
    seen = 0
    for rel, count in written.items():
        path = tmp_path / rel
        assert contract_problems(path) == []
        table = pq.read_table(path)
        day = rel.split("/")[0].removeprefix("date=")
        shard = int(rel.split("/")[1].removeprefix("shard="))
        mine = np.flatnonzero(
            (rows.local_days == (dt.date.fromisoformat(day) - dt.date(1970, 1, 1)).days)
            & (rows.shard == shard)
        )
        assert table.num_rows == count == len(mine)
        assert table["pseudonym"].to_pylist() == PSEUDONYMS.take(rows.pid[mine]).to_pylist()
        assert table.schema.equals(STAGED_EVENTS.schema, check_metadata=True)
        for column in PLACES.column_names:
            expected = PLACES[column].take(rows.place[mine]).to_pylist()
            assert table[column].to_pylist() == expected, column
        assert table["event_type"].to_pylist() == [
            STAGED_EVENT_TYPES[i] for i in rows.event_type[mine]
        ]
        times = table["event_time"].cast(pa.int64()).to_numpy()
        assert (times == rows.event_ms[mine]).all()
        assert set(table["source"].to_pylist()) == {"cdr"}
        seen += count
    assert seen == len(rows)


def test_gps_places_have_no_cell(tmp_path: Path) -> None:
    zones = PLACES.set_column(0, "cell_id", pa.nulls(PLACES.num_rows, pa.string()))
    rows = _rows(300, seed=2)
    writer = StagedWriter(tmp_path, "drop", pseudonyms=PSEUDONYMS, places=zones, source="gps")
    writer.add(rows)
    for rel in writer.close():
        table = pq.read_table(tmp_path / rel)
        assert table.schema.equals(STAGED_EVENTS.schema)
        assert table["cell_id"].null_count == table.num_rows
        assert set(table["source"].to_pylist()) == {"gps"}


def test_only_kept_rows_are_written_and_counted_per_day(tmp_path: Path) -> None:
    """Rows left out may hold anything (a refused row's day can be 1970): they are not written,
    do not widen the partitions, and the days of the others are counted."""
    rows = _rows(1_000, seed=3)
    keep = np.random.default_rng(3).random(len(rows)) < 0.7
    left_out = np.flatnonzero(~keep)
    rows.local_days[left_out] = 0
    rows.shard[left_out] = 999
    writer = StagedWriter(
        tmp_path, "drop", pseudonyms=PSEUDONYMS, places=PLACES, source="cdr", row_group_rows=64
    )
    by_day = writer.add(rows.slice(0, 400), keep[:400])
    assert writer.add(rows.slice(400, 400), keep[400:400]) == {}
    later = writer.add(rows.slice(400, 1_000), keep[400:])
    for d, n in later.items():
        by_day[d] = by_day.get(d, 0) + n
    written = writer.close()
    days, counts = np.unique(rows.local_days[keep], return_counts=True)
    assert by_day == dict(zip(days.tolist(), counts.tolist(), strict=True))
    assert sum(written.values()) == int(keep.sum())
    for rel in written:
        shard = int(rel.split("/")[1].removeprefix("shard="))
        since = dt.date.fromisoformat(rel.split("/")[0].removeprefix("date=")) - dt.date(1970, 1, 1)
        mine = np.flatnonzero(keep & (rows.shard == shard) & (rows.local_days == since.days))
        times = pq.read_table(tmp_path / rel)["event_time"].cast(pa.int64()).to_numpy()
        assert (times == rows.event_ms[mine]).all()  # file order within the partition


def test_keep_flags_of_another_length_are_refused(tmp_path: Path) -> None:
    writer = StagedWriter(tmp_path, "drop", pseudonyms=PSEUDONYMS, places=PLACES, source="cdr")
    with pytest.raises(InternalError, match=r"differ in length: \[9, 10\]"):
        writer.add(_rows(10), np.ones(9, dtype=np.bool_))
    writer.abort()
