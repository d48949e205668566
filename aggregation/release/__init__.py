"""Privatise, suppress, publish: turning an exact bounded aggregate into a paid-for release.

Modules:
    context   -- :class:`ReleaseContext`: a workspace's policy, ledger, zones and bounding key.
    plan      -- :func:`plan_release` and :func:`explain`: sensitivity, noise, cost, budget left,
                 before any data are touched.
    suppress  -- the k-threshold, applied to noisy values only (post-processing).
    publish   -- release files written aside, hashed, then moved into place atomically; the
                 complete files an interrupted run left, recovered.
    run       -- :func:`release`: the whole sequence, charged before publication, idempotent,
                 finishing an interrupted run of the same question under its one charge.
    checkpoints -- named steps of a release where the crash tests kill the process.
"""

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
