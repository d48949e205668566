"""Validation rules on hand-made raw files: every reason, its precedence, and what gets staged."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aggregation.ingest import IngestReport, ingest_files
from aggregation.ingest.zones import CellTable
from schemas.quality import QuarantineReason as R
from schemas.raw import RAW_CDR
from schemas.staged import STAGED_EVENTS

if TYPE_CHECKING:
    from pathlib import Path

CDR_HEADER = "record_id,msisdn,event_time,cell_id,event_type,direction,duration_s,volume_bytes"
GPS_HEADER = "device_id,timestamp,lat,lon,accuracy_m"


def run(ws: Path, raw: Path, environ: dict[str, str]) -> IngestReport:
    """Ingest one file and check the invariant every run must keep."""
    report = ingest_files([raw], ws, environ=environ)
    for f in report.files:
        assert f.reconciled, f
    return report


def quarantine(ws: Path, drop: str) -> dict[int, dict[str, Any]]:
    """Quarantined rows of a drop, by physical line (CSV) or row number (Parquet)."""
    path = ws / "quarantine" / f"{drop}.parquet"
    if not path.exists():
        return {}
    rows = pq.read_table(path).to_pylist()
    return {r["line"] if r["line"] is not None else r["row_number"]: r for r in rows}


def staged(ws: Path) -> pl.DataFrame:
    """Every staged event, with the partition it was written to."""
    files = sorted((ws / "staged").glob("date=*/shard=*/*.parquet"))
    frames = []
    for f in files:
        table = pq.read_table(f)
        assert STAGED_EVENTS.problems(table) == []
        frames.append(
            pl.from_arrow(table).with_columns(  # type: ignore[union-attr]
                pl.lit(f.parent.parent.name).alias("date_dir"),
                pl.lit(f.parent.name).alias("shard_dir"),
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame()


def pseudonym(raw_id: str, namespace: str, key: str) -> str:
    """The documented pseudonym, computed independently of the code under test."""
    msg = (namespace + raw_id).encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()[:32]


CDR_LINES = [
    CDR_HEADER,  # line 1
    "r1,2348000000001,2026-03-02 08:00:00,CELL1,call,out,60,",  # 2 valid
    "r2,2348000000001,2026-03-02 08:00:00,CELL1",  # 3 too few fields
    "r3,,2026-02-30 25:61:00,CELL1,call,out,60,",  # 4 missing msisdn beats bad time
    "r4,2348000000001,2026-02-30 25:61:00,CELL1,voice,out,60,",  # 5 bad time beats bad type
    "r5,2348000000001,2026-02-20 10:00:00,XX1,call,out,60,",  # 6 window beats unknown cell
    "r6,2348000000001,2026-03-02 10:00:00,XX1,voice,out,60,",  # 7 bad type beats unknown cell
    "r7,2348000000001,2026-03-02 10:00:00,XX1,sms,in,,",  # 8 unknown cell
    "r8,2348000000001,2026-03-02 10:00:00,CELL_NEW,sms,in,,",  # 9 cell not yet in service
    "r9,2348000000001,2026-03-02 10:00:00,CELL_OLD,sms,in,,",  # 10 cell retired
    "",  # 11 blank: not a row
    "r11,2348000000002,2026-03-01 23:30:00,CELL2,data,,300,5000",  # 12 valid, late (day before)
    "r1,2348000000001,2026-03-02 08:00:00,CELL1,call,out,60,",  # 13 duplicate of line 2
    "r13,2348000000001,   ,CELL1,call,out,60,",  # 14 blank time: unparseable, not missing
    "r14,2348000000001,2026-03-02 10:00:00,CELL1,call,out,-5,",  # 15 negative duration
    "r15,+2348000000001,2026-03-02 10:00:00,CELL1,sms,in,,",  # 16 msisdn not digits
    "r16,2348000000001,2026-03-02 10:00:00,CELL1,sms,sideways,,",  # 17 direction
    '"r17","2348000000002","2026-03-02 09:00:00","CELL2","sms","in",,',  # 18 quoted: valid
    'r18,2348"000,2026-03-02 09:00:00,CELL2,sms,in,,',  # 19 stray quote
    "r19,2348000000001,2026-03-02 10:00:00,CELL1,sms,in,,,EXTRA",  # 20 too many fields
    "r2,2348000000001,2026-03-02 08:00:00,CELL1",  # 21 same malformed text: not a duplicate
    "r15,+2348000000001,2026-03-02 10:00:00,CELL1,sms,in,,",  # 22 duplicate of line 16
    "r22,2348000000001,2026-03-03 00:00:00,CELL1,sms,in,,",  # 23 after the export day
    "r23,2348000000001,2026-03-02 10:00:00,CELL1,data,,12x,",  # 24 duration not a number
]

CDR_EXPECTED = {
    3: (R.MALFORMED_LINE, None),
    4: (R.MISSING_VALUE, "msisdn"),
    5: (R.UNPARSEABLE_TIMESTAMP, "event_time"),
    6: (R.TIMESTAMP_OUT_OF_WINDOW, "event_time"),
    7: (R.INVALID_VALUE, "event_type"),
    8: (R.UNKNOWN_CELL, "cell_id"),
    9: (R.UNKNOWN_CELL, "cell_id"),
    10: (R.UNKNOWN_CELL, "cell_id"),
    14: (R.UNPARSEABLE_TIMESTAMP, "event_time"),
    15: (R.INVALID_VALUE, "duration_s"),
    16: (R.INVALID_VALUE, "msisdn"),
    17: (R.INVALID_VALUE, "direction"),
    19: (R.MALFORMED_LINE, None),
    20: (R.MALFORMED_LINE, None),
    21: (R.MALFORMED_LINE, None),
    23: (R.TIMESTAMP_OUT_OF_WINDOW, "event_time"),
    24: (R.INVALID_VALUE, "duration_s"),
}


@pytest.fixture
def cdr_run(tiny_workspace: Path, key_environ: dict[str, str]) -> tuple[Path, IngestReport]:
    raw = tiny_workspace.parent / "cdr_2026-03-02.csv"
    raw.write_text("\n".join(CDR_LINES) + "\n")
    return tiny_workspace, run(tiny_workspace, raw, key_environ)


def test_every_cdr_rule_by_precedence(cdr_run: tuple[Path, IngestReport]) -> None:
    ws, _ = cdr_run
    found = {
        line: (r["reason"], r["column"]) for line, r in quarantine(ws, "cdr_2026-03-02").items()
    }
    assert found == CDR_EXPECTED


def test_cdr_reconciliation_counts(cdr_run: tuple[Path, IngestReport]) -> None:
    _, report = cdr_run
    f = report.files[0]
    assert (f.rows_in, f.rows_staged, f.rows_quarantined, f.duplicates_dropped) == (22, 3, 17, 2)
    assert f.quarantined_by_reason[R.UNKNOWN_CELL] == 3
    assert f.staged_by_date == {"2026-03-01": 1, "2026-03-02": 2}


def test_staged_cdr_rows(cdr_run: tuple[Path, IngestReport], key_environ: dict[str, str]) -> None:
    ws, _ = cdr_run
    rows = staged(ws).sort("event_time")
    key = key_environ["MOBILITY_SECRET"]
    first = rows.row(1, named=True)  # r1: 08:00 local in Lagos (UTC+1)
    assert first["pseudonym"] == pseudonym("2348000000001", "cdr:", key)
    assert first["event_time"] == dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
    assert (first["local_date"], first["local_hour"]) == (dt.date(2026, 3, 2), 8)
    assert (first["admin1"], first["admin2"], first["admin3"]) == ("A1", "A101", "A10101")
    assert (first["source"], first["event_type"], first["cell_id"]) == ("cdr", "call", "CELL1")
    late = rows.row(0, named=True)
    assert late["date_dir"] == "date=2026-03-01"
    assert late["local_hour"] == 23
    for r in rows.iter_rows(named=True):
        shard = int(r["pseudonym"][:8], 16) % 16
        assert r["shard_dir"] == f"shard={shard:03d}"
        assert r["date_dir"] == f"date={r['local_date']}"


def test_quarantine_keeps_values_but_no_raw_id(cdr_run: tuple[Path, IngestReport]) -> None:
    ws, _ = cdr_run
    rows = quarantine(ws, "cdr_2026-03-02")
    assert rows[5]["event_time"] == "2026-02-30 25:61:00"
    assert rows[5]["file"] == "cdr_2026-03-02.csv"
    assert rows[5]["row_number"] == 4
    assert rows[4]["msisdn_pseudonym"] is None
    assert len(rows[7]["msisdn_pseudonym"]) == 32
    assert rows[3]["detail"].startswith("4 fields where the header has 8")
    assert "msisdn" not in pq.read_schema(ws / "quarantine" / "cdr_2026-03-02.parquet").names


GPS_LINES = [
    GPS_HEADER,
    "dev1,2026-03-02T07:15:00.123Z,0.5,0.5,10.0",  # 2 valid, NW
    "dev1,2026-03-02T07:16:00Z,1.5,1.5,",  # 3 valid without millis, SE, no accuracy
    "dev2,2026-03-02T07:15:00Z,5.0,5.0,10",  # 4 outside every zone
    "dev2,2026-03-02T07:15:00Z,95.0,0.5,10",  # 5 latitude out of range
    "dev2,2026-03-02 08:15,0.5,0.5,10",  # 6 CDR-style time
    "dev2,2026-03-02T07:15:00Z,abc,0.5,10",  # 7 latitude not a number
    ",2026-03-02T07:15:00Z,0.5,0.5,10",  # 8 no device
    "dev2,2026-03-02T07:15:00Z,0.5,0.5,-3",  # 9 negative accuracy
    "dev2,2026-03-02T23:30:00Z,0.5,0.5,10",  # 10 UTC 03-02 is local 03-03: outside
    "dev2,2026-02-28T23:30:00Z,0.5,0.5,10",  # 11 UTC 02-28 is local 03-01: late, accepted
    "dev3,2026-03-02T07:15:00Z,0.5,1.0,10",  # 12 on the NW/NE border: first zone (NW)
    "dev3,2026-03-02T07:15:00Z,nan,0.5,10",  # 13 NaN latitude
    "dev3,2026-03-02T07:15:00Z,0.5,-200,10",  # 14 longitude out of range
]

GPS_EXPECTED = {
    4: (R.OUTSIDE_COVERAGE, "lat"),
    5: (R.INVALID_VALUE, "lat"),
    6: (R.UNPARSEABLE_TIMESTAMP, "timestamp"),
    7: (R.INVALID_VALUE, "lat"),
    8: (R.MISSING_VALUE, "device_id"),
    9: (R.INVALID_VALUE, "accuracy_m"),
    10: (R.TIMESTAMP_OUT_OF_WINDOW, "timestamp"),
    13: (R.INVALID_VALUE, "lat"),
    14: (R.INVALID_VALUE, "lon"),
}


def test_every_gps_rule(tiny_workspace: Path, key_environ: dict[str, str]) -> None:
    raw = tiny_workspace.parent / "gps_2026-03-02.csv"
    raw.write_text("\n".join(GPS_LINES) + "\n")
    report = run(tiny_workspace, raw, key_environ)
    found = {
        line: (r["reason"], r["column"])
        for line, r in quarantine(tiny_workspace, "gps_2026-03-02").items()
    }
    assert found == GPS_EXPECTED
    assert report.files[0].rows_staged == 4
    rows = staged(tiny_workspace).sort("event_time")
    by_device = {(r["pseudonym"], r["event_time"]): r for r in rows.iter_rows(named=True)}
    key = key_environ["MOBILITY_SECRET"]
    first = by_device[
        (pseudonym("dev1", "gps:", key), dt.datetime(2026, 3, 2, 7, 15, tzinfo=dt.UTC))
    ]
    assert (first["admin3"], first["local_hour"], first["source"], first["event_type"]) == (
        "A10101",
        8,
        "gps",
        "gps",
    )
    assert first["cell_id"] is None
    border = rows.filter(pl.col("pseudonym") == pseudonym("dev3", "gps:", key))
    assert border["admin3"].to_list() == ["A10101"]
    late = rows.filter(pl.col("local_date") == dt.date(2026, 3, 1))
    assert late["local_hour"].to_list() == [0]


def test_pseudonyms_differ_between_feeds(key_environ: dict[str, str]) -> None:
    key = key_environ["MOBILITY_SECRET"]
    assert pseudonym("123", "cdr:", key) != pseudonym("123", "gps:", key)


def test_daylight_saving_gap_is_invalid_and_overlap_takes_the_earlier_instant(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    config = tiny_workspace / "mobility.toml"
    config.write_text(config.read_text().replace("Africa/Lagos", "Europe/Paris"))
    gap = tiny_workspace.parent / "cdr_2026-03-29.csv"
    gap.write_text(
        f"{CDR_HEADER}\n"
        "g1,2348000000001,2026-03-29 02:30:00,CELL1,sms,in,,\n"
        "g2,2348000000001,2026-03-29 03:30:00,CELL1,sms,in,,\n"
    )
    overlap = tiny_workspace.parent / "cdr_2026-10-25.csv"
    overlap.write_text(f"{CDR_HEADER}\no1,2348000000001,2026-10-25 02:30:00,CELL1,sms,in,,\n")
    report = ingest_files([gap, overlap], tiny_workspace, environ=key_environ)
    assert report.ok
    q = quarantine(tiny_workspace, "cdr_2026-03-29")
    assert (q[2]["reason"], q[2]["column"]) == (R.INVALID_VALUE, "event_time")
    times = staged(tiny_workspace).sort("event_time")["event_time"].to_list()
    assert times == [
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC),  # 03:30 CEST
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC),  # 02:30 CEST, the first 02:30
    ]


def test_late_days_widens_the_window(tiny_workspace: Path, key_environ: dict[str, str]) -> None:
    config = tiny_workspace / "mobility.toml"
    config.write_text(config.read_text().replace("late_days = 1", "late_days = 3"))
    raw = tiny_workspace.parent / "cdr_2026-03-02.csv"
    raw.write_text(
        f"{CDR_HEADER}\n"
        "a,2348000000001,2026-02-27 10:00:00,CELL1,sms,in,,\n"
        "b,2348000000001,2026-02-26 23:59:59,CELL1,sms,in,,\n"
    )
    report = run(tiny_workspace, raw, key_environ)
    assert report.files[0].rows_staged == 1
    assert quarantine(tiny_workspace, "cdr_2026-03-02")[3]["reason"] == R.TIMESTAMP_OUT_OF_WINDOW


def test_crlf_gzip_and_reordered_header(tiny_workspace: Path, key_environ: dict[str, str]) -> None:
    import gzip  # noqa: PLC0415

    text = (
        "event_type,msisdn,record_id,event_time,cell_id,direction,duration_s,volume_bytes\r\n"
        "sms,2348000000001,a,2026-03-02 10:00:00,CELL1,in,,\r\n"
        "sms,2348000000001,b,2026-03-02 10:00:00,CELL1\r\n"
        "sms,2348000000001,c,2026-03-02 10:00:00,CELL2,in,,"  # no final newline
    )
    raw = tiny_workspace.parent / "cdr_2026-03-02.csv.gz"
    raw.write_bytes(gzip.compress(text.encode()))
    report = run(tiny_workspace, raw, key_environ)
    f = report.files[0]
    assert (f.rows_in, f.rows_staged, f.rows_quarantined) == (3, 2, 1)
    assert quarantine(tiny_workspace, "cdr_2026-03-02")[3]["reason"] == R.MALFORMED_LINE
    assert sorted(staged(tiny_workspace)["cell_id"].to_list()) == ["CELL1", "CELL2"]


def test_invalid_utf8_line_is_malformed(tiny_workspace: Path, key_environ: dict[str, str]) -> None:
    raw = tiny_workspace.parent / "cdr_2026-03-02.csv"
    raw.write_bytes(
        (CDR_HEADER + "\n").encode()
        + b"a,2348000000001,2026-03-02 10:00:00,CELL1,sms,in,,\n"
        + b"b,2348000000001,2026-03-02 10:00:00,CELL\xff,sms,in,,\n"
    )
    report = run(tiny_workspace, raw, key_environ)
    assert report.files[0].rows_staged == 1
    assert quarantine(tiny_workspace, "cdr_2026-03-02")[3]["reason"] == R.MALFORMED_LINE


def local(text: str) -> dt.datetime:
    """A naive (operator-local) time, as raw CDR carry them."""
    return dt.datetime.fromisoformat(text)


def _cdr_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows with the contract's types; every column nullable, as in real (faulty) exports."""
    schema = pa.schema([f.with_nullable(True) for f in RAW_CDR.schema])
    return pa.Table.from_pylist(rows, schema=schema)


