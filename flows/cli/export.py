"""``mobility export`` and ``mobility chart``: released data as files, maps and charts.

Both read release files only: they never touch staged data, never draw noise and never spend
privacy budget. A request for data that was never released fails (exit status 1) and names the
``mobility release`` command that would release it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from aggregation.export import FORMATS, ExportRequest, ReleaseCatalog, assemble, write_export
from aggregation.export.series import DEFAULT_TOP, daily_series, default_baseline, flow_map
from flows.cli._common import JSON_OPTION, emit_json
from schemas.errors import ConfigurationError
from schemas.geography import ADMIN_LEVELS
from schemas.indicators import Indicator, Period

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable

    from aggregation.export import ExportFormat
    from schemas.geography import AdminLevel
    from schemas.staged import Source

_DATE = click.DateTime(formats=["%Y-%m-%d"])


_chart_out = click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory to write into (created).",
)
"""The ``--out`` of every chart."""


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``export`` and the charts: period, level, zones, workspace."""
    decorators = [
        click.option("--from", "start", type=_DATE, required=True,
                     help="First day wanted (YYYY-MM-DD)."),
        click.option("--to", "end", type=_DATE, default=None,
                     help="Last day wanted [default: --from]."),
        click.option("--level", type=click.Choice(ADMIN_LEVELS), default="admin2",
                     show_default=True, help="Admin level of the zones released."),
        click.option("--zones", multiple=True, metavar="CODES",
                     help="Zone codes, comma-separated or repeated; codes of a coarser level "
                          "select every zone inside them [default: all zones]."),
        click.option("--workspace", type=click.Path(path_type=Path, file_okay=False),
                     envvar="MOBILITY_WORKSPACE", required=True,
                     help="The workspace (env: MOBILITY_WORKSPACE)."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _baseline_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--baseline-to", type=_DATE, default=None,
                        help="Last day of the baseline period.")(func)  # fmt: skip
    return click.option("--baseline-from", type=_DATE, default=None,
                        help="First day of the baseline period.")(func)  # fmt: skip


def zones_of(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--zones A,B --zones C`` as ``("A", "B", "C")``."""
    return tuple(z.strip() for v in values for z in v.split(",") if z.strip())


def period_of(start: dt.datetime, end: dt.datetime | None) -> Period:
    """The period of ``--from``/``--to``, checked."""
    last = (end or start).date()
    if last < start.date():
        msg = f"--to {last} is before --from {start.date()}; give the days in order."
        raise ConfigurationError(msg)
    return Period(start.date(), last)


def baseline_of(start: dt.datetime | None, end: dt.datetime | None) -> Period | None:
    """The baseline period of ``--baseline-from``/``--baseline-to`` (both or neither)."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        msg = "Give both --baseline-from and --baseline-to, or neither."
        raise ConfigurationError(msg)
    return period_of(start, end)


@click.command("export")
@click.argument("indicator", type=click.Choice([i.value for i in Indicator]))
@_common
@click.option("--value", default=None,
              help="One value column of an indicator with several (mobility_distance: "
                   "distance_m or subscribers) [default: all].")  # fmt: skip
@_baseline_options
@click.option("--source", type=click.Choice(["cdr", "gps"]), default="cdr", show_default=True,
              help="Releases of which data: cdr or gps (app fixes); never mixed.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
              help="File format of the data.")  # fmt: skip
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to write into (created); holds the data and datapackage.json.",
)
@JSON_OPTION
def export(
    *, indicator: str, start: dt.datetime, end: dt.datetime | None, level: str,
    zones: tuple[str, ...], value: str | None, baseline_from: dt.datetime | None,
    baseline_to: dt.datetime | None, fmt: str, out: Path, workspace: Path, as_json: bool,
    source: str = "cdr",
) -> None:  # fmt: skip
    """Export released INDICATOR data for a period, level and zones, with its metadata.

    Writes the data file and a Frictionless datapackage.json (ε, k, privacy unit, 95 % CI,
    suppressed cells, ledger entry of every release used) into --out. Reads release files only:
    spends no privacy budget and draws no noise. With --baseline-from/--baseline-to, adds the
    scaled variant: each cell's % change against its mean released value over the baseline.
    """
    period = period_of(start, end)
    request = ExportRequest(
        Indicator(indicator), period.start, period.end, level=cast("AdminLevel", level),
        zones=zones_of(zones), value=value, baseline=baseline_of(baseline_from, baseline_to),
        source=cast("Source", source),
    )  # fmt: skip
    catalog = ReleaseCatalog.open(workspace)
    assembled = assemble(catalog, request)
    files = write_export(assembled, cast("ExportFormat", fmt), out, catalog.geography)
    if as_json:
        emit_json({
            "data": str(files.data), "datapackage": str(files.descriptor),
            "rows": assembled.data.height,
            "releases": [r.release_id for r in assembled.releases],
            "baseline_releases": [r.release_id for r in assembled.baseline_releases],
            "budget_spent": 0.0,
        })  # fmt: skip
        return
    click.echo(
        f"{request.indicator} at {request.level}, {request.period}: "
        f"{assembled.data.height:,} released cells from {len(assembled.releases)} release(s)\n"
        f"  data        : {files.data}\n"
        f"  datapackage : {files.descriptor}\n"
        f"  privacy     : no budget spent (released values only; "
        f"suppressed cells are absent, see datapackage.json)"
    )


@click.group()
def chart() -> None:
    """Maps and charts of released data (PNG, and a self-contained HTML map).

    Like exports, charts read release files only and spend no privacy budget.
    """


@chart.command("od-map")
@_common
@click.option("--top", type=click.IntRange(min=1), default=DEFAULT_TOP, show_default=True,
              help="Draw the largest N flows.")  # fmt: skip
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "html", "both"]),
    default="both",
    show_default=True,
    help="PNG picture, self-contained HTML map, or both.",
)
@_chart_out
def od_map(
    *, start: dt.datetime, end: dt.datetime | None, level: str, zones: tuple[str, ...],
    workspace: Path, top: int, fmt: str, out: Path,
) -> None:  # fmt: skip
    """OD flow map of released od_trips for a day or a period (flows summed over its days)."""
    from aggregation.export.charts import od_map_png  # noqa: PLC0415 - matplotlib is slow
    from aggregation.export.html_map import od_map_html  # noqa: PLC0415

    period = period_of(start, end)
    catalog = ReleaseCatalog.open(workspace)
    fmap = flow_map(
        catalog, period, level=cast("AdminLevel", level), zones=zones_of(zones), top=top
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = f"od_map_{level}_{period.start}_{period.end}"
    if fmt in ("png", "both"):
        click.echo(od_map_png(fmap, out / f"{stem}.png"))
    if fmt in ("html", "both"):
        click.echo(od_map_html(fmap, out / f"{stem}.html"))


@chart.command("timeseries")
@click.argument("indicators", nargs=-1,
                type=click.Choice(["presence", "od_trips", "od_connections", "home_away",
                                   "event_counts"]))  # fmt: skip
@_common
@_baseline_options
@_chart_out
def timeseries(
    *, indicators: tuple[str, ...], start: dt.datetime, end: dt.datetime | None, level: str,
    zones: tuple[str, ...], workspace: Path, baseline_from: dt.datetime | None,
    baseline_to: dt.datetime | None, out: Path,
) -> None:  # fmt: skip
    """Daily totals of INDICATORS (default: presence od_trips) with 95 % bands and a baseline.

    The baseline defaults to the first third of the period (at least one day).
    """
    from aggregation.export.charts import timeseries_png  # noqa: PLC0415 - matplotlib is slow

    period = period_of(start, end)
    baseline = baseline_of(baseline_from, baseline_to) or default_baseline(period)
    catalog = ReleaseCatalog.open(workspace)
    series = [
        daily_series(catalog, ind, period, level=cast("AdminLevel", level),
                     zones=zones_of(zones), baseline=baseline)
        for ind in indicators or ("presence", "od_trips")
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    click.echo(timeseries_png(series, out / f"timeseries_{level}_{period.start}_{period.end}.png"))


@chart.command("all")
@click.option("--level", type=click.Choice(ADMIN_LEVELS), default="admin2", show_default=True,
              help="Admin level of the zones released.")  # fmt: skip
@click.option("--workspace", type=click.Path(path_type=Path, file_okay=False),
              envvar="MOBILITY_WORKSPACE", required=True,
              help="The workspace (env: MOBILITY_WORKSPACE).")  # fmt: skip
@_chart_out
def all_charts(*, level: str, workspace: Path, out: Path) -> None:
    """The OD map and time series of everything released (what the demo draws)."""
    from aggregation.export.charts import make_demo_charts  # noqa: PLC0415 - matplotlib is slow

    made = make_demo_charts(workspace, out, level=cast("AdminLevel", level))
    if not made:
        click.echo("Nothing to draw: no od_trips or presence was released at this level.")
    for path in made:
        click.echo(path)
