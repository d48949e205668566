"""Day-zone summaries (issue 21): home-based releases read per-subscriber-day summaries instead of
every event of their home period, with the same exact aggregates, never a stale summary.

Every home-based CDR indicator is computed both ways on a 7-day synthetic country (the full
re-read of today's queries, and the summaries) and must give the same frame, row for row, under
several home rules (night hours, ``min_nights``), levels, bounds, key strategies and bounding
secrets (the keyed tie-break); random hand-made events check the night rule at its edges in
tests/test_day_zones_edges.py. Then the summaries' life: made on first use, listed as release
inputs (fingerprint, ``audit verify``), removed when a drop touching their day-shard is committed,
made again when their staged files changed behind them (a crash between the two), never left
half-written.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow.parquet as pq
import pytest

import aggregation.extract.day_zones as day_zones_module
import aggregation.ingest.commit as commit_module
import aggregation.release.plan as plan_module
from aggregation.audit.verify import verify_workspace
from aggregation.bounding import BoundingKey
from aggregation.extract import (
    StagedFiles,
    StagedSource,
    current_day_zones,
    daily_distances_frame,
)
from aggregation.extract.day_zones import (
    NO_CENTROIDS,
    centroid_stamp,
    recorded_centroids,
    recorded_sources,
    remove_dead_parts,
    staged_day_distances,
    summary_path,
)
from aggregation.indicators import AggregateRequest, exact_aggregate
from aggregation.indicators.shards import sharded_aggregate
from aggregation.ingest import ingest_files
from aggregation.release import open_context, plan_release, release
from aggregation.release.digests import staged_digests
from aggregation.release.publish import sha256_file
from aggregation.sql import SqlPlan, sql
from sample_data.synth import SynthConfig, generate
from schemas.errors import InternalError
from schemas.indicators import ContributionBounds, HomeRule, Indicator, Period
from schemas.release import ReleaseSpec
from schemas.staged import DAY_ZONES_DIR, STAGED_DAY_ZONES
from tests.conftest import KEY_ENVIRON, START, fresh_copy, workspace_with_policy
from tests.indicators_helpers import DAY0, Ev, write_staged, zone_set

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb

    from aggregation.release.context import ReleaseContext

DAYS = 7
LAST = START + dt.timedelta(days=DAYS - 1)
KEY = BoundingKey(b"day-zones-test-secret-0123456789")
OTHER_KEY = BoundingKey(b"another-secret-for-the-tie-break")


@pytest.fixture(scope="module")
def week_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7-day synthetic country (900 subscribers), ingested under the test secret."""
    base = tmp_path_factory.mktemp("week")
    export = base / "export"
    generate(SynthConfig(subscribers=900, days=DAYS, start=START, seed=11), export)
    ws = workspace_with_policy(base / "template", export)
    assert ingest_files([export / "raw"], ws, environ=KEY_ENVIRON).ok
    return ws


