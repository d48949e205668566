"""Rebuild the question a ledger entry answered, and check the sensitivity and windows it states.

Every entry records the parameters of its :class:`~schemas.release.ReleaseSpec` (level, value
column, days, home periods, contribution bounds, k, mechanism, confidence). From them alone the
spec is rebuilt (:func:`rebuild_spec`), and with it what the indicator catalogue derives from the
bounds: the declared sensitivity and the accounting windows the release reads. An entry whose
sensitivity is below the derived one drew too little noise for its bounds; an entry charging
fewer windows than it read under-spent the budget.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from aggregation.audit.findings import entry_label, fail, warn
from aggregation.indicators import definition
from aggregation.ledger import canonical_json
from schemas.errors import MobilityError
from schemas.gps import StayRule
from schemas.indicators import ContributionBounds, Indicator, Period
from schemas.indicators import spec as indicator_spec
from schemas.privacy import PrivacyCost, windows_of
from schemas.release import ReleaseSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.audit.findings import Finding
    from aggregation.ledger import LedgerEntry
    from schemas.privacy import AccountingWindow, Sensitivity

_PERIODS = ("days", "home_period", "previous_home_period")
"""Parameters that are periods written as text; the rest are :class:`ReleaseSpec` fields."""

_SHOWN = 5
"""How many days a finding lists before it abbreviates."""


class RebuildError(MobilityError):
    """A ledger entry's parameters do not describe a release this code can rebuild."""


def _period(value: object, name: str) -> Period | None:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD`` as written by ``ReleaseSpec.parameters``."""
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"parameter {name} should be a period like 2026-03-02..2026-03-08; got {value!r}"
        raise RebuildError(msg)
    try:
        return Period.parse(value)
    except ValueError as err:
        msg = f"parameter {name}={value!r} is not a period ({err})"
        raise RebuildError(msg) from None


def _bounds(value: object) -> ContributionBounds:
    if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
        msg = f"parameter bounds should map bound names to whole numbers; got {value!r}"
        raise RebuildError(msg)
    try:
        return ContributionBounds(**{str(k): int(v) for k, v in value.items()})
    except TypeError as err:
        raise RebuildError(f"parameter bounds={value!r}: {err}") from None


def _stay_rule(value: object) -> StayRule:
    if not isinstance(value, dict):
        msg = f"parameter stay_rule should map the [gps] settings to numbers; got {value!r}"
        raise RebuildError(msg)
    try:
        return StayRule.from_mapping(value, "the entry's stay_rule")
    except MobilityError as err:
        raise RebuildError(str(err)) from None


def rebuild_spec(entry: LedgerEntry) -> ReleaseSpec:
    """The :class:`ReleaseSpec` whose ``parameters()`` agree with ``entry.parameters``.

    Every recorded parameter must come back unchanged; parameters this code has and the entry
    lacks (options added since the release) take their defaults, which is what the older code
    did. ``epsilon`` is the indicator's ε as the release asked it (the whole of which the
    entry's ε is its value column's share, :meth:`~schemas.indicators.IndicatorSpec.epsilon_share`).
    Raises :class:`RebuildError` when that is impossible.
    """
    recorded = dict(entry.parameters)
    unknown = sorted(set(recorded) - set(_PERIODS) - set(ReleaseSpec.__dataclass_fields__))
    if unknown:
        msg = (
            f"{entry_label(entry)} records the parameters {unknown}, unknown to this code; audit "
            f"it with the code that made it ({entry.code_version})"
        )
        raise RebuildError(msg)
    passed: dict[str, Any] = {
        k: v for k, v in recorded.items() if k not in _PERIODS and k != "bounds"
    }
    if "stay_rule" in passed:  # GPS releases: the stay rule they were computed with
        passed["stay_rule"] = _stay_rule(passed["stay_rule"])
    try:
        indicator = Indicator(entry.indicator)
        days = _period(recorded.get("days"), "days")
        home = _period(recorded.get("home_period"), "home_period")
        previous = _period(recorded.get("previous_home_period"), "previous_home_period")
        released = days or home
        if released is None:
            msg = "parameters name neither release days nor a home period"
            raise RebuildError(msg)
        catalogue = indicator_spec(indicator)
        value = passed.get("value") or catalogue.value_columns[0]
        asked = PrivacyCost(epsilon=entry.epsilon).whole(catalogue.epsilon_share(str(value)))
        # A release recorded before the reliability bar existed had none (k alone).
        passed.setdefault("reliability", 0.0)
        # ... and one recorded before DP totals existed spent nothing on them.
        passed.setdefault("totals_share", 0.0)
        spec = ReleaseSpec(
            indicator=indicator,
            start=released.start,
            end=released.end,
            epsilon=asked.epsilon,
            bounds=_bounds(recorded.get("bounds", {})),
            baseline_start=previous.start if previous else None,
            baseline_end=previous.end if previous else None,
            **passed,
        )
        rebuilt = spec.parameters()
    except (MobilityError, ValueError, TypeError) as err:
        msg = f"cannot rebuild the release of {entry_label(entry)} from its parameters: {err}"
        raise RebuildError(msg) from None
    differ = sorted(
        k for k in recorded if canonical_json(rebuilt.get(k)) != canonical_json(recorded[k])
    )
    if differ:
        msg = (
            f"the parameters {differ} of {entry_label(entry)} are not those of any release this "
            f"code makes (recorded {[recorded[k] for k in differ]}, rebuilt "
            f"{[rebuilt.get(k) for k in differ]})"
        )
        raise RebuildError(msg)
    return spec


def accounting_window(entry: LedgerEntry) -> AccountingWindow:
    """The accounting window of the entry's privacy unit (``subscriber-day`` → ``day``)."""
    try:
        return entry.unit.window
    except ValueError as err:
        raise RebuildError(f"{entry_label(entry)} records a {err}") from None


