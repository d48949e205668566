"""Assemble an export from release files only: never staged data, never fresh noise, never budget.

For a daily indicator each day asked for is taken from one release that covers it (at the level
and for the value column asked for). When several do, the most precise one is used (smallest
95 % half-width), then the newest. For a period indicator (``residents``, ``relocations``) every
released period lying inside the span asked for is exported, one release per period, chosen the
same way. Days or periods that were never released make the request fail with
:class:`NotReleasedError`, which names the ``mobility release`` command that would release them.

The scaled variant compares every cell with its mean over a baseline period; that mean is taken
over the *released* values of the baseline (post-processing of published numbers only).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import polars as pl

from schemas.errors import MobilityError
from schemas.indicators import Period, spec

if TYPE_CHECKING:
    from datetime import date

    from aggregation.export.catalog import ReleaseCatalog, ReleaseRecord
    from aggregation.export.request import ExportRequest
    from aggregation.export.zones import Geography

PERIOD_COLUMNS = ("period_start", "period_end")
TIME_COLUMNS = ("date", "hour", *PERIOD_COLUMNS)


class NotReleasedError(MobilityError):
    """The data asked for were never released; :attr:`commands` would release them. Exit 1."""

    def __init__(self, message: str, commands: list[str]) -> None:
        super().__init__(message)
        self.commands = commands


@dataclass(frozen=True)
class Assembled:
    """Released cells gathered for one export request, and the releases they come from."""

    request: ExportRequest
    data: pl.DataFrame
    releases: tuple[ReleaseRecord, ...]
    baseline_releases: tuple[ReleaseRecord, ...]
    key_columns: tuple[str, ...]
    """Columns that identify a row of :attr:`data` (its primary key)."""
    zone_columns: tuple[str, ...]
    """Key columns holding zone codes (one for zone indicators, two for OD indicators)."""
    days_used: dict[str, list[str]]
    """For each release id, the days (or the period) taken from it."""


def zone_columns(indicator: str) -> tuple[str, ...]:
    """The key columns of ``indicator`` that hold zone codes."""
    return tuple(c for c in spec(indicator).key_columns if c not in TIME_COLUMNS)


def _best(records: list[ReleaseRecord]) -> ReleaseRecord:
    """The most precise release, then the newest."""
    newest_first = sorted(records, key=lambda r: r.ledger_seq, reverse=True)
    return min(newest_first, key=lambda r: r.ci95)


def release_command(
    request: ExportRequest, period: Period, value: str | None, workspace: str
) -> str:
    """The ``mobility release`` command that would release ``period`` of ``request``."""
    parts = ["mobility", "release", str(request.indicator), "--date", str(period.start)]
    if period.end != period.start:
        parts += ["--to", str(period.end)]
    parts += ["--level", request.level]
    if request.source != "cdr":
        parts += ["--source", request.source]
    if value is not None:
        parts += ["--value", value]
    parts += ["--workspace", workspace]
    return shlex.join(parts)


def _ranges(days: list[date]) -> list[Period]:
    """Consecutive runs of ``days`` (sorted) as periods."""
    runs: list[Period] = []
    for day in sorted(days):
        if runs and (day - runs[-1].end).days == 1:
            runs[-1] = Period(runs[-1].start, day)
        else:
            runs.append(Period.day(day))
    return runs


def _not_released(
    catalog: ReleaseCatalog, request: ExportRequest, missing: dict[str, list[Period]], what: str
) -> NotReleasedError:
    ws = str(catalog.workspace.root)
    columns = spec(request.indicator).value_columns
    several = len(columns) > 1
    # One command releases every value column when all of them miss the same periods.
    together = len(missing) == len(columns) and len({tuple(p) for p in missing.values()}) == 1
    commands: list[str] = []
    described: list[str] = []
    for measure, periods in missing.items():
        for period in periods:
            value = measure if several and not together else None
            command = release_command(request, period, value, ws)
            if command not in commands:
                commands.append(command)
        label = f" ({measure})" if several and not together else ""
        text = f"{', '.join(str(p) for p in periods)}{label}"
        if text not in described:
            described.append(text)
    msg = (
        f"{request.indicator} at {request.level} was never released for "
        f"{'; '.join(described)}{what}. An export only contains released data, so nothing "
        f"was written. To release it (this spends privacy budget), run: {' ; '.join(commands)}"
    )
    return NotReleasedError(msg, commands)


def _daily(
    catalog: ReleaseCatalog, request: ExportRequest, measure: str, missing: list[date]
) -> list[tuple[ReleaseRecord, list[date]]]:
    candidates = [
        r for r in catalog.of(request.indicator)
        if r.level == request.level and r.value_column == measure and r.source == request.source
    ]  # fmt: skip
    chosen: dict[str, tuple[ReleaseRecord, list[date]]] = {}
    for day in request.period.days():
        covering = [r for r in candidates if r.period.start <= day <= r.period.end]
        if not covering:
            missing.append(day)
            continue
        best = _best(covering)
        chosen.setdefault(best.release_id, (best, []))[1].append(day)
    return list(chosen.values())


def _periodic(catalog: ReleaseCatalog, request: ExportRequest, measure: str) -> list[ReleaseRecord]:
    span = request.period
    by_period: dict[Period, list[ReleaseRecord]] = {}
    for r in catalog.of(request.indicator):
        inside = span.start <= r.period.start and r.period.end <= span.end
        same = r.level == request.level and r.value_column == measure
        if same and r.source == request.source and inside:
            by_period.setdefault(r.period, []).append(r)
    return [_best(records) for _, records in sorted(by_period.items(), key=lambda kv: kv[0].start)]


def _frame(record: ReleaseRecord, measure: str, days: list[date] | None) -> pl.DataFrame:
    data = record.data()
    if days is not None:
        data = data.filter(pl.col("date").is_in(days))
    else:
        data = data.with_columns(
            pl.lit(record.period.start).alias("period_start"),
            pl.lit(record.period.end).alias("period_end"),
        )
    return data.with_columns(
        pl.lit(measure).alias("measure"), pl.lit(record.release_id).alias("release_id")
    )


def _gather(
    catalog: ReleaseCatalog, request: ExportRequest, what: str
) -> tuple[list[pl.DataFrame], list[ReleaseRecord], dict[str, list[str]]]:
    frames: list[pl.DataFrame] = []
    used: list[ReleaseRecord] = []
    days_used: dict[str, list[str]] = {}
    missing: dict[str, list[Period]] = {}
    for measure in request.measures:
        if request.daily:
            absent: list[date] = []
            for record, days in _daily(catalog, request, measure, absent):
                frames.append(_frame(record, measure, days))
                used.append(record)
                days_used[record.release_id] = [str(d) for d in days]
            if absent:
                missing[measure] = _ranges(absent)
        else:
            records = _periodic(catalog, request, measure)
            if not records:
                missing[measure] = [request.period]
            for record in records:
                frames.append(_frame(record, measure, None))
                used.append(record)
                days_used[record.release_id] = [str(record.period)]
    if missing:
        raise _not_released(catalog, request, missing, what)
    return frames, used, days_used


def _order(request: ExportRequest, columns: list[str]) -> list[str]:
    s = spec(request.indicator)
    order: list[str] = [] if request.daily else list(PERIOD_COLUMNS)
    for key in s.key_columns:
        order.append(key)
        if key not in TIME_COLUMNS:
            order.append(f"{key}_name")
    order += ["measure", "value", "ci95", "baseline", "baseline_n", "pct_change", "release_id"]
    return [c for c in order if c in columns]


def _with_names(data: pl.DataFrame, zones: tuple[str, ...], geography: Geography) -> pl.DataFrame:
    names = {z.zone_id: z.name for z in geography.zones.values()}
    return data.with_columns(
        pl.col(c).replace_strict(names, default=None, return_dtype=pl.String).alias(f"{c}_name")
        for c in zones
    )


def assemble(catalog: ReleaseCatalog, request: ExportRequest) -> Assembled:
    """Gather the released cells ``request`` asks for (see the module docstring)."""
    zones = zone_columns(request.indicator)
    selected = catalog.geography.select(request.level, request.zones) if request.zones else None
    frames, used, days_used = _gather(catalog, request, "")
    data = pl.concat(frames, how="vertical") if frames else pl.DataFrame()
    if selected is not None:
        data = data.filter(pl.any_horizontal(pl.col(c).is_in(list(selected)) for c in zones))
    data = _with_names(data, zones, catalog.geography)
    keys = ([] if request.daily else list(PERIOD_COLUMNS)) + [
        *spec(request.indicator).key_columns,
        "measure",
    ]
    baseline_used: list[ReleaseRecord] = []
    if request.baseline is not None:
        data, baseline_used = _scaled(catalog, request, request.baseline, data)
    data = data.select(_order(request, data.columns)).sort(keys)
    return Assembled(
        request=request,
        data=data,
        releases=tuple(used),
        baseline_releases=tuple(baseline_used),
        key_columns=tuple(keys),
        zone_columns=zones,
        days_used=days_used,
    )


def _scaled(
    catalog: ReleaseCatalog, request: ExportRequest, baseline: Period, data: pl.DataFrame
) -> tuple[pl.DataFrame, list[ReleaseRecord]]:
    """Add ``baseline`` (mean released value of the cell over the baseline period),
    ``baseline_n`` (how many baseline days or periods it was released in) and
    ``pct_change`` = 100 · (value - baseline) / baseline (null without a positive baseline)."""
    base_request = replace(request, start=baseline.start, end=baseline.end, baseline=None)
    frames, used, _ = _gather(catalog, base_request, f" (the baseline {baseline})")
    base = pl.concat(frames, how="vertical")
    by = [c for c in spec(request.indicator).key_columns if c not in ("date", *PERIOD_COLUMNS)]
    by.append("measure")
    means = base.group_by(by).agg(
        pl.col("value").mean().alias("baseline"), pl.len().cast(pl.Int64).alias("baseline_n")
    )
    joined = data.join(means, on=by, how="left").with_columns(
        pl.when(pl.col("baseline") > 0)
        .then(100.0 * (pl.col("value") - pl.col("baseline")) / pl.col("baseline"))
        .otherwise(None)
        .round(2)
        .alias("pct_change"),
        pl.col("baseline").round(2),
        pl.col("baseline_n").fill_null(0),
    )
    return joined, used
