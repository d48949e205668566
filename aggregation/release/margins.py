"""Totals that suppression does not bias: margins summed over *every* noisy cell of a release.

A release of a public key set draws noise for every cell, then publishes only the cells that
clear the publication rule (:mod:`aggregation.release.suppress`). A total of the *published*
cells is biased low, and by how much depends on how many cells cleared the bar: on a quiet day
(a lockdown) more cells fall below it, so the total falls faster than the mobility does.

The margins here are sums of the noisy values of *all* the cells of the key set, suppressed ones
included, taken before suppression. They are post-processing of the one DP measurement the
release paid for (a function of its noisy output, never of the data): no budget, no second
noise draw, and the release's ledger charge covers them. Each margin is the exact bounded total
plus the sum of ``n`` independent noise draws, so it is unbiased whatever the threshold, with a
95 % half-width from the normal approximation ``z · sqrt(n) · std`` (the cell's own half-width
when ``n`` is 1). ``n`` is the number of cells of the public key set summed, itself public.

Private key sets (DP partition selection) have no margins: the cells below the threshold were
never drawn, so nothing unbiased can be summed.

Margins of each indicator (zone keys of unordered pairs and hours are summed, never kept):

=================  ==========================================
indicator          margins
=================  ==========================================
event_counts       per date; per date and zone (all hours)
presence           per date
od_trips           per date; per date and origin; per date and destination
od_connections     per date
home_away          per date
mobility_distance  per date
residents          national
relocations        national; per origin; per destination
=================  ==========================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import polars as pl

from aggregation.mechanisms import noise_std
from aggregation.release.publish import MARGIN_FILES
from aggregation.release.totals import combine, combined_ci95
from schemas.indicators import spec as indicator_spec
from schemas.release_metadata import MarginsMetadata

if TYPE_CHECKING:
    from schemas.indicators import Indicator
    from schemas.privacy import NoiseSpec

ZONE_KEYS = ("zone", "origin", "destination", "home_zone")
"""Key columns a margin may keep (one zone each); ``zone_a``/``zone_b`` and ``hour`` are summed."""


def margin_groups(indicator: Indicator | str) -> list[list[str]]:
    """The key columns each margin of ``indicator`` keeps (``[]``: one national total)."""
    keys = list(indicator_spec(indicator).key_columns)
    base = [c for c in keys if c == "date"]
    groups = [base]
    if len(keys) > len(base) + 1:
        groups += [[*base, c] for c in keys if c in ZONE_KEYS]
    return groups


def margin_name(group: list[str]) -> str:
    """The label of a margin in the ``margin`` column: ``national``, ``date``, ``date×origin``."""
    return "×".join(group) if group else "national"


def noisy_margins(
    noisy: pl.DataFrame,
    indicator: Indicator | str,
    noise: NoiseSpec,
    totals: DpTotals | None = None,
) -> pl.DataFrame:
    """Every margin of ``indicator`` over ``noisy``: the key columns (null where summed over),
    ``margin``, ``value`` (sum of the noisy values), ``ci95`` and ``cells`` (cells summed).

    ``noisy`` must hold every cell of the public key set, before suppression. With ``totals``
    (the release's DP totals, :mod:`aggregation.release.totals`) the per-date (or national)
    margin's ``value`` and ``ci95`` are those of the inverse-variance weighted mean of the DP
    total and the sum of the cells (:func:`~aggregation.release.totals.combined_ci95`), and two
    columns are added: ``total_dp`` and ``cells_sum``
    (null on the other margins).
    """
    keys = list(indicator_spec(indicator).key_columns)
    z = NormalDist().inv_cdf(0.5 + noise.confidence / 2.0)
    std = noise_std(noise.mechanism, noise.scale)
    frames = []
    for group in margin_groups(indicator):
        summed = (
            noisy.group_by(group).agg(pl.col("value").sum(), pl.len().alias("cells"))
            if group
            else noisy.select(pl.col("value").sum(), pl.len().alias("cells"))
        )
        frames.append(
            summed.with_columns(
                *(pl.lit(None, dtype=noisy.schema[c]).alias(c) for c in keys if c not in group),
                pl.lit(margin_name(group)).alias("margin"),
                pl.col("cells").cast(pl.Int64),
                pl.col("value").cast(pl.Int64),
            )
        )
    out = pl.concat([f.select(*keys, "margin", "value", "cells") for f in frames])
    half = [
        noise.ci_half_width if n == 1 else math.ceil(z * math.sqrt(n) * std)
        for n in out["cells"].to_list()
    ]
    out = out.with_columns(pl.Series("ci95", half, dtype=pl.Int64)).select(
        *keys, "margin", "value", "ci95", "cells"
    )
    if totals is not None:
        out = _with_dp_totals(out, totals, std)
    return out.sort(["margin", *keys], nulls_last=True)


@dataclass(frozen=True)
class DpTotals:
    """A release's DP totals (``group`` keys and ``total_dp``) and their noise."""

    group: tuple[str, ...]
    values: pl.DataFrame
    noise: NoiseSpec


def _with_dp_totals(margins: pl.DataFrame, totals: DpTotals, cell_std: float) -> pl.DataFrame:
    """The per-date margin replaced by the inverse-variance mean of its DP total and its sum
    of cells (post-processing), with both kept beside it."""
    name = margin_name(list(totals.group))
    dp = {tuple(row[:-1]): int(row[-1]) for row in totals.values.rows()}
    var_dp = totals.noise.std_dev**2
    values: list[int | None] = []
    ci95: list[int | None] = []
    total_dp: list[int | None] = []
    cells_sum: list[int | None] = []
    group = list(totals.group)
    for row in margins.iter_rows(named=True):
        if row["margin"] != name:
            values.append(row["value"])
            ci95.append(row["ci95"])
            total_dp.append(None)
            cells_sum.append(None)
            continue
        total = dp[tuple(row[c] for c in group)]
        value, weight = combine(total, var_dp, int(row["value"]), row["cells"] * cell_std**2)
        values.append(value)
        ci95.append(combined_ci95(weight, totals.noise.ci_half_width, int(row["ci95"])))
        total_dp.append(total)
        cells_sum.append(int(row["value"]))
    return margins.with_columns(
        pl.Series("value", values, dtype=pl.Int64),
        pl.Series("ci95", ci95, dtype=pl.Int64),
        pl.Series("total_dp", total_dp, dtype=pl.Int64),
        pl.Series("cells_sum", cells_sum, dtype=pl.Int64),
    )


def margins_description(indicator: Indicator | str, *, dp_totals: bool = False) -> MarginsMetadata:
    """What a release's metadata says of its margins (``dp_totals``: the release has DP
    totals, which its per-date margin combines with the sum of the cells)."""
    combined = None
    if dp_totals:
        name = margin_name(margin_groups(indicator)[0])
        combined = (
            f"the {name} margin's value is the inverse-variance weighted mean of the DP total "
            "released with its own share of ε (column total_dp) and the sum of the noisy cells "
            "(column cells_sum), both unbiased and independent; its ci95 is the root of the "
            "sum of the squared weighted half-widths of the two (the DP total's exact one, the "
            "sum's normal approximation). The other margins are sums of cells."
        )
    return MarginsMetadata(
        files=MARGIN_FILES,
        margins=tuple(margin_name(g) for g in margin_groups(indicator)),
        derived_from=(
            "sums of the noisy values of every cell of the public key set, suppressed cells "
            "included, taken before suppression: post-processing of this release's noisy "
            "output, no budget spent, unbiased whatever the publication rule suppressed"
        ),
        ci95="normal approximation z·sqrt(cells)·std of the summed noise",
        dp_totals=combined,
    )
