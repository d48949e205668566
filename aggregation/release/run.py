"""``release``: exact bounded aggregate → ledger charge → OpenDP noise → k-threshold → files.

Order matters for the guarantees (docs/design.md, guarantees 2-5, 7 and 8):

1. If the same question was answered before (same release key), return the stored release: no
   fresh noise, no second charge.
2. Compute the exact bounded aggregate (no noise, nothing published, nothing charged yet).
3. Charge the ledger, atomically; a refusal raises :class:`BudgetExceededError` and publishes
   nothing. If an earlier run of the same question was charged and then interrupted (kill -9,
   power loss), its pending charge is resumed instead: no second charge.
4. Add noise with the OpenDP measurement over the whole vector (and, when the release spends a
   share of its ε on them, with the totals' own measurement over its per-date totals), sum the
   margins of every noisy cell (public key sets), suppress noisy cells below k or below
   reliability × ci95, write the files aside, hash them, then rename them into place and
   record the publication. A resumed run publishes the files its predecessor completed (same
   noise) and otherwise destroys what it left and draws again. An exception before the rename
   destroys the files first, and only then may the charge be rolled back: noise on disk is
   always paid for.

The named :mod:`~aggregation.release.checkpoints` between these steps let the crash tests kill
a release at each of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import polars as pl

from aggregation.bounding import BoundingKey
from aggregation.indicators import AggregateRequest
from aggregation.indicators.shards import sharded_aggregate
from aggregation.ledger import OutputFile
from aggregation.release import checkpoints
from aggregation.release.margins import DpTotals, margins_description, noisy_margins
from aggregation.release.plan import plan_release
from aggregation.release.publish import (
    METADATA_FILE,
    StagedRelease,
    clean_leftovers,
    discard_aside,
    recover,
    write_aside,
)
from aggregation.release.suppress import (
    publication_rule,
    publication_threshold,
    suppress_unreliable,
)
from aggregation.release.totals import dp_totals
from aggregation.sql import bounded_connection
from aggregation.staged_lock import reading_staged
from schemas.errors import InternalError, MobilityError
from schemas.indicators import Period
from schemas.indicators import spec as indicator_spec
from schemas.release import release_contract
from schemas.release_metadata import (
    NEIGHBOURING,
    AgreementRef,
    ColumnDoc,
    ReleaseMetadata,
    ReleaseScope,
)

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.ledger import ChargeTransaction, LedgerEntry
    from aggregation.mechanisms import PartitionMechanism, VectorMechanism
    from aggregation.release.context import ReleaseContext
    from aggregation.release.plan import ReleasePlan
    from schemas.release import ReleaseSpec
    from schemas.workspace import Workspace


@dataclass(frozen=True)
class ReleaseOutcome:
    """A published release: where it is, what it says, and whether this call made it."""

    directory: Path
    metadata: ReleaseMetadata
    reused: bool

    @property
    def data(self) -> pl.DataFrame:
        """The released cells."""
        return pl.read_parquet(self.directory / "data.parquet")


def stored_release(ctx: ReleaseContext, entry: LedgerEntry) -> ReleaseOutcome:
    """The release a published ledger entry points at."""
    directory = ctx.workspace.releases / entry.indicator / entry.entry_id
    path = directory / METADATA_FILE
    if not path.exists():
        msg = (
            f"Ledger entry {entry.entry_id} is published but {path} is missing: the release "
            "files were moved or deleted. Restore them from a backup; `mobility audit verify` "
            "lists every file the ledger expects."
        )
        raise InternalError(msg)
    return ReleaseOutcome(directory, ReleaseMetadata.read(path), reused=True)


Aggregator = Callable[[AggregateRequest, BoundingKey], pl.DataFrame]
"""Computes the exact bounded aggregate of a request, identical to
:func:`~aggregation.indicators.exact_aggregate`: per batch of shards on this machine, or per shard
on a cluster, summed."""


def local_aggregator(workspace: Workspace) -> Aggregator:
    """DuckDB on this machine, one query per batch of shards (:func:`sharded_aggregate`), within
    ``[aggregation] memory_limit_mb`` (it spills to the workspace's scratch directory beyond)."""

    def aggregate(request: AggregateRequest, key: BoundingKey) -> pl.DataFrame:
        limit = workspace.config.aggregation.memory_limit_mb
        spill = workspace.scratch / f"aggregate-{os.getpid()}-{threading.get_ident()}"
        with bounded_connection(limit, spill) as con:
            return sharded_aggregate(request, key, con=con)

    return aggregate


class _SharedAggregate:
    """Hands the exact aggregate of one release to the next release of the same aggregate.

    An indicator with several value columns (``mobility_distance``: ``distance_m`` and
    ``subscribers``) is released once per column, each a release of its own with its own ledger
    entry, but all from one exact aggregate. This keeps that aggregate, in this process only,
    until the next release that asks for the same request, bounding key and input fingerprint
    (the staged files, by content) and drops it then, or when another release
    comes first. Single-column indicators are never kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: tuple[tuple[AggregateRequest, str, BoundingKey], pl.DataFrame] | None = None

    def aggregate(
        self, plan: ReleasePlan, key: BoundingKey, aggregator: Aggregator
    ) -> pl.DataFrame:
        ident = (plan.aggregate, plan.request.input_fingerprint, key)
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None and kept[0] == ident:
            return kept[1]
        exact = aggregator(plan.aggregate, key)
        if len(indicator_spec(plan.spec.indicator).value_columns) > 1:
            with self._lock:
                self._kept = (ident, exact)
        return exact


_SHARED = _SharedAggregate()


def release(
    ctx: ReleaseContext, spec: ReleaseSpec, *, aggregator: Aggregator | None = None
) -> ReleaseOutcome:
    """Release ``spec`` in ``ctx`` (see the module docstring for the order of steps).

    ``aggregator`` computes the exact bounded aggregate (default: :func:`local_aggregator`).
    Noise is always added here, once, centrally, and the ledger is written only by this process.
    """
    if aggregator is None:
        aggregator = local_aggregator(ctx.workspace)
    # The staged files the plan names (by SHA-256) are the ones the aggregate reads: no ingest
    # commits in between (aggregation/staged_lock.py).
    with reading_staged(ctx.workspace.root):
        plan = plan_release(ctx, spec)
        stored = ctx.ledger.find(plan.request.release_key)
        if stored is not None:
            return stored_release(ctx, stored)
        ctx.ledger.refuse_outside_agreement(plan.request)  # before any data is read (issue 20)

        _require_data(ctx, spec)
        exact = _SHARED.aggregate(plan, ctx.require_bounding_key(), aggregator)
    with ctx.ledger.charge(plan.request) as tx:
        if tx.reused:  # answered by another process meanwhile
            return stored_release(ctx, tx.entry)
        checkpoints.reach("charged")
        return _noise_and_publish(ctx, tx, plan, exact)


def _noise_and_publish(
    ctx: ReleaseContext, tx: ChargeTransaction, plan: ReleasePlan, exact: pl.DataFrame
) -> ReleaseOutcome:
    """Inside the charge: finish an interrupted run's files, or draw the noise and write them.

    Noise is drawn to disk only under the charge, and destroyed before the charge may be
    released (``tx.noise_destroyed``); a rerun after a crash publishes the files the crashed
    run completed (same noise), or destroys its partial files and draws again, under the one
    charge the crashed run paid.
    """
    spec, entry, releases = plan.spec, tx.entry, ctx.workspace.releases
    indicator = str(spec.indicator)
    paid = {e.entry_id for e in ctx.ledger.entries() if e.status == "pending"}
    clean_leftovers(releases, paid=paid)
    tx.noise_at_risk()
    if tx.resumed:
        finished = recover(releases, indicator, entry.entry_id)
        if finished is not None:
            return _publish(ctx, tx, finished)
        if (releases / indicator / entry.entry_id).exists():
            msg = (
                f"{releases / indicator / entry.entry_id} is in place but incomplete (its files "
                f"do not match its metadata), and ledger entry {entry.entry_id} is charged for "
                "it: restore the folder from a backup, or remove it and run the release again "
                "(the charge stays; no second charge is made)."
            )
            raise MobilityError(msg)
    try:
        keys = list(indicator_spec(spec.indicator).key_columns)
        noisy = _add_noise(plan, exact.select(keys), exact[spec.value_column].to_list())
        checkpoints.reach("noised")
        # Margins before suppression, over every noisy cell (public key sets only): unbiased
        # totals, post-processing of this release's noise (aggregation/release/margins.py).
        public = spec.keys == "public"
        totals = None
        if plan.totals is not None:  # the per-date totals' own measurement (its share of ε)
            values = dp_totals(plan.totals, exact, spec.value_column)
            totals = DpTotals(plan.totals.group, values, plan.totals.noise)
        margins = noisy_margins(noisy, spec.indicator, plan.noise, totals) if public else None
        published, suppressed = suppress_unreliable(
            noisy, spec.k, spec.reliability, plan.noise.ci_half_width
        )
        metadata = _metadata(
            plan, entry, exact.height, published.height, suppressed,
            margins=margins is not None, dp_totals=totals is not None,
        )  # fmt: skip
        staged = write_aside(releases, indicator, entry.entry_id, published, metadata, margins)
        checkpoints.reach("written")
    except BaseException:
        discard_aside(releases, entry.entry_id)  # raises (charge kept) if anything is left
        tx.noise_destroyed()
        raise
    return _publish(ctx, tx, staged)


def _publish(ctx: ReleaseContext, tx: ChargeTransaction, staged: StagedRelease) -> ReleaseOutcome:
    """Move the complete files into place and record the publication."""
    root = ctx.workspace.root
    outputs = [
        OutputFile((staged.final_dir / name).relative_to(root).as_posix(), digest)
        for name, digest in sorted(staged.hashes.items())
    ]
    tx.publish(
        outputs=outputs,
        cells_released=staged.cells_released,
        cells_suppressed=staged.cells_suppressed,
        move=staged.move,
    )
    checkpoints.reach("published")
    return ReleaseOutcome(staged.final_dir, staged.metadata, reused=False)


def _add_noise(plan: ReleasePlan, keys: pl.DataFrame, values: list[int]) -> pl.DataFrame:
    """The keys with OpenDP noise on their values (and, for private key sets, only the keys that
    OpenDP's threshold keeps), with the per-cell 95 % half-width."""
    ci95 = pl.lit(plan.noise.ci_half_width, dtype=pl.Int64).alias("ci95")
    if plan.spec.keys == "public":  # the plan built a vector mechanism for a public key set
        noisy = cast("VectorMechanism", plan.mechanism).release(values)
        return keys.with_columns(pl.Series("value", noisy, dtype=pl.Int64), ci95)
    mechanism = cast("PartitionMechanism", plan.mechanism)
    labels = [_label(row) for row in keys.rows()]
    observed = {label: v for label, v in zip(labels, values, strict=True) if v > 0}
    kept = mechanism.release(observed)
    out = keys.with_columns(
        pl.Series("value", [kept.get(label) for label in labels], dtype=pl.Int64), ci95
    )
    return out.filter(pl.col("value").is_not_null())


def _label(row: tuple[object, ...]) -> str:
    """A key as the one string OpenDP's partition selection takes."""
    return "|".join(str(v) for v in row)


def _require_data(ctx: ReleaseContext, spec: ReleaseSpec) -> None:
    """Refuse to release days with no staged data: it would publish pure noise, and charge it.

    The days released must all be staged; a home window may reach back before the first day
    staged (homes are then found from the nights there are).
    """
    scope = spec.scope()
    required = scope.days or scope.home_period
    if required is None:
        msg = f"The scope of {spec.indicator} has neither release days nor a home period."
        raise InternalError(msg)
    missing = ctx.source_for(spec.source).missing_days(required.days())
    if missing:
        shown = ", ".join(str(d) for d in missing[:5]) + (" …" if len(missing) > 5 else "")  # noqa: PLR2004
        what = "GPS fixes (gps_YYYY-MM-DD drops)" if spec.source == "gps" else "data"
        msg = (
            f"No staged {what} for {shown} in {ctx.workspace.staged}: {spec.indicator} was not "
            "released and nothing was charged. Ingest those days first (mobility ingest PATH "
            f"--workspace {ctx.workspace.root}), or release other days."
        )
        raise MobilityError(msg)


CROSS_SOURCE_ACCOUNTING = (
    "CDR releases protect subscribers, GPS releases devices; the two cannot be linked and one "
    "person may be both, so releases from both sources are charged to the same accounting "
    "windows and caps: a window's spend bounds what any one person loses through both sources."
)
"""How releases of both sources share the budget, stated in every release's metadata."""


def _metadata(
    plan: ReleasePlan,
    entry: LedgerEntry,
    cells: int,
    released: int,
    suppressed: int,
    *,
    margins: bool,
    dp_totals: bool,
) -> ReleaseMetadata:
    """What the release says of itself (``files`` listed once they are written)."""
    spec, noise, scope = plan.spec, plan.noise, plan.spec.scope()
    contract_columns = tuple(
        ColumnDoc(f.name, str(f.type), f.metadata[b"description"].decode())
        for f in release_contract(spec.indicator).schema
    )
    return ReleaseMetadata(
        release_id=entry.entry_id,
        ledger_entry_id=entry.entry_id,
        indicator=spec.indicator,
        value_column=spec.value_column,
        level=spec.level,
        period=Period(spec.start, spec.end),
        scope=ReleaseScope(
            days=scope.days, home_period=scope.home_period,
            previous_home_period=scope.previous_home_period, windows_charged=entry.windows,
        ),
        privacy_unit=plan.request.unit,
        neighbouring=NEIGHBOURING,
        mechanism=noise.mechanism,
        epsilon=noise.cost.epsilon,
        delta=noise.cost.delta,
        rho=noise.cost.rho,
        sensitivity=noise.sensitivity,
        scale=noise.scale,
        ci95_half_width=noise.ci_half_width,
        confidence=noise.confidence,
        expected_abs_error=noise.expected_abs_error,
        k=spec.k,
        cells_total=cells,
        cells_released=released,
        cells_suppressed=suppressed,
        contribution_bounds=spec.parameters()["bounds"],
        code_version=entry.code_version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files={},
        columns=contract_columns,
        source=spec.source,
        accounting=CROSS_SOURCE_ACCOUNTING,
        agreement=_agreement(spec),
        reliability=spec.reliability,
        publication_threshold=publication_threshold(spec.k, spec.reliability, noise.ci_half_width),
        publication_rule=publication_rule(spec.k, spec.reliability, noise.ci_half_width),
        margins=(
            margins_description(spec.indicator, dp_totals=dp_totals)
            if margins else None
        ),
        totals=(
            plan.totals.describe(plan.mechanism.spec)
            if plan.totals is not None else None
        ),
    )  # fmt: skip


def _agreement(spec: ReleaseSpec) -> AgreementRef | None:
    """The agreement the resolved ``spec`` names, with the version the plan filled in."""
    if not spec.agreement:
        return None
    if spec.agreement_version is None:
        msg = f"The plan of {spec.indicator} names agreement {spec.agreement} but no version."
        raise InternalError(msg)
    return AgreementRef(spec.agreement, spec.agreement_version)
