"""Shared helpers of the audit tests (no tests here): a released workspace, and ledger forgery.

The template workspace is built once per test session (about 3 s): 2 500 synthetic subscribers
over 3 days, ingested, with three honest releases and one refusal. Tests copy it before changing
anything. Forgery writes the DuckDB file directly, after every Ledger connection has closed.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import timedelta
from typing import TYPE_CHECKING

import duckdb
import pytest

from aggregation.ingest import ingest_files
from aggregation.ledger import LedgerEntry, canonical_json, compute_entry_hash
from aggregation.release import open_context, release
from sample_data.synth import SynthConfig, generate
from schemas.errors import BudgetExceededError
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from schemas.workspace import init_workspace
from tests.conftest import KEY_ENVIRON, START

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

DAY2 = START + timedelta(days=1)
DAY3 = START + timedelta(days=2)
TEMPLATE_RELEASES = (
    ReleaseSpec(Indicator.EVENT_COUNTS, START, START, epsilon=0.5),
    ReleaseSpec(Indicator.OD_TRIPS, START, START, epsilon=1.0),
    ReleaseSpec(Indicator.PRESENCE, DAY2, DAY2, epsilon=0.5),
)
REFUSED = ReleaseSpec(Indicator.PRESENCE, START, START, epsilon=5.0)
"""Day 1 has spent ε = 1.5 of its cap 6 (the default policy): ε = 5 more is refused."""


def _build(root: Path) -> Path:
    export = root / "export"
    generate(SynthConfig(subscribers=2_500, days=3, start=START, seed=3), export)
    ws = init_workspace(root / "ws").root
    (ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(export / "reference" / name, ws / "reference" / name)
    assert ingest_files([export / "raw"], ws, environ=KEY_ENVIRON).ok
    ctx = open_context(ws, environ=KEY_ENVIRON)
    for spec in TEMPLATE_RELEASES:
        release(ctx, spec)
    with pytest.raises(BudgetExceededError):
        release(ctx, REFUSED)
    return ws


def audit_template(factory: pytest.TempPathFactory) -> Path:
    """The released template workspace, built on first use in this session."""
    root = factory.getbasetemp() / "audit-template"
    ready = root / "ready"
    if not ready.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        _build(root)
        ready.touch()
    return root / "ws"


def copy_workspace(template: Path, target: Path) -> Path:
    """A copy of ``template`` at ``target`` (another absolute path: an auditor's copy)."""
    shutil.copytree(template, target)
    return target


def _row(entry: LedgerEntry) -> list[object]:
    values: list[object] = []
    for f in dataclasses.fields(LedgerEntry):
        value = getattr(entry, f.name)
        if f.name == "parameters":
            value = canonical_json(dict(value)).decode("utf-8")
        elif f.name == "windows":
            value = list(value)
        elif f.name == "outputs":
            value = [{"path": o.path, "sha256": o.sha256} for o in value]
        values.append(value)
    return values


def write_entries(ledger: Path, entries: Sequence[LedgerEntry]) -> None:
    """Replace every row of ``ledger_entries`` with ``entries`` (as a forger with the file)."""
    names = [f.name for f in dataclasses.fields(LedgerEntry)]
    sql = (
        f"INSERT INTO ledger_entries ({', '.join(names)}) "  # noqa: S608 - our column names
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    con = duckdb.connect(str(ledger))
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM ledger_entries")
        for entry in entries:
            con.execute(sql, _row(entry))
        con.execute("COMMIT")
    finally:
        con.close()


def execute(ledger: Path, sql: str, params: Sequence[object] = ()) -> None:
    """Run one statement on the ledger file directly."""
    con = duckdb.connect(str(ledger))
    try:
        con.execute(sql, list(params))
    finally:
        con.close()


def rehash(entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
    """``entries`` renumbered 1, 2, … with a recomputed, valid hash chain (a careful forger)."""
    chained: list[LedgerEntry] = []
    prev = "0" * 64
    for seq, entry in enumerate(entries, start=1):
        draft = dataclasses.replace(entry, seq=seq, prev_hash=prev, entry_hash="")
        final = dataclasses.replace(draft, entry_hash=compute_entry_hash(draft))
        chained.append(final)
        prev = final.entry_hash
    return chained