def _cdr_row(record_id: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "record_id": record_id,
        "msisdn": "2348000000001",
        "event_time": local("2026-03-02 10:00:00"),
        "cell_id": "CELL1",
        "event_type": "call",
        "direction": "out",
        "duration_s": 60,
        "volume_bytes": None,
    }
    row.update(changes)
    return row


def test_parquet_rules_use_row_numbers(tiny_workspace: Path, key_environ: dict[str, str]) -> None:
    table = _cdr_table(
        [
            _cdr_row("a"),  # 1 valid
            _cdr_row("b", msisdn=None),  # 2 missing
            _cdr_row("c", event_time=local("2025-03-02 10:00:00")),  # 3 out of window
            _cdr_row("d", event_type="video"),  # 4 invalid
            _cdr_row("e", cell_id="NOPE"),  # 5 unknown cell
            _cdr_row("a"),  # 6 duplicate of 1
            _cdr_row("f", duration_s=-1),  # 7 invalid duration
            _cdr_row("g", event_time=None, cell_id="NOPE"),  # 8 missing beats unknown
        ]
    )
    raw = tiny_workspace.parent / "cdr_2026-03-02.parquet"
    pq.write_table(table, raw)
    report = run(tiny_workspace, raw, key_environ)
    found = {
        n: (r["reason"], r["column"], r["line"])
        for n, r in quarantine(tiny_workspace, "cdr_2026-03-02").items()
    }
    assert found == {
        2: (R.MISSING_VALUE, "msisdn", None),
        3: (R.TIMESTAMP_OUT_OF_WINDOW, "event_time", None),
        4: (R.INVALID_VALUE, "event_type", None),
        5: (R.UNKNOWN_CELL, "cell_id", None),
        7: (R.INVALID_VALUE, "duration_s", None),
        8: (R.MISSING_VALUE, "event_time", None),
    }
    f = report.files[0]
    assert (f.rows_in, f.rows_staged, f.duplicates_dropped) == (8, 1, 1)


