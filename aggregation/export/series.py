"""Released numbers summarised for charts: daily totals with error bars, and OD flows of a period.

Everything here is post-processing of released values. A total over cells is the sum of their
released values; its error bar is the normal approximation of the summed noise (independent
draws): ``z · sqrt(Σ Var(noise of each cell))``, with the variance of the release's mechanism at
its scale (discrete Laplace with ``p = exp(-1/scale)``: ``2p / (1 - p)²``; discrete Gaussian:
at most ``scale²``). Suppressed cells are absent, so a sum of published cells is biased low where
cells are small, and more so on quiet days (more cells fall below the publication rule).

Daily totals therefore come from the releases' *margins* when they have them
(:mod:`aggregation.release.margins`): sums of every noisy cell, suppressed ones included, taken
at release time (post-processing, no budget), unbiased whatever was suppressed. A series over
all zones uses the ``date`` margin; over selected zones, the ``date×zone`` margin of
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
    if MARGINS_FILE not in record.metadata.get("files", {}):
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
        described = record.metadata.get("margins")
        if isinstance(described, dict):
            names.update(str(m) for m in described.get("margins", []))
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
        daily = _scaled_totals(daily, found)
    return Series(
        request.indicator, level, request.zones, daily, found, tuple(releases),
        totals_from=TOTALS_FROM_MARGINS if use_margins else TOTALS_FROM_CELLS,
    )  # fmt: skip


def _scaled_totals(daily: pl.DataFrame, baseline: Baseline) -> pl.DataFrame:
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


ADDITIVE_ACROSS_LEVELS = {Indicator.EVENT_COUNTS: "date×zone"}
"""Indicators whose per-zone day totals add up across admin levels, and the margin that holds
them (events in admin3 zones add up to their admin2 zone; subscribers seen, trips between
zones and homes do not, so no consistency is imposed on them)."""


@dataclass(frozen=True)
class ConsistentLevels:
    """One day's per-zone totals at several levels, made to add up (post-processing only)."""

    indicator: Indicator
    day: date
    levels: tuple[AdminLevel, ...]
    noisy: dict[AdminLevel, dict[str, int]]
    """The releases' margins, as published."""
    consistent: dict[AdminLevel, dict[str, int]]
    """Non-negative whole numbers; each zone the sum of its zones one level down."""
    releases: tuple[ReleaseRecord, ...]


def consistent_levels(
    catalog: ReleaseCatalog,
    indicator: Indicator | str,
    day: date,
    levels: Sequence[AdminLevel] = ("admin1", "admin2", "admin3"),
) -> ConsistentLevels:
    """The per-zone totals of ``day`` released at each of ``levels`` (coarsest first), made
    consistent by :func:`aggregation.release.consistency.consistent`: weighted least squares,
    then non-negative rounding. Reads released margins only; spends no budget."""
    from aggregation.release.consistency import NoisyLevel, consistent  # noqa: PLC0415

    ind = Indicator(indicator)
    margin = ADDITIVE_ACROSS_LEVELS.get(ind)
    if margin is None:
        msg = (
            f"{ind} does not add up across admin levels (only "
            f"{', '.join(ADDITIVE_ACROSS_LEVELS)} does), so its levels cannot be made consistent."
        )
        raise ConfigurationError(msg)
    column = margin.split("×")[1]
    zones = catalog.geography.zones
    noisy: dict[AdminLevel, dict[str, int]] = {}
    inputs: list[NoisyLevel] = []
    used: list[ReleaseRecord] = []
    for level in levels:
        record, found = _with_margins(catalog.of(ind), level, day)
        if record is None or found is None:
            msg = (
                f"No release of {ind} at {level} for {day} with margins: release it "
                f"(mobility release {ind} --date {day} --level {level}) before making levels "
                "consistent."
            )
            raise ConfigurationError(msg)
        rows = found.filter((pl.col("margin") == margin) & (pl.col("date") == day))
        per_cell = noise_variance(
            str(record.metadata["mechanism"]), float(record.metadata["scale"])
        )
        values = dict(zip(rows[column].to_list(), rows["value"].to_list(), strict=True))
        noisy[level] = {str(z): int(v) for z, v in values.items()}
        inputs.append(
            NoisyLevel(
                values={str(z): float(v) for z, v in values.items()},
                variances={
                    str(z): per_cell * int(n)
                    for z, n in zip(rows[column].to_list(), rows["cells"].to_list(), strict=True)
                },
                parents={
                    str(z): str(zones[str(z)].parent_id)
                    for z in values
                    if str(z) in zones and zones[str(z)].parent_id is not None
                },
            )
        )
        used.append(record)
    fitted = consistent(inputs)
    return ConsistentLevels(
        indicator=ind,
        day=day,
        levels=tuple(levels),
        noisy=noisy,
        consistent=dict(zip(levels, fitted, strict=True)),
        releases=tuple(used),
    )


def _with_margins(
    records: Sequence[ReleaseRecord], level: AdminLevel, day: date
) -> tuple[ReleaseRecord | None, pl.DataFrame | None]:
    """The latest release at ``level`` covering ``day`` that has margins, and its margins."""
    for record in reversed(records):
        if record.level == level and day in record.period.days():
            found = release_margins(record)
            if found is not None:
                return record, found
    return None, None


def _ratio(
    d: pl.Expr, n: pl.Expr, var_d: pl.Expr, var_n: pl.Expr, z: float
) -> tuple[pl.Expr, pl.Expr]:
    """``d / n`` and the delta-method half-width ``z · sqrt(var_d / n² + d² · var_n / n⁴)``."""
    mean = d / n
    half = z * (var_d / n**2 + d**2 * var_n / n**4).sqrt()
    return mean.alias("mean_m"), half.alias("ci95")


