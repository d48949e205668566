"""Per-date totals released as DP values of their own, from a share of the release's ε.

A margin summed over every noisy cell (:mod:`aggregation.release.margins`) is unbiased but
carries the noise of every cell: for ``od_trips`` at admin2 the day total sums 870 cells, so
its standard deviation is sqrt(870) ≈ 29.5 times a cell's. One number per day measured on its
own is far less noisy for the same budget: a release of ε splits it, ``(1 - share)·ε`` for the
cells and ``share·ε`` for the vector of its per-date totals (one national total when the
indicator has no date key: ``residents``, ``relocations``).

Privacy. The two are separate OpenDP measurements on the same data, each built once by the plan
(:func:`plan_totals`), and the release is charged their basic (sequential) composition: the sum
of the two costs OpenDP's privacy maps return (``cells + totals``), at most the release's ε (the
targets are :meth:`~schemas.privacy.PrivacyCost.split` from it: the cells' target is nudged down
a float step when rounding would carry the sum above it). One privacy unit moves
the per-date totals by at most the whole of its contribution: ``Σ_d |ΔT_d| = Σ_d |Σ_{c∈d} Δc|
≤ Σ_c |Δc| ≤ l1`` of the cells, so the totals vector has l1 sensitivity the cells' l1, and its
l2 (and linf) is at most that l1 too (:func:`totals_sensitivity`; derived from the declared
contribution bounds through the cells' sensitivity, never from the data;
``tests/test_totals.py`` checks it by removing subscriber-days and -weeks).

Only the discrete Laplace (pure ε-DP, the default) releases DP totals: a discrete Gaussian
release keeps the summed margins (its ρ split is not implemented), and so do private key sets,
which have no margins at all.

Post-processing (:func:`combine`): the published total of a date is the inverse-variance
weighted mean of the DP total and the sum of that date's noisy cells, both unbiased and
independent; its variance is below either's. No budget is spent by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from aggregation.mechanisms import plan_vector
from schemas.errors import ConfigurationError, PrivacyParameterError
from schemas.indicators import spec as indicator_spec
from schemas.privacy import Sensitivity, release_parameter_problems
from schemas.release_metadata import TotalsMetadata

if TYPE_CHECKING:
    from aggregation.mechanisms import VectorMechanism
    from schemas.indicators import Indicator
    from schemas.privacy import Mechanism, NoiseSpec

TOTALS_MECHANISMS: tuple[Mechanism, ...] = ("discrete_laplace",)
"""Mechanisms whose releases can spend a share of ε on DP totals."""


def totals_group(indicator: Indicator | str) -> list[str]:
    """The key columns a DP total keeps: ``["date"]``, or ``[]`` (one national total)."""
    return [c for c in indicator_spec(indicator).key_columns if c == "date"]


def totals_sensitivity(cells: Sensitivity) -> Sensitivity:
    """How far one privacy unit moves the vector of per-date totals: at most the l1 of its
    change to the cells (see the module docstring), in every norm."""
    return Sensitivity(l1=cells.l1, l2=float(cells.l1), linf=cells.l1)


def resolve_share(requested: float | None, default: float, *, mechanism: str, keys: str) -> float:
    """The share of ε a release spends on DP totals: ``requested``, else the policy's
    ``default``; 0 for private key sets and for mechanisms without DP totals, where asking for
    a share above 0 explicitly is refused."""
    supported = keys == "public" and mechanism in TOTALS_MECHANISMS
    if supported:
        return default if requested is None else requested
    if requested:
        why = "private key sets have no totals" if keys != "public" else (
            f"{mechanism} releases keep the summed margins (only "
            f"{', '.join(TOTALS_MECHANISMS)} releases DP totals)"
        )  # fmt: skip
        msg = f"Bad release request: totals_share={requested:g} but {why}. Ask for totals_share 0."
        raise ConfigurationError(msg)
    return 0.0


@dataclass(frozen=True)
class TotalsPlan:
    """The DP totals of a release: their share of ε, sensitivity and OpenDP measurement."""

    share: float
    group: tuple[str, ...]
    sensitivity: Sensitivity
    mechanism: VectorMechanism

    @property
    def noise(self) -> NoiseSpec:
        """The totals' noise: scale, cost, ci95, std."""
        return self.mechanism.spec

    def describe(self, cells: NoiseSpec) -> TotalsMetadata:
        """What a release's metadata and ``explain`` say of its totals (``cells``: the cells'
        own noise, with the cells' own cost)."""
        n = self.noise
        return TotalsMetadata(
            share=self.share,
            margin="×".join(self.group) if self.group else "national",
            epsilon=n.cost.epsilon,
            cells_epsilon=cells.cost.epsilon,
            mechanism=n.mechanism,
            scale=n.scale,
            std_dev=n.std_dev,
            ci95_half_width=n.ci_half_width,
            sensitivity=n.sensitivity,
            composition=(
                "basic: the release is charged the cells' ε plus the totals' ε, each from its "
                "OpenDP measurement's privacy map"
            ),
            published_as=(
                "the margin's value: the inverse-variance weighted mean of the DP total "
                "(total_dp) and the sum of the day's noisy cells (cells_sum); post-processing"
            ),
        )