def test_parquet_with_compatible_types_is_accepted(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    table = _cdr_table([_cdr_row("a"), _cdr_row("b", event_type="sms", duration_s=None)])
    table = table.set_column(6, "duration_s", table["duration_s"].cast(pa.int64()))
    table = table.set_column(2, "event_time", table["event_time"].cast(pa.timestamp("ms")))
    table = table.set_column(4, "event_type", table["event_type"].dictionary_encode())
    raw = tiny_workspace.parent / "cdr_2026-03-02.parquet"
    pq.write_table(table, raw)
    assert run(tiny_workspace, raw, key_environ).files[0].rows_staged == 2


def test_gps_parquet_timestamps_in_another_zone_are_converted(
    tiny_workspace: Path, key_environ: dict[str, str]
) -> None:
    plus_one = dt.timezone(dt.timedelta(hours=1))
    fix = dt.datetime(2026, 3, 2, 8, 15, tzinfo=plus_one)
    table = pa.table(
        {
            "device_id": ["d1"],
            "timestamp": pa.array([fix], pa.timestamp("ms", "+01:00")),
            "lat": [0.5],
            "lon": [0.5],
            "accuracy_m": pa.array([None], pa.float32()),
        }
    )
    raw = tiny_workspace.parent / "gps_2026-03-02.parquet"
    pq.write_table(table, raw)
    assert run(tiny_workspace, raw, key_environ).files[0].rows_staged == 1
    assert staged(tiny_workspace)["event_time"].to_list() == [
        dt.datetime(2026, 3, 2, 7, 15, tzinfo=dt.UTC)
    ]


def test_cells_are_located_by_id_and_service_dates(tmp_path: Path) -> None:
    """The cell lookup: exact ids only, in service on the row's local date, and none at all
    from an empty table."""
    cells = tmp_path / "cells.csv"
    header = "cell_id,site_id,lat,lon,admin1,admin2,admin3,valid_from,valid_to\n"
    cells.write_text(
        header
        + "C1,S1,0,0,A,A.1,A.1.1,2026-03-01,\n"
        + "C2,S1,0,0,A,A.1,A.1.1,2026-03-01,2026-03-01\n"
        + "C 3,S1,0,0,A,A.1,A.1.1,2026-03-03,\n"
    )
    day = (dt.date(2026, 3, 2) - dt.date(1970, 1, 1)).days
    ids = pl.Series(["C1", "C2", "C 3", "c1", "C1 ", None, ""])
    found = _locate(CellTable.load(cells), ids, np.full(len(ids), day))
    assert found.tolist() == [0, -1, -1, -1, -1, -1, -1]
    assert _locate(CellTable.load(cells), pl.Series(["C 3"]), np.array([day + 1])).tolist() == [2]
    empty = tmp_path / "empty.csv"
    empty.write_text(header)
    assert _locate(CellTable.load(empty), ids, np.full(len(ids), day)).tolist() == [-1] * 7


def _locate(cells: CellTable, ids: pl.Series, days: np.ndarray) -> np.ndarray:
    """Each cell's place on its day, as ingest finds it: its table row, then its service days."""
    return cells.in_service(cells.rows(ids).to_numpy(), days)
