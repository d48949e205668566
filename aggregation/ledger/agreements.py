"""Data-sharing agreements in the ledger: which version is in force, and whether a release fits.

Each version of an agreement is a chained record (:class:`~aggregation.ledger.records.
AgreementRecord`), appended by ``mobility agreement add``; the version in force for an id is the
one registered last. A release made under an agreement names it in its parameters
(``agreement``: the id, ``agreement_version``: the version in force when it was planned), so
both enter its release key and its chained charge.

:func:`agreement_reasons` is the one rule, applied by the ledger inside the charge transaction
(under the writer lock, so an agreement's budget is never overspent under concurrency), by
``explain``, and replayed by ``audit verify`` from the ledger alone. Each reason names the rule
that refused (:data:`RULES`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from schemas.agreement import DEFAULT_SOURCE, Agreement

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from aggregation.ledger.records import AgreementRecord, LedgerEntry

RULES = (
    "version",
    "term",
    "indicator",
    "level",
    "source",
    "k",
    "dates",
    "budget-window",
    "budget-term",
    "recipient",
)
"""The rules a release under an agreement must follow, as refusals name them."""

REASON_PREFIX = "agreement "
"""Every agreement refusal reason starts with this (``agreement ID vN [rule]: …``)."""

_TOLERANCE = 1e-9
"""Relative slack on sums of floating-point ε and δ, as the workspace budget allows."""


@functools.lru_cache(maxsize=256)
def agreement_of(record: AgreementRecord) -> Agreement:
    """The :class:`Agreement` a record states (checked against the schema once per record)."""
    return Agreement.from_mapping(record.agreement, source=f"ledger agreement seq {record.seq}")


def named_in(parameters: Mapping[str, object]) -> tuple[str, int] | None:
    """The agreement id and version a release's parameters name, if any."""
    name, version = parameters.get("agreement"), parameters.get("agreement_version")
    if isinstance(name, str) and isinstance(version, int):
        return name, version
    return None


def latest(
    records: Iterable[AgreementRecord], before_seq: int | None = None
) -> dict[str, AgreementRecord]:
    """The version in force of every agreement id (registered last, before ``before_seq``)."""
    found: dict[str, AgreementRecord] = {}
    for record in sorted(records, key=lambda r: r.seq):
        if before_seq is None or record.seq < before_seq:
            found[record.agreement_id] = record
    return found


@dataclass(frozen=True, slots=True)
class Spend:
    """What was charged under one agreement: per accounting window, and over its term."""

    releases: int
    epsilon_by_window: dict[date, float]
    delta_by_window: dict[date, float]

    @property
    def epsilon_term(self) -> float:
        """ε summed over every window (a release reading m windows counts m times)."""
        return sum(self.epsilon_by_window.values())

    @property
    def delta_term(self) -> float:
        """δ summed likewise."""
        return sum(self.delta_by_window.values())


def spend_of(agreement_id: str, entries: Iterable[LedgerEntry]) -> Spend:
    """The spend of ``entries`` made under ``agreement_id`` (any version)."""
    eps: dict[date, float] = {}
    dlt: dict[date, float] = {}
    n = 0
    for entry in entries:
        named = named_in(entry.parameters)
        if named is None or named[0] != agreement_id:
            continue
        n += 1
        for window in entry.windows:
            eps[window] = eps.get(window, 0.0) + entry.epsilon
            dlt[window] = dlt.get(window, 0.0) + entry.delta
    return Spend(n, dict(sorted(eps.items())), dict(sorted(dlt.items())))


def _periods(parameters: Mapping[str, object]) -> list[tuple[date, date]]:
    """The days of data a release reads, as its parameters state them."""
    found = []
    for name in ("days", "home_period", "previous_home_period"):
        value = parameters.get(name)
        if isinstance(value, str):
            first, _, last = value.partition("..")
            found.append((date.fromisoformat(first), date.fromisoformat(last or first)))
    return found


def _over(spent: float, cap: float) -> bool:
    return spent > cap * (1 + _TOLERANCE) + 1e-15