def _compare_sensitivity(entry: LedgerEntry, declared: Sensitivity) -> list[Finding]:
    recorded = {"l1": float(entry.l1), "l2": entry.l2, "linf": float(entry.linf)}
    derived = {"l1": float(declared.l1), "l2": float(declared.l2), "linf": float(declared.linf)}
    differ = [n for n in derived if not math.isclose(recorded[n], derived[n])]
    low = [n for n in differ if recorded[n] < derived[n]]
    high = [n for n in differ if recorded[n] > derived[n]]
    where, bounds = entry_label(entry), entry.parameters.get("bounds")
    findings: list[Finding] = []
    if low:
        text = ", ".join(f"{n}={recorded[n]:g} < {derived[n]:g}" for n in low)
        findings.append(
            fail(
                "sensitivity",
                where,
                f"recorded sensitivity below what its bounds {bounds} imply ({text}): its noise "
                "was sized for a smaller change than one privacy unit can make.",
            )
        )
    if high:
        text = ", ".join(f"{n}={recorded[n]:g} > {derived[n]:g}" for n in high)
        findings.append(
            warn("sensitivity", where, f"recorded sensitivity above the derived one ({text}).")
        )
    return findings


def _check_entry(entry: LedgerEntry) -> list[Finding]:
    where = entry_label(entry)
    spec = rebuild_spec(entry)
    scope, window = spec.scope(), accounting_window(entry)
    ind = definition(spec.indicator)
    sensitivities = ind.sensitivities(spec.bounds, scope, window)
    declared = sensitivities[spec.value_column]
    findings = _compare_sensitivity(entry, declared)
    if entry.l0 is not None:
        keys = min(ind.max_keys(spec.bounds, scope, window), declared.l1)
        if entry.l0 < keys:
            text = (
                f"partition selection with l0={entry.l0}, but one privacy unit can touch {keys} "
                "keys under its bounds: its δ was computed for too few keys."
            )
            findings.append(fail("sensitivity", where, text))
    read = set(windows_of(scope.days_read(), window))
    unpaid = sorted(read - set(entry.windows))
    if unpaid:
        shown = ", ".join(str(d) for d in unpaid[:_SHOWN]) + (" …" if len(unpaid) > _SHOWN else "")
        findings.append(
            fail(
                "sensitivity",
                where,
                f"the release read {len(read)} {window} window(s) but charged only "
                f"{len(entry.windows)}: the {window}s starting {shown} were read and not charged.",
            )
        )
    stray = sorted(set(entry.windows) - read)
    if stray:
        findings.append(
            fail(
                "sensitivity",
                where,
                f"charged {', '.join(str(d) for d in stray[:_SHOWN])}, which are not the first "
                f"days of {window} windows it read: its spend is booked to windows the caps do "
                "not recognise.",
            )
        )
    if entry.k_threshold != spec.k:
        text = f"k_threshold {entry.k_threshold} differs from the parameter k={spec.k}."
        findings.append(fail("sensitivity", where, text))
    return findings


def check_sensitivities(entries: Sequence[LedgerEntry]) -> list[Finding]:
    """Findings where an entry's sensitivity, windows or k disagree with its parameters."""
    findings: list[Finding] = []
    for entry in entries:
        try:
            findings.extend(_check_entry(entry))
        except RebuildError as err:
            findings.append(fail("sensitivity", entry_label(entry), str(err)))
    return findings