def plan_totals(
    indicator: Indicator | str,
    mechanism: Mechanism,
    cells: Sensitivity,
    *,
    epsilon: float,
    share: float,
    confidence: float,
) -> TotalsPlan:
    """The totals' OpenDP measurement at ``epsilon`` (already the totals' part of the
    release's ε); :class:`~schemas.errors.PrivacyParameterError` (a
    :class:`ConfigurationError`) when that part is below the least ε a release may spend, as the
    plan refuses the release's own ε."""
    problems = release_parameter_problems(epsilon=epsilon)
    if problems:
        msg = (
            f"Bad release request: {indicator} spends totals_share={share:g} of its ε on its "
            f"totals, ε={epsilon:g}: {'; '.join(problems)}. Ask for a larger ε or share, or "
            "totals_share 0."
        )
        raise PrivacyParameterError(msg)
    sensitivity = totals_sensitivity(cells)
    measurement = plan_vector(mechanism, sensitivity, epsilon=epsilon, confidence=confidence)
    return TotalsPlan(share, tuple(totals_group(indicator)), sensitivity, measurement)


def exact_totals(exact: pl.DataFrame, group: tuple[str, ...], value: str) -> pl.DataFrame:
    """The exact per-date (or national) totals of ``value`` over every cell of ``exact``,
    sorted by the group's keys: the vector the totals' measurement is invoked on."""
    if not group:
        return exact.select(pl.col(value).sum().cast(pl.Int64).alias("value"))
    return (
        exact.group_by(list(group))
        .agg(pl.col(value).sum().cast(pl.Int64).alias("value"))
        .sort(list(group))
    )


def dp_totals(plan: TotalsPlan, exact: pl.DataFrame, value: str) -> pl.DataFrame:
    """The group's keys and ``total_dp``: the exact totals through the totals' measurement."""
    totals = exact_totals(exact, plan.group, value)
    noisy = plan.mechanism.release(totals["value"].to_list())
    return totals.select(*plan.group, pl.Series("total_dp", noisy, dtype=pl.Int64))


def combine(total_dp: int, var_dp: float, cells_sum: int, var_cells: float) -> tuple[int, float]:
    """The inverse-variance weighted mean of two independent unbiased estimates of one total,
    rounded to a whole number, and the weight of the DP total in it."""
    weight = var_cells / (var_dp + var_cells)
    value = weight * total_dp + (1.0 - weight) * cells_sum
    return round(value), weight


def combined_ci95(weight: float, ci95_dp: int, ci95_cells: int) -> int:
    """The 95 % half-width of ``weight·T + (1 - weight)·S``: the root of the sum of the squared
    weighted half-widths, the DP total's exact one (its discrete Laplace quantile) and the
    sum's normal approximation. Exact when either part carries all the weight, the normal
    approximation when both are normal; it does not understate a Laplace-dominated total, as
    ``1.96·std`` would (55 against 60 at scale 20)."""
    return math.ceil(math.hypot(weight * ci95_dp, (1.0 - weight) * ci95_cells))
