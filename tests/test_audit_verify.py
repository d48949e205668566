"""``audit verify``: tampering with the ledger or the published files is detected, on a copy of
the workspace and while a release is being published."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

import aggregation.release.plan as release_plan
from aggregation.audit import verify_workspace
from aggregation.audit.caps import check_caps, recorded_policy
from aggregation.audit.costs import recompute_cost
from aggregation.audit.findings import entry_label
from aggregation.audit.rebuild import check_sensitivities
from aggregation.ledger import Ledger, OutputFile, ReleaseRequest
from aggregation.mechanisms import plan_partitions, plan_vector
from aggregation.release import open_context, release
from aggregation.release.publish import sha256_file
from flows.cli import cli
from schemas.budget_policy import BudgetPolicy
from schemas.indicators import Indicator
from schemas.privacy import PrivacyUnit, Sensitivity
from schemas.release import ReleaseSpec
from schemas.workspace import init_workspace
from tests.audit_support import (
    DAY3,
    audit_template,
    copy_workspace,
    execute,
    forge,
)
from tests.conftest import KEY_ENVIRON, START

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.audit import VerifyReport
    from aggregation.ledger import LedgerEntry


@pytest.fixture
def workspace(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A copy of the released template, at a path of its own."""
    return copy_workspace(audit_template(tmp_path_factory), tmp_path / "auditors-copy")


def _entries(ws: Path) -> list[LedgerEntry]:
    return open_context(ws, need_secret=False).ledger.entries()


def _metadata_path(entry: LedgerEntry) -> str:
    return next(o.path for o in entry.outputs if o.path.endswith("metadata.json"))


def _metadata_of(ws: Path, entry: LedgerEntry) -> dict[str, Any]:
    """The metadata.json ``entry`` published, as a JSON object."""
    document: dict[str, Any] = json.loads((ws / _metadata_path(entry)).read_text())
    return document


def _with_metadata(ws: Path, entry: LedgerEntry, meta: dict[str, Any]) -> LedgerEntry:
    """``entry`` after a forger rewrites its metadata.json as ``meta`` and records the file's new
    SHA-256 in the entry (so only a check of what the metadata says can catch it)."""
    path = _metadata_path(entry)
    (ws / path).write_text(json.dumps(meta))
    outputs = tuple(
        OutputFile(o.path, sha256_file(ws / o.path)) if o.path == path else o for o in entry.outputs
    )
    assert entry.publication is not None
    return dataclasses.replace(
        entry, publication=dataclasses.replace(entry.publication, outputs=outputs)
    )


def _failures(report: VerifyReport) -> list[tuple[str, str]]:
    return [(f.check, f.where) for f in report.failures]


def _verify_cli(ws: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["audit", "verify", "--workspace", str(ws), *extra])