@pytest.fixture
def week(week_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of :func:`week_template`, without the summaries other tests made in it."""
    ws = fresh_copy(week_template, tmp_path, monkeypatch)
    shutil.rmtree(ws / "staged" / DAY_ZONES_DIR, ignore_errors=True)
    return ws


def _request(ctx: ReleaseContext, spec: ReleaseSpec, rule: HomeRule) -> AggregateRequest:
    return replace(plan_release(ctx, spec, fingerprint=False).aggregate, home_rule=rule)


def _make_current(ws: Path, days: tuple[dt.date, ...]) -> list[str]:
    """Make the summaries of ``days`` current, with distances by the workspace's admin3
    centroids, as a release does."""
    staged, admin3 = ws / "staged", open_context(ws, environ=KEY_ENVIRON).zones("admin3")
    return current_day_zones(
        StagedSource(staged), days, partial(staged_digests, staged), distance_zones=admin3
    )


def _both_ways(request: AggregateRequest, key: BoundingKey) -> tuple[pl.DataFrame, pl.DataFrame]:
    assert not request.day_zones
    full = exact_aggregate(request, key)
    summarised = exact_aggregate(replace(request, day_zones=True), key)
    return full, summarised


SPECS = {
    "home_away admin2": ReleaseSpec(Indicator.HOME_AWAY, LAST, LAST),
    "home_away admin3 two days": ReleaseSpec(
        Indicator.HOME_AWAY, LAST - dt.timedelta(days=1), LAST, level="admin3"
    ),
    "home_away admin1 first day": ReleaseSpec(Indicator.HOME_AWAY, START, START, level="admin1"),
    "residents admin3 week": ReleaseSpec(Indicator.RESIDENTS, START, LAST, level="admin3"),
    "relocations admin2": ReleaseSpec(
        Indicator.RELOCATIONS, START + dt.timedelta(days=4), LAST,
        baseline_start=START, baseline_end=START + dt.timedelta(days=3),
    ),
    "mobility_distance distance_m": ReleaseSpec(
        Indicator.MOBILITY_DISTANCE, LAST, LAST, value="distance_m"
    ),
    "mobility_distance 5 km cap": ReleaseSpec(
        Indicator.MOBILITY_DISTANCE, LAST, LAST, level="admin1", value="distance_m",
        bounds=ContributionBounds(max_distance_km=5),
    ),
}  # fmt: skip

RULES = {
    "default": HomeRule(),
    "one night": HomeRule(min_nights=1),
    "two nights 22-5": HomeRule(night_start_hour=22, night_end_hour=5, min_nights=2),
    "long nights 18-10": HomeRule(night_start_hour=18, night_end_hour=10, min_nights=3),
    "five nights 23-1": HomeRule(night_start_hour=23, night_end_hour=1, min_nights=5),
}


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("name", sorted(SPECS))
def test_summaries_give_the_exact_aggregate_of_the_full_re_read(
    week_template: Path, name: str, rule: str
) -> None:
    ctx = open_context(week_template, environ=KEY_ENVIRON)
    request = _request(ctx, SPECS[name], RULES[rule])
    _make_current(week_template, request.days_read())
    full, summarised = _both_ways(request, KEY)
    assert summarised.equals(full)
    if rule in {"default", "one night"} and "first day" not in name:  # not a comparison of zeros
        assert full[full.columns[-1]].sum() > 0
    if rule == "one night":  # many ties, broken by the secret
        other_full, other_summarised = _both_ways(request, OTHER_KEY)
        assert other_summarised.equals(other_full)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_observed_keys_and_shard_batches_agree_too(week_template: Path, name: str) -> None:
    ctx = open_context(week_template, environ=KEY_ENVIRON)
    request = _request(ctx, SPECS[name], HomeRule(min_nights=2))
    _make_current(week_template, request.days_read())
    summarised = replace(request, day_zones=True)
    observed = exact_aggregate(request, KEY, keys="observed")
    assert exact_aggregate(summarised, KEY, keys="observed").equals(observed)
    batches = sharded_aggregate(summarised, KEY, batch_bytes=1)  # one query per shard, summed
    assert batches.equals(exact_aggregate(request, KEY))


def test_summaries_are_made_again_for_other_centroids_and_never_read_with_the_wrong_ones(
    tmp_path: Path,
) -> None:
    """A summary made without distances, or with other centroids, is made again when a release
    asks for these centroids; reading distances of other centroids is refused."""
    evs = [
        Ev("s1", 0, 8, 0, "NL010101"),
        Ev("s1", 0, 9, 0, "NL020102"),
        Ev("s2", 0, 8, 0, "NL010101"),
    ]
    write_staged(tmp_path, evs)
    source, zones, day = StagedSource(tmp_path), zone_set("admin3"), Period(DAY0, DAY0)
    digests = partial(staged_digests, tmp_path)
    paths = [Path(p) for p in current_day_zones(source, day.days(), digests)]  # no distances
    assert paths
    assert all(recorded_centroids(p) == NO_CENTROIDS for p in paths)
    assert all(
        pq.read_table(p)["distance_m"].null_count == pq.read_table(p).num_rows for p in paths
    )
    with pytest.raises(InternalError, match="no distances measured with the admin3 centroids"):
        staged_day_distances(SqlPlan(), "dist", source, day, zones)
    current_day_zones(source, day.days(), digests, distance_zones=zones)
    assert all(recorded_centroids(p) == centroid_stamp(zones) for p in paths)
    moved = replace(zones, centroids=tuple((lat + 0.5, lon) for lat, lon in zones.centroids or ()))
    assert centroid_stamp(moved) != centroid_stamp(zones)
    with pytest.raises(InternalError):
        staged_day_distances(SqlPlan(), "dist", source, day, moved)
    current_day_zones(source, day.days(), digests, distance_zones=moved)
    dist = staged_day_distances(SqlPlan(), "dist", source, day, moved)
    summarised = dist.to_polars(sql("SELECT * FROM dist ORDER BY pseudonym"))
    assert summarised.equals(daily_distances_frame(source, day, moved))
    assert summarised["distance_m"].to_list()[0] > 0  # s1 moved


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


@pytest.mark.slow
def test_audit_noise_recomputes_releases_made_with_and_before_summaries(
    week: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregation.audit import audit_noise  # noqa: PLC0415 - scipy is slow to import

    before_spec = ReleaseSpec(Indicator.HOME_AWAY, LAST, LAST, epsilon=1.0)
    with monkeypatch.context() as m:  # a release made before issue 21: events only
        m.setattr(
            plan_module, "with_day_zones", lambda _staged, aggregate, _zones=None: (aggregate, [])
        )
        before = release(open_context(week), before_spec)
    after = release(open_context(week), replace(before_spec, epsilon=0.5))
    ids = [e.entry_id for e in open_context(week).ledger.entries()]
    assert len(ids) == 2
    inputs = {e.entry_id: e.inputs for e in open_context(week).ledger.entries()}
    assert not any(
        f.path.startswith(DAY_ZONES_DIR) for f in inputs[before.metadata.ledger_entry_id]
    )
    assert any(f.path.startswith(DAY_ZONES_DIR) for f in inputs[after.metadata.ledger_entry_id])
    for entry_id in ids:
        audited = audit_noise(week, entry_id, alpha=1e-6, environ=KEY_ENVIRON)
        assert audited.notes == ()  # the same data: no "input fingerprint differs" note
        assert not audited.problems


def test_audit_noise_of_a_release_made_with_summaries_where_none_can_be_written(
    week: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An auditor's read-only copy cannot write summaries (the audit reads the events), and a
    newer format rewrites them: the same event files, so no note that the data changed."""
    from aggregation.audit import audit_noise  # noqa: PLC0415 - scipy is slow to import

    made = release(open_context(week), ReleaseSpec(Indicator.HOME_AWAY, LAST, LAST, epsilon=1.0))
    entry_id = made.metadata.ledger_entry_id
    with monkeypatch.context() as m:  # what with_day_zones does where it cannot write
        m.setattr(
            plan_module, "with_day_zones", lambda _staged, aggregate, _zones=None: (aggregate, [])
        )
        audited = audit_noise(week, entry_id, alpha=1e-6, environ=KEY_ENVIRON)
    assert audited.notes == ()
    assert not audited.problems
    for path in _make_current(week, (LAST,)):  # summaries rewritten (here: another writer)
        Path(path).unlink()
    staged = week / "staged"
    current_day_zones(StagedSource(staged), (LAST,), partial(staged_digests, staged))
    assert audit_noise(week, entry_id, alpha=1e-6, environ=KEY_ENVIRON).notes == ()
    victim = next(staged.glob(f"date={LAST.isoformat()}/shard=*/*.parquet"))
    victim.unlink()  # an event file gone: that is a difference
    (note,) = audit_noise(week, entry_id, alpha=1e-6, environ=KEY_ENVIRON).notes
    assert f"gone: {victim.relative_to(staged).as_posix()}" in note


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
