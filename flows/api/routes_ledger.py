"""The privacy ledger (auditors) and new releases (operators), through the ledger like any other."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from aggregation.export.ledger_summary import entry_summary, ledger_summary
from aggregation.ledger.agreements import recipient_reason
from aggregation.release import ReleaseContext, explain, open_context, plan_release, release
from aggregation.release.agreements import agreement_for
from flows.api.params import EPSILON_MAX, EPSILON_MIN, Day, Level
from flows.api.responses import errors
from flows.api.security import require, workspace_root
from schemas.errors import BudgetExceededError, ConfigurationError, MobilityError
from schemas.indicators import Indicator
from schemas.indicators import spec as indicator_spec
from schemas.privacy import K_MAX
from schemas.release import DEFAULT_K, ReleaseSpec

router = APIRouter(prefix="/v1")


def refuse_uncovered_recipient(ctx: ReleaseContext, spec: ReleaseSpec, request: Request) -> None:
    """Record a refusal and answer 409 when the caller's token may not receive releases made
    under the agreement ``spec`` is made under (nothing to check without agreements)."""
    record = agreement_for(ctx, spec)
    if record is None:
        return
    reason = recipient_reason(
        record,
        token_id=str(request.state.token_id),
        role=str(request.state.role),
        bound=getattr(request.state, "agreement_scope", None) or (),
    )
    if reason is not None:
        plan = plan_release(ctx, spec, fingerprint=False)
        ctx.ledger.refuse_outside_agreement(plan.request, extra=[reason])


AUDITOR = [Depends(require("read_ledger"))]
OPERATOR = [Depends(require("request_release"))]


@router.get(
    "/ledger/summary",
    summary="Privacy budget: policy, spend and what is left",
    dependencies=AUDITOR,
    responses=errors(),
)
def summary(request: Request) -> dict[str, Any]:
    """Counts of entries and refusals, and ε spent, cap and left per accounting window."""
    return ledger_summary(open_context(workspace_root(request), need_secret=False))


@router.get(
    "/ledger/entries",
    summary="Every ledger entry, in chain order",
    dependencies=AUDITOR,
    responses=errors(),
)
def entries(request: Request) -> list[dict[str, Any]]:
    """What each release charged, for what, and its hash-chain fields."""
    ctx = open_context(workspace_root(request), need_secret=False)
    return [entry_summary(e) for e in ctx.ledger.entries()]


class ReleaseBody(BaseModel):
    """A release request (the same question as ``mobility release``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    indicator: Indicator
    start: Day = Field(alias="from", description="First day released (YYYY-MM-DD).")
    end: Day | None = Field(None, alias="to", description="Last day [default: from].")
    level: Level = "admin2"
    epsilon: float | None = Field(
        None, ge=EPSILON_MIN, le=EPSILON_MAX, description="[default: the workspace policy's]"
    )
    k: int = Field(
        DEFAULT_K, ge=0, le=K_MAX, description="Publish a cell only if its noisy value >= k."
    )
    mechanism: Literal["discrete_laplace", "discrete_gaussian"] | None = Field(
        None, description="[default: the workspace policy's]"
    )
    value: str | None = Field(None, description="One value column [default: all, each charged].")
    baseline_from: Day | None = None
    baseline_to: Day | None = None
    source: Literal["cdr", "gps"] = Field(
        "cdr",
        description="Data released from: cdr (subscribers) or gps (app fixes, devices; presence, "
        "od_trips, mobility_distance). Both are charged to the same windows and caps.",
    )
    agreement: str | None = Field(
        None,
        description="The data-sharing agreement the release is made under [default: the "
        "workspace's, when agreements are registered]; the token must be bound to it.",
    )

    def specs(self) -> list[ReleaseSpec]:
        """One spec per value column released."""
        columns = indicator_spec(self.indicator).value_columns
        return [
            ReleaseSpec(
                indicator=self.indicator, start=self.start, end=self.end or self.start,
                level=self.level, epsilon=self.epsilon, k=self.k, mechanism=self.mechanism,
                value=value if len(columns) > 1 else None,
                baseline_start=self.baseline_from, baseline_end=self.baseline_to,
                source=self.source,
                agreement=self.agreement,
            )
            for value in ([self.value] if self.value else list(columns))
        ]  # fmt: skip


@router.post(
    "/releases",
    summary="Request a new release (operator)",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Already released: the stored release, nothing charged."},
        **errors(400, 409, 422, 503),
    },
    dependencies=OPERATOR,
)
def request_release(request: Request, response: Response, body: ReleaseBody) -> dict[str, Any]:
    """Release through the ledger like ``mobility release``: charged first, refusable (409 when
    the budget would be exceeded or the workspace cannot answer, e.g. days not staged)."""
    specs = body.specs()  # bad requests → 422 before anything else
    try:
        ctx = open_context(workspace_root(request))
    except ConfigurationError as exc:
        msg = f"This server cannot release: {exc}"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=msg) from exc
    for spec in specs:  # the caller's token must be a recipient of the agreement (issue 20)
        refuse_uncovered_recipient(ctx, spec, request)
    if len(specs) > 1:  # several value columns: refuse up front unless every part fits
        reasons = [r for s in specs for r in explain(ctx, s).refusal]
        if reasons:
            raise BudgetExceededError("Refused, nothing published: " + "; ".join(reasons))
    try:
        outcomes = [release(ctx, s) for s in specs]
    except (BudgetExceededError, ConfigurationError):
        raise  # 409 and 422 (flows/api/errors.py)
    except MobilityError as exc:  # e.g. days not staged: nothing charged; the message says why
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    if all(o.reused for o in outcomes):
        response.status_code = status.HTTP_200_OK
    return {
        "releases": [
            {"reused": o.reused, "metadata": o.metadata.to_dict(),
             "directory": o.directory.relative_to(ctx.workspace.root).as_posix()}
            for o in outcomes
        ]
    }  # fmt: skip
