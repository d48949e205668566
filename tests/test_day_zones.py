"""Day-zone summaries (issue 21): home-based releases read per-subscriber-day summaries instead of
every event of their home period, with the same exact aggregates, never a stale summary.

Every home-based CDR indicator is computed both ways on a 7-day synthetic country (the full
re-read of today's queries, and the summaries) and must give the same frame, row for row, under
several home rules (night hours, ``min_nights``), levels, bounds, key strategies and bounding
secrets (the keyed tie-break); random hand-made events check the night rule at its edges in
tests/test_day_zones_edges.py. The quick loop (``-m "not slow"``) compares one home rule per
indicator (every rule at least once) and two indicators' observed keys and shard batches; the
whole grid is marked ``slow`` and run in CI. The summaries' life (made on first use, listed as
release inputs, removed and made again, never half-written) is in tests/test_day_zones_life.py,
on the same country (the ``week_template`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest

import aggregation.release.plan as plan_module
from aggregation.bounding import BoundingKey
from aggregation.extract import (
    StagedSource,
    current_day_zones,
    daily_distances_frame,
)
from aggregation.extract.day_zones import (
    NO_CENTROIDS,
    centroid_stamp,
    recorded_centroids,
    staged_day_distances,
)
from aggregation.indicators import AggregateRequest, exact_aggregate
from aggregation.indicators.shards import sharded_aggregate
from aggregation.release import open_context, plan_release, release
from aggregation.release.digests import staged_digests
from aggregation.sql import SqlPlan, sql
from schemas.errors import InternalError
from schemas.indicators import ContributionBounds, HomeRule, Indicator, Period
from schemas.release import ReleaseSpec
from schemas.staged import DAY_ZONES_DIR
from tests.conftest import KEY_ENVIRON, START
from tests.conftest import WEEK_DAYS as DAYS
from tests.indicators_helpers import DAY0, Ev, write_staged, zone_set

if TYPE_CHECKING:
    import polars as pl

    from aggregation.release.context import ReleaseContext

LAST = START + dt.timedelta(days=DAYS - 1)
KEY = BoundingKey(b"day-zones-test-secret-0123456789")
OTHER_KEY = BoundingKey(b"another-secret-for-the-tie-break")


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


QUICK = {
    ("home_away admin1 first day", "default"),
    ("home_away admin2", "one night"),
    ("home_away admin3 two days", "two nights 22-5"),
    ("mobility_distance 5 km cap", "one night"),
    ("mobility_distance distance_m", "default"),
    ("relocations admin2", "long nights 18-10"),
    ("residents admin3 week", "five nights 23-1"),
}
"""The (indicator, rule) pairs of the quick loop: each indicator once, each rule at least once;
the other pairs of the grid are ``slow`` (CI)."""
QUICK_OBSERVED = {"home_away admin2", "residents admin3 week"}


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        pytest.param(name, rule, marks=() if (name, rule) in QUICK else pytest.mark.slow)
        for name in sorted(SPECS)
        for rule in sorted(RULES)
    ],
)
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


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=() if name in QUICK_OBSERVED else pytest.mark.slow)
        for name in sorted(SPECS)
    ],
)
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
