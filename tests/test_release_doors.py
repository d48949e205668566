"""One question, one charge, one answer, whatever the door (issue 16.2).

The API used to default ``mechanism="discrete_laplace"`` into the release key while the CLI and
the daily flow recorded null: the same question, asked through the API after the flow, was
charged again with fresh noise. The key now comes from the resolved question.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
from click.testing import CliRunner

from aggregation.release import open_context
from flows.api import create_app
from flows.cli import cli
from schemas.indicators import Indicator
from schemas.workspace import Workspace
from tests.conftest import START

if TYPE_CHECKING:
    from pathlib import Path


def _cli(ws: Path, *extra: str) -> dict[str, Any]:
    args = ["release", "presence", "--date", str(START), "--workspace", str(ws), "--json", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.output)["releases"]
    return dict(doc)


async def _api(ws: Path, body: dict[str, object]) -> httpx.Response:
    result = CliRunner().invoke(
        cli, ["token", "create", "--role", "operator", "--workspace", str(ws), "--json"]
    )
    token = json.loads(result.output)["token"]
    transport = httpx.ASGITransport(app=create_app(ws))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.post(
            "/v1/releases", json=body, headers={"Authorization": f"Bearer {token}"}
        )


def _flow(ws: Path) -> dict[str, Any]:
    from flows.daily import DailyRelease, release_one, specs_for_day  # noqa: PLC0415 - Prefect

    (spec,) = [
        s for s in specs_for_day(Workspace.open(ws), START) if s.indicator is Indicator.PRESENCE
    ]
    outcome = release_one.fn(str(ws), spec)
    assert isinstance(outcome, DailyRelease)
    return outcome.as_dict()


def test_cli_api_and_flow_asking_the_same_question_get_one_release_and_one_charge(
    workspace: Path,
) -> None:
    first = _cli(workspace)
    assert not first["reused"]
    spent = [b.epsilon_spent for b in open_context(workspace).ledger.window_budgets()]

    explicit = _cli(workspace, "--mechanism", "discrete_laplace")
    response = asyncio.run(_api(workspace, {"indicator": "presence", "from": str(START)}))
    assert response.status_code == 200, response.text  # 200: already released, not 201
    (api,) = response.json()["releases"]
    flow = _flow(workspace)

    assert [explicit["reused"], api["reused"], flow["reused"]] == [True, True, True]
    ids = {first["release_id"], explicit["release_id"], api["metadata"]["release_id"],
           flow["release_id"]}  # fmt: skip
    assert ids == {first["release_id"]}
    ledger = open_context(workspace).ledger
    assert len(ledger.entries()) == 1
    assert [b.epsilon_spent for b in ledger.window_budgets()] == spent
    published = list((workspace / "releases" / "presence").iterdir())
    assert [p.name for p in published] == [first["release_id"]]
