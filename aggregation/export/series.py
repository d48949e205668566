"""Released numbers summarised for charts: daily totals with error bars, and OD flows of a period.

Everything here is post-processing of released values. A total over cells is the sum of their
released values; its error bar is the normal approximation of the summed noise (independent
draws): ``z · sqrt(Σ Var(noise of each cell))``, with the variance of the release's mechanism at
its scale (discrete Laplace with ``p = exp(-1/scale)``: ``2p / (1 - p)²``; discrete Gaussian:
at most ``scale²``). Suppressed cells are absent, so totals are biased low where cells are small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from statistics import NormalDist
from typing import TYPE_CHECKING

import polars as pl

from aggregation.export.assemble import assemble
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


def _variances(releases: Sequence[ReleaseRecord]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "release_id": [r.release_id for r in releases],
            "variance": [
                noise_variance(str(r.metadata["mechanism"]), float(r.metadata["scale"]))
                for r in releases
            ],
        },
        schema={"release_id": pl.String, "variance": pl.Float64},
    )


def totals(assembled: Assembled, by: Sequence[str]) -> pl.DataFrame:
    """Sum of released values by ``by``, with ``ci95`` of the sum and the number of ``cells``."""
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    data = assembled.data.join(_variances(assembled.releases), on="release_id", how="left")
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
    """Columns ``date``, ``total``, ``ci95``, ``cells``."""
    baseline: Baseline | None
    releases: tuple[ReleaseRecord, ...]


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
    daily = totals(assembled, ["date"])
    found: Baseline | None = None
    releases = list(assembled.releases)
    if baseline is not None:
        base = assemble(
            catalog, ExportRequest(request.indicator, baseline.start, baseline.end, level=level,
                                   zones=tuple(zones))
        )  # fmt: skip
        base_daily = totals(base, ["date"])
        n = max(base_daily.height, 1)
        found = Baseline(
            period=baseline,
            mean=float(base_daily["total"].sum()) / n,
            ci95=math.sqrt(float((base_daily["ci95"] ** 2).sum())) / n,
        )
        releases += [r for r in base.releases if r not in releases]
    return Series(request.indicator, level, request.zones, daily, found, tuple(releases))


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
