"""What every indicator module defines, and how a sensitivity follows from a per-unit bound.

Each indicator is one module of this package (``event_counts.py``, ``od_trips.py`` …) ending in
one :class:`IndicatorDefinition`: its :class:`~schemas.indicators.IndicatorSpec` row (key set,
value columns, scope, bounds used, sources), its per-unit bound ``B`` (derived in the module's
docstring) and the SQL of each unit's contribution. Every indicator is an exact *bounded*
aggregate: contributions are capped per privacy unit first, then summed over the public key set.
Its declared :class:`~schemas.privacy.Sensitivity` is a function of the bounds only, never of the
data, derived here from ``B``; ``tests/test_sensitivity_properties.py`` checks every derivation
against the real aggregation code.

Neighbouring relation (the same for every indicator)
----------------------------------------------------
Add/remove one privacy unit: two staged datasets are neighbours when one is the other plus all
records of one *privacy unit*, that is one subscriber's (for GPS: one device's) records within
one accounting window (one local calendar day by default; see
:data:`schemas.privacy.AccountingWindow`). Replacing a unit's records is two such steps.

How the sensitivities are derived
---------------------------------
Bounding guarantees, for each indicator, a *per-subscriber bound* ``B = (B1, B2, Binf)``: one
subscriber's contribution ``c`` to the cells of one release day (for daily indicators) or to the
whole vector (for period indicators) is non-negative with ``|c|_1 <= B1``, ``|c|_2 <= B2`` and
``|c|_inf <= Binf``. From ``B`` the sensitivity follows in one of two ways:

* **Day-local** indicators (no home period): the subscriber's contribution on day ``d`` depends
  only on their own records of day ``d`` (bounding is per subscriber-day with a keyed order of
  their own records). Adding or removing a unit turns ``c`` into ``0`` (or back) on each release
  day the unit covers, ``k = min(release days, days in the accounting window)``: ``l1 = k*B1``,
  ``l2 = sqrt(k)*B2``, ``linf = Binf``.
* **Home-based** indicators (a home period in their scope): the contribution depends on a home
  zone computed over a reference period, so one unit anywhere in that period can *move* the
  contribution: ``c`` becomes another ``c'`` obeying the same bound. Because both are
  non-negative, ``|c - c'|_1 <= 2*B1``, ``|c - c'|_inf <= Binf`` and
  ``|c - c'|_2^2 = |c|^2 + |c'|^2 - 2<c, c'> <= 2*B2^2``. A change of home affects every release
  day, so with ``k`` release days (1 for period indicators): ``l1 = 2*k*B1``,
  ``l2 = sqrt(2*k)*B2``, ``linf = Binf``. This holds for any accounting window: whatever subset
  of one subscriber's records a unit is, the subscriber contributes within ``B`` before and after.

A GPS definition reads only the device's own fixes of the day (and, for homes, of the home
period) and is bounded with the same bounds and the same keyed order as for subscribers, so the
per-device bound ``B`` and the sensitivity are the same functions of the bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schemas.errors import ConfigurationError
from schemas.privacy import Sensitivity

if TYPE_CHECKING:
    from collections.abc import Callable

    from aggregation.bounding import BoundingKey
    from aggregation.indicators.request import AggregateRequest
    from aggregation.sql import Sql, SqlPlan
    from schemas.indicators import ContributionBounds, Indicator, IndicatorSpec, Scope
    from schemas.privacy import AccountingWindow

WINDOW_DAYS: dict[AccountingWindow, int] = {"day": 1, "week": 7, "month": 31}
"""The most calendar days one accounting window can span."""


@dataclass(frozen=True, slots=True)
class IndicatorDefinition:
    """One indicator: its spec row, its per-unit bound and the SQL of each unit's contribution.

    ``per_subscriber`` gives the per-unit bound ``B`` of each value column for given bounds, and
    ``per_subscriber_keys`` how many keys one unit can touch (per release day, or per period).
    ``contributions`` adds to a fresh plan the CTE of each unit's bounded contribution
    (``pseudonym``, the key columns, the value columns) and returns the plan and the CTE's name;
    :func:`aggregation.indicators.aggregate.exact_aggregate` sums it over the public key set.
    Whether the sensitivity is day-local or home-based follows from the scope of the spec.
    """

    spec: IndicatorSpec
    per_subscriber: Callable[[ContributionBounds], dict[str, Sensitivity]] = field(repr=False)
    per_subscriber_keys: Callable[[ContributionBounds], int] = field(repr=False)
    contributions: Callable[[AggregateRequest, BoundingKey], tuple[SqlPlan, str]] = field(
        repr=False
    )

    @property
    def indicator(self) -> Indicator:
        """The indicator defined."""
        return self.spec.indicator

    def sensitivities(
        self, bounds: ContributionBounds, scope: Scope, window: AccountingWindow = "day"
    ) -> dict[str, Sensitivity]:
        """Declared sensitivity of each value column, for one unit of ``window``.

        Day-local: ``l1 = k*B1, l2 = sqrt(k)*B2, linf = Binf`` with ``k`` the release days one
        unit covers; home-based: ``l1 = 2k*B1, l2 = sqrt(2k)*B2, linf = Binf`` with ``k`` the
        release days (derivation in the module docstring).
        """
        k, m = self._units(scope, window)
        self.spec.check_bounds(bounds)
        return {
            column: Sensitivity(l1=k * m * b.l1, l2=math.sqrt(k * m) * b.l2, linf=b.linf)
            for column, b in self.per_subscriber(bounds).items()
        }

    def _units(self, scope: Scope, window: AccountingWindow) -> tuple[int, int]:
        """``(k, m)``: release days one unit can affect and the factor of a moved contribution."""
        self.spec.check_scope(scope)
        if window not in WINDOW_DAYS:
            msg = f"Accounting window must be one of {list(WINDOW_DAYS)}; got {window!r}."
            raise ConfigurationError(msg)
        release_days = scope.days.n_days if scope.days is not None else 1
        if self.spec.home_based:
            return release_days, 2
        return min(release_days, WINDOW_DAYS[window]), 1

    def max_keys(
        self, bounds: ContributionBounds, scope: Scope, window: AccountingWindow = "day"
    ) -> int:
        """The most keys one privacy unit can change (``l0``, for DP partition selection)."""
        k, m = self._units(scope, window)
        return k * m * self.per_subscriber_keys(bounds)

    def sensitivity(
        self,
        bounds: ContributionBounds,
        scope: Scope,
        window: AccountingWindow = "day",
        *,
        value: str | None = None,
    ) -> Sensitivity:
        """Declared sensitivity of the value column ``value`` (default: the only one)."""
        all_ = self.sensitivities(bounds, scope, window)
        if value is None:
            if len(all_) != 1:
                msg = f"{self.indicator} has several value columns {list(all_)}; name one."
                raise ConfigurationError(msg)
            return next(iter(all_.values()))
        if value not in all_:
            msg = f"{self.indicator} has no value column {value!r}; it has {list(all_)}."
            raise ConfigurationError(msg)
        return all_[value]


def with_contributions(plan: SqlPlan, body: Sql, **params: object) -> tuple[SqlPlan, str]:
    """``plan`` with the CTE of each unit's contributions, ``body``, and the name of that CTE:
    what an indicator's ``contributions`` returns."""
    return plan.with_cte("contrib", body, **params), "contrib"


def one_key(_: ContributionBounds) -> int:
    """Home-based indicators: one unit's contribution sits in one key (its home cell)."""
    return 1
