"""Released numbers summarised for charts: daily totals with error bars, and OD flows of a period.

Everything here is post-processing of released values. A total over cells is the sum of their
released values; its error bar is the normal approximation of the summed noise (independent
draws): ``z · sqrt(Σ Var(noise of each cell))``, with the variance of the release's mechanism at
its scale (discrete Laplace with ``p = exp(-1/scale)``: ``2p / (1 - p)²``; discrete Gaussian:
at most ``scale²``). Suppressed cells are absent, so a sum of published cells is biased low where
cells are small, and more so on quiet days (more cells fall below the publication rule).

Daily totals therefore come from the releases' *margins* when they have them
(:mod:`aggregation.release.margins`): sums of every noisy cell, suppressed ones included, taken
at release time (post-processing, no budget), unbiased whatever was suppressed. A release
that spent a share of its ε on DP totals (:mod:`aggregation.release.totals`) publishes as its
``date`` margin the inverse-variance mean of the DP total and that sum, with the ci95 of the
mean: far less noisy where a day has many cells. A series over all zones uses the ``date``
margin; over selected zones, the ``date×zone`` margin of
``event_counts``. Releases made before margins existed, and selections no margin covers (OD pairs
touching a selection; per-zone indicators, whose cells are the zone totals) sum the published
cells, and say so (:attr:`Series.totals_from`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING

import polars as pl

from aggregation.export.assemble import assemble, zone_columns
from aggregation.export.request import ExportRequest
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator, Period

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.export.assemble import Assembled
    from aggregation.export.catalog import ReleaseCatalog, ReleaseRecord
    from aggregation.export.zones import Zone
    from schemas.geography import AdminLevel

CONFIDENCE = 0.95
DEFAULT_TOP = 60
"""Flows drawn on a map by default (the largest)."""


def default_baseline(period: Period) -> Period:
    """The first third of ``period`` (at least one day): the default reference days."""
    n = max(1, period.n_days // 3)
    return Period(period.start, period.start + timedelta(days=n - 1))


def noise_variance(mechanism: str, scale: float) -> float:
    """Variance of one cell's noise for ``mechanism`` at ``scale``."""
    if mechanism == "discrete_laplace":
        p = math.exp(-1.0 / scale)
        return 2.0 * p / (1.0 - p) ** 2
    if mechanism == "discrete_gaussian":
        return scale * scale
    msg = f"No noise variance known for mechanism {mechanism!r}."
    raise ConfigurationError(msg)


def cell_variances(releases: Sequence[ReleaseRecord]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "release_id": [r.release_id for r in releases],
            "variance": [noise_variance(r.metadata.mechanism, r.metadata.scale) for r in releases],
        },
        schema={"release_id": pl.String, "variance": pl.Float64},
    )


def totals(assembled: Assembled, by: Sequence[str]) -> pl.DataFrame:
    """Sum of released values by ``by``, with ``ci95`` of the sum and the number of ``cells``."""
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    data = assembled.data.join(cell_variances(assembled.releases), on="release_id", how="left")
    return (
        data.group_by(list(by))
        .agg(
            pl.col("value").sum().alias("total"),
            (z * pl.col("variance").sum().sqrt()).alias("ci95"),
            pl.len().cast(pl.Int64).alias("cells"),
        )
        .sort(list(by))
    )


@dataclass(frozen=True)
class Baseline:
    """The mean daily total over a baseline period, with its 95 % error bar."""

    period: Period
    mean: float
    ci95: float


@dataclass(frozen=True)
class Series:
    """Daily totals of one indicator over selected zones, and their baseline."""

    indicator: Indicator
    level: AdminLevel
    zones: tuple[str, ...]
    daily: pl.DataFrame
    """Columns ``date``, ``total``, ``ci95``, ``cells``; with a baseline also ``pct_change`` and
    ``pct_change_ci95`` (the scaled variant of the totals)."""
    baseline: Baseline | None
    releases: tuple[ReleaseRecord, ...]
    totals_from: str = "published cells"
    """``margins`` (unbiased, every noisy cell summed) or ``published cells`` (biased low)."""


MARGINS_FILE = "margins.parquet"
TOTALS_FROM_MARGINS = "margins"
TOTALS_FROM_CELLS = "published cells"


def release_margins(record: ReleaseRecord) -> pl.DataFrame | None:
    """The margins of a release (hash-checked), or None if it has none (private key sets,
    releases made before margins existed)."""
    if MARGINS_FILE not in record.metadata.files:
        return None
    record.verify(MARGINS_FILE)
    return pl.read_parquet(record.directory / MARGINS_FILE)


def margin_totals(assembled: Assembled, selected: frozenset[str] | None) -> pl.DataFrame | None:
    """Daily totals (``date``, ``total``, ``ci95``, ``cells``) from the margins of the releases
    ``assembled`` drew from, or None when a release has no margins or no margin covers the
    selection of zones (see the module docstring)."""
    zones = zone_columns(assembled.request.indicator)
    if selected is None:
        margin, column = "date", None
    elif len(zones) == 1 and f"date×{zones[0]}" in _margin_names(assembled.releases):
        margin, column = f"date×{zones[0]}", zones[0]
    else:
        return None
    frames = []
    for record in assembled.releases:
        found = release_margins(record)
        if found is None:
            return None
        days = [date.fromisoformat(d) for d in assembled.days_used.get(record.release_id, [])]
        rows = found.filter((pl.col("margin") == margin) & pl.col("date").is_in(days))
        if column is not None and selected is not None:
            rows = rows.filter(pl.col(column).is_in(list(selected)))
        frames.append(rows.select("date", "value", "ci95", "cells"))
    if not frames:
        return None
    return (
        pl.concat(frames)
        .group_by("date")
        .agg(
            pl.col("value").sum().alias("total"),
            (pl.col("ci95").cast(pl.Float64) ** 2).sum().sqrt().alias("ci95"),
            pl.col("cells").sum().cast(pl.Int64).alias("cells"),
        )
        .sort("date")
    )


