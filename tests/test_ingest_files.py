"""Files that cannot be read fail alone, with a message naming the file and the problem."""

from __future__ import annotations

import datetime as dt
import fcntl
import gzip
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aggregation.ingest import IngestBusyError, chunks, discover, ingest_files, validation
from aggregation.ingest.context import LOCK_FILE
from schemas.errors import ConfigurationError
from schemas.raw import RAW_CDR

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.ingest.drops import Feed

HEADER = "record_id,msisdn,event_time,cell_id,event_type,direction,duration_s,volume_bytes"
GOOD = "a,2348000000001,2026-03-02 10:00:00,CELL1,sms,in,,"


def _good_csv(path: Path, rows: int = 3) -> Path:
    lines = [HEADER] + [GOOD.replace("a,", f"r{i},", 1) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _truncated_gzip(path: Path) -> Path:
    body = ("\n".join([HEADER] + [GOOD] * 2000) + "\n").encode()
    path.write_bytes(gzip.compress(body)[:-200])
    return path


def _corrupt_parquet(path: Path) -> Path:
    path.write_bytes(b"PAR1" + b"\x00garbage" * 50 + b"PAR1")
    return path


def _gps_header_in_cdr(path: Path) -> Path:
    path.write_text("device_id,timestamp,lat,lon,accuracy_m\nd,2026-03-02T10:00:00Z,0.5,0.5,\n")
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _parquet_missing_column(path: Path) -> Path:
    pq.write_table(pa.table({"record_id": ["a"], "msisdn": ["2348000000001"]}), path)
    return path


def _parquet_string_times(path: Path) -> Path:
    table = pa.table(
        {
            "record_id": ["a"],
            "msisdn": ["2348000000001"],
            "event_time": ["2026-03-02 10:00:00"],
            "cell_id": ["CELL1"],
            "event_type": ["sms"],
            "direction": ["in"],
            "duration_s": pa.array([None], pa.int32()),
            "volume_bytes": pa.array([None], pa.int64()),
        }
    )
    pq.write_table(table, path)
    return path


def _parquet_aware_times(path: Path) -> Path:
    _parquet_string_times(path)
    table = pq.read_table(path)
    aware = pa.array([dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)], pa.timestamp("s", "UTC"))
    pq.write_table(table.set_column(2, "event_time", aware), path)
    return path


BROKEN = [
    ("cdr_2026-03-02.csv.gz", _truncated_gzip, "cannot read this gzipped CSV file"),
    ("cdr_2026-03-02.parquet", _corrupt_parquet, "cannot read this Parquet file"),
    ("cdr_2026-03-02.csv", _gps_header_in_cdr, "columns are those of a GPS export"),
    ("cdr_2026-03-02.csv", _empty, "empty or has no header line"),
    ("cdr_2026-03-02.parquet", _parquet_missing_column, "missing columns"),
    ("cdr_2026-03-02.parquet", _parquet_string_times, "event_time has type string"),
    ("cdr_2026-03-02.parquet", _parquet_aware_times, "must be naive operator-local time"),
]


@pytest.mark.parametrize(
    ("name", "make", "message"), BROKEN, ids=[b[1].__name__.strip("_") for b in BROKEN]
)
def test_a_broken_file_fails_alone(
    tiny_workspace: Path,
    key_environ: dict[str, str],
    name: str,
    make: object,
    message: str,
) -> None:
    raw_dir = tiny_workspace.parent / "raw"
    raw_dir.mkdir()
    good = _good_csv(raw_dir / "cdr_2026-03-03.csv")
    assert callable(make)
    broken = make(raw_dir / name)
    report = ingest_files([raw_dir], tiny_workspace, environ=key_environ)
    by_drop = {f.drop_id: f for f in report.files}
    failed = by_drop["cdr_2026-03-02"]
    assert failed.status == "failed"
    assert str(broken) in (failed.error or "")
    assert message in (failed.error or "")
    assert "Nothing from it was staged" in (failed.error or "")
    assert (failed.rows_staged, failed.rows_quarantined) == (0, 0)
    assert by_drop[good.stem].status == "staged"
    assert by_drop[good.stem].rows_staged == 3
    assert not list((tiny_workspace / "staged").glob("date=*/shard=*/cdr_2026-03-02.parquet"))
    assert not report.ok
    assert "cdr_2026-03-02" in report.failure_message()


