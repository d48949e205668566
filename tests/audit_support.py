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
from aggregation.ledger import GENESIS_HASH, AgreementRecord, Ledger, LedgerEntry
from aggregation.ledger.chain import ChainRecord, own_hash, record_columns, record_kind, sealed
from aggregation.ledger.tables import INSERTS, row_of
from aggregation.release import open_context, release
from sample_data.synth import SynthConfig, generate
from schemas.budget_policy import BudgetPolicy
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
    _one_totals_share(ws / "mobility.toml")
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


def _one_totals_share(config: Path, share: float = 0.2) -> None:
    """The template's per-indicator totals shares replaced by one ``share`` for every indicator:
    the audit tests' figures (scales, costs) do not move with the template's defaults."""
    text = config.read_text()
    start, end = text.index("[privacy.totals_share]\n"), text.index("[schedule]\n")
    text = text[:start] + text[end:]
    config.write_text(text.replace("[privacy]\n", f"[privacy]\ntotals_share = {share}\n", 1))


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


def forge(
    ledger: Path,
    entries: Sequence[LedgerEntry],
    agreements: Sequence[AgreementRecord] | None = None,
) -> None:
    """Replace the ledger's charges (and their publications) with ``entries``, and its agreement
    records with ``agreements`` if given, then renumber and rehash every record into a valid
    chain, as a careful forger with the file would.

    Records keep their order by ``seq`` (give a forged entry a large ``seq`` to append it).
    """
    honest = Ledger(ledger, BudgetPolicy())
    items: list[tuple[int, ChainRecord]] = [(p.seq, p) for p in honest.policies()]
    items += [(a.seq, a) for a in (honest.agreements() if agreements is None else agreements)]
    items += [(r.seq, r) for r in honest.refusals()]
    for entry in entries:
        items.append((entry.seq, dataclasses.replace(entry, publication=None)))
        if entry.publication is not None:
            items.append((entry.publication.seq, entry.publication))
    items.sort(key=lambda item: item[0])
    rows: list[tuple[str, list[object]]] = []
    prev = GENESIS_HASH
    for seq, (_, record) in enumerate(items, start=1):
        forged = sealed(record, seq, prev)
        prev = own_hash(forged)
        rows.append((record_kind(forged), row_of(forged, record_columns(forged))))
    con = duckdb.connect(str(ledger))
    try:
        con.execute("BEGIN TRANSACTION")
        for statement in (
            "DELETE FROM ledger_entries",
            "DELETE FROM ledger_publications",
            "DELETE FROM ledger_refusals",
            "DELETE FROM ledger_policies",
            "DELETE FROM ledger_agreements",
        ):
            con.execute(statement)
        for kind, row in rows:
            con.execute(INSERTS[kind], row)
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