def _margin_names(releases: Sequence[ReleaseRecord]) -> set[str]:
    names: set[str] = set()
    for record in releases:
        described = record.metadata.margins
        if described is not None:
            names.update(described.margins)
    return names


def daily_series(
    catalog: ReleaseCatalog,
    indicator: Indicator | str,
    period: Period,
    *,
    level: AdminLevel = "admin2",
    zones: Sequence[str] = (),
    baseline: Period | None = None,
) -> Series:
    """Daily totals of a daily count indicator (``presence``, ``od_trips`` …) over ``zones``."""
    request = ExportRequest(
        Indicator(indicator), period.start, period.end, level=level, zones=tuple(zones)
    )
    if not request.daily or request.measures != ("count",):
        msg = (
            f"A time series needs a daily count indicator; {request.indicator} is not one "
            "(choose presence, od_trips, od_connections, event_counts or home_away)."
        )
        raise ConfigurationError(msg)
    assembled = assemble(catalog, request)
    selected = catalog.geography.select(level, request.zones) if request.zones else None
    from_margins = margin_totals(assembled, selected)
    base: Assembled | None = None
    if baseline is not None:
        base = assemble(
            catalog, ExportRequest(request.indicator, baseline.start, baseline.end, level=level,
                                   zones=tuple(zones))
        )  # fmt: skip
    base_margins = margin_totals(base, selected) if base is not None else None
    use_margins = from_margins is not None and (base is None or base_margins is not None)
    daily = (
        from_margins if use_margins and from_margins is not None else totals(assembled, ["date"])
    )
    found: Baseline | None = None
    releases = list(assembled.releases)
    if baseline is not None and base is not None:
        base_daily = (
            base_margins if use_margins and base_margins is not None else totals(base, ["date"])
        )
        n = max(base_daily.height, 1)
        found = Baseline(
            period=baseline,
            mean=float(base_daily["total"].sum()) / n,
            ci95=math.sqrt(float((base_daily["ci95"] ** 2).sum())) / n,
        )
        releases += [r for r in base.releases if r not in releases]
        daily = scaled_totals(daily, found)
    return Series(
        request.indicator, level, request.zones, daily, found, tuple(releases),
        totals_from=TOTALS_FROM_MARGINS if use_margins else TOTALS_FROM_CELLS,
    )  # fmt: skip


def scaled_totals(daily: pl.DataFrame, baseline: Baseline) -> pl.DataFrame:
    """The scaled variant of daily totals: ``pct_change`` = 100 · (total - baseline) / baseline
    and its 95 % half-width ``pct_change_ci95`` (delta method, the day's and the baseline's
    noise independent; null without a positive baseline). Post-processing of released totals."""
    if baseline.mean <= 0:
        return daily.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("pct_change"),
            pl.lit(None, dtype=pl.Float64).alias("pct_change_ci95"),
        )
    b, b_ci = baseline.mean, baseline.ci95
    ratio = pl.col("total") / b
    return daily.with_columns(
        (100.0 * (ratio - 1.0)).alias("pct_change"),
        (100.0 * (pl.col("ci95") ** 2 / b**2 + ratio**2 * b_ci**2 / b**2).sqrt()).alias(
            "pct_change_ci95"
        ),
    )


@dataclass(frozen=True)
class FlowMap:
    """OD flows of a day or a period, summed over its days, over the zones of one level."""

    period: Period
    level: AdminLevel
    zones: tuple[Zone, ...]
    """Every zone of the level (drawn as the background)."""
    selected: tuple[str, ...]
    flows: pl.DataFrame
    """Columns ``origin``, ``destination``, names, ``total``, ``ci95``, ``cells`` (days
    released), largest first."""
    releases: tuple[ReleaseRecord, ...]


def flow_map(
    catalog: ReleaseCatalog,
    period: Period,
    *,
    level: AdminLevel = "admin2",
    zones: Sequence[str] = (),
    top: int | None = None,
) -> FlowMap:
    """``od_trips`` over ``period`` summed per (origin, destination); the ``top`` largest."""
    request = ExportRequest(
        Indicator.OD_TRIPS, period.start, period.end, level=level, zones=tuple(zones)
    )
    assembled = assemble(catalog, request)
    flows = totals(assembled, ["origin", "destination"]).sort(
        ["total", "origin", "destination"], descending=[True, False, False]
    )
    if top is not None:
        flows = flows.head(top)
    names = {z.zone_id: z.name for z in catalog.geography.zones.values()}
    flows = flows.with_columns(
        pl.col(c).replace_strict(names, default=None, return_dtype=pl.String).alias(f"{c}_name")
        for c in ("origin", "destination")
    )
    return FlowMap(
        period=period,
        level=level,
        zones=tuple(catalog.geography.at(level)),
        selected=request.zones,
        flows=flows,
        releases=assembled.releases,
    )
