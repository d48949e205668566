"""Data-sharing agreements as code (issue 20): registered in the ledger, enforced at every door,
replayed by the audit, and the releases made under them visible only to their recipients."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import duckdb
import httpx
import jsonschema
import pytest
import uvicorn
from click.testing import CliRunner

from aggregation.audit import build_report, verify_workspace, write_report
from aggregation.ledger import canonical_json, sha256_hex
from aggregation.ledger.chain import agreement_hash
from aggregation.ledger.tables import agreement_from
from aggregation.release import explain, open_context, release
from flows.api import create_app
from flows.api.tokens import TokenStore
from flows.cli import cli
from schemas.agreement import AGREEMENT_JSON_SCHEMA, Agreement, load_agreement
from schemas.errors import AgreementRefusedError, BudgetExceededError, ConfigurationError
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from schemas.release_metadata import AgreementRef
from tests.audit_support import forge
from tests.conftest import KEY_ENVIRON, START

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DAY2 = START.replace(day=START.day + 1)


def agreement_text(**changes: Any) -> str:
    """An agreement file (TOML) covering od_trips and presence at admin1/admin2 from CDR."""
    values: dict[str, Any] = {
        "id": "transport", "version": 1, "start": "2026-01-01", "end": "2099-12-31",
        "indicators": ["od_trips", "presence"], "levels": ["admin1", "admin2"],
        "sources": ["cdr"], "min_k": 10, "roles": ["analyst", "operator"],
        "epsilon_per_window": 3.0, "epsilon_term": 30.0, "data": "",
    }  # fmt: skip
    values.update(changes)
    quoted = {k: json.dumps(v) for k, v in values.items() if k != "data"}
    return f"""\
id = {quoted["id"]}
version = {quoted["version"]}
purpose = "Commuting flows for the national transport plan."
parties = ["Nulland Telecom (data holder)", "Ministry of Transport (recipient)"]
start = {values["start"]}
end = {values["end"]}
retention_days = 365

[recipients]
roles = {quoted["roles"]}

[releases]
indicators = {quoted["indicators"]}
levels = {quoted["levels"]}
sources = {quoted["sources"]}
min_k = {quoted["min_k"]}
{values["data"]}

