"""Budget accounting: what each accounting window and rolling span has spent, and what is left.

Pure functions over :class:`Charge` records (the windows a release reads and its
:class:`~schemas.privacy.PrivacyCost`); :mod:`aggregation.ledger` feeds them the charges it has
stored. The rules, which an auditor can recompute by hand from the ledger:

*Per window* (every accounting window a release reads is charged the release's full cost):

- ``basic`` composition: the window's ε is the sum of the ε of the releases that read it, its δ
  the sum of their δ; both must stay within ``epsilon_per_window`` and ``delta_per_window``.
- ``zcdp`` composition: the window's ρ is the sum of their ρ and its δ the sum of their zCDP δ
  (approximate zCDP). The window is within budget when its δ is below ``delta_per_window`` and
  ρ + 2·sqrt(ρ·ln(1/δ')) <= ``epsilon_per_window`` with δ' = ``delta_per_window`` minus the
  window's δ (the ρ-zCDP → (ε, δ')-DP conversion of Bun & Steinke 2016, Prop. 1.3).

*Rolling spans* (``rolling_days`` consecutive days, any span containing a window of the release):
a subscriber's data in the span form a group of m privacy units for a release reading m of its
windows, so by group privacy the release costs m·ε there (pure DP) or m²·ρ (zCDP). The span's
ε is the sum of m·ε over releases (``basic``; equal to the sum of the per-window ε of the windows
in the span), or, under ``zcdp``, the ε of the summed m²·ρ converted at δ = ``delta_per_window``.
It must stay within ``epsilon_rolling``. The δ of the group guarantee grows too: a release
reading m windows of the span is (m·ε, m·e^((m-1)·ε)·δ)-DP there (group privacy), so the span's
δ is the sum of m·e^((m-1)·ε)·δ over releases (δ: the release's δ under ``basic``, its zCDP δ
under ``zcdp``) and must stay within ``delta_rolling``. Windows are identified by their first
day.

Sums are :func:`math.fsum` (correctly rounded, independent of order) compared with ``<=``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from schemas.budget_policy import BudgetPolicy
    from schemas.privacy import Composition, PrivacyCost

MAX_REASONS_SHOWN = 3
"""How many violated windows a refusal message spells out before summarising the rest."""


@dataclass(frozen=True, slots=True)
class Charge:
    """One release as the budget sees it: the accounting windows it reads and its cost."""

    windows: tuple[date, ...]
    cost: PrivacyCost

    def __post_init__(self) -> None:
        if not self.windows:
            msg = "A charge must read at least one accounting window; got none."
            raise ValueError(msg)
        if len(set(self.windows)) != len(self.windows):
            msg = f"A charge lists each window once; got duplicates in {sorted(self.windows)}."
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class WindowBudget:
    """Spend, cap and what is left for one accounting window.

    Under ``basic`` composition ``rho_spent`` and ``rho_left`` are None. Under ``zcdp``
    ``epsilon_spent`` is the ε that the window's ρ and δ amount to (see the module docstring),
    and ``delta_spent`` is the sum of the zCDP δ.
    """

    window: date
    composition: Composition
    releases: int
    epsilon_spent: float
    delta_spent: float
    rho_spent: float | None
    epsilon_cap: float
    delta_cap: float
    epsilon_left: float
    delta_left: float
    rho_left: float | None


@dataclass(frozen=True, slots=True)
class RollingBudget:
    """Spend, cap and what is left for the span of ``rolling_days`` days ending on ``end``."""

    start: date
    end: date
    epsilon_spent: float
    epsilon_cap: float
    epsilon_left: float
    delta_spent: float = 0.0
    delta_cap: float = 1.0
    delta_left: float = 1.0


def epsilon_from_rho(rho: float, delta: float) -> float:
    """ε of the (ε, δ)-DP guarantee implied by ρ-zCDP: ρ + 2·sqrt(ρ·ln(1/δ)) (BS16 Prop. 1.3)."""
    if rho == 0:
        return 0.0
    if delta <= 0:
        return math.inf
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest ρ with :func:`epsilon_from_rho` (ρ, δ) <= ε.

    That is (sqrt(ln(1/δ) + ε) - sqrt(ln(1/δ)))², solving ρ + 2·sqrt(ρ·ln(1/δ)) = ε for sqrt(ρ).
    """
    if delta <= 0 or epsilon <= 0:
        return 0.0
    log_term = math.log(1.0 / delta)
    return (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2


def _rho(cost: PrivacyCost) -> float:
    if cost.rho is None:
        msg = (
            f"zcdp composition needs a zCDP cost, but a release costing {cost.describe()} has "
            "none (a discrete-Laplace partition selection is only (ε, δ)-DP). Use the "
            "discrete Gaussian threshold, or set composition = 'basic' in [privacy]."
        )
        raise ConfigurationError(msg)
    return cost.rho


def _reading(charges: Iterable[Charge], window: date) -> list[PrivacyCost]:
    return [c.cost for c in charges if window in c.windows]


def window_budget(policy: BudgetPolicy, charges: Iterable[Charge], window: date) -> WindowBudget:
    """What ``window`` has spent through ``charges``, and what the policy leaves it."""
    costs = _reading(charges, window)
    eps_cap, delta_cap = policy.epsilon_per_window, policy.delta_per_window
    rho: float | None = None
    rho_left: float | None = None
    if policy.composition == "basic":
        eps = math.fsum(c.epsilon for c in costs)
        delta = math.fsum(c.delta for c in costs)
    else:
        rho = math.fsum(_rho(c) for c in costs)
        delta = math.fsum(c.zcdp_delta for c in costs)
        eps = epsilon_from_rho(rho, delta_cap - delta)
        rho_left = max(0.0, rho_for_epsilon(eps_cap, delta_cap - delta) - rho)
    return WindowBudget(
        window=window,
        composition=policy.composition,
        releases=len(costs),
        epsilon_spent=eps,
        delta_spent=delta,
        rho_spent=rho,
        epsilon_cap=eps_cap,
        delta_cap=delta_cap,
        epsilon_left=max(0.0, eps_cap - eps),
        delta_left=max(0.0, delta_cap - delta),
        rho_left=rho_left,
    )


def rolling_budget(policy: BudgetPolicy, charges: Iterable[Charge], end: date) -> RollingBudget:
    """What the span of ``policy.rolling_days`` days ending on ``end`` has spent (group privacy)."""
    start = end - timedelta(days=policy.rolling_days - 1)
    terms: list[float] = []
    deltas: list[float] = []
    for charge in charges:
        inside = sum(1 for w in charge.windows if start <= w <= end)
        if not inside:
            continue
        cost = charge.cost
        if policy.composition == "basic":
            terms.append(inside * cost.epsilon)
            deltas.append(_group_delta(inside, cost.epsilon, cost.delta))
        else:
            terms.append(inside * inside * _rho(cost))
            deltas.append(_group_delta(inside, cost.epsilon, cost.zcdp_delta))
    spent = math.fsum(terms)
    if policy.composition == "zcdp":
        spent = epsilon_from_rho(spent, policy.delta_per_window)
    delta = math.fsum(deltas)
    delta_cap = policy.delta_rolling if policy.delta_rolling is not None else 1.0
    return RollingBudget(
        start=start,
        end=end,
        epsilon_spent=spent,
        epsilon_cap=policy.epsilon_rolling,
        epsilon_left=max(0.0, policy.epsilon_rolling - spent),
        delta_spent=delta,
        delta_cap=delta_cap,
        delta_left=max(0.0, delta_cap - delta),
    )


_MAX_EXPONENT = 700.0
"""Beyond e^700 a float overflows: the group δ is then infinite (and refused)."""


def _group_delta(m: int, epsilon: float, delta: float) -> float:
    """δ of a group of m privacy units for an (ε, δ)-DP release: m·e^((m-1)·ε)·δ."""
    if delta == 0:
        return 0.0
    exponent = (m - 1) * epsilon
    return math.inf if exponent > _MAX_EXPONENT else m * math.exp(exponent) * delta


def _window_reason(before: WindowBudget, after: WindowBudget, cost: PrivacyCost) -> str | None:
    eps_over = after.epsilon_spent > after.epsilon_cap
    delta_over = (
        after.delta_spent > after.delta_cap
        if after.composition == "basic"
        else after.delta_spent >= after.delta_cap
    )
    if not (eps_over or delta_over):
        return None
    day = before.window.isoformat()
    if after.composition == "zcdp":
        return (
            f"window {day}: this release costs ρ={_rho(cost):g} (zCDP δ={cost.zcdp_delta:g}); "
            f"the window has already spent ρ={before.rho_spent:g}, zCDP δ={before.delta_spent:g} "
            f"(ε={before.epsilon_spent:g} at δ'={before.delta_cap - before.delta_spent:g}) of its "
            f"cap ε={before.epsilon_cap:g}, δ={before.delta_cap:g} "
            f"(left: ρ={before.rho_left:g}, ε={before.epsilon_left:g})"
        )
    parts = []
    if eps_over:
        parts.append(
            f"this release costs ε={cost.epsilon:g}; the window has already spent "
            f"ε={before.epsilon_spent:g} of its cap ε={before.epsilon_cap:g} "
            f"(left: ε={before.epsilon_left:g})"
        )
    if delta_over:
        parts.append(
            f"this release costs δ={cost.delta:g}; the window has already spent "
            f"δ={before.delta_spent:g} of its cap δ={before.delta_cap:g} "
            f"(left: δ={before.delta_left:g})"
        )
    return f"window {day}: " + "; ".join(parts)


def _span_ends(policy: BudgetPolicy, windows: Sequence[date]) -> list[date]:
    """Last days of every rolling span that contains at least one of ``windows``."""
    ends = {w + timedelta(days=i) for w in windows for i in range(policy.rolling_days)}
    return sorted(ends)


def _rolling_reason(
    policy: BudgetPolicy, charges: Sequence[Charge], new: Charge
) -> tuple[str, int] | None:
    """The most over-spent rolling span after ``new``, and how many spans are over."""
    worst: tuple[RollingBudget, RollingBudget] | None = None
    over = 0
    with_new = [*charges, new]
    for end in _span_ends(policy, new.windows):
        after = rolling_budget(policy, with_new, end)
        if after.epsilon_spent <= after.epsilon_cap and after.delta_spent <= after.delta_cap:
            continue
        over += 1
        if worst is None or _overspend(after) > _overspend(worst[1]):
            worst = (rolling_budget(policy, charges, end), after)
    if worst is None:
        return None
    before, after = worst
    parts = []
    if after.epsilon_spent > after.epsilon_cap:
        added = after.epsilon_spent - before.epsilon_spent
        parts.append(
            f"this release adds ε={added:g}; the span has already spent "
            f"ε={before.epsilon_spent:g} of its rolling cap ε={before.epsilon_cap:g} "
            f"(left: ε={before.epsilon_left:g})"
        )
    if after.delta_spent > after.delta_cap:
        added = after.delta_spent - before.delta_spent
        parts.append(
            f"this release adds δ={added:g} under group privacy (it reads several windows of the "
            f"span); the span has already spent δ={before.delta_spent:g} of its rolling cap "
            f"δ={before.delta_cap:g} (left: δ={before.delta_left:g})"
        )
    span = f"{before.start.isoformat()}..{before.end.isoformat()}"
    return f"{policy.rolling_days}-day span {span}: " + "; ".join(parts), over


def _overspend(budget: RollingBudget) -> float:
    """How far over its caps a span is, as the larger relative excess of ε and δ."""
    eps = budget.epsilon_spent / budget.epsilon_cap
    delta = budget.delta_spent / budget.delta_cap if budget.delta_cap > 0 else math.inf
    return max(eps, delta if budget.delta_spent > 0 else 0.0)


def refusal_reasons(policy: BudgetPolicy, charges: Sequence[Charge], new: Charge) -> list[str]:
    """Why ``new`` may not be charged on top of ``charges``; empty when it fits the budget.

    One reason per accounting window of ``new`` that would exceed its cap, then (if any) one for
    the most over-spent rolling span, saying how many spans would be over.
    """
    if policy.composition == "zcdp":
        _rho(new.cost)
    reasons: list[str] = []
    for window in sorted(new.windows):
        before = window_budget(policy, charges, window)
        after = window_budget(policy, [*charges, new], window)
        reason = _window_reason(before, after, new.cost)
        if reason is not None:
            reasons.append(reason)
    rolling = _rolling_reason(policy, charges, new)
    if rolling is not None:
        reason, over = rolling
        if over > 1:
            reason += f" ({over} rolling spans would be over their cap; this is the worst)"
        reasons.append(reason)
    return reasons


def summarise_reasons(reasons: Sequence[str]) -> str:
    """The first :data:`MAX_REASONS_SHOWN` reasons, then how many more there are."""
    shown = "; ".join(reasons[:MAX_REASONS_SHOWN])
    hidden = len(reasons) - MAX_REASONS_SHOWN
    return shown + (f"; and {hidden} more" if hidden > 0 else "")
