"""``audit noise``: an honest release passes; one whose noise was removed or halved fails.

False-alarm rate: the test rejects an honest release with probability at most α (default 1e-3,
split between a likelihood-ratio test of the scale and a KS test of the conditional PIT, see
:mod:`aggregation.audit.residuals`); the slow test at the end measures it by simulation. So that
this suite does not fail spuriously once in a few hundred runs, the tests that expect an honest
release to pass use α = 1e-6 (:data:`HONEST_ALPHA`). Dishonest releases fail with p-values far
below either (halved noise on event_counts: p < 1e-12), at the default α.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import opendp.prelude as dp
import pytest
from click.testing import CliRunner

import aggregation.release.plan as release_plan
from aggregation.audit import DEFAULT_ALPHA, audit_noise
from aggregation.audit.noise_models import DiscreteGaussian, DiscreteLaplace, noise_model
from aggregation.audit.residuals import Residuals, run_noise_tests
from aggregation.indicators import exact_aggregate
from aggregation.release import open_context, plan_release, release
from flows.cli import cli
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from tests.audit_support import DAY3, audit_template, copy_workspace
from tests.conftest import KEY_ENVIRON

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

HONEST_ALPHA = 1e-6
"""α of the tests that expect an honest release to pass (false alarm about 1e-6 per test)."""

# k alone (reliability 0): these tests measure the power of the noise tests on many released
# cells; releases under the default reliability bar are audited below too (Gaussian, private).
EVENTS = ReleaseSpec(Indicator.EVENT_COUNTS, DAY3, DAY3, epsilon=1.0, reliability=0.0)
"""720 cells (30 zones × 24 hours), ~400 released at k = 10; discrete Laplace scale 20/0.8 = 25
(L1 = 20 at the cells' ε: 1 less the default totals_share 0.2 spent on the day's total)."""


@pytest.fixture
def workspace(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    return copy_workspace(audit_template(tmp_path_factory), tmp_path / "ws")


def _opendp_vector(mechanism: str, scale: float) -> dp.Measurement:
    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    if mechanism == "discrete_laplace":
        return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale=scale)
    return dp.m.make_gaussian(domain, dp.l2_distance(T=float), scale=scale)


class Dishonest:
    """The mechanism a broken release uses: the honest spec (and so the honest ledger entry and
    metadata), but noise at ``factor`` times the declared scale (0: no noise at all)."""

    def __init__(self, honest: Any, factor: float) -> None:
        self.spec = honest.spec
        self.factor = factor

    def release(self, values: list[int]) -> list[int]:
        if self.factor == 0:
            return [int(v) for v in values]
        drawn = _opendp_vector(self.spec.mechanism, self.spec.scale * self.factor)(list(values))
        return [int(v) for v in drawn]


class NoisePartitions:
    """DP partition selection with its noise skipped: exact counts kept at the threshold."""

    def __init__(self, honest: Any) -> None:
        self.spec = honest.spec

    def release(self, counts: dict[str, int]) -> dict[str, int]:
        return {k: v for k, v in sorted(counts.items()) if v >= self.spec.threshold}


def _release(ws: Path, spec: ReleaseSpec, monkeypatch: pytest.MonkeyPatch, factor: float) -> str:
    with monkeypatch.context() as patch:
        vector, partitions = release_plan.plan_vector, release_plan.plan_partitions
        if factor != 1:
            patch.setattr(
                release_plan, "plan_vector", lambda *a, **k: Dishonest(vector(*a, **k), factor)
            )
        if factor == 0:
            patch.setattr(
                release_plan,
                "plan_partitions",
                lambda *a, **k: NoisePartitions(partitions(*a, **k)),
            )
        outcome = release(open_context(ws), spec)
    return outcome.metadata.release_id


def _noise_cli(ws: Path, release_id: str, *extra: str) -> Any:
    args = ["audit", "noise", release_id, "--workspace", str(ws), "--json", *extra]
    return CliRunner().invoke(cli, args)


def test_an_honest_release_passes(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release_id = _release(workspace, EVENTS, monkeypatch, 1)
    result = audit_noise(workspace, release_id, alpha=HONEST_ALPHA)
    assert result.verdict == "pass", result.summary()
    assert result.cells_candidate == 720
    assert result.cells_released > 300
    assert result.tests.scale.fitted == pytest.approx(25.0, rel=0.25)
    assert result.notes == ()  # same staged files, same fingerprint
    cli_result = _noise_cli(workspace, release_id, "--alpha", str(HONEST_ALPHA))
    assert cli_result.exit_code == 0, cli_result.output
    doc = json.loads(cli_result.output)
    assert doc["verdict"] == "pass"
    assert doc["scale_test"]["p_value"] == result.tests.scale.p_value  # deterministic


@pytest.mark.parametrize(("factor", "fitted_below"), [(0.0, 0.1), (0.5, 16.25)])
def test_a_release_with_noise_removed_or_halved_fails(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, factor: float, fitted_below: float
) -> None:
    release_id = _release(workspace, EVENTS, monkeypatch, factor)
    entry = open_context(workspace).ledger.entry(release_id)
    assert entry.scale == pytest.approx(25.0)  # the ledger still declares the honest noise
    result = audit_noise(workspace, release_id)
    assert result.verdict == "fail"
    assert result.tests.scale.p_value < 1e-12
    assert result.tests.scale.fitted < fitted_below
    cli_result = CliRunner().invoke(
        cli, ["audit", "noise", release_id, "--workspace", str(workspace)]
    )
    assert cli_result.exit_code == 1
    assert "Verdict: FAIL" in cli_result.output
    assert "does not carry the noise it declares" in cli_result.output


@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_heavy_suppression_is_accounted_for(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, factor: float
) -> None:
    # od_trips at admin2 and ε = 1: 870 cells, ~700 of them 0, ~60 released at k = 10; the
    # released residuals are far from the untruncated distribution, yet an honest one passes.
    spec = ReleaseSpec(Indicator.OD_TRIPS, DAY3, DAY3, epsilon=1.0, reliability=0.0)
    alpha = HONEST_ALPHA if factor == 1 else DEFAULT_ALPHA
    result = audit_noise(workspace, _release(workspace, spec, monkeypatch, factor), alpha=alpha)
    assert result.verdict == ("pass" if factor == 1 else "fail"), result.summary()


def test_a_gaussian_release_is_tested_against_the_discrete_gaussian(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ReleaseSpec(
        Indicator.EVENT_COUNTS, DAY3, DAY3, epsilon=1.0, mechanism="discrete_gaussian"
    )
    honest = audit_noise(workspace, _release(workspace, spec, monkeypatch, 1), alpha=HONEST_ALPHA)
    assert honest.mechanism == "discrete_gaussian"
    assert honest.verdict == "pass", honest.summary()
    halved_spec = ReleaseSpec(  # k = 11: another question, not the stored honest release
        Indicator.EVENT_COUNTS, DAY3, DAY3, epsilon=1.0, mechanism="discrete_gaussian", k=11
    )
    halved = audit_noise(workspace, _release(workspace, halved_spec, monkeypatch, 0.5))
    assert halved.verdict == "fail"


@pytest.mark.parametrize("factor", [1.0, 0.0])
def test_a_private_key_set_is_tested_on_the_keys_observed(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, factor: float
) -> None:
    # DP partition selection: only observed keys (exact > 0) are candidates, and the threshold
    # is OpenDP's (26 here), above k. ~20 cells are released: an honest release passes or, a
    # third of the time, is inconclusive (too few cells to rule out half the noise).
    spec = ReleaseSpec(Indicator.PRESENCE, DAY3, DAY3, level="admin3", keys="private", epsilon=2)
    alpha = HONEST_ALPHA if factor else DEFAULT_ALPHA
    result = audit_noise(workspace, _release(workspace, spec, monkeypatch, factor), alpha=alpha)
    assert result.keys == "private"
    assert result.threshold > spec.k
    assert result.cells_candidate < 300
    assert result.passed == bool(factor), result.summary()
    # The number of non-empty keys is itself private: never shown, and the output says it stays
    # inside the data holder.
    assert result.as_dict()["cells_candidate"] is None
    cli_result = _noise_cli(workspace, result.release_id)
    doc = json.loads(cli_result.output)
    assert doc["cells_candidate"] is None
    assert "keep it inside the data holder" in doc["notice"]
    text = (
        CliRunner()
        .invoke(cli, ["audit", "noise", result.release_id, "--workspace", str(workspace)])
        .output
    )
    assert "keep it inside the data holder" in text
    assert f"{result.cells_candidate} candidate" not in text


def test_too_few_cells_is_inconclusive_not_a_pass(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ReleaseSpec(Indicator.OD_TRIPS, DAY3, DAY3, level="admin1", epsilon=1.0)
    result = audit_noise(workspace, _release(workspace, spec, monkeypatch, 0.5))
    # 20 cells, ~9 released: halved noise is hard to see, and the verdict says so (it passes
    # only if half the declared scale is rejected too, which the truth makes unlikely: α/2).
    assert result.verdict != "pass", result.summary()


def test_a_copied_workspace_gets_no_note_but_changed_data_do(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release_id = _release(workspace, EVENTS, monkeypatch, 1)
    copy = copy_workspace(workspace, tmp_path / "elsewhere")
    result = audit_noise(copy, release_id, alpha=HONEST_ALPHA)
    assert result.verdict == "pass", result.summary()
    assert result.notes == ()  # relative paths and content hashes: the same on a copy
    staged = sorted((copy / "staged").glob(f"date={DAY3}/*/*.parquet"))  # events, not fixes
    victim = staged[0]
    victim.write_bytes(victim.read_bytes())  # touched, same content: still no note
    assert audit_noise(copy, release_id, alpha=HONEST_ALPHA).notes == ()
    victim.unlink()  # a file gone
    (note,) = audit_noise(copy, release_id, alpha=HONEST_ALPHA).notes
    assert "fingerprint differs" in note
    assert f"gone: {victim.relative_to(copy / 'staged').as_posix()}" in note


def test_audit_noise_without_the_secret_says_how_to_fix_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = _noise_cli(workspace, "no-such-release")
    assert unknown.exit_code == 1
    assert "has no entry 'no-such-release'" in unknown.output
    release_id = open_context(workspace).ledger.entries()[0].entry_id
    monkeypatch.delenv("MOBILITY_SECRET")
    result = _noise_cli(workspace, release_id)
    assert result.exit_code == 2
    assert "MOBILITY_SECRET" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("model", [DiscreteLaplace(), DiscreteGaussian()])
@pytest.mark.parametrize("scale", [0.4, 3.0, 25.0, 400.0])
def test_noise_models_match_brute_force_sums(model: Any, scale: float) -> None:
    support = np.arange(-int(60 * scale) - 60, int(60 * scale) + 61)
    if model.name == "discrete_laplace":
        log_f = -np.abs(support) / scale
    else:
        log_f = -(support.astype(float) ** 2) / (2 * scale * scale)
    pmf = np.exp(log_f - np.logaddexp.reduce(log_f))
    sf = pmf[::-1].cumsum()[::-1]  # sf[i] = P(Z >= support[i])
    t = np.arange(-30, 31)
    index = t - support[0]
    np.testing.assert_allclose(np.exp(model.log_pmf(t, scale)), pmf[index], rtol=1e-9)
    np.testing.assert_allclose(np.exp(model.log_sf(t, scale)), sf[index], rtol=1e-6, atol=1e-15)
    assert noise_model(model.name).name == model.name


def _simulate(exact: NDArray[np.int64], mechanism: str, scale: float, factor: float) -> Residuals:
    noisy = np.asarray(_opendp_vector(mechanism, scale * factor)(exact.tolist()))
    kept = noisy >= 10
    return Residuals(
        residuals=(noisy - exact)[kept],
        released_floor=(10 - exact)[kept],
        suppressed_floor=(10 - exact)[~kept],
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("indicator", "level"),
    [(Indicator.OD_TRIPS, "admin2"), (Indicator.PRESENCE, "admin3")],
)
def test_false_alarm_rate_and_power_by_simulation(
    tmp_path_factory: pytest.TempPathFactory, indicator: Indicator, level: Any
) -> None:
    """400 honest draws from OpenDP on a real exact vector: rejections at α = 0.05 stay within
    the binomial 99.9 % range of 5 % (the LR test's χ² approximation is calibrated), at α = 1e-3
    at most 3; 40 halved draws are all rejected at α = 1e-3."""
    ws = audit_template(tmp_path_factory)
    ctx = open_context(ws, environ=KEY_ENVIRON)
    plan = plan_release(ctx, ReleaseSpec(indicator, DAY3, DAY3, level=level), fingerprint=False)
    exact = exact_aggregate(plan.aggregate, ctx.require_bounding_key())["count"].to_numpy()
    model, scale = noise_model(plan.noise.mechanism), plan.noise.scale
    honest = [_simulate(exact, model.name, scale, 1.0) for _ in range(400)]
    at_5 = sum(run_noise_tests(model, d, scale, alpha=0.05, seed=str(i)).verdict == "fail"
               for i, d in enumerate(honest))  # fmt: skip
    at_1e3 = sum(run_noise_tests(model, d, scale, alpha=1e-3, seed=str(i)).verdict == "fail"
                 for i, d in enumerate(honest))  # fmt: skip
    assert 6 <= at_5 <= 37, at_5  # Binomial(400, 0.05): mean 20, 99.9 % within [6, 37]
    assert at_1e3 <= 3, at_1e3  # Binomial(400, 0.001): P(X > 3) ≈ 8e-4
    halved = [_simulate(exact, model.name, scale, 0.5) for _ in range(40)]
    assert all(run_noise_tests(model, d, scale, alpha=1e-3, seed="h").verdict == "fail"
               for d in halved)  # fmt: skip
