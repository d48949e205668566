"""Day-zone summaries (issue 21), their life: made on first use and listed as release inputs
(fingerprint, ``audit verify``), removed when a drop touching their day-shard is committed, made
again when their staged files changed behind them (a crash between the two), never left
half-written, made once by concurrent first uses.

On the same 7-day synthetic country (the ``week_template`` fixture of tests/conftest.py) as
tests/test_day_zones.py, which checks that the summaries give the exact aggregates of the full
re-read; a file of its own so that the two halves can run on different test workers.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow.parquet as pq
import pytest

import aggregation.extract.day_zones as day_zones_module
import aggregation.ingest.commit as commit_module
import aggregation.release.plan as plan_module
from aggregation.audit.verify import verify_workspace
from aggregation.extract import StagedFiles, StagedSource
from aggregation.extract.day_zones import recorded_sources, remove_dead_parts, summary_path
from aggregation.indicators import exact_aggregate
from aggregation.ingest import ingest_files
from aggregation.release import open_context, plan_release, release
from aggregation.release.publish import sha256_file
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from schemas.staged import DAY_ZONES_DIR, STAGED_DAY_ZONES
from tests.conftest import KEY_ENVIRON, START
from tests.conftest import WEEK_DAYS as DAYS
from tests.test_day_zones import KEY, LAST, _make_current

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb


def test_a_release_makes_its_summaries_and_lists_them_as_inputs(week: Path) -> None:
    assert not (week / "staged" / DAY_ZONES_DIR).exists()
    ctx = open_context(week)
    spec = ReleaseSpec(Indicator.HOME_AWAY, LAST, LAST)
    plan = plan_release(ctx, spec)
    assert plan.aggregate.day_zones
    summaries = [f for f in plan.request.inputs if f.path.startswith(f"{DAY_ZONES_DIR}/")]
    events = [f for f in plan.request.inputs if f.path.startswith("date=")]
    assert {f.path.split("/")[1] for f in summaries} == {
        f"date={d}" for d in plan.aggregate.days_read()
    }
    assert {"/".join(f.path.split("/")[1:3]) for f in summaries} == {
        "/".join(f.path.split("/")[:2]) for f in events
    }  # one summary per day-shard with events
    assert len(plan.request.inputs) == len(summaries) + len(events)
    for f in summaries:
        path = week / "staged" / f.path
        assert f.sha256 == sha256_file(path)
        written = pq.read_table(path)
        assert written.schema.equals(STAGED_DAY_ZONES.schema)  # no raw id: the staged pseudonyms
        assert recorded_sources(path) is not None
    assert not release(ctx, spec).reused
    (entry,) = ctx.ledger.entries()
    assert entry.inputs == plan.request.inputs
    assert not verify_workspace(week).failures
    # The same question again: no summary is made again (they are current), same fingerprint.
    stamp = {f.path: (week / "staged" / f.path).stat().st_mtime_ns for f in summaries}
    again = plan_release(open_context(week), spec)
    assert again.request.input_fingerprint == plan.request.input_fingerprint
    assert stamp == {f.path: (week / "staged" / f.path).stat().st_mtime_ns for f in summaries}


def test_explain_and_gps_and_other_indicators_read_no_summary(week: Path) -> None:
    ctx = open_context(week)
    assert not plan_release(
        ctx, ReleaseSpec(Indicator.HOME_AWAY, LAST, LAST), fingerprint=False
    ).aggregate.day_zones
    od = plan_release(ctx, ReleaseSpec(Indicator.OD_TRIPS, LAST, LAST))
    assert not od.aggregate.day_zones
    assert not any(f.path.startswith(DAY_ZONES_DIR) for f in od.request.inputs)
    assert not (week / "staged" / DAY_ZONES_DIR).exists()


def _summary_files(ws: Path) -> set[str]:
    root = ws / "staged" / DAY_ZONES_DIR
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _half_drop(template: Path, tmp_path: Path) -> Path:
    """A corrected drop of the last day: its first half."""
    (raw,) = (template.parent / "export" / "raw").glob(f"cdr_{LAST.isoformat()}.*")
    fixed = tmp_path / "fixed" / raw.name
    fixed.parent.mkdir()
    if raw.suffix == ".csv":
        frame = pl.read_csv(raw, infer_schema=False)
        frame.head(frame.height // 2).write_csv(fixed)
    else:
        frame = pl.read_parquet(raw)
        frame.head(frame.height // 2).write_parquet(fixed)
    return fixed


def test_re_ingesting_a_day_removes_its_summaries_and_the_next_release_uses_the_new_data(
    week_template: Path, week: Path, tmp_path: Path
) -> None:
    ctx = open_context(week)
    spec = ReleaseSpec(Indicator.HOME_AWAY, LAST, LAST)
    before = plan_release(ctx, spec)
    old = exact_aggregate(before.aggregate, KEY)
    made = _summary_files(week)
    assert made
    fixed = _half_drop(week_template, tmp_path)
    assert ingest_files([fixed], week, environ=KEY_ENVIRON).ok
    left = _summary_files(week)
    assert not any(f.startswith(f"date={LAST.isoformat()}/") for f in left)  # removed with it
    assert left == {f for f in made if not f.startswith(f"date={LAST.isoformat()}/")}
    after = plan_release(open_context(week), spec)
    assert after.request.input_fingerprint != before.request.input_fingerprint
    assert _summary_files(week) == made  # made again, for the same day-shards
    full = exact_aggregate(replace(after.aggregate, day_zones=False), KEY)
    assert exact_aggregate(after.aggregate, KEY).equals(full)
    assert not old.equals(full)  # the new data, not the old summaries


def test_a_summary_older_than_its_staged_files_is_never_read(week: Path) -> None:
    """A crash between the events' commit and the summaries' (or a copy of old summaries put
    back): the summary names other files than those staged now, so it is made again."""
    ctx = open_context(week)
    spec = ReleaseSpec(Indicator.MOBILITY_DISTANCE, LAST, LAST, value="subscribers")
    plan_release(ctx, spec)
    staged = week / "staged"
    day_dir = staged / f"date={LAST.isoformat()}"
    shard_dir = min(day_dir.glob("shard=*"))
    files = sorted(shard_dir.glob("*.parquet"))
    events = files[0]
    summary = staged / DAY_ZONES_DIR / f"date={LAST.isoformat()}" / shard_dir.name / "day.parquet"
    old_summary = summary.read_bytes()
    table = pq.read_table(events)
    pq.write_table(table.slice(0, table.num_rows // 3), events)  # the events change …
    summary.write_bytes(old_summary)  # … and the old summary is still there
    plan = plan_release(open_context(week), spec)
    assert summary.read_bytes() != old_summary
    sources = recorded_sources(summary)
    assert sources == [[f.relative_to(staged).as_posix(), sha256_file(f)] for f in files]
    full = exact_aggregate(replace(plan.aggregate, day_zones=False), KEY)
    assert exact_aggregate(plan.aggregate, KEY).equals(full)


def test_a_failed_summary_write_leaves_nothing_behind(
    week: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(table: object, where: Path, **_: object) -> None:
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(day_zones_module.pq, "write_table", broken)
    spec = ReleaseSpec(Indicator.RESIDENTS, START, LAST)
    plan = plan_release(open_context(week), spec)
    # Nothing half-written is left, and the release reads the events instead (same aggregate).
    assert _summary_files(week) == set()
    assert not plan.aggregate.day_zones
    assert not any(f.path.startswith(DAY_ZONES_DIR) for f in plan.request.inputs)


def test_a_writer_killed_mid_write_leaves_a_part_file_the_next_writer_removes(week: Path) -> None:
    """SIGKILL skips the writer's clean-up: its ``.part`` stays until the summary is made again;
    a live writer's ``.part`` is left alone."""
    target = Path(_make_current(week, (LAST,))[0])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = target.with_name(f".{target.name}.{dead.pid}.1.part")
    killed.write_bytes(b"PAR1 half a file")
    live = target.with_name(f".{target.name}.{os.getpid()}.999.part")
    live.write_bytes(b"PAR1 being written")
    target.unlink()  # made again by the next release
    _make_current(week, (LAST,))
    assert not killed.exists()
    assert live.exists()
    assert remove_dead_parts(target) == []


