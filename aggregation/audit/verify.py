"""``audit verify``: check a workspace's ledger and published files without trusting the pipeline.

Checks, in order (each one names what failed and where; see :class:`~aggregation.audit.findings.
Finding`):

1. ``chain``       -- every record's hash (charges, publications, refusals, policies) covers
                      its content and its predecessor's hash; ``seq`` runs 1, 2, 3, … (edited,
                      deleted, inserted or reordered records).
2. ``head``        -- optionally, the ledger still holds a record hash noted earlier
                      (a ledger cut short or rewritten with recomputed hashes).
3. ``files``       -- every published file exists with its recorded SHA-256; no release
                      directory exists without a ledger entry, nor with files it does not
                      list; no temporary release folder is left (noisy values: unpaid ones
                      fail, those of a pending charge are reported for a rerun to finish).
4. ``metadata``    -- each ``metadata.json`` states what the ledger charged; ``data.parquet``
                      holds the recorded number of cells, none below k or the publication threshold.
5. ``cost``        -- ε, δ, ρ recomputed with OpenDP from mechanism, sensitivity and scale.
6. ``sensitivity`` -- the sensitivity, windows and k follow from the recorded parameters.
7. ``budget``      -- replaying the entries in order, no window or rolling span goes over its
                      cap under the budget policy the ledger recorded (a mobility.toml that
                      differs is reported).
8. ``refusals``    -- refusals are re-checked; unexplained ones are warnings.
9. ``agreements``  -- every release made under a data-sharing agreement names the version in
                      force when it was charged and conformed to it (budget included); once
                      agreements exist, every release names one. Spend per agreement is
                      reported (:mod:`aggregation.audit.agreements`).

Reading is safe while a flow runs: only the ledger's shared read lock is taken (never the
writer lock), release directories are listed before the ledger is read, and an entry still
being published is reported as a warning. Nothing is written to the workspace except the
ledger's lock file (created if it is missing, as every reader does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from aggregation.audit.agreements import check_agreements, spend_per_agreement
from aggregation.audit.caps import check_caps, check_refusals, recorded_policy
from aggregation.audit.chain import check_chain, check_head
from aggregation.audit.costs import check_costs
from aggregation.audit.files import check_files, check_leftovers, count_outputs, scan_release_dirs
from aggregation.audit.findings import fail
from aggregation.audit.rebuild import check_sensitivities
from aggregation.ledger import chain_links
from aggregation.release import open_context
from schemas.errors import InternalError, MobilityError

if TYPE_CHECKING:
    from aggregation.audit.agreements import AgreementSpend
    from aggregation.audit.findings import Finding
    from aggregation.ledger import (
        AgreementRecord,
        ChainLink,
        LedgerEntry,
        PolicyRecord,
        Refusal,
    )
    from schemas.budget_policy import BudgetPolicy


@dataclass(frozen=True)
class LedgerSnapshot:
    """What one read of the ledger returned (each kind in ``seq`` order, and the whole chain)."""

    entries: tuple[LedgerEntry, ...]
    refusals: tuple[Refusal, ...]
    policies: tuple[PolicyRecord, ...] = ()
    links: tuple[ChainLink, ...] = ()
    problem: Finding | None = None
    agreements: tuple[AgreementRecord, ...] = ()

    @property
    def head(self) -> ChainLink | None:
        """The last record of the chain, if any."""
        return self.links[-1] if self.links else None


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_workspace`: what was checked and every finding."""

    workspace: Path
    policy: BudgetPolicy
    snapshot: LedgerSnapshot
    files_checked: int
    findings: tuple[Finding, ...] = field(default=())

    @property
    def failures(self) -> list[Finding]:
        """Findings that make the audit fail."""
        return [f for f in self.findings if f.severity == "fail"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings reported for a look, breaking no guarantee."""
        return [f for f in self.findings if f.severity == "warn"]

    @property
    def passed(self) -> bool:
        """True when every check holds."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready account (what ``audit verify --json`` prints)."""
        head = self.snapshot.head
        entries = self.snapshot.entries
        return {
            "workspace": str(self.workspace),
            "passed": self.passed,
            "entries": len(entries),
            "published": sum(e.status == "published" for e in entries),
            "pending": sum(e.status == "pending" for e in entries),
            "refusals": len(self.snapshot.refusals),
            "files_checked": self.files_checked,
            "head": None
            if head is None
            else {"seq": head.seq, "hash": head.record_hash, "record": head.kind},
            "policy": self.policy.as_dict(),
            "failures": [f.as_dict() for f in self.failures],
            "warnings": [f.as_dict() for f in self.warnings],
            "agreements": [s.as_dict() for s in self.agreement_spend],
        }

    @property
    def agreement_spend(self) -> list[AgreementSpend]:
        """Spend per data-sharing agreement, against its budget."""
        return spend_per_agreement(self.snapshot.agreements, self.snapshot.entries)


def read_snapshot(root: Path) -> tuple[BudgetPolicy, LedgerSnapshot]:
    """The workspace policy and the ledger's records, read under the shared lock."""
    ctx = open_context(root, need_secret=False)
    try:
        entries = tuple(ctx.ledger.entries())
        publications = ctx.ledger.publications()
        refusals = tuple(ctx.ledger.refusals())
        policies = tuple(ctx.ledger.policies())
        agreements = tuple(ctx.ledger.agreements())
    except (duckdb.Error, InternalError, MobilityError) as err:
        problem = fail(
            "ledger",
            str(ctx.workspace.ledger),
            f"the ledger cannot be read as a ledger ({err}); it is damaged or was altered "
            "outside this program. Restore it from a backup.",
        )
        return ctx.policy, LedgerSnapshot((), (), problem=problem)
    links = tuple(chain_links(entries, publications, refusals, policies, agreements))
    return ctx.policy, LedgerSnapshot(entries, refusals, policies, links, agreements=agreements)


def verify_workspace(root: Path | str, *, expected_head: str | None = None) -> VerifyReport:
    """Run every check of ``audit verify`` on the workspace at ``root`` (a copy will do).

    ``expected_head`` is a record hash (or a prefix of at least 12 hex digits) noted from an
    earlier audit; the ledger must still hold it.
    """
    root = Path(root).expanduser().resolve()
    dirs = scan_release_dirs(root)  # before the ledger: see aggregation.audit.files
    policy, snapshot = read_snapshot(root)
    entries = snapshot.entries
    findings: list[Finding] = [snapshot.problem] if snapshot.problem else []
    findings += check_chain(snapshot.links, entries)
    findings += check_head(snapshot.links, expected_head)
    findings += check_files(root, entries, dirs)
    findings += check_leftovers(root, entries)
    findings += check_costs(entries)
    findings += check_sensitivities(entries)
    recorded, policy_findings = recorded_policy(policy, snapshot.policies)
    findings += policy_findings
    findings += check_caps(snapshot.policies, policy, entries)
    findings += check_refusals(snapshot.policies, policy, entries, snapshot.refusals)
    findings += check_agreements(snapshot.agreements, entries)
    return VerifyReport(root, recorded, snapshot, count_outputs(entries), tuple(findings))
