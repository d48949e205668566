"""Released numbers worth using (issue 19): the reliability bar, unbiased margins, consistent
levels and the mean distance, all post-processing of noisy values (no budget, no fresh noise)."""

from __future__ import annotations

import itertools
import json
import math
from datetime import timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest

import aggregation.release.run as release_run
from aggregation.audit import verify_workspace
from aggregation.export.catalog import ReleaseCatalog
from aggregation.export.estimates import (
    _ratio,
    consistent_levels,
    mean_distance,
    mean_distance_series,
)
from aggregation.export.series import daily_series, noise_variance, release_margins
from aggregation.mechanisms import noise_std
from aggregation.release import explain, open_context, plan_release, release
from aggregation.release.consistency import NoisyLevel, consistent, least_squares
from aggregation.release.margins import margin_groups, noisy_margins
from aggregation.release.publish import sha256_file
from aggregation.release.suppress import (
    publication_threshold,
    suppress_below,
    suppress_unreliable,
)
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator, Period
from schemas.indicators import spec as indicator_spec
from schemas.privacy import NoiseSpec, PrivacyCost, Sensitivity
from schemas.release import ReleaseSpec
from tests.conftest import START

if TYPE_CHECKING:
    from pathlib import Path

    from schemas.geography import AdminLevel


# --- the publication rule ----------------------------------------------------------------------


def test_publication_threshold_is_k_or_reliability_times_ci95() -> None:
    assert publication_threshold(10, 2.0, 60) == 120
    assert publication_threshold(10, 2.0, 3) == 10  # k binds
    assert publication_threshold(10, 0.0, 60) == 10  # bar off: k alone
    assert publication_threshold(0, 1.5, 7) == 11  # ⌈10.5⌉: values are integers


def test_suppress_unreliable_keeps_exactly_the_rows_clearing_the_bar() -> None:
    noisy = pl.DataFrame({"zone": list("abcdef"), "value": [-3, 9, 10, 23, 24, 500]})
    kept, suppressed = suppress_unreliable(noisy, 10, 2.0, 12)
    assert kept["zone"].to_list() == ["e", "f"]
    assert suppressed == 4
    kept, suppressed = suppress_unreliable(noisy, 10, 0.0, 12)
    assert kept["zone"].to_list() == ["c", "d", "e", "f"]
    assert suppressed == 2


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan, 101.0, True])
def test_reliability_out_of_range_is_refused(bad: float) -> None:
    with pytest.raises(ConfigurationError, match="reliability"):
        ReleaseSpec(Indicator.OD_TRIPS, START, START, reliability=bad)


def test_reliability_zero_keeps_the_release_key_of_a_k_only_release() -> None:
    """A release made before the bar existed (k alone) is the question asked with reliability 0:
    its parameters, hence its release key, are unchanged."""
    params = ReleaseSpec(Indicator.OD_TRIPS, START, START, reliability=0.0).parameters()
    assert "reliability" not in params
    assert ReleaseSpec(Indicator.OD_TRIPS, START, START).parameters()["reliability"] == 2.0


def test_release_publishes_only_reliable_rows_and_says_so(workspace: Path) -> None:
    ctx = open_context(workspace)
    spec = ReleaseSpec(Indicator.EVENT_COUNTS, START, START)
    out = release(ctx, spec)
    m = out.metadata
    ci95 = m.ci95_half_width
    assert m.reliability == 2.0
    assert m.publication_threshold == max(m.k, math.ceil(2.0 * ci95))
    assert f"2 × ci95 = 2 × {ci95}" in m.publication_rule
    data = out.data
    assert data.height > 0
    assert (2 * data["ci95"] <= data["value"]).all()
    assert m.cells_released + m.cells_suppressed == m.cells_total
    doc = explain(open_context(workspace, need_secret=False), spec).as_dict()
    assert doc["publication_threshold"] == m.publication_threshold
    assert doc["publication_rule"] == m.publication_rule
    again = release(open_context(workspace), spec)  # the stored release: no fresh noise
    assert again.reused
    assert again.directory == out.directory
    assert again.data.equals(data)


