"""Auditor tooling: verify the privacy ledger, report the spend, test the noise of a release.

Checks an auditor can run without trusting the pipeline (``mobility audit …`` on the command
line). Modules:

    verify        -- :func:`verify_workspace`: runs every check below on a workspace (or a copy).
    findings      -- :class:`Finding`: what failed (or is worth a look), where, and the fix.
    chain         -- the hash chain and an optional head recorded earlier.
    files         -- published files against their recorded SHA-256; directories without entry.
    costs         -- ε, δ, ρ recomputed with OpenDP from mechanism, sensitivity and scale.
    rebuild       -- the release question rebuilt from an entry; sensitivity, windows and k.
    caps          -- replay of the budget: every window and rolling span within its cap.
    spend         -- spend and budget left per window, rolling span and indicator.
    timeline      -- the budget timeline PNG (matplotlib, Agg).
    report        -- :func:`build_report` / :func:`write_report`: HTML, PNG and JSON report.
    noise_models  -- the discrete Laplace and Gaussian as log-probabilities at any scale.
    residuals     -- likelihood-ratio and randomised-PIT tests of noise under suppression.
    noise         -- :func:`audit_noise`: recompute exact aggregates and test one release.
"""

from aggregation.audit.findings import Finding
from aggregation.audit.noise import NoiseAudit, audit_noise
from aggregation.audit.report import AuditReport, ReportFiles, build_report, write_report
from aggregation.audit.residuals import DEFAULT_ALPHA
from aggregation.audit.verify import VerifyReport, verify_workspace

__all__ = [
    "DEFAULT_ALPHA",
    "AuditReport",
    "Finding",
    "NoiseAudit",
    "ReportFiles",
    "VerifyReport",
    "audit_noise",
    "build_report",
    "verify_workspace",
    "write_report",
]
