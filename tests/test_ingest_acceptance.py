"""Issue 3's acceptance: synthetic drops with injected errors, end to end, through the CLI and flow.

Every injected error is quarantined with the right reason (matched on file and row, and line for
CSV), nothing else is; duplicates are dropped and counted; every file reconciles; no raw id and no
secret is anywhere in the workspace afterwards; re-ingest gives the same bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from aggregation.ingest import IngestReport, ingest_files
from flows.cli import cli
from schemas.raw import RAW_CDR
from schemas.workspace import init_workspace


def _injected(export: Path) -> pl.DataFrame:
    """The generator's record of injected errors, keyed by file name and row number."""
    return pl.read_parquet(export / "truth" / "injected_errors.parquet").with_columns(
        pl.col("file").str.split("/").list.last()
    )


def _quarantined(ws: Path) -> pl.DataFrame:
    files = sorted((ws / "quarantine").glob("*.parquet"))
    return pl.concat(
        [pl.read_parquet(f).select("file", "row_number", "line", "reason", "column") for f in files]
    )


def _ingest_export(export: Path, ws_root: Path, environ: dict[str, str]) -> IngestReport:
    ws = init_workspace(ws_root).root
    (ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(export / "reference" / name, ws / "reference" / name)
    return ingest_files([export / "raw"], ws, environ=environ)


def check_against_truth(export: Path, ws: Path, report: IngestReport) -> None:
    """The acceptance checks shared by both formats."""
    injected = _injected(export)
    bad = injected.filter(pl.col("kind") != "exact_duplicate")
    found = _quarantined(ws)
    joined = bad.join(found, on=["file", "row_number"], how="full", coalesce=True)
    missed = joined.filter(pl.col("reason").is_null())
    assert missed.is_empty(), f"injected errors not quarantined:\n{missed}"
    extra = joined.filter(pl.col("kind").is_null())
    assert extra.is_empty(), f"quarantined rows without an injected error:\n{extra}"
    wrong = joined.filter(pl.col("kind") != pl.col("reason"))
    assert wrong.is_empty(), f"wrong reasons:\n{wrong}"
    with_column = joined.filter(pl.col("column").is_not_null())
    assert (with_column["column"] == with_column["column_right"]).all()
    assert (joined["line"].is_null() | (joined["line"] == joined["line_right"])).all()
    dupes = injected.filter(pl.col("kind") == "exact_duplicate").group_by("file").len()
    by_file = {f"{f.drop_id}.{f.format}": f for f in report.files}
    for name, n in dupes.iter_rows():
        assert by_file[name].duplicates_dropped == n
    for f in report.files:
        assert f.status == "staged"
        assert f.reconciled
        assert f.rows_in == f.rows_staged + f.rows_quarantined + f.duplicates_dropped
        assert f.rows_quarantined == bad.filter(pl.col("file") == f"{f.drop_id}.{f.format}").height


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_injected_errors_are_quarantined_exactly(
    fmt: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    key_environ: dict[str, str],
) -> None:
    export: Path = request.getfixturevalue(f"synthetic_{fmt}")
    report = _ingest_export(export, tmp_path / "ws", key_environ)
    ws = tmp_path / "ws"
    check_against_truth(export, ws, report)
    assert report.ok
    saved = json.loads(Path(report.paths["json"]).read_text())
    assert saved["totals"]["rows_in"] == sum(f.rows_in for f in report.files)
    assert Path(report.paths["summary"]).read_text().startswith("Ingest run")
    before = _bytes(ws, "staged", "quarantine")
    ingest_files([export / "raw"], ws, environ=key_environ)
    assert _bytes(ws, "staged", "quarantine") == before


def _bytes(ws: Path, *dirs: str) -> dict[str, bytes]:
    return {
        p.relative_to(ws).as_posix(): p.read_bytes()
        for d in dirs
        for p in sorted((ws / d).rglob("*.parquet"))
    }


def _raw_ids(export: Path) -> set[str]:
    people = pq.read_table(export / "truth" / "subscribers.parquet")
    ids = set(people["msisdn"].to_pylist()) | set(people["device_id"].drop_null().to_pylist())
    assert len(ids) > 1000
    return ids


def _strings_in_parquet(path: Path) -> set[str]:
    table = pq.read_table(path)
    found: set[str] = set()
    for col in table.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            found |= {v for v in col.to_pylist() if v is not None}
    return found


def test_no_raw_id_and_no_secret_anywhere_in_the_workspace(
    synthetic_csv: Path, tmp_path: Path, key_environ: dict[str, str]
) -> None:
    ws = tmp_path / "ws"
    assert _ingest_export(synthetic_csv, ws, key_environ).ok
    ids = _raw_ids(synthetic_csv)
    needles = [i.encode() for i in ids] + [key_environ["MOBILITY_SECRET"].encode()]
    files = [p for p in ws.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        data = path.read_bytes()
        leaked = [n for n in needles if n in data]
        assert not leaked, f"{path} holds raw ids or the secret: {leaked[:3]}"
        if path.suffix == ".parquet" and "reference" not in path.parts:
            assert not (_strings_in_parquet(path) & ids), f"{path} holds raw ids"
    assert not (ws / ".tmp" / "ingest").exists()


def test_cli_ingest_reports_and_fails_on_a_corrupt_file(
    synthetic_csv: Path, tmp_path: Path, key_environ: dict[str, str]
) -> None:
    runner = CliRunner()
    ws = tmp_path / "ws"
    assert runner.invoke(cli, ["init", str(ws)]).exit_code == 0
    shutil.copytree(synthetic_csv / "reference", ws / "reference", dirs_exist_ok=True)
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_csv / "raw", raw)
    no_key = runner.invoke(cli, ["ingest", str(raw), "--workspace", str(ws)], env={})
    assert no_key.exit_code == 2
    assert "MOBILITY_SECRET" in no_key.output
    assert "Traceback" not in no_key.output

    env = {**key_environ, "MOBILITY_WORKSPACE": str(ws)}
    done = runner.invoke(cli, ["ingest", str(raw), "--json"], env=env)
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["ok"] is True
    assert document["totals"]["files"] == 4

    victim = raw / "gps_2026-03-03.csv"
    victim.unlink()
    (raw / "gps_2026-03-03.parquet").write_bytes(b"not parquet at all")
    failed = runner.invoke(cli, ["ingest", str(raw)], env=env)
    assert failed.exit_code == 1
    assert "gps_2026-03-03.parquet" in failed.output
    assert "could not be read" in failed.output
    assert "Traceback" not in failed.output
    assert "staged" in failed.stdout  # the summary of the other files


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_drop_with_a_header_and_no_rows_is_a_loud_warning(
    synthetic_csv: Path, tmp_path: Path, key_environ: dict[str, str], fmt: str
) -> None:
    runner = CliRunner()
    ws = tmp_path / "ws"
    assert runner.invoke(cli, ["init", str(ws)]).exit_code == 0
    shutil.copytree(synthetic_csv / "reference", ws / "reference", dirs_exist_ok=True)
    raw = tmp_path / "raw"
    raw.mkdir()
    source = synthetic_csv / "raw" / "cdr_2026-03-02.csv"
    empty = raw / f"cdr_2026-03-04.{fmt}"
    if fmt == "csv":
        header = source.read_text(encoding="utf-8").splitlines()[0]
        empty.write_text(header + "\n", encoding="utf-8")
    else:
        pq.write_table(RAW_CDR.schema.empty_table(), empty)
    shutil.copy(source, raw / source.name)

    done = runner.invoke(cli, ["ingest", str(raw), "--workspace", str(ws)], env=key_environ)
    assert done.exit_code == 0, done.output
    assert f"warning: cdr_2026-03-04.{fmt} has no rows" in done.stderr
    assert "re-export the drop" in done.stderr
    assert "WARNING: drops with no rows" in done.stdout
    assert "cdr_2026-03-02" not in done.stderr  # the drop with rows is not flagged

    as_json = runner.invoke(cli, ["ingest", str(raw), "--workspace", str(ws), "--json"],
                            env=key_environ)  # fmt: skip
    document = json.loads(as_json.stdout)
    assert len(document["warnings"]) == 1
    assert "cdr_2026-03-04" in document["warnings"][0]
    report = json.loads(Path(document["report_files"]["json"]).read_text(encoding="utf-8"))
    assert report["warnings"] == document["warnings"]


def test_cli_init_refuses_an_existing_workspace(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(tmp_path)]).exit_code == 0
    again = runner.invoke(cli, ["init", str(tmp_path)])
    assert again.exit_code == 2
    assert "already exists" in again.output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunking_does_not_change_the_result(
    fmt: str, request: pytest.FixtureRequest, tmp_path: Path, key_environ: dict[str, str]
) -> None:
    export: Path = request.getfixturevalue(f"synthetic_{fmt}")
    whole = _ingest_export(export, tmp_path / "whole", key_environ)
    config = tmp_path / "small" / "mobility.toml"
    small_ws = init_workspace(tmp_path / "small").root
    config.write_text(config.read_text().replace("batch_rows = 1000000", "batch_rows = 1000"))
    (small_ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(export / "reference" / name, small_ws / "reference" / name)
    chunked = ingest_files([export / "raw"], small_ws, environ=key_environ)
    assert [f.to_dict() | {"seconds": 0, "rows_per_second": 0} for f in chunked.files] == [
        f.to_dict() | {"seconds": 0, "rows_per_second": 0} for f in whole.files
    ]
    assert _bytes(small_ws, "staged") == _bytes(tmp_path / "whole", "staged")
    for path in (tmp_path / "whole" / "quarantine").glob("*.parquet"):
        assert pq.read_table(path).equals(pq.read_table(small_ws / "quarantine" / path.name))
