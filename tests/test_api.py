"""The HTTP API, tested over real HTTP: a uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import httpx
import polars as pl
import pytest
import uvicorn
from click.testing import CliRunner

from aggregation.export import ExportRequest, ReleaseCatalog, assemble
from aggregation.release import open_context
from flows.api import create_app
from flows.api.tokens import TokenStore
from flows.cli import cli
from schemas.indicators import Indicator
from schemas.staged import DAY_ZONES_DIR
from tests.conftest import KEY_ENVIRON, START
from tests.test_export import DAY2, DAY3, PNG, released  # noqa: F401 - fixture reused

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@dataclass(frozen=True)
class Server:
    """A running API server, its workspace and a token per role (plus a revoked one)."""

    url: str
    port: int
    workspace: Path
    tokens: dict[str, str]

    def client(self, role: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _token(workspace: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["token", *args, "--workspace", str(workspace), "--json"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


@pytest.fixture(scope="module")
def server(released: Path) -> Iterator[Server]:  # noqa: F811
    tokens = {role: _token(released, "create", "--role", role)["token"]
              for role in ("analyst", "auditor", "operator")}  # fmt: skip
    revoked = _token(released, "create", "--role", "operator", "--label", "leaver")
    result = CliRunner().invoke(cli, ["token", "revoke", revoked["token_id"],
                                      "--workspace", str(released)])  # fmt: skip
    assert result.exit_code == 0, result.output
    tokens["revoked"] = revoked["token"]
    config = uvicorn.Config(create_app(released), host="127.0.0.1", port=0, log_level="warning",
                            access_log=False, ws="none", lifespan="off")  # fmt: skip
    uv = uvicorn.Server(config)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])  # operators may release
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not uv.started:
            assert time.monotonic() < deadline, "the API server did not start"
            time.sleep(0.02)
        port = uv.servers[0].sockets[0].getsockname()[1]
        yield Server(f"http://127.0.0.1:{port}", port, released, tokens)
        uv.should_exit = True
        thread.join(timeout=10)


def test_health_and_openapi_need_no_token(server: Server) -> None:
    with server.client(None) as http:
        assert http.get("/health").json() == {"status": "ok"}
        spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/indicators", "/v1/releases", "/v1/exports/{indicator}",
                 "/v1/ledger/summary", "/v1/charts/od-map"):  # fmt: skip
        assert path in paths
    assert "post" in paths["/v1/releases"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("role", [None, "revoked"])
def test_missing_wrong_or_revoked_token_is_401(server: Server, role: str | None) -> None:
    with server.client(role) as http:
        response = http.get("/v1/indicators")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]
    forged = server.tokens["analyst"][:-4] + "AAAA"
    for bad in (f"Bearer {forged}", "Bearer not-a-token", f"Basic {server.tokens['analyst']}"):
        got = httpx.get(f"{server.url}/v1/indicators", headers={"Authorization": bad})
        assert got.status_code == 401


def test_analyst_lists_and_reads_releases(server: Server) -> None:
    with server.client("analyst") as http:
        indicators = {i["indicator"]: i for i in http.get("/v1/indicators").json()}
        assert indicators["od_trips"]["releases"] == 3
        assert indicators["od_trips"]["first_day"] == str(START)
        listed = http.get("/v1/releases", params={"indicator": "od_trips", "from": str(DAY2)})
        assert [r["period"]["start"] for r in listed.json()] == [str(DAY2), str(DAY3)]
        release_id = listed.json()[0]["release_id"]
        meta = http.get(f"/v1/releases/od_trips/{release_id}").json()
        assert meta["metadata"]["ledger_entry_id"] == release_id
        assert meta["ledger_status"] == "published"
        parquet = http.get(f"/v1/releases/od_trips/{release_id}/data",
                           params={"format": "parquet"})  # fmt: skip
        csv = http.get(f"/v1/releases/od_trips/{release_id}/data")
        rows = http.get(f"/v1/releases/od_trips/{release_id}/data", params={"format": "json"})
    stored = pl.read_parquet(server.workspace / "releases" / "od_trips" / release_id /
                             "data.parquet")  # fmt: skip
    assert pl.read_parquet(io.BytesIO(parquet.content)).equals(stored)
    assert csv.content == (server.workspace / "releases" / "od_trips" / release_id /
                           "data.csv").read_bytes()  # fmt: skip
    assert len(rows.json()) == stored.height


@pytest.mark.parametrize("fmt", ["csv", "parquet", "geojson", "xlsx"])
def test_analyst_exports_every_format_and_spends_nothing(server: Server, fmt: str) -> None:
    spent = open_context(server.workspace, need_secret=False).ledger.window_budgets()
    query = {"from": str(START), "to": str(DAY3), "zones": "NL01", "format": fmt}
    with server.client("analyst") as http:
        got = http.get("/v1/exports/od_trips", params=query)
        package = http.get("/v1/exports/od_trips/datapackage", params=query).json()
    assert got.status_code == 200, got.text
    assert f"od_trips_admin2_{START}_{DAY3}.{fmt}" in got.headers["content-disposition"]
    if fmt == "parquet":
        request = ExportRequest(Indicator.OD_TRIPS, START, DAY3, zones=("NL01",))
        expected = assemble(ReleaseCatalog.open(server.workspace), request).data
        assert pl.read_parquet(io.BytesIO(got.content)).equals(expected)
    elif fmt == "csv":
        assert got.text.splitlines()[0].startswith("date,origin,origin_name,destination")
    elif fmt == "geojson":
        assert got.json()["type"] == "FeatureCollection"
    else:
        assert got.content[:2] == b"PK"  # a zip container: the xlsx workbook
    assert package["resources"][0]["format"] == fmt
    assert {r["k"] for r in package["mobility"]["releases"]} == {10}
    assert open_context(server.workspace, need_secret=False).ledger.window_budgets() == spent


def test_charts_over_http(server: Server) -> None:
    with server.client("analyst") as http:
        png = http.get("/v1/charts/od-map", params={"from": str(START), "to": str(DAY3)})
        page = http.get("/v1/charts/od-map", params={"from": str(START), "format": "html"})
        series = http.get(
            "/v1/charts/timeseries",
            params={"from": str(START), "to": str(DAY3), "indicator": "presence"},
        )
    assert png.content.startswith(PNG)
    assert page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text
    assert series.content.startswith(PNG)


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("analyst", "GET", "/v1/ledger/summary"),
        ("analyst", "POST", "/v1/releases"),
        ("auditor", "GET", "/v1/exports/od_trips?from=2026-03-02"),
        ("auditor", "GET", "/v1/charts/od-map?from=2026-03-02"),
        ("auditor", "POST", "/v1/releases"),
    ],
)
def test_a_role_without_the_right_gets_403(
    server: Server, role: str, method: str, path: str
) -> None:
    body = {"indicator": "presence", "from": str(DAY2)} if method == "POST" else None
    with server.client(role) as http:
        response = http.request(method, path, json=body)
    assert response.status_code == 403
    assert f"Role '{role}' may not" in response.json()["detail"]


def test_auditor_reads_the_ledger(server: Server) -> None:
    with server.client("auditor") as http:
        summary = http.get("/v1/ledger/summary").json()
        entries = http.get("/v1/ledger/entries").json()
        listed = http.get("/v1/releases").json()
    ledger = open_context(server.workspace, need_secret=False).ledger
    assert summary["entries"] == len(ledger.entries()) == len(entries)
    assert summary["policy"]["epsilon_per_window"] == 5.0
    assert summary["policy_source"] == "ledger"
    assert summary["policy_differs_from_mobility_toml"] is False
    by_window = {w["window"]: w for w in summary["windows"]}
    for budget in ledger.window_budgets():
        assert by_window[str(budget.window)]["epsilon_spent"] == pytest.approx(budget.epsilon_spent)
    head = ledger.head()
    assert head is not None
    assert summary["head_hash"] == head.record_hash
    assert entries[-1]["inputs"]  # the auditor sees the inputs: relative paths, content hashes
    # staged event files, and for home-based releases the day-zone summaries they read
    assert all(
        i["path"].removeprefix(f"{DAY_ZONES_DIR}/").startswith("date=")
        for i in entries[-1]["inputs"]
    )
    assert len(listed) == len(entries)


def test_operator_release_goes_through_the_ledger(server: Server) -> None:
    ledger = open_context(server.workspace, need_secret=False).ledger
    before = {b.window: b.epsilon_spent for b in ledger.window_budgets()}
    body = {"indicator": "od_connections", "from": str(DAY2), "epsilon": 0.5}
    with server.client("operator") as http:
        created = http.post("/v1/releases", json=body)
        again = http.post("/v1/releases", json=body)
        refused = http.post("/v1/releases", json={**body, "epsilon": 4.0})
        exported = http.get("/v1/exports/od_connections", params={"from": str(DAY2)})
    assert created.status_code == 201, created.text
    (made,) = created.json()["releases"]
    assert made["reused"] is False
    assert again.status_code == 200
    assert again.json()["releases"][0]["metadata"]["release_id"] == made["metadata"]["release_id"]
    after = {b.window: b.epsilon_spent for b in ledger.window_budgets()}
    assert after[DAY2] == pytest.approx(before[DAY2] + 0.5)  # charged once
    assert refused.status_code == 409
    assert "Refused by the privacy budget" in refused.json()["detail"]
    assert {b.window: b.epsilon_spent for b in ledger.window_budgets()} == after
    assert exported.status_code == 200


def test_operator_release_of_days_not_staged_is_409_and_charges_nothing(server: Server) -> None:
    ledger = open_context(server.workspace, need_secret=False).ledger
    before = (len(ledger.entries()), ledger.window_budgets())
    with server.client("operator") as http:
        refused = http.post("/v1/releases", json={"indicator": "presence", "from": "2026-04-01"})
    assert refused.status_code == 409, refused.text
    assert "No staged data for 2026-04-01" in refused.json()["detail"]
    assert "Ingest those days first" in refused.json()["detail"]
    assert (len(ledger.entries()), ledger.window_budgets()) == before


def test_operator_release_without_the_secret_is_503(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOBILITY_SECRET")
    with server.client("operator") as http:
        response = http.post("/v1/releases", json={"indicator": "presence", "from": str(DAY3),
                                                   "epsilon": 0.1})  # fmt: skip
    assert response.status_code == 503
    assert "MOBILITY_SECRET" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "accepted"),
    [
        ("/v1/exports/od_trips", {"from": str(START), "format": "docx"}, "'csv', 'parquet'"),
        ("/v1/exports/od_trips", {"from": str(START), "level": "admin9"}, "'admin1'"),
        ("/v1/exports/od_trips", {"from": "yesterday"}, "use YYYY-MM-DD"),
        ("/v1/exports/od_trips", {}, "query parameter 'from'"),
        ("/v1/exports/od_trips", {"from": str(DAY2), "to": str(START)}, "before 'from'"),
        ("/v1/exports/od_trips", {"from": str(START), "zones": "XX"}, "unknown zone 'XX'"),
        ("/v1/exports/mobility_distance", {"from": str(START), "value": "x"}, "distance_m"),
        ("/v1/exports/footfall", {"from": str(START)}, "'od_trips'"),
        ("/v1/charts/od-map", {"from": str(START), "top": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_parameters_are_422_saying_what_is_accepted(
    server: Server, path: str, params: dict[str, str], accepted: str
) -> None:
    with server.client("operator") as http:
        response = http.get(path, params=params)
    assert response.status_code == 422
    assert accepted in response.json()["detail"]


def test_bad_release_bodies_are_422(server: Server) -> None:
    with server.client("operator") as http:
        extra = http.post("/v1/releases", json={"indicator": "presence", "from": str(DAY2),
                                                "noise": "none"})  # fmt: skip
        negative = http.post("/v1/releases", json={"indicator": "presence", "from": str(DAY2),
                                                   "epsilon": -1})  # fmt: skip
    assert extra.status_code == 422
    assert "'noise'" in extra.json()["detail"]
    assert negative.status_code == 422
    assert "greater than or equal to 0.001" in negative.json()["detail"]


def test_unknown_release_and_never_released_data_are_404(server: Server) -> None:
    with server.client("analyst") as http:
        unknown = http.get("/v1/releases/od_trips/" + "0" * 32)
        never = http.get("/v1/exports/od_trips", params={"from": "2026-04-01"})
    assert unknown.status_code == 404
    assert "GET /v1/releases?indicator=od_trips" in unknown.json()["detail"]
    assert never.status_code == 404
    assert never.json()["release_command"] == [
        f"mobility release od_trips --date 2026-04-01 --level admin2 --workspace {server.workspace}"
    ]


def _raw_get(server: Server, target: str) -> tuple[int, bytes]:
    """Send ``target`` byte for byte (no client-side normalisation of ``..``)."""
    request = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
               f"{server.tokens['operator']}\r\nConnection: close\r\n\r\n")  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    return int(response.split(b" ", 2)[1]), response


@pytest.mark.parametrize(
    "target",
    [
        "/v1/releases/od_trips/../../mobility.toml",
        "/v1/releases/od_trips/..%2F..%2Fmobility.toml",
        "/v1/releases/od_trips/%2e%2e/data?format=csv",
        "/v1/releases/od_trips/..%2F..%2Fapi%2Ftokens.json/data",
        "/v1/releases/..%2F..%2Fapi/tokens.json",
        "/v1/releases/od_trips/../../../../../../etc/passwd",
        "/../../mobility.toml",
        "/v1/exports/od_trips?from=2026-03-02&zones=../../mobility.toml",
    ],
)
def test_path_traversal_reads_nothing_outside_releases(server: Server, target: str) -> None:
    status, response = _raw_get(server, target)
    assert status in (404, 422)
    assert b"[pseudonymisation]" not in response
    assert b"sha256" not in response
    assert b"root:" not in response


def test_every_request_is_logged_with_its_token_id_never_the_token(server: Server) -> None:
    with server.client("auditor") as http:
        http.get("/v1/ledger/summary")
    with server.client(None) as http:
        http.get("/v1/indicators", params={"token": server.tokens["analyst"]})
    log = (server.workspace / "api" / "requests.jsonl").read_text(encoding="utf-8")
    for token in server.tokens.values():
        assert token not in log
    lines = [json.loads(line) for line in log.splitlines()]
    ids = {r.token_id: r.role for r in TokenStore(server.workspace).records()}
    summary = [x for x in lines if x["path"] == "/v1/ledger/summary" and x["status"] == 200]
    assert summary
    assert all(ids[x["token_id"]] == x["role"] == "auditor" for x in summary)
    unauthenticated = [x for x in lines if x["query_names"] == ["token"]]
    assert unauthenticated
    assert unauthenticated[-1]["token_id"] is None
    assert unauthenticated[-1]["status"] == 401
    assert all("query" not in x for x in lines)
    stored = (server.workspace / "api" / "tokens.json").read_text(encoding="utf-8")
    for token in server.tokens.values():
        assert token not in stored


@pytest.mark.parametrize("encode", [
    lambda t: quote(t, safe=""),                                   # once: mdp_ stays plain
    lambda t: t.replace("_", "%5F"),                               # the pattern's '_' hidden
    lambda t: quote(quote(t.replace("_", "%5F"), safe=""), safe=""),  # twice over
    lambda t: t[17:],                                              # the secret part alone
])  # fmt: skip
def test_a_token_however_encoded_in_a_url_never_reaches_the_log(
    server: Server, encode: Callable[[str], str]
) -> None:
    token = server.tokens["analyst"]
    secret = token[17:]  # after mdp_<12 hex>_
    typed = encode(token)
    with server.client("analyst") as http:
        http.get(f"/v1/indicators?note={typed}&{typed}=1")
        http.get(f"/v1/releases/od_trips/{typed}/data?format=csv")
    log = (server.workspace / "api" / "requests.jsonl").read_text(encoding="utf-8")
    for form in {token, secret, typed, quote(token, safe=""), token.replace("_", "%5F")}:
        assert form not in log
        assert unquote(unquote(form)) not in log
    lines = [json.loads(line) for line in log.splitlines()][-2:]
    assert lines[0]["path"] == "/v1/indicators"
    assert lines[0]["query_names"] == ["[not logged]", "note"]
    assert lines[1]["path"] == "/v1/releases/od_trips/[not logged]/data"
    assert lines[1]["route"] == "/v1/releases/{indicator}/{release_id}/data"
    assert {x["token_id"] for x in lines} == {token.split("_")[1]}


def test_tokens_are_listed_without_secrets_and_revocation_is_checked(server: Server) -> None:
    listed = _token(server.workspace, "list")["tokens"]
    assert {t["role"] for t in listed} == {"analyst", "auditor", "operator"}
    assert all("sha256" not in t and "token" not in t for t in listed)
    assert sum(t["revoked_at"] is not None for t in listed) == 1
    result = CliRunner().invoke(cli, ["token", "revoke", "nosuchid", "--workspace",
                                      str(server.workspace)])  # fmt: skip
    assert result.exit_code == 2
    assert "No token 'nosuchid'" in result.output


def test_api_command_refuses_a_directory_that_is_not_a_workspace(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["api", "--workspace", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "is not a workspace" in result.output