[budget]
epsilon_per_window = {quoted["epsilon_per_window"]}
epsilon_term = {quoted["epsilon_term"]}
"""


def register(ws: Path, **changes: Any) -> Agreement:
    path = ws / f"agreement-{changes.get('id', 'transport')}-{changes.get('version', 1)}.toml"
    path.write_text(agreement_text(**changes))
    parsed = load_agreement(path)
    open_context(ws, need_secret=False).ledger.register_agreement(parsed)
    return parsed


def _od(**changes: Any) -> ReleaseSpec:
    base: dict[str, Any] = {"indicator": Indicator.OD_TRIPS, "start": START, "end": START,
                            "epsilon": 1.0, "agreement": "transport"}  # fmt: skip
    return ReleaseSpec(**{**base, **changes})


# -- the agreement file ------------------------------------------------------------------------


def test_an_agreement_file_is_checked_against_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_text(agreement_text(data="data_from = 2026-03-01\ndata_to = 2026-03-31"))
    parsed = load_agreement(path)
    assert parsed.label == "transport v1"
    assert parsed.data_from == START.replace(day=1)
    jsonschema.validate(parsed.as_dict(), AGREEMENT_JSON_SCHEMA)
    assert Agreement.from_mapping(parsed.as_dict(), source="round trip") == parsed

    path.write_text(agreement_text(levels=["admin9"], min_k=-1))
    with pytest.raises(ConfigurationError) as err:
        load_agreement(path)
    assert str(path) in str(err.value)
    assert "releases.levels.0" in str(err.value)
    assert "releases.min_k" in str(err.value)

    path.write_text(agreement_text(start="2026-06-01", end="2026-01-01"))
    with pytest.raises(ConfigurationError, match="end 2026-01-01 is before start 2026-06-01"):
        load_agreement(path)


def test_versions_are_chained_records_that_never_change(workspace: Path) -> None:
    register(workspace)
    ledger = open_context(workspace, need_secret=False).ledger
    again, new = ledger.register_agreement(load_agreement(workspace / "agreement-transport-1.toml"))
    assert not new
    (workspace / "other.toml").write_text(agreement_text(min_k=20))
    with pytest.raises(ConfigurationError, match="Register the amendment as version 2"):
        ledger.register_agreement(load_agreement(workspace / "other.toml"))
    register(workspace, version=2, min_k=20)
    assert [(r.agreement_id, r.version) for r in ledger.agreements()] == [
        ("transport", 1),
        ("transport", 2),
    ]
    assert ledger.agreements_in_force()["transport"].version == 2
    assert [link.kind for link in ledger.chain()] == ["agreement", "agreement"]
    assert ledger.head() is not None
    assert ledger.head().record_hash == ledger.agreements()[-1].record_hash  # type: ignore[union-attr]
    assert again.seq == 1


# -- enforcement ---------------------------------------------------------------------------------


REFUSALS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("indicator", {}, {"indicator": Indicator.OD_CONNECTIONS}),
    ("level", {}, {"level": "admin3"}),
    ("k", {"min_k": 20}, {"k": 10}),
    ("source", {"sources": ["gps"]}, {}),
    ("dates", {"data": f"data_from = {DAY2}\ndata_to = {DAY2}"}, {}),
    ("term", {"end": "2026-06-30"}, {}),  # expired (the test clock is later than that)
    ("term", {"start": "2099-01-01"}, {}),  # not yet in force
    ("budget-window", {"epsilon_per_window": 0.5}, {}),
]


@pytest.mark.parametrize(("rule", "terms", "asked"), REFUSALS)
def test_a_release_outside_its_agreement_is_refused_with_the_rule_and_recorded(
    workspace: Path, rule: str, terms: dict[str, Any], asked: dict[str, Any]
) -> None:
    register(workspace, **terms)
    ctx = open_context(workspace)
    spec = _od(**asked)
    assert any(f"[{rule}]" in r for r in explain(ctx, spec).refusal)
    with pytest.raises(AgreementRefusedError) as err:
        release(ctx, spec)
    assert f"agreement transport v1 [{rule}]" in str(err.value)
    assert err.value.exit_code == 3
    assert ctx.ledger.entries() == []
    (refusal,) = ctx.ledger.refusals()
    assert f"[{rule}]" in refusal.reason
    assert refusal.parameters["agreement"] == "transport"
    assert not (workspace / "releases" / str(spec.indicator)).exists()
    assert verify_workspace(workspace).passed


def test_the_term_budget_is_charged_over_every_window(workspace: Path, tmp_path: Path) -> None:
    register(workspace, epsilon_per_window=1.0, epsilon_term=1.5)
    ctx = open_context(workspace)
    release(ctx, _od())
    with pytest.raises(AgreementRefusedError, match=r"\[budget-term\]: ε 1 of 1.5"):
        release(ctx, _od(start=DAY2, end=DAY2))
    report = verify_workspace(workspace)
    assert report.passed
    (spend,) = report.as_dict()["agreements"]
    assert spend["releases"] == 1
    assert spend["epsilon_term_spent"] == pytest.approx(1.0)
    verified = CliRunner().invoke(cli, ["audit", "verify", "--workspace", str(workspace)])
    assert verified.exit_code == 0, verified.output
    assert "agreement transport v1: 1 release(s), ε 1 of 1.5 over its term, busiest window " in (
        verified.output
    )
    files = write_report(build_report(workspace), tmp_path / "report")
    assert "Spend per data-sharing agreement" in files.html.read_text()


def test_the_cli_refuses_with_exit_3_and_names_the_rule(workspace: Path) -> None:
    path = workspace / "a.toml"
    path.write_text(agreement_text())
    runner = CliRunner()
    added = runner.invoke(cli, ["agreement", "add", str(path), "--workspace", str(workspace)])
    assert added.exit_code == 0, added.output
    assert "agreement transport v1 registered: ledger seq 1" in added.output
    refused = runner.invoke(
        cli,
        ["release", "od_trips", "--date", str(START), "--level", "admin3",
         "--agreement", "transport", "--workspace", str(workspace)],
    )  # fmt: skip
    assert refused.exit_code == 3, refused.output
    assert "[level]: level admin3 is not among the levels it allows" in refused.output
    listed = runner.invoke(cli, ["agreement", "list", "--workspace", str(workspace)])
    assert "transport  v1  2026-01-01..2099-12-31  0 release(s)" in listed.output
    shown = runner.invoke(cli, ["agreement", "show", "transport", "--workspace", str(workspace)])
    assert json.loads(shown.output)["releases"]["levels"] == ["admin1", "admin2"]
    printed = runner.invoke(cli, ["agreement", "schema"])
    assert json.loads(printed.output) == AGREEMENT_JSON_SCHEMA


def test_a_release_under_an_agreement_names_it_and_is_a_question_of_its_own(
    workspace: Path,
) -> None:
    plain = release(open_context(workspace), _od(agreement=None))  # before any agreement
    register(workspace)
    register(workspace, id="health")
    ctx = open_context(workspace)
    with pytest.raises(ConfigurationError, match="a release names the one it is made under"):
        release(ctx, _od(agreement=None))
    with pytest.raises(ConfigurationError, match="No agreement 'nope' is registered"):
        release(ctx, _od(agreement="nope"))
    transport = release(ctx, _od())
    health = release(ctx, _od(agreement="health"))
    assert len({plain.metadata.release_id, transport.metadata.release_id,
                health.metadata.release_id}) == 3  # fmt: skip
    assert transport.metadata.agreement == AgreementRef("transport", 1)
    assert release(ctx, _od()).reused  # the same question under the same agreement
    entries = ctx.ledger.entries()
    assert [e.parameters.get("agreement") for e in entries] == [None, "transport", "health"]
    assert [e.parameters.get("agreement_version") for e in entries] == [None, 1, 1]
    # each charged to its own agreement, all to the workspace's window
    (window,) = ctx.ledger.window_budgets([START])
    assert window.epsilon_spent == pytest.approx(3.0)
    spends = {s["agreement"]: s for s in verify_workspace(workspace).as_dict()["agreements"]}
    assert spends["transport"]["epsilon_term_spent"] == pytest.approx(1.0)
    assert spends["health"]["epsilon_term_spent"] == pytest.approx(1.0)
    # the workspace default of mobility.toml names the agreement of a release naming none
    toml = workspace / "mobility.toml"
    toml.write_text(toml.read_text() + '\n[agreements]\ndefault = "health"\n')
    again = release(open_context(workspace), _od(agreement=None))
    assert again.reused
    assert again.metadata.release_id == health.metadata.release_id


def test_an_amendment_is_in_force_for_the_next_release(workspace: Path) -> None:
    register(workspace)
    ctx = open_context(workspace)
    release(ctx, _od())
    register(workspace, version=2, levels=["admin1"])
    with pytest.raises(AgreementRefusedError, match=r"transport v2 \[level\]"):
        release(ctx, _od(start=DAY2, end=DAY2))
    assert verify_workspace(workspace).passed


def test_concurrent_releases_never_overspend_an_agreement(workspace: Path) -> None:
    register(workspace, epsilon_per_window=1.0)
    ctx = open_context(workspace)
    outcomes: list[str] = []

    def ask(epsilon: float) -> None:
        try:
            release(ctx, _od(epsilon=epsilon))
            outcomes.append("released")
        except BudgetExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=ask, args=(e,)) for e in (0.6, 0.7, 0.8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "refused", "released"]
    assert len(ctx.ledger.entries()) == 1
    assert verify_workspace(workspace).passed


# -- the audit -----------------------------------------------------------------------------------


def _rewrite_agreement(workspace: Path, change: dict[str, Any], *, rehash: bool) -> None:
    """Edit the agreement record in the ledger file, as a forger would (optionally recomputing
    its hash, which still breaks the link of the record after it)."""
    con = duckdb.connect(str(workspace / "ledger.duckdb"))
    try:
        cursor = con.execute("SELECT * FROM ledger_agreements ORDER BY seq LIMIT 1")
        columns = [d[0] for d in cursor.description or ()]
        from aggregation.ledger.tables import Row  # noqa: PLC0415

        record = agreement_from(Row(columns, cursor.fetchall()[0]))
        content = {**dict(record.agreement), **change}
        text = canonical_json(content).decode()
        edited = replace(record, agreement=content)
        new_hash = agreement_hash(edited) if rehash else record.record_hash
        con.execute(
            "UPDATE ledger_agreements SET agreement = ?, record_hash = ? WHERE seq = ?",
            [text, new_hash, record.seq],
        )
    finally:
        con.close()


def test_a_rewritten_chain_cannot_hide_a_release_outside_its_agreement(workspace: Path) -> None:
    register(workspace)
    release(open_context(workspace), _od())
    ledger = open_context(workspace).ledger
    entries, (record,) = ledger.entries(), ledger.agreements()
    releases = {"indicators": ["presence"], "levels": ["admin2"], "sources": ["cdr"], "min_k": 10}
    edited = replace(record, agreement={**dict(record.agreement), "releases": releases})
    forge(workspace / "ledger.duckdb", entries, agreements=[edited])
    report = verify_workspace(workspace)  # every hash and link is valid again
    assert {f.check for f in report.failures} == {"agreements"}
    assert "od_trips is not among the indicators it allows (presence)" in report.failures[0].message


def test_verify_detects_a_release_whose_agreement_entry_was_edited(workspace: Path) -> None:
    register(workspace)
    release(open_context(workspace), _od())
    assert verify_workspace(workspace).passed
    releases = {"indicators": ["presence"], "levels": ["admin2"], "sources": ["cdr"], "min_k": 10}
    _rewrite_agreement(workspace, {"releases": releases}, rehash=False)
    report = verify_workspace(workspace)
    assert not report.passed
    checks = {(f.check, f.where.split(" (")[0]) for f in report.failures}
    assert ("chain", "agreement seq 1") in checks  # its content no longer hashes to its hash
    assert ("agreements", "ledger entry seq 3") in checks  # the release no longer conforms
    text = next(f.message for f in report.failures if f.check == "agreements")
    assert "[indicator]: od_trips is not among the indicators it allows (presence)" in text

    _rewrite_agreement(workspace, {"releases": releases}, rehash=True)
    report = verify_workspace(workspace)  # a recomputed hash still breaks the next link
    assert {f.check for f in report.failures} == {"chain", "agreements"}
    assert sha256_hex(b"") not in {f.message for f in report.failures}


# -- recipients and what they see ---------------------------------------------------------------


@contextmanager
def _client(workspace: Path) -> Iterator[httpx.Client]:
    """The workspace's API on a loopback port, and a client of it."""
    config = uvicorn.Config(create_app(workspace), host="127.0.0.1", port=0, log_level="warning",
                            access_log=False, ws="none", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_bound_to_one_agreement_cannot_read_releases_made_under_another(
    workspace: Path,
) -> None:
    register(workspace)
    register(workspace, id="health", indicators=["presence", "od_trips"])
    ctx = open_context(workspace)
    under_a = release(ctx, _od()).metadata.release_id
    under_b = release(ctx, _od(agreement="health", indicator=Indicator.PRESENCE))
    b_id = under_b.metadata.release_id
    store = TokenStore(workspace)
    _, token_a = store.create("analyst", "A", ("transport",))
    _, token_b = store.create("analyst", "B", ("health",))
    _, auditor = store.create("auditor", "audit")
    with pytest.raises(ConfigurationError, match="is bound to the agreements it receives"):
        store.create("analyst", "nobody")
    with pytest.raises(ConfigurationError, match="No agreement nope is registered"):
        store.create("analyst", "x", ("nope",))
    with _client(workspace) as client:
        _check_visibility(client, token_a, token_b, auditor, under_a, b_id)
    register(workspace, version=2, roles=["operator"])  # analysts are no longer its recipients
    with _client(workspace) as client:
        refused = client.get("/v1/releases", headers=_bearer(token_a))
        assert refused.status_code == 403
        assert "is a recipient of no data-sharing agreement" in refused.json()["detail"]
        assert client.get("/v1/releases", headers=_bearer(token_b)).status_code == 200


def _check_visibility(
    client: httpx.Client, token_a: str, token_b: str, auditor: str, under_a: str, b_id: str
) -> None:
    listed = client.get("/v1/releases", headers=_bearer(token_a)).json()
    assert [r["release_id"] for r in listed] == [under_a]
    assert client.get(f"/v1/releases/presence/{b_id}", headers=_bearer(token_a)).status_code == 404
    data = client.get(f"/v1/releases/presence/{b_id}/data", headers=_bearer(token_a))
    assert data.status_code == 404
    export = client.get(
        "/v1/exports/presence", params={"from": str(START), "to": str(START)},
        headers=_bearer(token_a),
    )  # fmt: skip
    assert export.status_code == 404
    assert client.get(f"/v1/releases/presence/{b_id}", headers=_bearer(token_b)).status_code == 200
    everything = client.get("/v1/releases", headers=_bearer(auditor)).json()
    assert {r["release_id"] for r in everything} == {under_a, b_id}


def test_an_operator_may_release_only_under_its_agreements(workspace: Path) -> None:
    register(workspace)
    register(workspace, id="health", roles=["analyst"])
    store = TokenStore(workspace)
    _, operator = store.create("operator", "ops", ("transport",))
    with _client(workspace) as client:
        _operator_requests(client, operator, workspace)


def _operator_requests(client: httpx.Client, operator: str, workspace: Path) -> None:
    body = {"indicator": "od_trips", "from": str(START), "epsilon": 1.0, "agreement": "transport"}
    refused = client.post("/v1/releases", json={**body, "agreement": "health"},
                          headers=_bearer(operator))  # fmt: skip
    assert refused.status_code == 409, refused.text
    assert "[recipient]: token" in refused.json()["detail"]
    ledger = open_context(workspace, need_secret=False).ledger
    assert ledger.entries() == []
    assert "[recipient]" in ledger.refusals()[0].reason
    outside = client.post("/v1/releases", json={**body, "k": 5}, headers=_bearer(operator))
    assert outside.status_code == 409, outside.text
    assert "[k]: k=5 is below its minimum k=10" in outside.json()["detail"]
    made = client.post("/v1/releases", json=body, headers=_bearer(operator))
    assert made.status_code == 201, made.text
    assert made.json()["releases"][0]["metadata"]["agreement"]["id"] == "transport"
    assert len(ledger.refusals()) == 2
    assert verify_workspace(workspace).passed


def test_audit_noise_rebuilds_a_release_with_the_agreement_it_was_made_under(
    workspace: Path,
) -> None:
    from aggregation.audit import audit_noise  # noqa: PLC0415 - scipy is slow to import

    plain = release(open_context(workspace), _od(agreement=None)).metadata.release_id
    register(workspace)
    under = release(open_context(workspace), _od(start=DAY2, end=DAY2)).metadata.release_id
    register(workspace, version=2, levels=["admin1"])  # neither would be allowed now
    for release_id in (plain, under):
        audited = audit_noise(workspace, release_id, environ=KEY_ENVIRON)
        assert audited.release_id == release_id
        assert not audited.problems