def test_audit_verify_catches_a_release_that_skipped_the_bar(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auditor recomputes the bar from the charged scale and the recorded reliability: a
    release whose code applied k alone (a bug) fails `audit verify`; an honest one passes."""
    release(open_context(workspace), ReleaseSpec(Indicator.PRESENCE, START, START))
    assert verify_workspace(workspace).passed
    monkeypatch.setattr(
        release_run, "suppress_unreliable", lambda noisy, k, _r, _ci: suppress_below(noisy, k)
    )
    release(open_context(workspace), ReleaseSpec(Indicator.OD_TRIPS, START, START))
    report = verify_workspace(workspace)
    assert not report.passed
    assert any("reliability bar was not applied" in f.line() for f in report.findings)


# --- margins -----------------------------------------------------------------------------------


def _noise(scale: float = 4.0) -> NoiseSpec:
    return NoiseSpec(
        mechanism="discrete_laplace", scale=scale, sensitivity=Sensitivity(l1=4, l2=4.0, linf=4),
        cost=PrivacyCost(epsilon=1.0, delta=0.0), confidence=0.95, ci_half_width=12,
        expected_abs_error=1.0, std_dev=noise_std("discrete_laplace", scale),
    )  # fmt: skip


def test_margin_groups_per_indicator() -> None:
    assert margin_groups(Indicator.OD_TRIPS) == [
        ["date"],
        ["date", "origin"],
        ["date", "destination"],
    ]
    assert margin_groups(Indicator.EVENT_COUNTS) == [["date"], ["date", "zone"]]
    assert margin_groups(Indicator.PRESENCE) == [["date"]]
    assert margin_groups(Indicator.OD_CONNECTIONS) == [["date"]]
    assert margin_groups(Indicator.RESIDENTS) == [[]]
    assert margin_groups(Indicator.RELOCATIONS) == [[], ["origin"], ["destination"]]


def test_margins_sum_every_noisy_cell_including_the_suppressed() -> None:
    noisy = pl.DataFrame(
        {
            "date": [START] * 6,
            "origin": ["a", "a", "b", "b", "c", "c"],
            "destination": ["b", "c", "a", "c", "a", "b"],
            "value": [500, -7, 3, 40, 0, 12],
            "ci95": [12] * 6,
        }
    )
    got = noisy_margins(noisy, Indicator.OD_TRIPS, _noise())
    total = got.filter(pl.col("margin") == "date")
    assert total["value"].to_list() == [548]
    assert total["cells"].to_list() == [6]
    z = NormalDist().inv_cdf(0.975)
    assert total["ci95"].to_list() == [
        math.ceil(z * math.sqrt(6) * noise_std("discrete_laplace", 4.0))
    ]
    by_origin = got.filter(pl.col("margin") == "date×origin").sort("origin")
    assert by_origin["value"].to_list() == [493, 43, 12]
    assert by_origin["destination"].null_count() == 3
    assert by_origin["value"].sum() == total["value"][0]


def test_release_margins_are_published_hashed_and_add_up(workspace: Path) -> None:
    ctx = open_context(workspace)
    out = release(ctx, ReleaseSpec(Indicator.OD_TRIPS, START, START))
    files = json.loads((out.directory / "metadata.json").read_text())["files"]
    assert set(files) == {"data.parquet", "data.csv", "margins.parquet", "margins.csv"}
    for name, digest in files.items():
        assert sha256_file(out.directory / name) == digest
    assert out.metadata.margins is not None
    assert out.metadata.margins.margins == ("date", "date×origin", "date×destination")
    margins = pl.read_parquet(out.directory / "margins.parquet")
    # The per-date margin combines the DP total with the sum of the cells (tests/test_totals.py);
    # the sum of the cells is kept beside it, and the zone margins add up to it.
    national = margins.filter(pl.col("margin") == "date")["cells_sum"].item()
    for margin in ("date×origin", "date×destination"):
        assert margins.filter(pl.col("margin") == margin)["value"].sum() == national
    assert margins.filter(pl.col("margin") == "date")["cells"].item() == 30 * 29
    # The ledger's outputs list the margins, so `audit verify` checks them like the data.
    entry = ctx.ledger.find(
        plan_release(ctx, ReleaseSpec(Indicator.OD_TRIPS, START, START)).request.release_key
    )
    assert entry is not None
    assert any(o.path.endswith("margins.parquet") for o in entry.outputs)


def test_private_key_sets_have_no_margins(workspace: Path) -> None:
    out = release(
        open_context(workspace), ReleaseSpec(Indicator.OD_TRIPS, START, START, keys="private")
    )
    assert out.metadata.margins is None
    files = json.loads((out.directory / "metadata.json").read_text())["files"]
    assert set(files) == {"data.parquet", "data.csv"}


def test_daily_series_totals_are_the_margins(workspace: Path) -> None:
    ctx = open_context(workspace)
    period = Period(START, START + timedelta(days=2))
    for day in period.days():
        release(ctx, ReleaseSpec(Indicator.OD_TRIPS, day, day))
    catalog = ReleaseCatalog.open(workspace)
    series = daily_series(catalog, Indicator.OD_TRIPS, period, baseline=Period(START, START))
    assert series.totals_from == "margins"
    for record in catalog.of(Indicator.OD_TRIPS):
        found = release_margins(record)
        assert found is not None
        national = found.filter(pl.col("margin") == "date")
        day = national["date"].item()
        assert (
            series.daily.filter(pl.col("date") == day)["total"].item() == national["value"].item()
        )
    assert series.baseline is not None
    base = series.baseline
    assert base.mean == series.daily.filter(pl.col("date") == START)["total"].item()
    # The scaled variant of the totals, with its delta-method half-width.
    last = series.daily.row(-1, named=True)
    assert last["pct_change"] == pytest.approx(100 * (last["total"] - base.mean) / base.mean)
    ratio = last["total"] / base.mean
    spread = 100 * math.sqrt(
        last["ci95"] ** 2 / base.mean**2 + ratio**2 * base.ci95**2 / base.mean**2
    )
    assert last["pct_change_ci95"] == pytest.approx(spread)


def test_a_zone_selection_of_event_counts_sums_the_zone_margins(workspace: Path) -> None:
    release(open_context(workspace), ReleaseSpec(Indicator.EVENT_COUNTS, START, START))
    catalog = ReleaseCatalog.open(workspace)
    zone = catalog.geography.at("admin2")[0].zone_id
    series = daily_series(catalog, Indicator.EVENT_COUNTS, Period(START, START), zones=[zone])
    assert series.totals_from == "margins"
    (record,) = catalog.of(Indicator.EVENT_COUNTS)
    found = release_margins(record)
    assert found is not None
    row = found.filter((pl.col("margin") == "date×zone") & (pl.col("zone") == zone))
    assert series.daily["total"].item() == row["value"].item()
    assert series.daily["cells"].item() == 24
    # od_trips touching a selection is no margin: the published cells, and the series says so.
    release(open_context(workspace), ReleaseSpec(Indicator.OD_TRIPS, START, START))
    trips = daily_series(ReleaseCatalog.open(workspace), Indicator.OD_TRIPS, Period(START, START),
                         zones=[zone])  # fmt: skip
    assert trips.totals_from == "published cells"


# --- consistent levels -------------------------------------------------------------------------


def _tree(rng: np.random.Generator) -> tuple[list[dict[str, float]], list[dict[str, str]]]:
    """True totals of 2 × 3 × 4 nested zones (coarsest first) and each level's parents."""
    leaves = {f"{a}{b}{c}": float(rng.integers(0, 60)) for a in "AB" for b in "xyz" for c in "1234"}
    mid = {
        f"{a}{b}": sum(v for k, v in leaves.items() if k[:2] == f"{a}{b}")
        for a in "AB"
        for b in "xyz"
    }
    top = {a: sum(v for k, v in mid.items() if k[0] == a) for a in "AB"}
    parents = [{}, {k: k[0] for k in mid}, {k: k[:2] for k in leaves}]
    return [top, mid, leaves], parents


def _levels(
    values: list[dict[str, float]], parents: list[dict[str, str]], var: list[float]
) -> list[NoisyLevel]:
    return [
        NoisyLevel(values=v, variances=dict.fromkeys(v, s), parents=p)
        for v, p, s in zip(values, parents, var, strict=True)
    ]


def _adds_up(fitted: list[dict[str, int]], parents: list[dict[str, str]]) -> None:
    for i in range(1, len(fitted)):
        for parent, total in fitted[i - 1].items():
            assert total == sum(v for z, v in fitted[i].items() if parents[i][z] == parent)


def test_consistent_levels_add_up_and_are_non_negative_integers() -> None:
    rng = np.random.default_rng(19)
    for _ in range(50):
        truth, parents = _tree(rng)
        noisy = [{z: v + float(rng.laplace(0, 8)) for z, v in level.items()} for level in truth]
        fitted = consistent(_levels(noisy, parents, [128.0, 128.0, 128.0]))
        _adds_up(fitted, parents)
        for level in fitted:
            assert all(isinstance(v, int) and v >= 0 for v in level.values())


def test_consistent_input_is_left_as_it_is() -> None:
    truth, parents = _tree(np.random.default_rng(3))
    fitted = consistent(_levels(truth, parents, [50.0, 8.0, 2.0]))
    assert fitted == [{z: int(v) for z, v in level.items()} for level in truth]


def test_least_squares_removes_error_at_every_level() -> None:
    """Averaged over draws, the consistent estimate is closer to the truth than each level's own
    noisy answer (the point of the post-processing), and it is unbiased."""
    rng = np.random.default_rng(7)
    err_noisy, err_fit, bias = np.zeros(3), np.zeros(3), np.zeros(3)
    draws = 300
    for _ in range(draws):
        truth, parents = _tree(rng)
        noisy = [{z: v + float(rng.laplace(0, 8)) for z, v in level.items()} for level in truth]
        fitted = least_squares(_levels(noisy, parents, [128.0] * 3))
        for i, level in enumerate(truth):
            zones = sorted(level)
            t = np.array([level[z] for z in zones])
            err_noisy[i] += float(((np.array([noisy[i][z] for z in zones]) - t) ** 2).mean())
            err_fit[i] += float(((np.array([fitted[i][z] for z in zones]) - t) ** 2).mean())
            bias[i] += float((np.array([fitted[i][z] for z in zones]) - t).mean())
    # The top two levels gain most (their children's sums are extra measurements of them).
    assert (err_fit < np.array([0.8, 0.8, 0.9]) * err_noisy).all(), (err_fit, err_noisy)
    assert (np.abs(bias / draws) < 1.0).all()


def test_least_squares_is_the_weighted_least_squares_solution() -> None:
    """The two-pass tree algorithm equals the generalised least-squares solution computed by
    brute force: unknowns the finest zones, one observation per zone of every level."""
    rng = np.random.default_rng(5)
    truth, parents = _tree(rng)
    variances = [400.0, 60.0, 9.0]
    noisy = [{z: v + float(rng.laplace(0, 5)) for z, v in level.items()} for level in truth]
    fitted = least_squares(_levels(noisy, parents, variances))
    leaves = sorted(truth[2])

    def under(zone: str) -> list[int]:
        return [i for i, leaf in enumerate(leaves) if leaf.startswith(zone)]

    rows, obs, weights = [], [], []
    for level, var in zip(noisy, variances, strict=True):
        for zone, value in sorted(level.items()):
            row = np.zeros(len(leaves))
            row[under(zone)] = 1.0
            rows.append(row)
            obs.append(value)
            weights.append(1.0 / var)
    a, y, w = np.array(rows), np.array(obs), np.diag(weights)
    x = np.linalg.solve(a.T @ w @ a, a.T @ w @ y)
    for level, got in zip(truth, fitted, strict=True):
        for zone in level:
            assert got[zone] == pytest.approx(float(x[under(zone)].sum()), abs=1e-6)


def test_levels_must_nest() -> None:
    top = NoisyLevel(values={"A": 5.0}, variances={"A": 1.0}, parents={})
    orphan = NoisyLevel(values={"B1": 5.0}, variances={"B1": 1.0}, parents={"B1": "B"})
    with pytest.raises(ConfigurationError, match="must nest"):
        consistent([top, orphan])


def test_consistent_levels_of_a_workspace_spend_no_budget(workspace: Path) -> None:
    ctx = open_context(workspace)
    levels: tuple[AdminLevel, ...] = ("admin1", "admin2", "admin3")
    for level in levels:
        release(ctx, ReleaseSpec(Indicator.EVENT_COUNTS, START, START, level=level))
    ledger = workspace / "ledger.duckdb"
    before = sha256_file(ledger)
    files = {p: sha256_file(p) for p in (workspace / "releases").rglob("*") if p.is_file()}
    catalog = ReleaseCatalog.open(workspace)
    entries = [e.entry_id for e in catalog.context.ledger.entries()]
    got = consistent_levels(catalog, Indicator.EVENT_COUNTS, START)
    assert [e.entry_id for e in open_context(workspace).ledger.entries()] == entries
    assert sha256_file(ledger) == before
    assert {p: sha256_file(p) for p in (workspace / "releases").rglob("*") if p.is_file()} == files
    parents = {z.zone_id: z.parent_id for z in catalog.geography.zones.values()}
    for upper, lower in itertools.pairwise(levels):
        for zone, total in got.consistent[upper].items():
            below = [v for z, v in got.consistent[lower].items() if parents[z] == zone]
            assert total == sum(below)
    assert all(v >= 0 for level in got.consistent.values() for v in level.values())
    with pytest.raises(ConfigurationError, match="does not add up"):
        consistent_levels(catalog, Indicator.PRESENCE, START)


# --- mobility_distance -------------------------------------------------------------------------


def test_epsilon_split_of_mobility_distance() -> None:
    shares = dict(indicator_spec(Indicator.MOBILITY_DISTANCE).epsilon_shares)
    assert sum(shares.values()) == 1.0
    assert indicator_spec(Indicator.MOBILITY_DISTANCE).epsilon_share("distance_m") == 0.75
    assert indicator_spec(Indicator.OD_TRIPS).epsilon_share("count") == 1.0


def test_plan_charges_each_value_column_its_share(workspace: Path) -> None:
    ctx = open_context(workspace, need_secret=False)
    eps = {
        value: plan_release(
            ctx, ReleaseSpec(Indicator.MOBILITY_DISTANCE, START, START, value=value),
            fingerprint=False,
        ).epsilon
        for value in ("distance_m", "subscribers")
    }  # fmt: skip
    assert eps == {"distance_m": pytest.approx(0.3), "subscribers": pytest.approx(0.1)}


def test_mean_distance_per_zone_and_national(workspace: Path) -> None:
    ctx = open_context(workspace)
    day = START + timedelta(days=2)
    for value in ("distance_m", "subscribers"):
        release(ctx, ReleaseSpec(Indicator.MOBILITY_DISTANCE, day, day, value=value))
    catalog = ReleaseCatalog.open(workspace)
    per_zone, national = mean_distance(catalog, Period(day, day))
    assert (per_zone["mean_m"] >= 2 * per_zone["ci95"]).all()
    # Nationally the bar screens the denominator only (screening means would bias a series).
    assert (national["subscribers"] > 0).all()
    _, national = mean_distance(catalog, Period(day, day), reliability=0.0)  # the formula
    assert national.height == 1
    margins = {r.value_column: release_margins(r) for r in catalog.of(Indicator.MOBILITY_DISTANCE)}
    d = margins["distance_m"].filter(pl.col("margin") == "date")  # type: ignore[union-attr]
    n = margins["subscribers"].filter(pl.col("margin") == "date")  # type: ignore[union-attr]
    assert national["mean_m"].item() == pytest.approx(d["value"].item() / n["value"].item())
    km = mean_distance_series(catalog, Period(day, day), reliability=0.0).daily
    assert km["total"].item() == pytest.approx(national["mean_m"].item() / 1000)
    # The delta method's half-width, from the releases' public scales and the noisy margins:
    # each the inverse-variance mean of the DP total and the sum of the cells (variance
    # v_dp·v_sum / (v_dp + v_sum), tests/test_totals.py).
    meta = {r.value_column: r.metadata for r in catalog.of(Indicator.MOBILITY_DISTANCE)}

    def variance(column: str, cells: int) -> float:
        totals = meta[column].totals
        assert totals is not None
        summed = noise_variance(meta[column].mechanism, meta[column].scale) * cells
        dp = totals.std_dev**2
        return dp * summed / (dp + summed)

    vd = variance("distance_m", d["cells"].item())
    vn = variance("subscribers", n["cells"].item())
    dd, nn = d["value"].item(), n["value"].item()
    z = NormalDist().inv_cdf(0.975)
    assert national["ci95"].item() == pytest.approx(z * math.sqrt(vd / nn**2 + dd**2 * vn / nn**4))


def test_delta_method_interval_covers_the_ratio() -> None:
    """Simulated: noisy D and N around a known mean; the half-width covers ≈ 95 % of draws."""
    rng = np.random.default_rng(11)
    d_true, n_true, sd_d, sd_n = 4.0e6, 400.0, 5.0e5, 30.0
    draws = 4000
    frame = pl.DataFrame(
        {
            "d": d_true + rng.normal(0, sd_d, draws),
            "n": n_true + rng.normal(0, sd_n, draws),
            "vd": [sd_d**2] * draws,
            "vn": [sd_n**2] * draws,
        }
    )
    z = NormalDist().inv_cdf(0.975)
    got = frame.select(*_ratio(pl.col("d"), pl.col("n"), pl.col("vd"), pl.col("vn"), z))
    covered = ((got["mean_m"] - d_true / n_true).abs() <= got["ci95"]).mean()
    assert 0.93 <= float(covered) <= 0.97  # type: ignore[arg-type]


def test_metadata_of_a_release_is_valid_json_with_the_rule(workspace: Path) -> None:
    out = release(open_context(workspace), ReleaseSpec(Indicator.PRESENCE, START, START))
    doc = json.loads((out.directory / "metadata.json").read_text())
    assert doc["publication_threshold"] >= doc["k"]
    assert doc["margins"]["margins"] == ["date"]
