"""Approval test: what every release would compute, against a committed snapshot.

On a small synthetic country (fixed seed, fixed pseudonymisation secret), every indicator at
several levels and settings is planned and its exact bounded aggregate computed. The plan (the
resolved question and its release key, windows, bounds, sensitivity, mechanism, scale, ε, δ, ρ,
threshold, cells) and a digest of the exact aggregate (rows, sums, SHA-256 of the sorted table)
must equal ``tests/approved/release_plans.json``. Noise is not seeded, so it is not compared.

A refactoring must leave this file unchanged; a deliberate change of what is computed rewrites
it (``MOBILITY_APPROVE=1 pytest tests/test_approved_plans.py``) and shows in the diff for review.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aggregation.indicators import exact_aggregate
from aggregation.ingest import ingest_files
from aggregation.release import open_context, plan_release
from sample_data.synth import SynthConfig, generate
from schemas.indicators import ContributionBounds, Indicator
from schemas.release import ReleaseSpec
from tests.conftest import KEY_ENVIRON, START, workspace_with_policy

if TYPE_CHECKING:
    import polars as pl

    from aggregation.release.plan import ReleasePlan

APPROVED = Path(__file__).parent / "approved" / "release_plans.json"
DAY2, DAY3 = START + dt.timedelta(days=1), START + dt.timedelta(days=2)

SPECS = {
    "event_counts admin2": ReleaseSpec(Indicator.EVENT_COUNTS, START, START),
    "event_counts admin1 eps0.5": ReleaseSpec(
        Indicator.EVENT_COUNTS, DAY2, DAY2, level="admin1", epsilon=0.5
    ),
    "presence admin3 two days": ReleaseSpec(Indicator.PRESENCE, START, DAY2, level="admin3"),
    "presence admin2 z=1": ReleaseSpec(
        Indicator.PRESENCE, DAY3, DAY3, bounds=ContributionBounds(max_zones_per_day=1)
    ),
    "od_trips admin2": ReleaseSpec(Indicator.OD_TRIPS, START, START),
    "od_trips admin3 private keys": ReleaseSpec(
        Indicator.OD_TRIPS, DAY2, DAY2, level="admin3", keys="private"
    ),
    "od_trips admin1 gaussian": ReleaseSpec(
        Indicator.OD_TRIPS, DAY3, DAY3, level="admin1", mechanism="discrete_gaussian"
    ),
    "od_connections admin2": ReleaseSpec(Indicator.OD_CONNECTIONS, DAY2, DAY2),
    "home_away admin2": ReleaseSpec(Indicator.HOME_AWAY, DAY3, DAY3),
    "mobility_distance distance_m": ReleaseSpec(
        Indicator.MOBILITY_DISTANCE, DAY3, DAY3, value="distance_m"
    ),
    "mobility_distance subscribers": ReleaseSpec(
        Indicator.MOBILITY_DISTANCE, DAY3, DAY3, value="subscribers"
    ),
    "residents admin1": ReleaseSpec(Indicator.RESIDENTS, START, DAY3, level="admin1"),
    "relocations admin1": ReleaseSpec(
        Indicator.RELOCATIONS, DAY3, DAY3, level="admin1", baseline_start=START,
        baseline_end=START,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of a small synthetic country, ingested under the test secret."""
    base = tmp_path_factory.mktemp("approved")
    export = base / "export"
    generate(SynthConfig(subscribers=1_200, days=3, start=START, seed=21), export)
    ws = workspace_with_policy(base / "ws", export)
    assert ingest_files([export / "raw"], ws, environ=KEY_ENVIRON).ok
    return ws


def _plain(value: Any) -> Any:
    """``value`` as JSON: dataclasses as dicts, enums and dates as strings (floats are written
    by ``repr``, which reads back to the same float)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [_plain(v) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, frozenset | set) else items
    if value is None or isinstance(value, bool | int | float | str):  # JSON floats round-trip
        return value
    return str(value)


def _plan(plan: ReleasePlan) -> dict[str, Any]:
    request = plan.request
    return {
        "parameters": _plain(request.parameters),
        "windows": _plain(request.windows),
        "privacy_unit": request.privacy_unit,
        "k_threshold": request.k_threshold,
        "noise": _plain(plan.noise),
        "epsilon": _plain(plan.epsilon),
        "delta": _plain(plan.delta),
        "sensitivity": _plain(plan.sensitivity),
        "cells_total": plan.cells_total,
    }


def _aggregate(frame: pl.DataFrame) -> dict[str, Any]:
    ordered = frame.sort(frame.columns)
    return {
        "columns": ordered.columns,
        "rows": ordered.height,
        "sums": {
            c: int(ordered[c].sum()) for c in ordered.columns if ordered[c].dtype.is_integer()
        },
        "sha256": hashlib.sha256(ordered.write_csv().encode()).hexdigest(),
    }


def _snapshot(ws: Path) -> dict[str, Any]:
    ctx = open_context(ws, environ=KEY_ENVIRON)
    key = ctx.require_bounding_key()
    out = {}
    for name, spec in SPECS.items():
        plan = plan_release(ctx, spec, fingerprint=False)
        out[name] = {
            "plan": _plan(plan),
            "exact": _aggregate(exact_aggregate(plan.aggregate, key)),
        }
    return out


def test_every_plan_and_exact_aggregate_is_the_approved_one(staged: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(staged, ws)
    found = _snapshot(ws)
    if os.environ.get("MOBILITY_APPROVE") == "1":
        APPROVED.parent.mkdir(exist_ok=True)
        APPROVED.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    approved = json.loads(APPROVED.read_text())
    assert sorted(found) == sorted(approved)
    for name in SPECS:
        assert found[name] == approved[name], name
    # The snapshot can fail: every exact aggregate is non-trivial, and they differ but for the
    # two columns of mobility_distance, released from one aggregate.
    assert all(v["exact"]["rows"] > 0 for v in found.values())
    assert len({v["exact"]["sha256"] for v in found.values()}) == len(found) - 1


def test_releases_reading_day_zone_summaries_compute_the_approved_aggregates(
    staged: Path, tmp_path: Path
) -> None:
    """Home-based releases read day-zone summaries when planned to run (issue 21): their exact
    aggregates are still the approved ones."""
    ws = tmp_path / "ws"
    shutil.copytree(staged, ws)
    approved = json.loads(APPROVED.read_text())
    ctx = open_context(ws, environ=KEY_ENVIRON)
    key = ctx.require_bounding_key()
    summarised = 0
    for name, spec in SPECS.items():
        plan = plan_release(ctx, spec)  # with its inputs: the summaries are made here
        summarised += plan.aggregate.day_zones
        assert _aggregate(exact_aggregate(plan.aggregate, key)) == approved[name]["exact"], name
    assert summarised == 5  # home_away, residents, relocations and mobility_distance × 2
