"""The Prefect deployments ``mobility serve`` offers for one workspace.

* ``mobility-daily/<name>``: the daily flow on the workspace's ``[schedule] cron``, **in the
  workspace's time zone** (a cron without one fires in UTC). A run with no parameters (the
  schedule, or ``prefect deployment run 'mobility-daily/daily'``) releases the day ``lag_days``
  before today there; ``--param day=YYYY-MM-DD`` runs another day.
* ``mobility-backfill/<name>-backfill`` (``backfill`` for the default name): no schedule; run it
  with ``--param start=YYYY-MM-DD --param end=YYYY-MM-DD``.

Both take the workspace, the executor and the Dask address as default parameters, allow one run
at a time each (a Prefect concurrency limit: a second run waits, shown as
``AwaitingConcurrencySlot``), and load their flow by **module path** (``flows.daily.daily_flow``):
a file-path entrypoint would put ``flows/`` on ``sys.path``, where a project module named like an
installed package would shadow it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from flows.daily import backfill_flow, daily_flow, schedule_of
from schemas.errors import InternalError

if TYPE_CHECKING:
    from flows.dask_executor import Executor
    from schemas.workspace import Workspace

DEFAULT_NAME = "daily"


def backfill_name(name: str) -> str:
    """The backfill deployment's name beside the daily deployment ``name``."""
    return "backfill" if name == DEFAULT_NAME else f"{name}-backfill"


def deployments(
    ws: Workspace,
    *,
    name: str = DEFAULT_NAME,
    executor: Executor = "local",
    address: str | None = None,
) -> list[RunnerDeployment]:
    """The daily deployment (on the cron, in the workspace's time zone) and the backfill one."""
    schedule = schedule_of(ws)
    parameters = {"workspace": str(ws.root), "executor": executor, "address": address}
    one_at_a_time = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
    )
    daily = daily_flow.to_deployment(
        name=name,
        schedule=Cron(schedule.cron, timezone=ws.config.workspace.timezone),
        parameters=parameters,
        concurrency_limit=one_at_a_time,
        description=json.dumps({**parameters, "daily": [str(i) for i in schedule.daily]}),
        tags=["mobility"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    backfill = backfill_flow.to_deployment(
        name=backfill_name(name),
        parameters=parameters,
        concurrency_limit=one_at_a_time,
        description=json.dumps(parameters),
        tags=["mobility"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [_built(daily), _built(backfill)]


def _built(deployment: object) -> RunnerDeployment:
    # ``to_deployment`` dispatches on the event loop: called without one it returns the object.
    if not isinstance(deployment, RunnerDeployment):
        msg = f"to_deployment returned {type(deployment).__name__} outside an event loop."
        raise InternalError(msg)
    return deployment
