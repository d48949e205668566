"""A read-only summary of the privacy ledger, for auditors (API ``GET /v1/ledger/summary``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aggregation.ledger.policies import policy_of

if TYPE_CHECKING:
    from aggregation.ledger import LedgerEntry
    from aggregation.release import ReleaseContext


def entry_summary(entry: LedgerEntry) -> dict[str, Any]:
    """One ledger entry as JSON (what it charged, for what, and what came out)."""
    return {
        "seq": entry.seq,
        "entry_id": entry.entry_id,
        "indicator": entry.indicator,
        "parameters": dict(entry.parameters),
        "privacy_unit": entry.privacy_unit,
        "windows": [str(w) for w in entry.windows],
        "composition": entry.composition,
        "mechanism": entry.mechanism,
        "sensitivity": {"l1": entry.l1, "l2": entry.l2, "linf": entry.linf},
        "scale": entry.scale,
        "epsilon": entry.epsilon,
        "delta": entry.delta,
        "rho": entry.rho,
        "k_threshold": entry.k_threshold,
        "cells_released": entry.cells_released,
        "cells_suppressed": entry.cells_suppressed,
        "outputs": [{"path": o.path, "sha256": o.sha256} for o in entry.outputs],
        "input_fingerprint": entry.input_fingerprint,
        "inputs": [{"path": i.path, "sha256": i.sha256} for i in entry.inputs],
        "status": entry.status,
        "created_at": entry.created_at.isoformat(),
        "published_at": entry.published_at.isoformat() if entry.published_at else None,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "publication_hash": entry.publication.record_hash if entry.publication else None,
    }


def ledger_summary(ctx: ReleaseContext) -> dict[str, Any]:
    """Policy (the one the ledger recorded last), counts and spend per accounting window.
    Reads the ledger; writes nothing."""
    ledger = ctx.ledger
    entries = ledger.entries()
    refusals = ledger.refusals()
    head = ledger.head()
    records = ledger.policies()
    policy = policy_of(records[-1]) if records else ctx.policy
    return {
        "ledger": ctx.workspace.ledger.relative_to(ctx.workspace.root).as_posix(),
        "policy_source": "ledger" if records else "mobility.toml",
        "policy_differs_from_mobility_toml": policy != ctx.policy,
        "policy": {
            "composition": policy.composition,
            "accounting_window": policy.accounting_window,
            "epsilon_per_window": policy.epsilon_per_window,
            "delta_per_window": policy.delta_per_window,
            "rolling_days": policy.rolling_days,
            "epsilon_rolling": policy.epsilon_rolling,
        },
        "entries": len(entries),
        "published": sum(e.status == "published" for e in entries),
        "pending": sum(e.status == "pending" for e in entries),
        "refusals": len(refusals),
        "head_hash": head.record_hash if head is not None else None,
        "windows": [
            {
                "window": str(b.window),
                "releases": b.releases,
                "epsilon_spent": b.epsilon_spent,
                "epsilon_cap": b.epsilon_cap,
                "epsilon_left": b.epsilon_left,
                "delta_spent": b.delta_spent,
                "delta_left": b.delta_left,
            }
            for b in ledger.window_budgets()
        ],
    }
