"""What a release will cost and how accurate it will be, before any data are touched."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from aggregation.extract import StagedSource, current_day_zones
from aggregation.indicators import AggregateRequest, definition, sensitivities
from aggregation.indicators.request import HOME_BASED
from aggregation.ledger import ReleaseRequest, files_digest
from aggregation.mechanisms import plan_partitions, plan_vector
from aggregation.release.agreements import resolve_agreement
from aggregation.release.context import code_version
from aggregation.release.digests import staged_digests
from aggregation.release.suppress import publication_rule, publication_threshold
from aggregation.release.totals import plan_totals, resolve_share
from aggregation.sql import bounded_connection
from schemas.errors import PrivacyParameterError
from schemas.gps import StayRule
from schemas.indicators import spec as indicator_spec
from schemas.privacy import PrivacyCost, PrivacyUnit, release_parameter_problems, windows_of

if TYPE_CHECKING:
    from datetime import date
    from pathlib import Path

    from aggregation.budget import WindowBudget
    from aggregation.ledger import FileDigest
    from aggregation.mechanisms import PartitionMechanism, VectorMechanism
    from aggregation.release.context import ReleaseContext
    from aggregation.release.totals import TotalsPlan
    from schemas.indicators import ZoneSet
    from schemas.privacy import NoiseSpec, Sensitivity
    from schemas.release import ReleaseSpec
    from schemas.workspace import Workspace


@dataclass(frozen=True)
class ReleasePlan:
    """A release worked out: aggregate to compute, its sensitivity, noise and ledger request.

    ``mechanism`` is the OpenDP measurement, built once here: ``explain`` prints its ``spec``
    (= ``noise``), the release invokes it on the exact aggregate. ``totals``, when the release
    spends a share of its ε on per-date totals (:mod:`aggregation.release.totals`), holds their
    measurement; ``noise`` then states the cells' noise and the cost of the whole release (the
    basic composition of both measurements), which is what the ledger charges.
    """

    spec: ReleaseSpec
    aggregate: AggregateRequest
    sensitivity: Sensitivity
    noise: NoiseSpec
    epsilon: float
    delta: float
    request: ReleaseRequest
    cells_total: int
    mechanism: VectorMechanism | PartitionMechanism = field(compare=False, repr=False)
    totals: TotalsPlan | None = field(default=None, compare=False, repr=False)

    @property
    def privacy_unit(self) -> str:
        """The privacy unit, as stated in every release."""
        return self.request.privacy_unit


def input_files(staged: Path, files: list[str]) -> tuple[FileDigest, ...]:
    """The staged files read, each by its path relative to the staged directory (POSIX, e.g.
    ``date=2026-03-02/shard=003/cdr_2026-03-02.parquet``) and the SHA-256 of its bytes.

    Relative paths and content hashes make the fingerprint the same on an auditor's copy of the
    workspace, and change it exactly when the data read change. Files unchanged since they were
    last hashed are not read again (:mod:`aggregation.release.digests`).
    """
    return staged_digests(staged, files)


def with_day_zones(
    workspace: Workspace, aggregate: AggregateRequest, distance_zones: ZoneSet | None = None
) -> tuple[AggregateRequest, list[str]]:
    """``aggregate`` reading day-zone summaries, if it is a home-based CDR aggregate over the
    staged directory, and the summaries it reads (made current here: a release reads no stale
    summary, :mod:`aggregation.extract.day_zones`). They are inputs of the release, beside the
    staged files they summarise, so its fingerprint and ``audit`` cover them. Where they cannot
    be written (a read-only copy of a workspace) the aggregate reads the events, as before.

    ``distance_zones`` (the workspace's admin3 zones) measure the distances the summaries carry,
    whichever home-based release makes them, so that ``mobility_distance`` finds them there.
    Summaries are made within ``[aggregation] memory_limit_mb``, spilling to the workspace's
    scratch directory beyond (a day-shard of a billion-event day is 60 M events).
    """
    source = aggregate.source
    if (
        aggregate.indicator not in HOME_BASED
        or aggregate.feed != "cdr"
        or not isinstance(source, StagedSource)
    ):
        return aggregate, []
    try:
        spill = workspace.scratch / f"summaries-{os.getpid()}-{threading.get_ident()}"
        summaries = current_day_zones(
            source,
            aggregate.days_read(),
            partial(staged_digests, workspace.staged),
            distance_zones=distance_zones,
            connect=partial(
                bounded_connection, workspace.config.aggregation.memory_limit_mb, spill
            ),
        )
    except OSError:
        return aggregate, []
    return replace(aggregate, day_zones=True), summaries


def plan_release(
    ctx: ReleaseContext, spec: ReleaseSpec, *, fingerprint: bool = True, as_recorded: bool = False
) -> ReleasePlan:
    """Work out ``spec`` in ``ctx``: everything but the data and the noise.

    The plan's spec is the *resolved* question (the policy's mechanism filled in), whose
    parameters make the release key: asking with or without the default gives the same key.
    ``as_recorded``: ``spec`` was rebuilt from a ledger entry (an audit), so its agreement (or
    none) is taken as recorded rather than resolved against the agreements in force now.
    """
    policy = ctx.policy
    ind = indicator_spec(spec.indicator)
    scope = spec.scope()
    if spec.source == "gps" and spec.stay_rule is None:  # resolved: the workspace's [gps] rule
        spec = replace(spec, stay_rule=ctx.stay_rule)
    source = ctx.source_for(spec.source)
    aggregate = AggregateRequest(
        indicator=spec.indicator,
        source=source,
        feed=spec.source,
        stay_rule=spec.stay_rule or StayRule(),  # resolved above for GPS; unused by CDR
        zones=ctx.zones(spec.level),
        scope=scope,
        bounds=spec.bounds,
        distance_zones=None if ind.distance_level is None else ctx.zones(ind.distance_level),
    )
    sensitivity = sensitivities(aggregate, policy.accounting_window)[spec.value_column]
    asked = spec.epsilon if spec.epsilon is not None else policy.epsilon_for(str(spec.indicator))
    budget = PrivacyCost(epsilon=asked)
    if len(ind.value_columns) > 1:  # the indicator's ε is shared by its value columns
        budget = budget.part(ind.epsilon_share(spec.value_column))
    epsilon = budget.epsilon
    mechanism = spec.mechanism or policy.mechanism
    share = resolve_share(
        spec.totals_share,
        policy.totals_share_for(str(spec.indicator)),
        mechanism=mechanism,
        keys=spec.keys,
    )
    # The resolved question: defaults applied, so that every door (CLI, API, flow) asking it
    # gets the same parameters, hence the same release key (issue 16.2).
    spec = replace(spec, mechanism=mechanism, totals_share=share)
    if not as_recorded:
        spec = resolve_agreement(ctx, spec)  # the agreement and its version in force (issue 20)
    needs_delta = mechanism == "discrete_gaussian" or spec.keys == "private"
    delta = policy.default_delta if needs_delta else 0.0
    problems = release_parameter_problems(epsilon=epsilon, delta=delta if needs_delta else None)
    if problems:
        msg = (
            f"Bad release request: {spec.indicator} ({spec.value_column}) resolves to "
            f"ε={epsilon:g}, δ={delta:g} under [privacy] of mobility.toml: "
            + "; ".join(problems)
            + ". Ask for another ε, or change the defaults in [privacy]."
        )
        raise PrivacyParameterError(msg)
    measurement: VectorMechanism | PartitionMechanism
    cells_budget, totals_budget = budget.split(share)  # share 0: (ε, 0)
    if spec.keys == "private":
        measurement = plan_partitions(
            mechanism, sensitivity, epsilon=epsilon, delta=delta,
            l0=definition(spec.indicator).max_keys(spec.bounds, scope, policy.accounting_window),
            min_threshold=spec.k, confidence=spec.confidence,
        )  # fmt: skip
    else:
        measurement = plan_vector(
            mechanism, sensitivity, epsilon=cells_budget.epsilon, delta=delta,
            confidence=spec.confidence,
        )  # fmt: skip
    noise = measurement.spec
    totals = None
    if share:
        totals = plan_totals(
            spec.indicator, mechanism, sensitivity, epsilon=totals_budget.epsilon, share=share,
            confidence=spec.confidence,
        )  # fmt: skip
        noise = replace(noise, cost=noise.cost + totals.noise.cost)  # basic composition
    files = source.files_for(aggregate.days_read()) if fingerprint else []
    if fingerprint:
        distance_zones = aggregate.distance_zones  # admin3 for mobility_distance
        if distance_zones is None and aggregate.indicator in HOME_BASED:
            distance_zones = ctx.zones("admin3")
        aggregate, summaries = with_day_zones(ctx.workspace, aggregate, distance_zones)
        files += summaries
    inputs = input_files(ctx.workspace.staged, files)
    request = ReleaseRequest(
        indicator=str(spec.indicator),
        parameters=spec.parameters(),
        windows=windows_of(aggregate.days_read(), policy.accounting_window),
        unit=PrivacyUnit.of(spec.source, policy.accounting_window),
        noise=noise,
        input_fingerprint=files_digest(inputs),
        inputs=inputs,
        code_version=code_version(),
        k_threshold=spec.k,  # k under the ledger's (hashed, stored) name: see ReleaseRequest
    )
    return ReleasePlan(
        spec=spec,
        aggregate=aggregate,
        sensitivity=sensitivity,
        noise=noise,
        epsilon=epsilon,
        delta=delta,
        request=request,
        cells_total=ind.key_count(len(aggregate.zones.zone_ids), scope),
        mechanism=measurement,
        totals=totals,
    )


@dataclass(frozen=True)
class BudgetLine:
    """One accounting window a release would charge: the ε spent in it so far, its cap and
    what is left (under the strictest policy governing it)."""

    window: date
    spent: float
    cap: float
    left: float

    @classmethod
    def of(cls, budget: WindowBudget) -> BudgetLine:
        """The line of the ledger's ``budget`` of one window."""
        return cls(budget.window, budget.epsilon_spent, budget.epsilon_cap, budget.epsilon_left)

    def as_dict(self) -> dict[str, Any]:
        """As ``explain`` prints it."""
        return {"window": str(self.window), "spent": self.spent, "cap": self.cap,
                "left": self.left}  # fmt: skip


