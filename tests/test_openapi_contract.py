"""The OpenAPI document is the truth: schemathesis fuzzes a live server as analyst and auditor
and finds nothing (statuses, bodies and media types as documented, no 5xx for any input)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import KEY_ENVIRON
from tests.live_api import served

if TYPE_CHECKING:
    from tests.live_api import LiveServer

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 15
MAX_SECONDS = 15


def _schemathesis(url: str, token: str, cwd: Path) -> str:
    """Run schemathesis against ``url``; its summary (assert on the exit status first)."""
    st = Path(sys.executable).with_name("schemathesis")
    command = [
        str(st), "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_SECONDS), "--seed", "17",
        "--phases", "examples,coverage,fuzzing", "--request-timeout", "20",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=MAX_SECONDS + 60, check=False, cwd=cwd
    )
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    assert " generated, " in summary, summary  # it did send requests
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_schemathesis_finds_nothing(live_api: LiveServer, role: str, tmp_path: Path) -> None:
    _schemathesis(live_api.url, live_api.tokens[role], tmp_path)


@pytest.mark.slow
def test_schemathesis_as_an_operator_who_may_release_finds_nothing(
    live_api: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = shutil.copytree(live_api.workspace, tmp_path / "ws")  # releases are charged here
    monkeypatch.setenv("MOBILITY_SECRET", KEY_ENVIRON["MOBILITY_SECRET"])
    with served(workspace) as server:
        _schemathesis(server.url, server.tokens["operator"], tmp_path)


def _get(server: LiveServer, path: str, role: str = "analyst", **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.tokens[role]}"}
    return httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=30)


def _problem(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["errors"], body
    assert all(isinstance(e["msg"], str) and isinstance(e["loc"], list) for e in body["errors"])
    return str(body["detail"])


@pytest.mark.parametrize("day", ["1772409600", "20260302", "2026-3-2", "2026-03-02T00:00:00"])
def test_days_are_yyyy_mm_dd_and_nothing_else(live_api: LiveServer, day: str) -> None:
    for path in ("/v1/exports/od_trips", "/v1/charts/od-map", "/v1/releases"):
        assert "use YYYY-MM-DD" in _problem(_get(live_api, path, **{"from": day}))


def test_a_huge_range_is_refused_at_once_before_any_work(live_api: LiveServer) -> None:
    started = time.monotonic()
    detail = _problem(_get(live_api, "/v1/exports/od_trips", **{"from": "0001-01-01",
                                                                "to": "9999-12-31"}))  # fmt: skip
    assert "give a day from 1970-01-01 to 2099-12-31" in detail
    assert "ask for at most 732 days" in _problem(
        _get(live_api, "/v1/charts/timeseries", **{"from": "2026-01-01", "to": "2028-12-31"})
    )
    assert time.monotonic() - started < 10  # generous: the point is no 20 s scan before a 404


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("epsilon", 1e308, "less than or equal to 100"),
     ("epsilon", 1e-300, "greater than or equal to 0.001"), ("epsilon", 0, "greater than or equal"),
     ("k", 10**30, "less than or equal to 1000000000"), ("k", -1, "greater than or equal to 0"),
     ("from", 1772409600, "use YYYY-MM-DD")],
)  # fmt: skip
def test_release_bodies_out_of_bounds_are_422_with_a_message(
    live_api: LiveServer, field: str, value: object, expected: str
) -> None:
    body = {"indicator": "presence", "from": "2026-03-02", field: value}
    headers = {"Authorization": f"Bearer {live_api.tokens['operator']}"}
    response = httpx.post(f"{live_api.url}/v1/releases", json=body, headers=headers, timeout=30)
    assert expected in _problem(response)


def test_the_document_states_statuses_media_types_and_the_real_422_body(
    live_api: LiveServer,
) -> None:
    doc = httpx.get(f"{live_api.url}/openapi.json", timeout=30).json()
    paths = doc["paths"]
    data = paths["/v1/releases/{indicator}/{release_id}/data"]["get"]["responses"]
    assert set(data["200"]["content"]) == {
        "text/csv", "application/vnd.apache.parquet", "application/json"}  # fmt: skip
    assert {"401", "403", "404", "422"} <= set(data)
    export = paths["/v1/exports/{indicator}"]["get"]["responses"]
    assert "application/geo+json" in export["200"]["content"]
    for route in ("/v1/ledger/summary", "/v1/indicators"):
        assert {"401", "403"} <= set(paths[route]["get"]["responses"])
    schema = doc["components"]["schemas"]["ValidationErrorBody"]
    assert schema["properties"]["detail"]["type"] == "string"
    assert "errors" in schema["required"]
    start = next(p for p in paths["/v1/exports/{indicator}"]["get"]["parameters"]
                 if p["name"] == "from")  # fmt: skip
    assert start["schema"]["format"] == "date"


def test_a_method_a_path_lacks_is_405_naming_every_method_it_has(live_api: LiveServer) -> None:
    response = httpx.delete(f"{live_api.url}/v1/releases", timeout=30)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_a_rule_across_parameters_is_a_422_naming_where_the_parameters_are(
    live_api: LiveServer,
) -> None:
    reversed_days = {"from": "2026-03-02", "to": "2026-03-01"}
    response = _get(live_api, "/v1/exports/od_trips", **reversed_days)
    assert "give the days in order" in _problem(response)
    assert response.json()["errors"][0]["loc"] == ["query"]
    headers = {"Authorization": f"Bearer {live_api.tokens['operator']}"}
    posted = httpx.post(f"{live_api.url}/v1/releases", headers=headers, timeout=30,
                        json={"indicator": "presence", **reversed_days})  # fmt: skip
    assert "2026-03-01" in _problem(posted)
    assert posted.json()["errors"][0]["loc"] == ["body"]