def mean_distance(
    catalog: ReleaseCatalog,
    period: Period,
    *,
    level: AdminLevel = "admin2",
    reliability: float = 2.0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The mean daily distance per home zone and day, and nationally per day, with 95 % intervals.

    ``mobility_distance`` releases two noisy sums per (date, home_zone): ``distance_m`` (clipped
    metres) and ``subscribers``. Their ratio is the mean distance of a subscriber-day; its
    half-width is the delta method's, ``z · sqrt(Var_D / N² + D² · Var_N / N⁴)`` with the noise
    variances of the two releases (public) and the noisy D and N. Per zone, a mean is given when
    both its cells were published, N is positive and the mean clears ``reliability × ci95`` (the
    same bar as cells; post-processing of noisy values only). The national mean per day divides
    the two releases' ``date`` margins (every noisy cell summed), so suppression does not bias
    it; it is given on the days where the subscriber total clears the same bar (the first days
    of a home window can have too few homes), whatever the mean's own interval.
    Returns (per zone: ``date``, ``home_zone``, ``mean_m``, ``ci95``, ``subscribers``;
    national: ``date``, ``mean_m``, ``ci95``, ``subscribers``).
    """
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    request = ExportRequest(Indicator.MOBILITY_DISTANCE, period.start, period.end, level=level)
    assembled = assemble(catalog, request)
    cells = assembled.data.join(_variances(assembled.releases), on="release_id", how="left")
    wide = (
        cells.filter(pl.col("measure") == "distance_m")
        .select("date", "home_zone", pl.col("value").alias("d"), pl.col("variance").alias("vd"))
        .join(
            cells.filter(pl.col("measure") == "subscribers").select(
                "date", "home_zone", pl.col("value").alias("n"), pl.col("variance").alias("vn")
            ),
            on=["date", "home_zone"],
            how="inner",
        )
        .filter(pl.col("n") > 0)
    )
    mean, half = _ratio(pl.col("d"), pl.col("n"), pl.col("vd"), pl.col("vn"), z)
    per_zone = (
        wide.with_columns(mean, half)
        .filter(pl.col("mean_m") >= reliability * pl.col("ci95"))
        .select("date", "home_zone", "mean_m", "ci95", pl.col("n").alias("subscribers"))
        .sort("date", "home_zone")
    )
    national = _national_mean(assembled, z, reliability)
    return per_zone, national


def _national_mean(assembled: Assembled, z: float, reliability: float) -> pl.DataFrame:
    """Per day: the ratio of the ``date`` margins of the distance and subscriber releases, on
    the days where the subscriber margin clears ``reliability ×`` its own half-width (a ratio
    whose denominator is mostly noise is heavy-tailed: the delta method fails there). The
    numerator is not screened: dropping the days whose mean is small against its interval
    would bias a series of means upward, as suppression biases sums of cells."""
    parts: dict[str, list[pl.DataFrame]] = {"distance_m": [], "subscribers": []}
    for record in assembled.releases:
        found = release_margins(record)
        if found is None:
            continue
        per_cell = noise_variance(
            str(record.metadata["mechanism"]), float(record.metadata["scale"])
        )
        days = [date.fromisoformat(d) for d in assembled.days_used.get(record.release_id, [])]
        rows = found.filter((pl.col("margin") == "date") & pl.col("date").is_in(days))
        parts[record.value_column].append(
            rows.select("date", "value", (pl.col("cells") * per_cell).alias("variance"))
        )
    empty = pl.DataFrame(
        schema={"date": pl.Date, "mean_m": pl.Float64, "ci95": pl.Float64, "subscribers": pl.Int64}
    )
    if not parts["distance_m"] or not parts["subscribers"]:
        return empty
    d = pl.concat(parts["distance_m"]).rename({"value": "d", "variance": "vd"})
    n = pl.concat(parts["subscribers"]).rename({"value": "n", "variance": "vn"})
    mean, half = _ratio(pl.col("d"), pl.col("n"), pl.col("vd"), pl.col("vn"), z)
    return (
        d.join(n, on="date", how="inner")
        .filter((pl.col("n") > 0) & (pl.col("n") >= reliability * z * pl.col("vn").sqrt()))
        .with_columns(mean, half)
        .select("date", "mean_m", "ci95", pl.col("n").alias("subscribers"))
        .sort("date")
    )


def mean_distance_series(
    catalog: ReleaseCatalog,
    period: Period,
    *,
    level: AdminLevel = "admin2",
    baseline: Period | None = None,
    reliability: float = 2.0,
) -> Series:
    """The national mean daily distance of a subscriber-day, in km, as a :class:`Series` (from
    the margins of the two ``mobility_distance`` releases of each day, see
    :func:`mean_distance`), with the mean over ``baseline`` and the scaled variant."""
    _, national = mean_distance(catalog, period, level=level, reliability=reliability)
    daily = national.select(
        "date",
        (pl.col("mean_m") / 1000.0).alias("total"),
        (pl.col("ci95") / 1000.0).alias("ci95"),
        pl.col("subscribers").alias("cells"),
    )
    found: Baseline | None = None
    if baseline is not None:
        base = daily.filter(pl.col("date").is_between(baseline.start, baseline.end))
        n = max(base.height, 1)
        found = Baseline(
            period=baseline,
            mean=float(base["total"].sum()) / n,
            ci95=math.sqrt(float((base["ci95"] ** 2).sum())) / n,
        )
        daily = _scaled_totals(daily, found)
    request = ExportRequest(Indicator.MOBILITY_DISTANCE, period.start, period.end, level=level)
    releases = assemble(catalog, request).releases
    return Series(
        Indicator.MOBILITY_DISTANCE, level, (), daily, found, releases,
        totals_from=TOTALS_FROM_MARGINS,
    )  # fmt: skip