@dataclass(frozen=True)
class Explanation:
    """What ``mobility explain`` prints: cost, accuracy and budget, for a release not yet made."""

    plan: ReleasePlan
    already_released: str | None
    refusal: list[str]
    budget: tuple[BudgetLine, ...]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready account."""
        p = self.plan
        totals = p.totals.describe(p.mechanism.spec) if p.totals is not None else None
        return {
            "indicator": str(p.spec.indicator),
            "value_column": p.spec.value_column,
            "level": p.spec.level,
            "parameters": p.spec.parameters(),
            "privacy_unit": p.privacy_unit,
            "source": p.spec.source,
            "windows_charged": [str(d) for d in p.request.windows],
            "sensitivity": p.sensitivity.as_dict(),
            "noise": p.noise.as_dict(),
            "cells_total": p.cells_total,
            "k": p.spec.k,
            "reliability": p.spec.reliability,
            "publication_threshold": publication_threshold(
                p.spec.k, p.spec.reliability, p.noise.ci_half_width
            ),
            "publication_rule": publication_rule(
                p.spec.k, p.spec.reliability, p.noise.ci_half_width
            ),
            "already_released": self.already_released,
            "would_be_refused": bool(self.refusal),
            "refusal_reasons": self.refusal,
            "budget": [line.as_dict() for line in self.budget],
            "totals": totals.to_dict() if totals is not None else None,
        }  # fmt: skip


def explain(ctx: ReleaseContext, spec: ReleaseSpec) -> Explanation:
    """Explain ``spec``: touches no staged data and charges nothing."""
    plan = plan_release(ctx, spec, fingerprint=False)
    stored = ctx.ledger.find(plan.request.release_key)
    budgets = ctx.ledger.window_budgets(plan.request.windows)
    return Explanation(
        plan=plan,
        already_released=stored.entry_id if stored is not None else None,
        refusal=ctx.ledger.refusal_reasons(plan.request),
        budget=tuple(BudgetLine.of(b) for b in budgets),
    )
