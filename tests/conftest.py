"""Shared fixtures: the Prefect test harness, synthetic exports, and ingest-ready workspaces."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from sample_data.synth import SynthConfig, generate
from schemas.geography import ZONES
from schemas.workspace import init_workspace

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.live_api import LiveServer

PSEUDONYM_KEY = "test-secret-0123456789abcdef-not-for-production"
"""Pseudonymisation secret of the test workspaces (long enough to be accepted)."""
KEY_ENVIRON = {"MOBILITY_SECRET": PSEUDONYM_KEY}
START = dt.date(2026, 3, 2)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the session (about 10 s to start on a quiet host).

    Up to 120 s to start, as the commands allow: two test workers on a busy two-core host can
    take longer than Prefect's default 30 s.
    """
    from prefect.testing.utilities import prefect_test_harness  # noqa: PLC0415 - slow import

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _synthetic(root: Path, fmt: str) -> Path:
    out = root / f"export_{fmt}"
    config = SynthConfig(
        subscribers=1500, days=2, start=START, seed=7, error_rate=0.02, fmt=fmt, gps_share=0.2
    )
    generate(config, out)
    return out


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic export in CSV with 2 % injected errors (two days, CDR and GPS)."""
    return _synthetic(tmp_path_factory.mktemp("synth"), "csv")


@pytest.fixture(scope="session")
def synthetic_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of export in Parquet."""
    return _synthetic(tmp_path_factory.mktemp("synth"), "parquet")


@pytest.fixture
def make_workspace(tmp_path: Path) -> Callable[[Path], Path]:
    """A factory: a fresh workspace holding the reference files of a synthetic export."""
    counter = iter(range(1000))

    def make(export: Path) -> Path:
        ws = init_workspace(tmp_path / f"workspace{next(counter)}").root
        (ws / "reference").mkdir()
        for name in ("zones.parquet", "cells.csv"):
            shutil.copy(export / "reference" / name, ws / "reference" / name)
        return ws

    return make


@pytest.fixture
def key_environ() -> dict[str, str]:
    """An environment holding the test pseudonymisation secret."""
    return dict(KEY_ENVIRON)


def _square(x: float, y: float, size: float = 1.0) -> bytes:
    return shapely.to_wkb(shapely.box(x, y, x + size, y + size))


def tiny_zones() -> pa.Table:
    """Two admin1 zones, one admin2 each, two admin3 squares each, over lon 0-2, lat 0-2."""
    rows = [
        ("A1", "North", "admin1", None, shapely.to_wkb(shapely.box(0, 0, 2, 1))),
        ("A2", "South", "admin1", None, shapely.to_wkb(shapely.box(0, 1, 2, 2))),
        ("A101", "North-1", "admin2", "A1", shapely.to_wkb(shapely.box(0, 0, 2, 1))),
        ("A201", "South-1", "admin2", "A2", shapely.to_wkb(shapely.box(0, 1, 2, 2))),
        ("A10101", "NW", "admin3", "A101", _square(0, 0)),
        ("A10102", "NE", "admin3", "A101", _square(1, 0)),
        ("A20101", "SW", "admin3", "A201", _square(0, 1)),
        ("A20102", "SE", "admin3", "A201", _square(1, 1)),
    ]
    return pa.table(
        {
            "zone_id": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "level": [r[2] for r in rows],
            "parent_id": [r[3] for r in rows],
            "population": [1000] * len(rows),
            "area_km2": [100.0] * len(rows),
            "centroid_lat": [0.5] * len(rows),
            "centroid_lon": [0.5] * len(rows),
            "geometry_wkb": [r[4] for r in rows],
        },
        schema=ZONES.schema,
    )


TINY_CELLS_CSV = """\
cell_id,site_id,lat,lon,admin1,admin2,admin3,valid_from,valid_to
CELL1,S1,0.5,0.5,A1,A101,A10101,2020-01-01,
CELL2,S2,1.5,1.5,A2,A201,A20102,2020-01-01,
CELL_NEW,S3,0.5,1.5,A1,A101,A10102,2026-03-10,
CELL_OLD,S4,1.5,0.5,A2,A201,A20101,2019-01-01,2026-01-31
"""


@pytest.fixture
def tiny_workspace(tmp_path: Path) -> Path:
    """A workspace over a tiny hand-made geography (see :func:`tiny_zones`, ``TINY_CELLS_CSV``)."""
    ws = init_workspace(tmp_path / "tiny").root
    (ws / "reference").mkdir()
    pq.write_table(tiny_zones(), ws / "reference" / "zones.parquet")
    (ws / "reference" / "cells.csv").write_text(TINY_CELLS_CSV)
    return ws


@pytest.fixture(scope="session")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live API server over a small released workspace, shared by the whole session."""
    from tests.live_api import served, small_released_workspace  # noqa: PLC0415 - after START

    with served(small_released_workspace(tmp_path_factory.mktemp("live_api"))) as server:
        yield server


PRIVACY = """[privacy]
epsilon_per_window = 5.0
epsilon_rolling = 60.0
totals_share = 0.2

