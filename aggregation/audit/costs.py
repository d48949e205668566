"""Recompute every entry's ε, δ and ρ with OpenDP, from its recorded mechanism, sensitivity and
scale, and compare them with what the ledger charged.

The measurements are built here from the recorded numbers alone (the same OpenDP constructors and
spaces as :mod:`aggregation.mechanisms`: 64-bit integer vectors, ``l1_distance`` for the discrete
Laplace, ``l2_distance`` for the discrete Gaussian, ``l01inf``/``l02inf`` maps for partition
selection), so a cost that was typed in rather than taken from a privacy map shows up:

- recorded cost *below* the recomputed one: the release was under-charged → ``fail``;
- recorded cost *above* it by more than rounding: over-charged, safe but inexact → ``warn``.

A release that spent a share of its ε on DP totals (:mod:`aggregation.release.totals`) is
charged the sum of both measurements' costs; the totals' part is recomputed by
:func:`_with_totals`.

Cost of a Gaussian stated as (ε, δ)-DP: ε is OpenDP's zCDP → approximate-DP conversion evaluated
at the δ the entry records (for partition selection, at that δ minus the threshold's zCDP δ).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import opendp.prelude as dp

from aggregation.audit.findings import entry_label, fail, warn
from aggregation.mechanisms import CONFIDENCE, plan_vector
from aggregation.release.totals import totals_sensitivity
from schemas.privacy import PrivacyCost, Sensitivity

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.audit.findings import Finding
    from aggregation.ledger import LedgerEntry
    from schemas.privacy import NoiseSpec

RELATIVE_TOLERANCE = 1e-9
"""Recorded and recomputed costs may differ by this much (relative) before a finding is made:
the float rounding of a different OpenDP build, never a privacy-relevant amount."""

_INT = "i64"


def _map(measurement: dp.Measurement, d_in: object) -> Any:
    # opendp 0.16 ships Measurement.map without annotations; the result depends on the measure.
    return measurement.map(d_in)  # type: ignore[no-untyped-call]


def _vector_laplace(scale: float) -> dp.Measurement:
    space = dp.vector_domain(dp.atom_domain(T=_INT)), dp.l1_distance(T=_INT)
    return dp.m.make_laplace(*space, scale=scale)


def _vector_gaussian(scale: float) -> dp.Measurement:
    space = dp.vector_domain(dp.atom_domain(T=_INT)), dp.l2_distance(T=float)
    return dp.m.make_gaussian(*space, scale=scale)


def _threshold_laplace(scale: float, threshold: int) -> dp.Measurement:
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=_INT))
    metric = dp.l01inf_distance(dp.absolute_distance(T=_INT))
    return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


def _threshold_gaussian(scale: float, threshold: int) -> dp.Measurement:
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=_INT))
    metric = dp.l02inf_distance(dp.absolute_distance(T=float))
    return dp.m.make_gaussian_threshold(domain, metric, scale=scale, threshold=threshold)


def _epsilon_at(measurement: dp.Measurement, d_in: object, delta: float) -> float:
    mapped = _map(dp.c.make_zCDP_to_approxDP(measurement), d_in)
    profile = mapped[0] if isinstance(mapped, tuple) else mapped
    return float(profile.epsilon(delta))


def recompute_cost(entry: LedgerEntry) -> PrivacyCost:
    """The cost OpenDP's privacy map gives for ``entry``'s mechanism, sensitivity and scale.

    Raises ``ValueError`` for an unknown mechanism and OpenDP's errors for impossible numbers
    (e.g. a negative scale).
    """
    dp.enable_features("contrib")
    if entry.partition_threshold is None:
        if entry.mechanism == "discrete_laplace":
            meas = _vector_laplace(entry.scale)
            epsilon = float(_map(meas, entry.l1))
            rho = float(_map(dp.c.make_pureDP_to_zCDP(meas), entry.l1))
            cells = PrivacyCost(epsilon=epsilon, delta=0.0, rho=rho)
            return _with_totals(entry, cells)
        if entry.mechanism == "discrete_gaussian":
            meas = _vector_gaussian(entry.scale)
            rho = float(_map(meas, float(entry.l2)))
            epsilon = _epsilon_at(meas, float(entry.l2), entry.delta)
            return PrivacyCost(epsilon=epsilon, delta=entry.delta, rho=rho)
    else:
        keys = entry.l0 if entry.l0 is not None else entry.l1
        if entry.mechanism == "discrete_laplace":
            meas = _threshold_laplace(entry.scale, entry.partition_threshold)
            epsilon, delta = _map(meas, (keys, entry.l1, entry.linf))
            return PrivacyCost(epsilon=float(epsilon), delta=float(delta))
        if entry.mechanism == "discrete_gaussian":
            meas = _threshold_gaussian(entry.scale, entry.partition_threshold)
            d_in = (keys, float(entry.l2), float(entry.linf))
            rho, zcdp_delta = (float(v) for v in _map(meas, d_in))
            epsilon = _epsilon_at(meas, d_in, entry.delta - zcdp_delta)
            return PrivacyCost(epsilon=epsilon, delta=entry.delta, rho=rho, zcdp_delta=zcdp_delta)
    msg = f"unknown mechanism {entry.mechanism!r}"
    raise ValueError(msg)


def _with_totals(entry: LedgerEntry, cells: PrivacyCost) -> PrivacyCost:
    """``cells`` plus the cost of the entry's DP totals, if it spent a share of its ε on them
    (parameter ``totals_share``; :mod:`aggregation.release.totals`; rebuilt by
    :func:`totals_noise`), added by basic composition."""
    totals = totals_noise(entry, cells_epsilon=cells.epsilon)
    return cells if totals is None else cells + totals.cost


def totals_noise(entry: LedgerEntry, *, cells_epsilon: float | None = None) -> NoiseSpec | None:
    """The noise of the entry's DP totals as the release built it (None when its parameters
    spend no share on them, or for a mechanism without DP totals): the totals' measurement is
    rebuilt for that share of the release's ε (the cells' ε, ``cells_epsilon`` or OpenDP's map
    at their recorded scale, divided by ``1 - share``: the recorded ε, which is what is
    checked, is not used) and the sensitivity the cells' l1 implies, at the entry's
    confidence. Raises ``ValueError`` for a share that is not a number."""
    share = entry.parameters.get("totals_share")
    if not share or entry.mechanism != "discrete_laplace" or entry.partition_threshold is not None:
        return None
    if not isinstance(share, int | float) or isinstance(share, bool):
        msg = f"parameter totals_share should be a number; got {share!r}"
        raise ValueError(msg)
    if cells_epsilon is None:
        dp.enable_features("contrib")
        cells_epsilon = float(_map(_vector_laplace(entry.scale), entry.l1))
    confidence = entry.parameters.get("confidence", CONFIDENCE)
    if not isinstance(confidence, int | float) or isinstance(confidence, bool):
        msg = f"parameter confidence should be a number; got {confidence!r}"
        raise ValueError(msg)
    cells_sensitivity = Sensitivity(l1=entry.l1, l2=float(entry.l2), linf=entry.linf)
    released = PrivacyCost(epsilon=cells_epsilon).whole(1.0 - float(share))
    _, target = released.split(float(share))
    return plan_vector(
        "discrete_laplace", totals_sensitivity(cells_sensitivity), epsilon=target.epsilon,
        confidence=float(confidence),
    ).spec  # fmt: skip


def _compare(name: str, recorded: float | None, recomputed: float | None) -> tuple[str, int]:
    """(text, sign): sign 1 when under-charged, -1 when over-charged, 0 when they agree."""
    if recomputed is None:
        return "", 0
    if recorded is None:
        return f"{name} is not recorded but OpenDP gives {recomputed!r}", 1
    slack = RELATIVE_TOLERANCE * max(abs(recorded), abs(recomputed)) + 1e-300
    if math.isclose(recorded, recomputed, rel_tol=0.0, abs_tol=slack):
        return "", 0
    sign = 1 if recomputed > recorded else -1
    return f"recorded {name}={recorded!r}, OpenDP gives {name}={recomputed!r}", sign


def check_costs(entries: Sequence[LedgerEntry]) -> list[Finding]:
    """Findings where a recorded cost is not what OpenDP's map returns for the entry."""
    findings: list[Finding] = []
    for entry in entries:
        where = entry_label(entry)
        try:
            cost = recompute_cost(entry)
        except (ValueError, dp.OpenDPException) as err:
            findings.append(
                fail(
                    "cost",
                    where,
                    f"OpenDP cannot build {entry.mechanism} at scale {entry.scale!r} with "
                    f"sensitivity l1={entry.l1}, l2={entry.l2}, linf={entry.linf} ({err}); the "
                    "recorded noise is impossible, so its charge cannot be checked.",
                )
            )
            continue
        compared = [
            _compare("ε", entry.epsilon, cost.epsilon),
            _compare("δ", entry.delta, cost.delta),
            _compare("ρ", entry.rho, cost.rho),
            _compare("zCDP δ", entry.zcdp_delta, cost.zcdp_delta),
        ]
        under = [text for text, sign in compared if sign > 0]
        over = [text for text, sign in compared if sign < 0]
        noise = f"{entry.mechanism} scale {entry.scale!r}, l1={entry.l1}, l2={entry.l2}"
        if under:
            findings.append(
                fail(
                    "cost",
                    where,
                    f"under-charged: {'; '.join(under)} for {noise}. The entry states less "
                    "privacy loss than its noise gives: it was edited, or written by a program "
                    "that does not take costs from OpenDP's privacy map.",
                )
            )
        if over:
            findings.append(
                warn(
                    "cost",
                    where,
                    f"over-charged: {'; '.join(over)} for {noise}. Safe (more budget was spent "
                    "than needed) but the record is inexact.",
                )
            )
    return findings