def agreement_reasons(
    record: AgreementRecord,
    *,
    indicator: str,
    parameters: Mapping[str, object],
    windows: Sequence[date],
    epsilon: float,
    delta: float,
    earlier: Iterable[LedgerEntry],
    today: date,
) -> list[str]:
    """Why a release (``indicator``, ``parameters``, ``windows``, cost) may not be made under
    the agreement version ``record`` on ``today``, given the ``earlier`` charges; empty if it
    may. Each reason reads ``agreement ID vN [rule]: what, and how to fix it``."""
    a = agreement_of(record)
    head = f"{REASON_PREFIX}{a.label}"
    reasons: list[str] = []

    def refuse(rule: str, text: str) -> None:
        reasons.append(f"{head} [{rule}]: {text}")

    named = named_in(parameters)
    if named is not None and named[1] != a.version:
        refuse(
            "version",
            f"the release was planned under version {named[1]}, but version "
            f"{a.version} is in force: ask again (it is planned under the version in force)",
        )
    if today < a.start:
        refuse("term", f"not in force before {a.start} (today is {today})")
    if today > a.end:
        refuse(
            "term",
            f"expired on {a.end} (today is {today}): register a new version with "
            "a later end date to release under it again",
        )
    if indicator not in a.indicators:
        refuse(
            "indicator",
            f"{indicator} is not among the indicators it allows ({', '.join(a.indicators)})",
        )
    level = parameters.get("level")
    if level not in a.levels:
        refuse("level", f"level {level} is not among the levels it allows ({', '.join(a.levels)})")
    source = parameters.get("source", DEFAULT_SOURCE)
    if source not in a.sources:
        refuse(
            "source", f"source {source} is not among the sources it allows ({', '.join(a.sources)})"
        )
    k = parameters.get("k")
    if not isinstance(k, int) or k < a.min_k:
        refuse("k", f"k={k} is below its minimum k={a.min_k}: ask for --k {a.min_k} or more")
    for first, last in _periods(parameters):
        if (a.data_from and first < a.data_from) or (a.data_to and last > a.data_to):
            refuse(
                "dates",
                f"the release reads data of {first}..{last}, outside the days it "
                f"covers ({a.data_from or 'any'}..{a.data_to or 'any'})",
            )
            break
    spend = spend_of(a.agreement_id, earlier)
    over = [
        w for w in windows
        if _over(spend.epsilon_by_window.get(w, 0.0) + epsilon, a.epsilon_per_window)
        or _over(spend.delta_by_window.get(w, 0.0) + delta, a.delta_per_window)
    ]  # fmt: skip
    if over:
        w = over[0]
        refuse(
            "budget-window",
            f"window {w} has ε {spend.epsilon_by_window.get(w, 0.0):g} "
            f"spent of {a.epsilon_per_window:g} (δ {spend.delta_by_window.get(w, 0.0):g} of "
            f"{a.delta_per_window:g}); this release costs ε {epsilon:g}, δ {delta:g}"
            + (f" ({len(over)} windows would be over)" if len(over) > 1 else ""),
        )
    m = len(windows)
    if _over(spend.epsilon_term + m * epsilon, a.epsilon_term) or _over(
        spend.delta_term + m * delta, a.delta_term
    ):
        refuse(
            "budget-term",
            f"ε {spend.epsilon_term:g} of {a.epsilon_term:g} (δ "
            f"{spend.delta_term:g} of {a.delta_term:g}) is spent over its term; this release "
            f"costs ε {m * epsilon:g}, δ {m * delta:g} over its {m} window(s)",
        )
    return reasons


def recipient_reason(
    record: AgreementRecord, *, token_id: str, role: str, bound: Sequence[str]
) -> str | None:
    """Why the API token ``token_id`` (``role``, bound to the agreements ``bound``) may not
    receive releases made under ``record``; None if it may."""
    a = agreement_of(record)
    head = f"{REASON_PREFIX}{a.label} [recipient]"
    if a.agreement_id not in bound:
        return (
            f"{head}: token {token_id} is not bound to it (bound to: "
            f"{', '.join(bound) or 'none'}); create a token with --agreement {a.agreement_id}"
        )
    if role not in a.roles:
        return f"{head}: role {role} is not among its recipients ({', '.join(a.roles)})"
    if a.tokens and token_id not in a.tokens:
        return f"{head}: token {token_id} is not among the tokens it names"
    return None
