"""``mobility synth``: write a synthetic operator export (CDR, GPS, cells, zones) and its truth."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flows.cli._common import JSON_OPTION, emit_json, progress_printer
from sample_data.synth import Summary, SynthConfig, generate
from sample_data.synth.config import FORMATS, SCENARIOS

if TYPE_CHECKING:
    import datetime as dt

_DEFAULTS = SynthConfig()


def describe(summary: Summary) -> str:
    """A short human-readable account of what was written."""
    zones = ", ".join(f"{n} {level}" for level, n in sorted(summary.zones.items()))
    scenario = summary.scenario
    where = f" (zone {scenario['evacuated_admin3']})" if "evacuated_admin3" in scenario else ""
    lines = [
        f"Synthetic country written to {summary.out_dir}",
        f"  geography   : {zones} zones; {summary.cells} cells",
        (
            f"  raw export  : {summary.cdr_events:,} CDR events, {summary.gps_fixes:,} GPS fixes "
            f"({summary.config['fmt']}), {summary.injected_errors:,} injected errors"
        ),
        f"  scenario    : {scenario['kind']} from {scenario['start']}{where}",
        (
            f"  speed       : {summary.events_per_minute / 1e6:.1f} M rows/min "
            f"({summary.seconds:.1f} s)"
        ),
        f"  files       : {len(summary.files)} (see manifest.json; truth under truth/)",
    ]
    return "\n".join(lines)


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to write into (created; must be empty unless --overwrite).",
)
@click.option(
    "--subscribers",
    type=click.IntRange(min=1),
    default=_DEFAULTS.subscribers,
    show_default=True,
    help="Number of subscribers.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=_DEFAULTS.days,
    show_default=True,
    help="Number of consecutive days.",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=str(_DEFAULTS.start),
    show_default=True,
    help="First day (YYYY-MM-DD).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=_DEFAULTS.seed,
    show_default=True,
    help="Random seed: the same seed always gives the same files.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0.0, 0.5),
    default=_DEFAULTS.error_rate,
    show_default=True,
    help="Share of raw rows given one injected error.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=_DEFAULTS.fmt,
    show_default=True,
    help="Format of the raw export files.",
)
@click.option(
    "--scenario",
    type=click.Choice(SCENARIOS),
    default=_DEFAULTS.scenario,
    show_default=True,
    help="Signal for the indicators to find.",
)
@click.option(
    "--scenario-start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day of the scenario [default: middle of the period].",
)
@click.option(
    "--gps-share",
    type=click.FloatRange(0.0, 1.0),
    default=_DEFAULTS.gps_share,
    show_default=True,
    help="Share of subscribers whose app reports GPS fixes.",
)
@click.option(
    "--timezone",
    default=_DEFAULTS.timezone,
    show_default=True,
    help="Operator time zone of the CDR wall-clock timestamps.",
)
@click.option("--overwrite", is_flag=True, help="Replace a previous export in --out.")
@JSON_OPTION
def synth(
    *,
    out_dir: Path,
    subscribers: int,
    days: int,
    start: dt.datetime,
    seed: int,
    error_rate: float,
    fmt: str,
    scenario: str,
    scenario_start: dt.datetime | None,
    gps_share: float,
    timezone: str,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Write a synthetic country's operator export and its ground truth.

    Streams day by day with bounded memory; deterministic for a seed. The raw files in
    OUT/raw/ are what `mobility ingest` reads; OUT/truth/ holds itineraries, homes and every
    injected error, for tests and accuracy checks.
    """
    config = SynthConfig(
        subscribers=subscribers,
        days=days,
        start=start.date(),
        seed=seed,
        error_rate=error_rate,
        fmt=fmt,  # type: ignore[arg-type]  # click.Choice restricts it to FORMATS
        scenario=scenario,  # type: ignore[arg-type]  # click.Choice restricts it to SCENARIOS
        scenario_start=scenario_start.date() if scenario_start else None,
        gps_share=gps_share,
        timezone=timezone,
    )
    summary = generate(
        config, out_dir, overwrite=overwrite, progress=progress_printer(quiet=as_json)
    )
    if as_json:
        emit_json({**asdict(summary), "events_per_minute": round(summary.events_per_minute)})
    else:
        click.echo(describe(summary))
