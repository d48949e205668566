"""The analysts' Python client (:mod:`mobility_client`) against a live server, and its errors."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import polars as pl
import pytest

from aggregation.export import ExportRequest, ReleaseCatalog, assemble
from mobility_client import (
    ApiError,
    BudgetRefusedError,
    Client,
    Export,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from schemas.indicators import Indicator
from tests.conftest import START

if TYPE_CHECKING:
    from tests.live_api import LiveServer


def _client(server: LiveServer, role: str = "analyst") -> Client:
    return Client(server.url, server.tokens[role])


def test_lists_indicators_and_releases(live_api: LiveServer) -> None:
    with _client(live_api) as api:
        indicators = {i.name: i for i in api.indicators()}
        releases = api.releases("od_trips")
        everything = api.releases()
        none_later = api.releases(start="2026-04-01")
    assert set(indicators) == {i.value for i in Indicator}
    assert indicators["od_trips"].releases == 1
    assert indicators["od_trips"].first_day == START
    assert indicators["residents"].releases == 0
    assert indicators["residents"].first_day is None
    (trips,) = releases
    assert trips.indicator == "od_trips"
    assert trips.privacy.epsilon == 0.5
    assert trips.privacy.k == 10
    assert trips.privacy.start == trips.privacy.end == START
    assert trips.ledger_status == "published"
    assert {r.indicator for r in everything} == {"od_trips", "presence", "mobility_distance"}
    assert none_later == []


def test_fetches_a_release_with_its_privacy_metadata(live_api: LiveServer) -> None:
    with _client(live_api, "auditor") as api:
        (listed,) = api.releases("presence")
        details = api.release("presence", listed.release_id)
        data = api.release_data("presence", listed.release_id)
    on_disk = pl.read_parquet(
        live_api.workspace / "releases" / "presence" / listed.release_id / "data.parquet"
    )
    assert data.equals(on_disk)
    assert data.schema["date"] == pl.Date
    assert details.privacy == listed.privacy
    assert details.metadata["scale"] > 0
    assert details.privacy.ci95_half_width == details.metadata["ci95_half_width"] > 0
    assert (data["ci95"] == details.privacy.ci95_half_width).all()


def test_exports_as_a_polars_frame_with_the_releases_privacy(live_api: LiveServer) -> None:
    with _client(live_api) as api:
        export = api.export("od_trips", START, level="admin2")
        as_text = api.export("od_trips", "2026-03-02")
    expected = assemble(ReleaseCatalog.open(live_api.workspace),
                        ExportRequest(Indicator.OD_TRIPS, START, START)).data  # fmt: skip
    assert export.data.equals(expected)
    assert as_text.data.equals(expected)
    (privacy,) = export.releases
    assert (privacy.epsilon, privacy.k, privacy.privacy_unit) == (0.5, 10, "subscriber-day")
    assert export.descriptor["mobility"]["budget_spent_by_export"] == 0.0
    frame = export.to_pandas()
    assert len(frame) == export.data.height
    assert list(frame.columns) == export.data.columns


def test_exports_a_zone_selection(live_api: LiveServer) -> None:
    with _client(live_api) as api:
        whole = api.export("presence", START)
        zone = str(whole.data["zone"][0])
        part = api.export("presence", START, zones=[zone])
    assert part.data["zone"].to_list() == [zone]


def test_errors_are_typed_with_the_servers_message(live_api: LiveServer) -> None:
    stranger = Client(live_api.url, "mdp_000000000000_" + "x" * 43)
    with stranger, pytest.raises(UnauthorizedError) as unauthorised:
        stranger.indicators()
    assert unauthorised.value.status == 401
    assert "mobility token create" in unauthorised.value.detail

    auditor = _client(live_api, "auditor")
    with auditor, pytest.raises(ForbiddenError, match="analyst, operator"):
        auditor.export("od_trips", START)
    with _client(live_api) as api:
        with pytest.raises(NotFoundError) as unknown:
            api.release("od_trips", "nosuchrelease")
        assert unknown.value.release_command == []
        with pytest.raises(NotFoundError) as never:
            api.export("od_trips", date(2026, 3, 3))
        assert never.value.release_command[0].startswith("mobility release od_trips")
        with pytest.raises(InvalidRequestError) as invalid:
            api.export("od_trips", "20260302")
        assert any("use YYYY-MM-DD" in p for p in invalid.value.problems)
        assert invalid.value.problems[0].startswith("query.from: ")
    assert isinstance(invalid.value, ApiError)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [(409, {"detail": "Refused, nothing published: window 2026-03-02 would spend 2.5 > 2"},
      BudgetRefusedError),
     (503, {"detail": "This server cannot release: no secret"}, ServiceUnavailableError),
     (500, None, ServerError)],
)  # fmt: skip
def test_release_refusals_and_server_failures_are_typed(
    status: int, body: dict[str, str] | None, error: type[ApiError]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/releases"
        assert json.loads(request.content) == {"indicator": "presence", "from": "2026-03-02",
                                               "level": "admin2", "epsilon": 1.5}  # fmt: skip
        if body is None:
            return httpx.Response(status, text="Internal Server Error")
        return httpx.Response(status, json=body)

    api = Client("http://api", "t", transport=httpx.MockTransport(answer))
    with api, pytest.raises(error) as raised:
        api.request_release("presence", START, epsilon=1.5)
    assert raised.value.status == status
    assert raised.value.detail == (body["detail"] if body else "Internal Server Error")


def test_the_example_in_the_analysts_guide_runs(live_api: LiveServer) -> None:
    guide = (Path(__file__).parents[1] / "docs" / "analysts.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    example = example.replace('url = "http://127.0.0.1:8000"', f'url = "{live_api.url}"')
    namespace: dict[str, object] = {"token": live_api.tokens["analyst"]}
    exec(compile(example, "docs/analysts.md", "exec"), namespace)  # noqa: S102 - our own docs
    trips = namespace["trips"]
    assert isinstance(trips, Export)
    assert trips.data.height > 0
    in_nl01 = trips.data.select(
        pl.col("origin").str.starts_with("NL01") | pl.col("destination").str.starts_with("NL01")
    )
    assert in_nl01.to_series().all()  # flows into, out of or within the zones asked for
