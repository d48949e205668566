"""Per-date totals released as DP values of their own (issue 19): the ε split, the charge, the
sensitivity of a total, the published margins, and what the audits rebuild."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

import aggregation.release.totals as totals_module
from aggregation.audit import verify_workspace
from aggregation.audit.costs import check_costs, recompute_cost
from aggregation.audit.rebuild import rebuild_spec
from aggregation.extract import StagedFiles
from aggregation.indicators import AggregateRequest, exact_aggregate, sensitivities
from aggregation.mechanisms import plan_vector
from aggregation.release import explain, open_context, plan_release, release
from aggregation.release.totals import (
    combine,
    combined_ci95,
    exact_totals,
    totals_group,
    totals_sensitivity,
)
from schemas.budget_policy import BudgetPolicy
from schemas.errors import ConfigurationError
from schemas.indicators import ContributionBounds, HomeRule, Indicator, Period, Scope
from schemas.privacy import DEFAULT_TOTALS_SHARE, DEFAULT_TOTALS_SHARES, PrivacyCost, Sensitivity
from schemas.release import ReleaseSpec
from schemas.workspace import init_workspace
from tests.conftest import START
from tests.indicators_helpers import (
    DAY0,
    KEY,
    SMALL_BOUNDS,
    Ev,
    unit_datasets,
    write_staged,
    zone_set,
)

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from schemas.geography import AdminLevel
    from schemas.privacy import AccountingWindow


def _od(**changes: Any) -> ReleaseSpec:
    return ReleaseSpec(Indicator.OD_TRIPS, START, START, epsilon=1.0, **changes)


# --- the split and the charge ---------------------------------------------------------------


@pytest.mark.parametrize(("share", "cells_scale", "totals_scale"), [
    (0.1, 4 / 0.9, 4 / 0.1), (0.2, 4 / 0.8, 4 / 0.2), (0.5, 4 / 0.5, 4 / 0.5),
])  # fmt: skip
def test_the_release_epsilon_is_split_and_charged_whole(
    workspace: Path, share: float, cells_scale: float, totals_scale: float
) -> None:
    # od_trips, L1 = 4 (trips of one subscriber-day); ε = 1: cells at (1 - share)·ε, totals at
    # share·ε with the sensitivity of one subscriber-day's whole contribution (4).
    plan = plan_release(open_context(workspace, need_secret=False), _od(totals_share=share),
                        fingerprint=False)  # fmt: skip
    assert plan.totals is not None
    assert plan.noise.scale == pytest.approx(cells_scale, rel=1e-12)
    assert plan.totals.noise.scale == pytest.approx(totals_scale, rel=1e-12)
    assert plan.totals.sensitivity == Sensitivity(l1=4, l2=4.0, linf=4)
    cells_eps = plan.mechanism.spec.cost.epsilon
    totals_eps = plan.totals.noise.cost.epsilon
    assert cells_eps == pytest.approx(1 - share, rel=1e-12)
    assert totals_eps == pytest.approx(share, rel=1e-12)
    # The ledger is charged the basic composition of both: exactly the release's ε, never more.
    assert plan.request.noise.cost.epsilon == cells_eps + totals_eps
    assert plan.request.noise.cost.epsilon == pytest.approx(1.0, rel=1e-12)
    assert plan.request.noise.cost.epsilon <= 1.0
    assert plan.request.noise.cost.rho == pytest.approx(((1 - share) ** 2 + share**2) / 2)
    assert plan.spec.parameters()["totals_share"] == share


def test_share_zero_is_the_release_before_dp_totals(workspace: Path) -> None:
    plan = plan_release(open_context(workspace, need_secret=False), _od(totals_share=0.0),
                        fingerprint=False)  # fmt: skip
    assert plan.totals is None
    assert plan.noise.scale == pytest.approx(4.0)  # L1 / ε, the whole ε on the cells
    assert plan.noise.cost.epsilon == pytest.approx(1.0)
    assert "totals_share" not in plan.spec.parameters()  # the release key of old releases


def test_a_workspace_made_before_the_setting_keeps_its_release_keys(workspace: Path) -> None:
    config = workspace / "mobility.toml"
    before = plan_release(open_context(workspace, need_secret=False), _od(totals_share=0.0),
                          fingerprint=False)  # fmt: skip
    assert "totals_share = 0.2\n" in config.read_text()
    config.write_text(config.read_text().replace("totals_share = 0.2\n", ""))
    ctx = open_context(workspace, need_secret=False)
    assert ctx.policy.totals_share == 0.0
    upgraded = plan_release(ctx, _od(), fingerprint=False)
    assert upgraded.totals is None
    assert upgraded.request.release_key == before.request.release_key  # no second charge


def test_the_default_share_is_the_policys_and_enters_the_release_key(workspace: Path) -> None:
    ctx = open_context(workspace, need_secret=False)
    default = plan_release(ctx, _od(), fingerprint=False)
    assert default.spec.totals_share == ctx.policy.totals_share == DEFAULT_TOTALS_SHARE == 0.2
    asked = plan_release(ctx, _od(totals_share=0.2), fingerprint=False)
    assert asked.request.release_key == default.request.release_key
    other = plan_release(ctx, _od(totals_share=0.1), fingerprint=False)
    assert other.request.release_key != default.request.release_key


def test_split_never_sums_above_the_release_epsilon() -> None:
    for epsilon in (0.1, 0.25, 0.3, 1 / 3, 0.7, 1.0, 2.9):
        for share in (0.05, 0.1, 0.2, 0.3, 0.35, 0.5):
            cells, totals = (c.epsilon for c in PrivacyCost(epsilon).split(share))
            assert cells + totals <= epsilon
            assert cells + totals == pytest.approx(epsilon, rel=1e-15)


def test_gaussian_and_private_key_sets_keep_the_summed_margins(workspace: Path) -> None:
    ctx = open_context(workspace, need_secret=False)
    gaussian = plan_release(ctx, _od(mechanism="discrete_gaussian"), fingerprint=False)
    assert gaussian.totals is None
    assert gaussian.spec.totals_share == 0.0
    private = plan_release(ctx, _od(keys="private"), fingerprint=False)
    assert private.totals is None
    with pytest.raises(ConfigurationError, match="discrete_gaussian releases keep the summed"):
        plan_release(ctx, _od(mechanism="discrete_gaussian", totals_share=0.2), fingerprint=False)
    with pytest.raises(ConfigurationError, match="private key sets have no totals"):
        plan_release(ctx, _od(keys="private", totals_share=0.2), fingerprint=False)


def test_totals_share_is_validated_everywhere() -> None:
    assert BudgetPolicy.from_mapping({"totals_share": 0.35}).totals_share == 0.35
    # a [privacy] section written before the setting keeps share 0 (its release keys) ...
    assert BudgetPolicy.from_mapping({}).as_dict()["totals_share"] == 0.0
    with pytest.raises(ConfigurationError, match=r"\[privacy\] totals_share must be a number"):
        BudgetPolicy.from_mapping({"totals_share": 0.9})
    with pytest.raises(ConfigurationError, match="totals_share: must be a number"):
        BudgetPolicy.from_mapping({"totals_share": "half"})
    with pytest.raises(ConfigurationError, match=r"totals_share must be a number from 0 to 0\.5"):
        ReleaseSpec(Indicator.OD_TRIPS, START, START, totals_share=-0.1)


INDICATORS = [i.value for i in Indicator]


def test_a_share_per_indicator_is_read_from_a_table() -> None:
    table = {"od_trips": 0.2, "od_connections": 0.35, "home_away": 0}
    policy = BudgetPolicy.from_mapping({"totals_share": table}, indicators=INDICATORS)
    assert policy.totals_share_for("od_trips") == 0.2
    assert policy.totals_share_for("od_connections") == 0.35
    assert policy.totals_share_for("home_away") == 0.0
    assert policy.totals_share_for("presence") == 0.0  # not named: no DP totals
    # the ledger records the policy as its mapping and reads it back to the same policy
    assert policy.as_dict()["totals_share"] == {**table, "home_away": 0.0}
    assert BudgetPolicy.from_mapping(policy.as_dict()) == policy
    # the one-number form still gives every indicator the same share
    scalar = BudgetPolicy.from_mapping({"totals_share": 0.3})
    assert scalar.totals_share_for("presence") == scalar.totals_share_for("od_trips") == 0.3
    assert scalar.as_dict()["totals_share"] == 0.3
    assert scalar != policy


@pytest.mark.parametrize(("table", "message"), [
    ({"od_connections": 0.9}, r"x\.toml: \[privacy\] totals_share\.od_connections: .*0 to 0\.5"),
    ({"od_trips": "half"}, r"x\.toml: \[privacy\] totals_share\.od_trips: .*from 0 to 0\.5"),
    ({"od_tripz": 0.2}, r"x\.toml: \[privacy\] totals_share\.od_tripz: unknown indicator"),
])  # fmt: skip
def test_a_share_table_is_validated_naming_file_key_and_range(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BudgetPolicy.from_mapping({"totals_share": table}, indicators=INDICATORS, source="x.toml")


def test_a_share_is_one_number_or_a_table_never_both() -> None:
    with pytest.raises(ValueError, match="either one number for every indicator or a table"):
        BudgetPolicy(totals_share=0.2, totals_shares={"od_trips": 0.2})


def test_a_per_indicator_default_share_enters_only_that_indicators_release_key(
    workspace: Path,
) -> None:
    ctx = open_context(workspace, need_secret=False)
    connections = ReleaseSpec(Indicator.OD_CONNECTIONS, START, START)
    before = {
        name: plan_release(ctx, spec, fingerprint=False).request.release_key
        for name, spec in (("od_trips", _od()), ("od_connections", connections))
    }
    config = workspace / "mobility.toml"
    table = "[privacy.totals_share]\nod_trips = 0.2\nod_connections = 0.35\n\n"
    text = config.read_text().replace("totals_share = 0.2\n", "")
    config.write_text(text.replace("[privacy.epsilon]\n", table + "[privacy.epsilon]\n"))
    ctx = open_context(workspace, need_secret=False)
    trips = plan_release(ctx, _od(), fingerprint=False)
    assert trips.request.release_key == before["od_trips"]  # same share, same question
    plan = plan_release(ctx, connections, fingerprint=False)
    assert plan.spec.totals_share == 0.35
    assert plan.totals is not None
    assert plan.totals.noise.cost.epsilon == pytest.approx(0.35 * 0.5, rel=1e-12)
    assert plan.request.release_key != before["od_connections"]
    asked = plan_release(ctx, replace(connections, totals_share=0.35), fingerprint=False)
    assert asked.request.release_key == plan.request.release_key  # every door, one key
    presence = plan_release(ctx, ReleaseSpec(Indicator.PRESENCE, START, START), fingerprint=False)
    assert presence.totals is None  # not in the table: share 0


def test_new_workspaces_get_the_template_share_of_each_indicator(tmp_path: Path) -> None:
    policy = open_context(init_workspace(tmp_path / "ws").root, need_secret=False).policy
    assert dict(policy.totals_shares) == DEFAULT_TOTALS_SHARES
    assert set(DEFAULT_TOTALS_SHARES) == set(INDICATORS)


def test_a_totals_share_too_small_for_its_epsilon_is_refused(workspace: Path) -> None:
    ctx = open_context(workspace, need_secret=False)
    with pytest.raises(ConfigurationError, match=r"totals_share=0\.01 of its ε on its totals"):
        plan_release(ctx, replace(_od(totals_share=0.01), epsilon=0.05), fingerprint=False)


def test_explain_states_the_split(workspace: Path) -> None:
    doc = explain(open_context(workspace, need_secret=False), _od()).as_dict()
    totals = doc["totals"]
    assert totals["share"] == 0.2
    assert totals["margin"] == "date"
    assert totals["epsilon"] + totals["cells_epsilon"] == doc["noise"]["epsilon"]
    assert totals["scale"] == pytest.approx(20.0)


# --- the published totals -------------------------------------------------------------------


def test_combine_is_the_inverse_variance_mean() -> None:
    value, weight = combine(1000, 100.0, 1300, 300.0)
    assert value == 1075  # weights 3/4 and 1/4
    assert weight == pytest.approx(0.75)
    assert combine(5, 1.0, 5, 1e9)[0] == 5
    # Half-widths: the exact one of the DP total where it carries all the weight, the root of
    # the sum of squares of the weighted ones otherwise (weights 3/4, 1/4: 45 and 15 → 47.4).
    assert combined_ci95(1.0, 60, 400) == 60
    assert combined_ci95(0.0, 60, 400) == 400
    assert combined_ci95(0.75, 60, 60) == math.ceil(math.hypot(45, 15))


def test_release_publishes_dp_totals_combined_with_the_cells(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[tuple[list[int], float]] = []
    real = plan_vector

    def spy(*args: Any, **kwargs: Any) -> Any:
        measurement = real(*args, **kwargs)

        class Spy:
            spec = measurement.spec

            def release(self, values: list[int]) -> list[int]:
                drawn.append((list(values), measurement.spec.scale))
                return measurement.release(values)

        return Spy()

    monkeypatch.setattr(totals_module, "plan_vector", spy)
    ctx = open_context(workspace)
    spec = ReleaseSpec(Indicator.OD_TRIPS, START, START + timedelta(days=1), epsilon=1.0)
    out = release(ctx, spec)
    plan = plan_release(ctx, spec)
    exact = exact_aggregate(plan.aggregate, ctx.require_bounding_key())
    ((totals_in, scale),) = drawn
    # The exact per-date totals of every cell went into the totals' OpenDP measurement.
    assert totals_in == exact_totals(exact, ("date",), "count")["value"].to_list()
    assert len(totals_in) == 2
    assert scale == pytest.approx(20.0)
    meta = out.metadata
    assert meta.totals is not None
    assert meta.margins is not None
    assert meta.totals.share == 0.2
    assert meta.totals.scale == pytest.approx(20.0)
    assert meta.epsilon == pytest.approx(1.0, rel=1e-12)
    assert meta.scale == pytest.approx(5.0)
    assert meta.margins.dp_totals is not None
    margins = pl.read_parquet(out.directory / "margins.parquet")
    days = margins.filter(pl.col("margin") == "date").sort("date")
    cell_var = plan.mechanism.spec.std_dev**2
    dp_var = plan.totals.noise.std_dev**2 if plan.totals is not None else math.nan
    for row in days.iter_rows(named=True):
        value, weight = combine(row["total_dp"], dp_var, row["cells_sum"],
                                row["cells"] * cell_var)  # fmt: skip
        assert row["value"] == value
        summed = math.ceil(1.959963984540054 * math.sqrt(row["cells"] * cell_var))
        assert row["ci95"] == combined_ci95(weight, 60, summed)  # 60: scale 20's exact ci95
        assert row["ci95"] <= min(60, summed)
    for margin in ("date×origin", "date×destination"):  # zone margins stay sums of cells
        rows = margins.filter(pl.col("margin") == margin)
        zone = rows.group_by("date").agg(pl.col("value").sum())
        assert dict(zone.rows()) == dict(days.select("date", "cells_sum").rows())
        assert rows["total_dp"].is_null().all()


def test_residents_have_one_national_dp_total(workspace: Path) -> None:
    assert totals_group(Indicator.RESIDENTS) == []
    assert totals_group(Indicator.OD_TRIPS) == ["date"]
    out = release(open_context(workspace), ReleaseSpec(Indicator.RESIDENTS, START, START))
    margins = pl.read_parquet(out.directory / "margins.parquet")
    national = margins.filter(pl.col("margin") == "national")
    assert national.height == 1
    assert national["total_dp"].item() is not None
    assert out.metadata.totals is not None
    assert out.metadata.totals.margin == "national"


# --- audits ---------------------------------------------------------------------------------


def test_audits_recompute_the_composed_charge(workspace: Path) -> None:
    ctx = open_context(workspace)
    release(ctx, _od())
    release(ctx, _od(totals_share=0.0, k=11))
    entries = ctx.ledger.entries()
    assert check_costs(entries) == []
    with_totals = next(e for e in entries if e.parameters.get("totals_share"))
    assert recompute_cost(with_totals).epsilon == pytest.approx(1.0, rel=1e-12)
    assert rebuild_spec(with_totals).totals_share == 0.2
    without = next(e for e in entries if not e.parameters.get("totals_share"))
    assert rebuild_spec(without).totals_share == 0.0
    # An entry that charged only the cells' part of the release is under-charged.
    findings = check_costs([replace(with_totals, epsilon=0.8)])
    assert [f.severity for f in findings if "under-charged" in f.message] == ["fail"]
    report = verify_workspace(workspace)
    assert report.passed, report


# --- sensitivity: one subscriber-day moves each total by at most the declared bound -----------

HOURS = [0, 8, 12, 21, 23]
DAYS = 3
ALL = Period(DAY0, DAY0 + timedelta(days=DAYS - 1))
datasets = unit_datasets(hours=HOURS, subscribers=3, days=DAYS, max_events=8, max_units=8)


def _scope(indicator: Indicator) -> Scope:
    if indicator is Indicator.RESIDENTS:
        return Scope(home_period=ALL)
    if indicator is Indicator.RELOCATIONS:
        later = Period(DAY0 + timedelta(days=1), ALL.end)
        return Scope(previous_home_period=Period.day(DAY0), home_period=later)
    if indicator in (Indicator.HOME_AWAY, Indicator.MOBILITY_DISTANCE):
        return Scope(days=ALL, home_period=ALL)
    return Scope(days=ALL)


@pytest.mark.slow  # ~15 s on 2 idle cores: 25 examples × 24 DuckDB queries
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=datasets,
    bounds=SMALL_BOUNDS,
    level=st.sampled_from(["admin3", "admin2"]),
    pick=st.integers(0, 1000),
)
def test_one_subscriber_day_or_week_moves_every_total_within_its_declared_sensitivity(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    data: dict[tuple[str, int], list[tuple[int, int, str]]],
    bounds: ContributionBounds,
    level: AdminLevel,
    pick: int,
) -> None:
    events = [Ev(who, day, h, m, z) for (who, day), evs in data.items() for h, m, z in evs]
    units = write_staged(tmp_path_factory.mktemp("staged"), events)
    everyone = sorted({f for files in units.values() for f in files})
    who, day = sorted(units)[pick % len(units)]
    without_day = [f for f in everyone if f not in units[who, day]]
    week = {f for (w, _), files in units.items() if w == who for f in files}
    without_week = [f for f in everyone if f not in week]  # the 3 days lie in one week
    zones, fine = zone_set(level), zone_set("admin3")
    for indicator in Indicator:

        def request(files: list[str], indicator: Indicator = indicator) -> AggregateRequest:
            return AggregateRequest(
                indicator, StagedFiles(tuple(files)), zones, _scope(indicator), bounds,
                HomeRule(min_nights=1),
                distance_zones=fine if indicator is Indicator.MOBILITY_DISTANCE else None,
            )  # fmt: skip

        group = tuple(totals_group(indicator))
        before = exact_aggregate(request(everyone), KEY, con=con)
        neighbours: list[tuple[list[str], AccountingWindow]] = [
            (without_day, "day"),
            (without_week, "week"),
        ]
        for files, window in neighbours:
            after = exact_aggregate(request(files), KEY, con=con)
            for column, cells in sensitivities(request(everyone), window).items():
                declared = totals_sensitivity(cells)
                t0 = exact_totals(before, group, column)
                t1 = exact_totals(after, group, column)
                assert t0.height == t1.height  # the dates are public: one total each
                diff = (t0["value"] - t1["value"]).abs().to_list()
                l1, linf = sum(diff), max(diff, default=0)
                l2 = math.sqrt(sum(d * d for d in diff))
                where = (
                    f"{indicator}.{column}, one subscriber-{window} removed: totals moved "
                    f"l1={l1} l2={l2:.3f}, declared {declared}"
                )
                assert l1 <= declared.l1, where
                assert linf <= declared.linf, where
                assert l2 <= declared.l2 + 1e-9, where
                target(l1 / declared.l1, label=f"{indicator}.{column} {window} total l1")
