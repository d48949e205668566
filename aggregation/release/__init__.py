"""Privatise, suppress, publish: turning an exact bounded aggregate into a paid-for release.

Modules:
    context   -- :class:`ReleaseContext`: a workspace's policy, ledger, zones and bounding key.
    plan      -- :func:`plan_release` and :func:`explain`: sensitivity, noise, cost, budget left,
                 before any data are touched.
    suppress  -- the publication rule: k and the reliability bar (reliability × ci95), applied to
                 noisy values only (post-processing).
    margins   -- totals of every noisy cell, taken before suppression (unbiased; no budget).
    consistency -- nested levels made to add up: weighted least squares on the zone tree, then
                 non-negative whole numbers (post-processing).
    publish   -- release files written aside, hashed, then moved into place atomically; the
                 complete files an interrupted run left, recovered.
    run       -- :func:`release`: the whole sequence, charged before publication, idempotent,
                 finishing an interrupted run of the same question under its one charge.
    checkpoints -- named steps of a release where the crash tests kill the process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregation.release.context import ReleaseContext, open_context
    from aggregation.release.plan import Explanation, ReleasePlan, explain, plan_release
    from aggregation.release.run import ReleaseOutcome, release, stored_release

__all__ = [
    "Explanation",
    "ReleaseContext",
    "ReleaseOutcome",
    "ReleasePlan",
    "explain",
    "open_context",
    "plan_release",
    "release",
    "stored_release",
]

# Imported on first use: an export reads the ledger and release files through ``context`` and
# ``publish`` and must not load OpenDP (``plan``) or the aggregation queries (``run``).
_HOME = {
    "Explanation": "plan", "ReleasePlan": "plan", "explain": "plan", "plan_release": "plan",
    "ReleaseContext": "context", "open_context": "context",
    "ReleaseOutcome": "run", "release": "run", "stored_release": "run",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Import the module defining ``name`` on first use."""
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