def test_a_failed_reingest_keeps_the_previous_staged_data(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    raw = _good_csv(tiny_workspace.parent / "cdr_2026-03-02.csv")
    assert ingest_files([raw], tiny_workspace, environ=key_environ).ok
    before = {p: p.read_bytes() for p in (tiny_workspace / "staged").rglob("*.parquet")}
    raw.write_text(HEADER + "\n" + GOOD + "\n")  # then the export is replaced by a broken one:
    broken = _truncated_gzip(tiny_workspace.parent / "cdr_2026-03-02.csv.gz")
    raw.unlink()
    assert not ingest_files([broken], tiny_workspace, environ=key_environ).ok
    after = {p: p.read_bytes() for p in (tiny_workspace / "staged").rglob("*.parquet")}
    assert after == before
    assert (tiny_workspace / "staged" / "_drops" / "cdr_2026-03-02.json").exists()


def test_file_names_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "calls_2026-03-02.csv"
    bad.write_text(HEADER)
    with pytest.raises(ConfigurationError, match=r"must be named cdr_YYYY-MM-DD"):
        discover([bad])
    with pytest.raises(ConfigurationError, match="holds no raw files"):
        discover([tmp_path])
    with pytest.raises(ConfigurationError, match="does not exist"):
        discover([tmp_path / "nothing.csv"])
    (tmp_path / "cdr_2026-03-02.csv").write_text(HEADER)
    (tmp_path / "cdr_2026-03-02.parquet").write_text("")
    with pytest.raises(ConfigurationError, match=r"same drop \(cdr_2026-03-02\)"):
        discover([tmp_path])


def test_directories_are_searched_for_raw_names_only(tmp_path: Path) -> None:
    for name in ("gps_2026-03-03.csv.gz", "cdr_2026-03-02.csv", "notes.txt", "cdr_2026-13-40.csv"):
        (tmp_path / name).write_text("")
    found = discover([tmp_path])
    assert [(r.drop_id, r.fmt) for r in found] == [
        ("cdr_2026-03-02", "csv"),
        ("gps_2026-03-03", "csv.gz"),
    ]


def test_missing_reference_data_is_a_configuration_error(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    raw = _good_csv(tiny_workspace.parent / "cdr_2026-03-02.csv")
    (tiny_workspace / "reference" / "cells.csv").unlink()
    with pytest.raises(ConfigurationError, match=r"cells\.csv does not exist.*\[geography\] cells"):
        ingest_files([raw], tiny_workspace, environ=key_environ)


def test_a_cell_table_listing_a_cell_twice_is_refused(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    cells = tiny_workspace / "reference" / "cells.csv"
    lines = cells.read_text().splitlines()
    cells.write_text("\n".join([*lines, lines[1]]) + "\n")
    raw = _good_csv(tiny_workspace.parent / "cdr_2026-03-02.csv")
    with pytest.raises(ConfigurationError, match=r"more than once.*CELL1"):
        ingest_files([raw], tiny_workspace, environ=key_environ)


def test_a_second_ingest_into_the_same_workspace_is_refused(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    raw = _good_csv(tiny_workspace.parent / "cdr_2026-03-02.csv")
    with (tiny_workspace / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        with pytest.raises(IngestBusyError, match="Another ingest is running"):
            ingest_files([raw], tiny_workspace, environ=key_environ)


def test_an_export_without_rows_replaces_the_drop_with_nothing(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    raw = _good_csv(tiny_workspace.parent / "cdr_2026-03-02.csv")
    assert ingest_files([raw], tiny_workspace, environ=key_environ).ok
    assert list((tiny_workspace / "staged").glob("date=*/shard=*/cdr_2026-03-02.parquet"))
    raw.write_text(HEADER + "\n")
    report = ingest_files([raw], tiny_workspace, environ=key_environ)
    assert report.ok
    assert (report.files[0].rows_in, report.files[0].partitions) == (0, 0)
    assert not list((tiny_workspace / "staged").glob("date=*/shard=*/cdr_2026-03-02.parquet"))
    empty = tiny_workspace.parent / "cdr_2026-03-03.parquet"
    pq.write_table(RAW_CDR.empty(), empty)
    assert ingest_files([empty], tiny_workspace, environ=key_environ).files[0].rows_in == 0


def test_a_file_whose_rows_fail_to_check_fails_alone(
    tiny_workspace: Path, key_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error while the reading thread checks a chunk fails that file, not the batch."""
    raw_dir = tiny_workspace.parent / "raw"
    raw_dir.mkdir()
    broken = _good_csv(raw_dir / "cdr_2026-03-02.csv")
    good = _good_csv(raw_dir / "cdr_2026-03-03.csv")
    real = validation.flag

    def flag(chunk: pl.DataFrame, feed: Feed, **rules: Any) -> pl.DataFrame:
        if rules["window"].last == dt.date(2026, 3, 2):
            raise pl.exceptions.ComputeError("cannot compare (simulated)")
        return real(chunk, feed, **rules)

    monkeypatch.setattr(chunks, "flag", flag)
    report = ingest_files([raw_dir], tiny_workspace, environ=key_environ)
    by_drop = {f.drop_id: f for f in report.files}
    assert by_drop[broken.stem].status == "failed"
    assert "cannot compare (simulated)" in (by_drop[broken.stem].error or "")
    assert by_drop[good.stem].status == "staged"
    assert by_drop[good.stem].rows_staged == 3