[privacy.epsilon]
event_counts = 0.5
presence = 0.5
od_trips = 1.0
od_connections = 0.5
home_away = 0.2
mobility_distance = 0.4
residents = 0.5
relocations = 0.5
"""
"""The budget policy of the release tests' workspaces."""


def workspace_with_policy(root: Path, export: Path, privacy: str = PRIVACY) -> Path:
    """A new workspace at ``root`` under ``privacy`` (its ``[privacy]`` section), with the
    reference geography of the synthetic ``export``."""
    ws = init_workspace(root).root
    text = (ws / "mobility.toml").read_text()
    start, end = text.index("[privacy]\n"), text.index("[schedule]\n")
    (ws / "mobility.toml").write_text(text[:start] + privacy + "\n" + text[end:])
    (ws / "reference").mkdir()
    for name in ("zones.parquet", "cells.csv"):
        shutil.copy(export / "reference" / name, ws / "reference" / name)
    return ws


def fresh_copy(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the workspace ``template`` for one test, with the test secret set."""
    ws = tmp_path / "ws"
    shutil.copytree(template, ws)
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    return ws


@pytest.fixture(scope="module")
def staged_template(staged_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ingested workspace (3 days, 2 500 subscribers), copied afresh for each test.

    This module's own copy of :func:`staged_master` (its export beside it, as ``../export``):
    what a module's tests do to it stays in the module."""
    base = tmp_path_factory.mktemp("release")
    shutil.copytree(staged_master.parent / "export", base / "export")
    shutil.copytree(staged_master, base / "template")
    return base / "template"


@pytest.fixture
def workspace(staged_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of :func:`staged_template`."""
    return fresh_copy(staged_template, tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def staged_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workspace :func:`staged_template` copies, generated and ingested once per test worker
    (the same seed and secret each time, so the same data; modules only ever get copies)."""
    from aggregation.ingest import ingest_files  # noqa: PLC0415 - only for the tests that use it

    base = tmp_path_factory.mktemp("release-master")
    export = base / "export"
    generate(SynthConfig(subscribers=2_500, days=3, start=START, seed=3), export)
    ws = workspace_with_policy(base / "template", export)
    report = ingest_files([export / "raw"], ws, environ=KEY_ENVIRON)
    assert report.ok
    return ws


@pytest.fixture(scope="session")
def released_master(staged_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ingested workspace with releases: od_trips and presence each day (presence of day 1
    twice, at ε 0.5 and 2), mobility_distance of day 1, residents of the three days; built once
    per test worker, copied by the ``released`` fixture of tests/test_export.py.

    k alone (reliability 0): 2 500 subscribers make few cells above the reliability bar, and
    these tests read released cells of given zones whatever the noise; the bar is tested in
    tests/test_utility.py."""
    from aggregation.release import open_context, release  # noqa: PLC0415 - tests that use it
    from schemas.indicators import Indicator  # noqa: PLC0415 - tests that use it
    from schemas.release import ReleaseSpec  # noqa: PLC0415 - tests that use it

    ws = tmp_path_factory.mktemp("released-master") / "ws"
    shutil.copytree(staged_master, ws)
    ctx = open_context(ws, environ=KEY_ENVIRON)
    day2, day3 = START + dt.timedelta(days=1), START + dt.timedelta(days=2)
    for day in (START, day2, day3):
        release(ctx, ReleaseSpec(Indicator.OD_TRIPS, day, day, reliability=0.0))
        release(ctx, ReleaseSpec(Indicator.PRESENCE, day, day, reliability=0.0))
    release(ctx, ReleaseSpec(Indicator.PRESENCE, START, START, epsilon=2.0, reliability=0.0))
    for value in ("distance_m", "subscribers"):
        spec = ReleaseSpec(Indicator.MOBILITY_DISTANCE, START, START, value=value, reliability=0.0)
        release(ctx, spec)
    release(ctx, ReleaseSpec(Indicator.RESIDENTS, START, day3, reliability=0.0))
    return ws


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection shared by a module's tests (extract, bounding, indicators,
    property tests)."""
    c = duckdb.connect()
    yield c
    c.close()


WEEK_DAYS = 7
"""The days of :func:`week_template`."""


@pytest.fixture(scope="module")
def week_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7-day synthetic country (900 subscribers), ingested under the test secret (the day-zone
    summaries' tests: tests/test_day_zones.py and tests/test_day_zones_life.py)."""
    from aggregation.ingest import ingest_files  # noqa: PLC0415 - only for the tests that use it

    base = tmp_path_factory.mktemp("week")
    export = base / "export"
    generate(SynthConfig(subscribers=900, days=WEEK_DAYS, start=START, seed=11), export)
    ws = workspace_with_policy(base / "template", export)
    assert ingest_files([export / "raw"], ws, environ=KEY_ENVIRON).ok
    return ws


@pytest.fixture
def week(week_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of :func:`week_template`, without the summaries other tests made in it."""
    from schemas.staged import DAY_ZONES_DIR  # noqa: PLC0415 - only for the tests that use it

    ws = fresh_copy(week_template, tmp_path, monkeypatch)
    shutil.rmtree(ws / "staged" / DAY_ZONES_DIR, ignore_errors=True)
    return ws
