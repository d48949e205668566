"""Estimates derived from released values: per-zone totals made consistent across admin levels,
and mean daily distances with their intervals.

Post-processing only, like :mod:`aggregation.export.series`, whose margins and noise variances
they read: nothing here spends budget or reads anything but released files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from statistics import NormalDist
from typing import TYPE_CHECKING

import polars as pl

from aggregation.export.assemble import assemble
from aggregation.export.request import ExportRequest
from aggregation.export.series import (
    CONFIDENCE,
    TOTALS_FROM_MARGINS,
    Baseline,
    Series,
    cell_variances,
    noise_variance,
    release_margins,
    scaled_totals,
)
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aggregation.export.assemble import Assembled
    from aggregation.export.catalog import ReleaseCatalog, ReleaseRecord
    from schemas.geography import AdminLevel
    from schemas.indicators import Period


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
        per_cell = noise_variance(record.metadata.mechanism, record.metadata.scale)
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
    cells = assembled.data.join(cell_variances(assembled.releases), on="release_id", how="left")
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
        per_cell = noise_variance(record.metadata.mechanism, record.metadata.scale)
        days = [date.fromisoformat(d) for d in assembled.days_used.get(record.release_id, [])]
        rows = found.filter((pl.col("margin") == "date") & pl.col("date").is_in(days))
        variance = pl.col("cells") * per_cell  # the sum of every noisy cell
        totals = record.metadata.totals
        if totals is not None:  # combined with the DP total by inverse variance
            dp = totals.std_dev**2
            variance = dp * variance / (dp + variance)
        parts[record.value_column].append(rows.select("date", "value", variance.alias("variance")))
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
        daily = scaled_totals(daily, found)
    request = ExportRequest(Indicator.MOBILITY_DISTANCE, period.start, period.end, level=level)
    releases = assemble(catalog, request).releases
    return Series(
        Indicator.MOBILITY_DISTANCE, level, (), daily, found, releases,
        totals_from=TOTALS_FROM_MARGINS,
    )  # fmt: skip