def test_summaries_are_made_within_the_workspace_memory_limit_and_only_when_stale(
    week: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[int, Path]] = []
    real = plan_module.bounded_connection

    @contextmanager
    def recorded(limit: int, spill: Path) -> Iterator[duckdb.DuckDBPyConnection]:
        opened.append((limit, spill))
        with real(limit, spill) as con:
            yield con

    monkeypatch.setattr(plan_module, "bounded_connection", recorded)
    ctx = open_context(week)
    plan_release(ctx, ReleaseSpec(Indicator.HOME_AWAY, LAST, LAST))
    ((limit, spill),) = opened
    assert limit == ctx.workspace.config.aggregation.memory_limit_mb
    assert spill.parent == ctx.workspace.scratch
    assert not spill.exists()  # removed with what was spilled
    plan_release(ctx, ReleaseSpec(Indicator.MOBILITY_DISTANCE, LAST, LAST, value="distance_m"))
    assert len(opened) == 1  # nothing stale: no connection opened


def test_a_summary_missing_at_read_time_is_an_error_not_an_empty_read(week: Path) -> None:
    ctx = open_context(week)
    plan = plan_release(ctx, ReleaseSpec(Indicator.RESIDENTS, START, LAST))
    victim = summary_path(week / "staged", START, 0)
    if not victim.exists():
        victim = next((week / "staged" / DAY_ZONES_DIR).rglob("day.parquet"))
    victim.unlink()
    with pytest.raises(Exception, match="is missing"):
        exact_aggregate(plan.aggregate, KEY)


