"""Releases: priced before data, charged before publication, idempotent, atomic, self-describing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import polars as pl
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import aggregation.release.plan as release_plan
import aggregation.release.run as release_run
from aggregation.indicators import AggregateRequest, exact_aggregate
from aggregation.ledger import files_digest
from aggregation.release import explain, open_context, release
from aggregation.release.publish import sha256_file
from flows.cli import cli
from schemas.errors import BudgetExceededError, MobilityError
from schemas.indicators import Indicator
from schemas.release import METADATA_JSON_SCHEMA, ReleaseSpec
from tests.conftest import START

if TYPE_CHECKING:
    from aggregation.bounding import BoundingKey


def _od(**changes: Any) -> ReleaseSpec:
    return ReleaseSpec(**{"indicator": Indicator.OD_TRIPS, "start": START, "end": START, **changes})


def _spent(ws: Path) -> float:
    return sum(b.epsilon_spent for b in open_context(ws).ledger.window_budgets())


def test_explain_states_exact_scale_and_touches_nothing(workspace: Path) -> None:
    ctx = open_context(workspace, need_secret=False)
    doc = explain(ctx, _od(epsilon=1.0)).as_dict()
    # od_trips: at most L = 4 trips per subscriber-day, each adds 1 to one cell → L1 = 4;
    # ε = 1, of which the default totals_share 0.2 goes to the per-date totals: the cells'
    # discrete Laplace at ε = 0.8 → scale = L1 / 0.8 = 5; the totals (sensitivity L1 = 4, the
    # whole of one subscriber-day's trips) at ε = 0.2 → scale 4 / 0.2 = 20. Charged: 0.8 + 0.2.
    assert doc["sensitivity"] == {"l1": 4, "l2": 4.0, "linf": 4}
    assert doc["noise"]["scale"] == pytest.approx(5.0)
    assert doc["noise"]["epsilon"] == pytest.approx(1.0, rel=1e-12)
    assert doc["noise"]["epsilon"] <= 1.0
    # P(|Z| <= h) for the discrete Laplace with p = exp(-1/5): 1 - 2 p^(h+1) / (1 + p) >= 0.95
    assert doc["noise"]["ci_half_width"] == 15
    totals = doc["totals"]
    assert totals["share"] == 0.2
    assert totals["sensitivity"] == {"l1": 4, "l2": 4.0, "linf": 4}
    assert totals["scale"] == pytest.approx(20.0)
    assert totals["epsilon"] == pytest.approx(0.2)
    assert totals["cells_epsilon"] == pytest.approx(0.8)
    assert totals["ci95_half_width"] == 60  # the same formula with p = exp(-1/20)
    assert doc["windows_charged"] == [str(START)]
    assert doc["cells_total"] == 30 * 29
    assert doc["budget"] == [{"window": str(START), "spent": 0.0, "cap": 5.0, "left": 5.0}]
    assert not (workspace / "releases" / "od_trips").exists()
    assert open_context(workspace).ledger.entries() == []


def test_release_publishes_self_describing_files_paid_for_in_the_ledger(workspace: Path) -> None:
    ctx = open_context(workspace)
    out = release(ctx, _od(epsilon=1.0, k=5))
    meta = json.loads((out.directory / "metadata.json").read_text())
    jsonschema.validate(meta, METADATA_JSON_SCHEMA)
    assert not out.reused
    assert meta["cells_released"] + meta["cells_suppressed"] == meta["cells_total"] == 870
    data = pl.read_parquet(out.directory / "data.parquet")
    assert data.columns == ["date", "origin", "destination", "value", "ci95"]
    assert data.height == meta["cells_released"]
    assert (data["value"] >= 5).all()
    assert (data["ci95"] == meta["ci95_half_width"]).all()
    assert pl.read_csv(out.directory / "data.csv").height == data.height
    (entry,) = ctx.ledger.entries()
    assert entry.status == "published"
    assert entry.entry_id == meta["ledger_entry_id"]
    assert entry.epsilon == pytest.approx(1.0, rel=1e-12)  # cells 0.8 + totals 0.2
    assert entry.scale == pytest.approx(5.0)  # the cells': L1 = 4 at ε = 0.8
    # The input fingerprint is for auditors (the ledger), not analysts: relative paths and
    # content hashes of the staged files read, absent from metadata.json.
    assert "input_fingerprint" not in meta
    assert entry.inputs
    for staged in entry.inputs:
        assert staged.sha256 == sha256_file(workspace / "staged" / staged.path)
    assert entry.input_fingerprint == files_digest(entry.inputs)
    recorded = {Path(o.path).name: o.sha256 for o in entry.outputs}
    for name in ("data.parquet", "data.csv", "metadata.json"):
        assert recorded[name] == sha256_file(out.directory / name)


def test_same_question_returns_the_stored_release_without_new_noise(workspace: Path) -> None:
    first = release(open_context(workspace), _od())
    spent = _spent(workspace)
    again = release(open_context(workspace), _od())
    assert again.reused
    assert again.directory == first.directory
    assert again.data.equals(first.data)
    assert _spent(workspace) == spent
    other = release(open_context(workspace), _od(epsilon=0.5))
    assert other.directory != first.directory


def test_over_budget_is_refused_and_publishes_nothing(workspace: Path) -> None:
    release(open_context(workspace), _od(epsilon=4.5))
    spent = _spent(workspace)
    with pytest.raises(BudgetExceededError, match=r"2026-03-02.*cap") as refused:
        release(open_context(workspace), ReleaseSpec(Indicator.PRESENCE, START, START, epsilon=1))
    assert "left" in str(refused.value)
    assert not (workspace / "releases" / "presence").exists()
    assert _spent(workspace) == spent
    assert len(open_context(workspace).ledger.refusals()) == 1
    result = CliRunner().invoke(
        cli, ["release", "presence", "--date", str(START), "--epsilon", "1",
              "--workspace", str(workspace)],
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output


def test_a_failed_publication_leaves_no_charge_and_no_files(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(release_run, "write_aside", broken)
    with pytest.raises(OSError, match="disk full"):
        release(open_context(workspace), _od())
    assert _spent(workspace) == 0.0
    assert open_context(workspace).ledger.entries() == []
    assert not any((workspace / "releases").rglob("*.parquet"))


def test_opendp_adds_the_noise_at_the_declared_scale(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[tuple[list[int], list[int], float]] = []
    real = release_plan.plan_vector

    class Spy:
        def __init__(self, mechanism: Any) -> None:
            self.mechanism = mechanism
            self.spec = mechanism.spec

        def release(self, values: list[int]) -> list[int]:
            noisy = self.mechanism.release(values)  # the OpenDP measurement's invoke
            drawn.append((list(values), noisy, self.spec.scale))
            return noisy

    monkeypatch.setattr(release_plan, "plan_vector", lambda *a, **k: Spy(real(*a, **k)))
    ctx = open_context(workspace)
    out = release(ctx, _od())
    ((exact_in, noisy, scale),) = drawn
    assert scale == pytest.approx(5.0)  # L1 = 4 at the cells' ε = 0.8 (totals_share 0.2)
    exact = exact_aggregate(release_run.plan_release(ctx, _od()).aggregate,
                            ctx.require_bounding_key())  # fmt: skip
    assert exact_in == exact["count"].to_list()  # the exact bounded vector went into OpenDP
    noise = [b - a for a, b in zip(exact_in, noisy, strict=True)]
    assert sum(n != 0 for n in noise) > len(noise) / 2
    mean = sum(noise) / len(noise)
    std = (sum((n - mean) ** 2 for n in noise) / len(noise)) ** 0.5
    assert abs(mean) < 1.25  # 5.2 standard errors (7.06 / sqrt(870) = 0.24)
    assert 5.6 < std < 8.5  # discrete Laplace, scale 5: std ≈ 7.06 (870 draws)
    published = out.data.join(exact, on=["date", "origin", "destination"])
    by_key = dict(zip(exact.select("origin", "destination").rows(), noisy, strict=True))
    for origin, destination, value in published.select("origin", "destination", "value").rows():
        assert by_key[(origin, destination)] == value  # what was published is OpenDP's output


def test_mobility_distance_releases_each_value_column(workspace: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["release", "mobility_distance", "--date", "2026-03-04", "--workspace",
              str(workspace), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    docs = json.loads(result.output)["releases"]
    assert [d["value_column"] for d in docs] == ["distance_m", "subscribers"]
    assert sum(d["epsilon"] for d in docs) == pytest.approx(0.4)
    assert docs[0]["scope"]["home_period"] == "2026-02-26..2026-03-04"


def test_explain_and_release_cli(workspace: Path) -> None:
    runner = CliRunner()
    args = ["od_trips", "--date", str(START), "--workspace", str(workspace)]
    explained = runner.invoke(cli, ["explain", *args])
    assert explained.exit_code == 0, explained.output
    assert "scale 5" in explained.output
    assert "totals      : 20% of ε on the date totals" in explained.output
    released = runner.invoke(cli, ["release", *args])
    assert released.exit_code == 0, released.output
    assert "released" in released.output
    again = runner.invoke(cli, ["explain", *args, "--json"])
    assert json.loads(again.output)["explanations"][0]["already_released"]
    bad = runner.invoke(cli, ["release", *args, "--bound", "max_zones_per_day=3"])
    assert bad.exit_code == 2
    assert "does not use the bound" in bad.output


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOBILITY_SECRET", raising=False)


def test_release_without_the_secret_says_how_to_fix_it(workspace: Path, no_secret: None) -> None:
    result = CliRunner().invoke(
        cli, ["release", "od_trips", "--date", str(START), "--workspace", str(workspace)]
    )
    assert result.exit_code == 2
    assert "MOBILITY_SECRET" in result.output


def test_days_without_staged_data_are_refused_before_any_charge(workspace: Path) -> None:
    later = START.replace(day=20)
    with pytest.raises(MobilityError, match=r"No staged data for 2026-03-20.*nothing was charged"):
        release(open_context(workspace), _od(start=later, end=later))
    assert open_context(workspace).ledger.entries() == []


def test_gaussian_mechanism_is_explained_under_the_policy_delta(workspace: Path) -> None:
    doc = explain(open_context(workspace), _od(mechanism="discrete_gaussian")).as_dict()
    assert doc["noise"]["mechanism"] == "discrete_gaussian"
    assert 0 < doc["noise"]["delta"] <= 1e-6
    assert doc["noise"]["epsilon"] <= 1.0 + 1e-9


def test_private_key_sets_use_dp_partition_selection(workspace: Path) -> None:
    ctx = open_context(workspace)
    spec = _od(level="admin3", keys="private", k=5)
    doc = explain(ctx, spec).as_dict()
    # l0: one subscriber-day touches at most L = 4 OD keys; the threshold is at least k
    assert doc["noise"]["l0"] == 4
    assert doc["noise"]["threshold"] >= 5
    assert 0 < doc["noise"]["delta"] <= 1e-6
    out = release(ctx, spec)
    assert out.metadata.delta == doc["noise"]["delta"]
    assert (out.data["value"] >= doc["noise"]["threshold"]).all()
    exact = exact_aggregate(release_run.plan_release(ctx, spec).aggregate,
                            ctx.require_bounding_key())  # fmt: skip
    observed = exact.filter(pl.col("count") > 0).select("origin", "destination")
    released = out.data.select("origin", "destination")
    assert released.join(observed, on=["origin", "destination"], how="anti").height == 0


def _distance(value: str, **changes: Any) -> ReleaseSpec:
    return ReleaseSpec(Indicator.MOBILITY_DISTANCE, START, START, value=value, **changes)


def test_the_columns_of_one_aggregate_share_one_computation(workspace: Path) -> None:
    calls: list[str] = []

    def counted(request: AggregateRequest, key: BoundingKey) -> pl.DataFrame:
        calls.append(str(request.indicator))
        return exact_aggregate(request, key)

    ctx = open_context(workspace)
    first = release(ctx, _distance("distance_m"), aggregator=counted)
    second = release(ctx, _distance("subscribers"), aggregator=counted)
    assert not first.reused
    assert not second.reused
    assert calls == ["mobility_distance"]  # the second column used the first one's aggregate
    assert first.directory != second.directory  # two releases, two charges
    release(ctx, _od(), aggregator=counted)
    release(ctx, _od(epsilon=0.5), aggregator=counted)
    assert calls == ["mobility_distance", "od_trips", "od_trips"]  # one column: never kept
    # the same aggregate after the staged data changed is computed again
    release(ctx, _distance("distance_m", epsilon=0.3), aggregator=counted)
    day = next((workspace / "staged").glob(f"date={START.isoformat()}/shard=*/*.parquet"))
    pq.write_table(pq.read_table(day), day, compression="gzip")  # other bytes, re-staged
    release(ctx, _distance("subscribers", epsilon=0.3), aggregator=counted)
    assert calls[-2:] == ["mobility_distance", "mobility_distance"]