def test_an_honest_workspace_verifies_on_a_copy(workspace: Path) -> None:
    report = verify_workspace(workspace)
    assert report.passed, [f.line() for f in report.findings]
    assert report.warnings == []
    assert len(report.snapshot.entries) == 3
    assert len(report.snapshot.refusals) == 1
    # data.parquet, data.csv, margins.parquet, margins.csv, metadata.json per release
    assert report.files_checked == 15
    result = _verify_cli(workspace, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["passed"] is True
    head = report.snapshot.head
    assert head is not None
    assert head.kind == "refusal"  # policy, 3 × (charge, publication), the refusal
    assert doc["head"] == {"seq": 8, "hash": head.record_hash, "record": "refusal"}
    text = _verify_cli(workspace)
    assert text.exit_code == 0
    assert "all checks hold" in text.output


def test_editing_an_entry_is_detected(workspace: Path) -> None:
    db = workspace / "ledger.duckdb"
    execute(db, "UPDATE ledger_entries SET epsilon = 0.1 WHERE indicator = 'od_trips'")
    report = verify_workspace(workspace)
    where = next(f.where for f in report.failures if f.check == "chain")
    assert where.startswith("entry seq 4 (od_trips")
    od = _entries(workspace)[1]
    assert ("cost", f"ledger entry seq 4 (od_trips, id {od.entry_id})") in _failures(report)
    result = _verify_cli(workspace)
    assert result.exit_code == 1
    assert "FAIL [chain] entry seq 4" in result.output
    assert "edited after it was written" in result.output


def test_an_entry_whose_privacy_unit_names_none_is_a_finding(workspace: Path) -> None:
    entry = _entries(workspace)[0]
    assert entry.unit == PrivacyUnit("subscriber", "day")
    assert check_sensitivities([entry]) == []
    (finding,) = check_sensitivities([dataclasses.replace(entry, privacy_unit="subscriber-year")])
    where = entry_label(entry)
    assert (finding.check, finding.severity, finding.where) == ("sensitivity", "fail", where)
    expected = "privacy unit 'subscriber-year' is not <subscriber|device>-<day|week|month>"
    assert finding.message == f"{where} records a {expected}"


def test_deleting_an_entry_is_detected(workspace: Path) -> None:
    deleted = _entries(workspace)[1]
    execute(workspace / "ledger.duckdb", "DELETE FROM ledger_entries WHERE seq = 4")
    report = verify_workspace(workspace)
    messages = [f.line() for f in report.failures]
    assert any("seq 5" in m and "expected seq 4" in m for m in messages)
    assert any("seq 5" in m and "prev_hash" in m for m in messages)
    orphan = f"releases/od_trips/{deleted.entry_id}"
    assert ("files", orphan) in _failures(report)  # published without a ledger entry


def test_reordering_entries_is_detected(workspace: Path) -> None:
    db = workspace / "ledger.duckdb"
    execute(db, "UPDATE ledger_entries SET seq = 99 WHERE seq = 2")
    execute(db, "UPDATE ledger_entries SET seq = 2 WHERE seq = 4")
    execute(db, "UPDATE ledger_entries SET seq = 4 WHERE seq = 99")
    report = verify_workspace(workspace)
    chain = [f for f in report.failures if f.check == "chain"]
    assert {f.where.split(" (")[0] for f in chain} >= {"entry seq 2", "entry seq 4"}
    assert any("prev_hash" in f.message for f in chain)


def test_cutting_the_ledger_short_is_caught_by_its_files_or_the_recorded_head(
    workspace: Path,
) -> None:
    entries = _entries(workspace)
    last = entries[-1]
    noted = verify_workspace(workspace).snapshot.head
    assert noted is not None
    db = workspace / "ledger.duckdb"
    execute(db, "DELETE FROM ledger_entries WHERE seq = 6")
    directory = f"releases/{last.indicator}/{last.entry_id}"
    assert ("files", directory) in _failures(verify_workspace(workspace))
    # A thorough forger removes the tail of the chain and the files too: the chain is valid.
    execute(db, "DELETE FROM ledger_publications WHERE seq = 7")
    execute(db, "DELETE FROM ledger_refusals WHERE seq = 8")
    for output in last.outputs:
        (workspace / output.path).unlink()
    (workspace / directory).rmdir()
    assert verify_workspace(workspace).passed
    report = verify_workspace(workspace, expected_head=noted.record_hash[:16])
    assert _failures(report) == [("head", "--expect-head")]
    assert verify_workspace(workspace, expected_head=entries[1].entry_hash).passed
    assert _verify_cli(workspace, "--expect-head", noted.record_hash).exit_code == 1


def test_editing_or_removing_a_published_file_is_detected(workspace: Path) -> None:
    first, second, _ = _entries(workspace)
    csv = next(o.path for o in first.outputs if o.path.endswith("data.csv"))
    with (workspace / csv).open("a") as fh:
        fh.write("2026-03-02,Z999,0,99,1\n")
    meta = next(o.path for o in second.outputs if o.path.endswith("metadata.json"))
    (workspace / meta).unlink()
    report = verify_workspace(workspace)
    assert _failures(report) == [("files", csv), ("files", meta)]
    result = _verify_cli(workspace)
    assert result.exit_code == 1
    assert "changed after it was published" in result.output
    assert "missing" in result.output


def _forged_over_cap(entries: list[LedgerEntry]) -> LedgerEntry:
    """An od_trips release on day 1 at ε = 5, costed honestly with OpenDP (day 1 has 1.5)."""
    noise = plan_vector("discrete_laplace", Sensitivity(l1=4, l2=4.0, linf=4), epsilon=5.0).spec
    model = entries[1]
    return dataclasses.replace(
        model,
        entry_id="f" * 32,
        release_key="e" * 64,
        scale=noise.scale,
        epsilon=noise.cost.epsilon,
        rho=noise.cost.rho,
        parameters={
            **{k: v for k, v in model.parameters.items() if k != "totals_share"},
            "k": 11,
        },  # no DP totals: the whole ε on the cells
        k_threshold=11,
        seq=10**6,  # appended at the end of the chain
        publication=None,  # charged, never published: no files to fake
    )


def test_a_forged_entry_over_the_cap_is_detected_even_with_a_valid_chain(
    workspace: Path,
) -> None:
    entries = _entries(workspace)
    forge(workspace / "ledger.duckdb", [*entries, _forged_over_cap(entries)])
    report = verify_workspace(workspace)
    assert _failures(report) == [("budget", f"ledger entry seq 9 (od_trips, id {'f' * 32})")]
    (finding,) = report.failures
    assert "window 2026-03-02" in finding.message
    assert "already spent ε=1.5 of its cap ε=6" in finding.message
    result = _verify_cli(workspace)
    assert result.exit_code == 1
    assert "FAIL [budget] ledger entry seq 9" in result.output


def test_a_rewritten_chain_cannot_hide_a_lowered_cost(workspace: Path) -> None:
    entries = _entries(workspace)
    cheaper = dataclasses.replace(entries[0], epsilon=0.05, rho=0.00125)
    forge(workspace / "ledger.duckdb", [cheaper, *entries[1:]])
    report = verify_workspace(workspace)
    checks = {f.check: f.message for f in report.failures}
    assert set(checks) == {"metadata", "cost"}  # metadata.json still states ε = 0.5
    assert "under-charged: recorded ε=0.05, OpenDP gives ε=0.5" in checks["cost"]


def test_a_rewritten_chain_cannot_hide_a_lowered_sensitivity_or_a_rewritten_metadata(
    workspace: Path,
) -> None:
    entries = _entries(workspace)
    od = entries[1]
    # cost still 1 = 2/2.5 + 2/10: the cells and, at totals_share 0.2, the day's total
    smaller = dataclasses.replace(od, l1=2, l2=2.0, linf=2, scale=2.5)
    meta = _metadata_of(workspace, od)
    meta["epsilon"] = 0.01
    forged = _with_metadata(workspace, smaller, meta)
    forge(workspace / "ledger.duckdb", [entries[0], forged, entries[2]])
    report = verify_workspace(workspace)
    checks = {f.check: f.message for f in report.failures}
    assert set(checks) == {"sensitivity", "metadata"}
    assert "l1=2 < 4" in checks["sensitivity"]
    assert "epsilon 0.01 (ledger: 1.0)" in checks["metadata"]


def test_editing_or_deleting_a_refusal_is_detected(workspace: Path) -> None:
    db = workspace / "ledger.duckdb"
    execute(db, "UPDATE ledger_refusals SET epsilon = 0.01")
    report = verify_workspace(workspace)
    assert ("chain", next(f.where for f in report.failures)) in _failures(report)
    assert report.failures[0].where.startswith("refusal seq 8 (presence")
    assert "edited after it was written" in report.failures[0].message
    assert [f.check for f in report.warnings] == ["refusals"]  # and it no longer explains itself
    execute(db, "DELETE FROM ledger_refusals")
    assert verify_workspace(workspace).passed  # the tail of a chain: only a noted head shows it
    head = _entries(workspace)[-1].publication
    assert head is not None
    assert verify_workspace(workspace, expected_head=head.record_hash).passed


def test_deleting_a_refusal_inside_the_chain_is_detected(workspace: Path) -> None:
    ctx = open_context(workspace, environ=KEY_ENVIRON)
    release(ctx, ReleaseSpec(Indicator.PRESENCE, DAY3, DAY3, epsilon=0.5))  # after the refusal
    execute(workspace / "ledger.duckdb", "DELETE FROM ledger_refusals")
    messages = [f.line() for f in verify_workspace(workspace).failures]
    assert any("expected seq 8" in m for m in messages)


def test_verification_runs_while_a_release_is_being_published(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[VerifyReport] = []
    real = release_plan.plan_vector

    class Mid:
        """The honest mechanism; verifies the workspace from another thread while it runs."""

        def __init__(self, mechanism: Any) -> None:
            self.mechanism, self.spec = mechanism, mechanism.spec

        def release(self, values: list[int]) -> list[int]:
            worker = threading.Thread(target=lambda: seen.append(verify_workspace(workspace)))
            worker.start()
            worker.join(timeout=30)  # the release holds the writer lock meanwhile
            assert not worker.is_alive(), "audit verify waited for the writer lock"
            return list(self.mechanism.release(values))

    monkeypatch.setattr(release_plan, "plan_vector", lambda *a, **k: Mid(real(*a, **k)))
    release(
        open_context(workspace, environ=KEY_ENVIRON), ReleaseSpec(Indicator.PRESENCE, DAY3, DAY3)
    )
    (during,) = seen
    assert during.passed, [f.line() for f in during.findings]
    head = during.snapshot.head
    assert head is not None
    assert head.kind == "charge"
    assert during.snapshot.entries[-1].status == "pending"
    # The head noted while the release was pending stays in the chain once it is published.
    after = verify_workspace(workspace, expected_head=head.record_hash)
    assert after.passed, [f.line() for f in after.findings]
    assert after.snapshot.entries[-1].entry_hash == head.record_hash
    assert after.snapshot.entries[-1].status == "published"


def test_an_empty_workspace_verifies(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "empty").root
    report = verify_workspace(ws)
    assert report.passed
    assert report.snapshot.entries == ()


@pytest.mark.parametrize(
    ("mechanism", "partitions"),
    [("discrete_laplace", False), ("discrete_gaussian", False),
     ("discrete_laplace", True), ("discrete_gaussian", True)],
)  # fmt: skip
def test_costs_are_recomputed_exactly_with_opendp(mechanism: Any, partitions: bool) -> None:
    sensitivity = Sensitivity(l1=3, l2=3**0.5, linf=1)
    if partitions:
        spec = plan_partitions(
            mechanism, sensitivity, epsilon=0.7, delta=1e-7, l0=3, min_threshold=10
        ).spec
    else:
        delta = 1e-7 if mechanism == "discrete_gaussian" else 0.0
        spec = plan_vector(mechanism, sensitivity, epsilon=0.7, delta=delta).spec
    entry = dataclasses.make_dataclass("E", [])()
    for name, value in {
        "mechanism": spec.mechanism, "scale": spec.scale, "l1": 3, "l2": 3**0.5, "linf": 1,
        "delta": spec.cost.delta, "partition_threshold": spec.threshold, "l0": spec.l0,
        "parameters": {},  # no DP totals (tests/test_totals.py recomputes those)
    }.items():  # fmt: skip
        setattr(entry, name, value)
    assert recompute_cost(entry) == spec.cost


def test_caps_are_replayed_under_the_composition_the_ledger_states(tmp_path: Path) -> None:
    zcdp = BudgetPolicy(composition="zcdp", epsilon_per_window=1.0, delta_per_window=1e-6)
    ledger = Ledger(tmp_path / "ledger.duckdb", zcdp)
    noise = plan_vector(
        "discrete_gaussian", Sensitivity(l1=4, l2=4.0, linf=4), epsilon=0.5, delta=1e-7
    ).spec
    for run in range(2):
        request = ReleaseRequest(
            indicator="od_trips",
            parameters={"run": run},
            windows=(START,),
            unit=PrivacyUnit("subscriber", "day"),
            noise=noise,
            input_fingerprint="0" * 64,
            code_version="test",
        )
        with ledger.charge(request) as tx:
            tx.publish(outputs=[], cells_released=0, cells_suppressed=0)
    entries, records = ledger.entries(), ledger.policies()
    # Two releases at ε = 0.5 each: 1.0 under basic composition, within the cap; under zCDP
    # their ρ add up to well below what ε = 1 at δ = 1e-6 allows.
    basic = BudgetPolicy(composition="basic")
    assert check_caps(records, basic, entries) == []  # the recorded policy, not mobility.toml's
    policy, notes = recorded_policy(basic, records)
    assert policy == zcdp
    assert [(n.severity, n.check) for n in notes] == [("warn", "budget")]
    assert "composition = 'basic' (recorded: 'zcdp')" in notes[0].message
    forged = dataclasses.replace(entries[-1], seq=99, entry_id="f" * 32, rho=0.5)
    (finding,) = check_caps(records, basic, [*entries, forged])
    assert finding.where == f"ledger entry seq 99 (od_trips, id {'f' * 32})"
    assert "ρ=0.5" in finding.message


def test_an_extra_file_in_a_release_folder_fails(workspace: Path) -> None:
    entry = _entries(workspace)[0]
    folder = workspace / "releases" / entry.indicator / entry.entry_id
    (folder / "data_corrected.csv").write_text("date,zone,hour,value,ci95\n")
    report = verify_workspace(workspace)
    where = f"releases/{entry.indicator}/{entry.entry_id}"
    assert _failures(report) == [("files", where)]
    assert "data_corrected.csv" in report.failures[0].message


def test_an_edited_input_fingerprint_is_detected(workspace: Path) -> None:
    db = workspace / "ledger.duckdb"
    execute(db, "UPDATE ledger_entries SET input_fingerprint = repeat('0', 64) WHERE seq = 2")
    report = verify_workspace(workspace)
    assert [f.check for f in report.failures] == ["chain", "files"]
    assert "edited after it was written" in report.failures[0].message
    assert "not the digest" in report.failures[1].message
    entries = _entries(workspace)  # a careful forger rehashes: the files check still sees it
    forged = dataclasses.replace(entries[0], inputs=entries[0].inputs[1:])
    forge(db, [forged, *entries[1:]])
    assert _failures(verify_workspace(workspace)) == [("files", entry_label(forged))]


def test_totals_drawn_at_a_smaller_scale_than_charged_are_detected(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A regression that draws the per-date DP totals at 4× the ε it charges for them: the
    # ledger's cost is right (the cost check passes), but the totals' noise is a quarter of it.
    real = release_plan.plan_totals

    def cheaper_noise(*args: Any, epsilon: float, **kwargs: Any) -> Any:
        honest = real(*args, epsilon=epsilon, **kwargs)
        drawn = real(*args, epsilon=4 * epsilon, **kwargs)
        charged_as_honest = dataclasses.replace(drawn.noise, cost=honest.noise.cost)
        mechanism = dataclasses.replace(drawn.mechanism, spec=charged_as_honest)
        return dataclasses.replace(drawn, mechanism=mechanism)

    monkeypatch.setattr(release_plan, "plan_totals", cheaper_noise)
    ctx = open_context(workspace, environ=KEY_ENVIRON)
    release(ctx, ReleaseSpec(Indicator.OD_TRIPS, DAY3, DAY3, epsilon=1.0))
    monkeypatch.undo()
    entry = _entries(workspace)[-1]
    assert entry.parameters["totals_share"] == 0.2
    report = verify_workspace(workspace)
    assert _failures(report) == [("metadata", f"{entry_label(entry)} metadata.json")]
    (finding,) = report.failures
    # ε 0.2 on the day's total, l1 = 4: scale 20 paid for, 5 drawn
    assert "totals.scale 5.0 (ledger implies: 20.0)" in finding.message
    assert "totals.ci95_half_width" in finding.message
    assert "totals.epsilon" not in finding.message  # the charge itself is honest
    assert not [f for f in report.findings if f.check == "cost"]


def test_metadata_totals_must_be_those_the_ledger_paid_for(workspace: Path) -> None:
    entries = _entries(workspace)
    od = entries[1]
    meta = _metadata_of(workspace, od)
    assert meta["totals"]["scale"] == 20.0  # what the honest workspace states
    meta["totals"]["sensitivity"]["l1"] = 8
    meta["totals"]["share"] = 0.1
    forge(
        workspace / "ledger.duckdb", [entries[0], _with_metadata(workspace, od, meta), entries[2]]
    )
    report = verify_workspace(workspace)
    assert _failures(report) == [("metadata", f"{entry_label(od)} metadata.json")]
    message = report.failures[0].message
    assert "totals.share 0.1 (ledger implies: 0.2)" in message
    assert "totals.sensitivity [8, 4.0, 4] (ledger implies: [4, 4.0, 4])" in message
    del meta["totals"]
    forge(
        workspace / "ledger.duckdb", [entries[0], _with_metadata(workspace, od, meta), entries[2]]
    )
    (finding,) = verify_workspace(workspace).failures
    assert "totals None (ledger: totals_share 0.2)" in finding.message