def test_only_home_based_cdr_requests_over_staged_directories_read_summaries(week: Path) -> None:
    ctx = open_context(week)
    od = plan_release(ctx, ReleaseSpec(Indicator.OD_TRIPS, LAST, LAST), fingerprint=False)
    with pytest.raises(Exception, match="Day-zone summaries serve home-based CDR"):
        replace(od.aggregate, day_zones=True)
    spec = ReleaseSpec(Indicator.MOBILITY_DISTANCE, LAST, LAST, value="subscribers")
    distance = plan_release(ctx, spec, fingerprint=False)
    with pytest.raises(Exception, match="Day-zone summaries serve home-based CDR"):
        replace(distance.aggregate, day_zones=True, feed="gps")
    gps = plan_release(ctx, replace(spec, source="gps"))
    assert not gps.aggregate.day_zones
    files = StagedFiles(tuple(StagedSource(week / "staged").files_for([LAST])))
    with pytest.raises(Exception, match="Day-zone summaries serve home-based CDR"):
        replace(distance.aggregate, day_zones=True, source=files)


def test_an_ingest_killed_inside_its_commit_leaves_no_summary_a_release_would_read(
    week_template: Path, week: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ReleaseSpec(Indicator.MOBILITY_DISTANCE, LAST, LAST, value="distance_m")
    plan_release(open_context(week), spec)  # every summary made
    fixed = _half_drop(week_template, tmp_path)

    def killed(*_: object) -> None:  # after the files moved, before the manifest
        raise SystemExit("killed")

    monkeypatch.setattr(commit_module, "write_json_atomic", killed)
    with pytest.raises(SystemExit, match="killed"):
        ingest_files([fixed], week, environ=KEY_ENVIRON)
    monkeypatch.undo()
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    assert not any(f.startswith(f"date={LAST.isoformat()}/") for f in _summary_files(week))
    plan = plan_release(open_context(week), spec)
    assert plan.aggregate.day_zones
    full = exact_aggregate(replace(plan.aggregate, day_zones=False), KEY)
    assert exact_aggregate(plan.aggregate, KEY).equals(full)
    assert not list((week / "staged").rglob("*.part"))


def test_two_releases_making_the_same_summaries_at_once_agree(week: Path) -> None:
    """Concurrent first uses (API requests) write the same summaries, each aside then renamed."""
    days = tuple(START + dt.timedelta(days=i) for i in range(DAYS))
    with ThreadPoolExecutor(max_workers=3) as pool:
        made = list(pool.map(lambda _: _make_current(week, days), range(3)))
    assert made[0] == made[1] == made[2]
    assert not list((week / "staged").rglob("*.part"))
    ctx = open_context(week)
    plan = plan_release(ctx, ReleaseSpec(Indicator.RESIDENTS, START, LAST, level="admin3"))
    assert plan.aggregate.day_zones
    full = exact_aggregate(replace(plan.aggregate, day_zones=False), KEY)
    assert exact_aggregate(plan.aggregate, KEY).equals(full)
