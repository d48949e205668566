"""``mobility demo``: the whole job on the embedded default, on a synthetic country."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flows.cli._common import progress_printer
from flows.cli.synth import describe

if TYPE_CHECKING:
    from flows.demo import DemoResult


def report(result: DemoResult) -> str:
    """The demo's closing table: releases, budget per day, suppression, accuracy, outputs."""
    lines = ["", describe(result.synth), "", "Releases (daily flow, then period indicators):"]
    per_indicator: dict[str, list[int]] = {}
    for day in result.days:
        for r in day["released"]:
            name = r["indicator"] + (" (GPS)" if r.get("source", "cdr") == "gps" else "")
            agg = per_indicator.setdefault(name, [0, 0, 0])
            agg[0] += 1
            agg[1] += r["cells_released"]
            agg[2] += r["cells_suppressed"]
    for r in result.period:
        per_indicator[r["indicator"]] = [1, r["cells_released"], r["cells_suppressed"]]
    lines.append(f"  {'indicator':<20}{'releases':>9}{'cells released':>16}{'suppressed':>12}")
    for name, (n, kept, dropped) in per_indicator.items():
        lines.append(f"  {name:<20}{n:>9}{kept:>16,}{dropped:>12,}")
    refused = [x for day in result.days for x in day["refused"]]
    if refused:
        lines.append(f"  refused by the budget: {len(refused)}")
        lines += [f"    {x}" for x in refused]
    lines += [
        "",
        "Privacy budget per day (ε, basic composition; CDR and GPS releases share each day's",
        "window: units subscriber-day and device-day, which cannot be linked):",
    ]
    for b in result.budget:
        bar = "#" * round(20 * b["spent"] / b["cap"])
        lines.append(
            f"  {b['window']}  {b['spent']:5.2f} of {b['cap']:.2f}  [{bar:<20}]  "
            f"{b['releases']} releases"
        )
    lines += [
        "",
        "Accuracy, cells with >= 100 true units (suppressed cells count as 0): median / p90",
        "relative error against the exact unbounded aggregate of the same data (DP noise and",
        "bounding bias) and against the synthetic itineraries (also what sparse CDR cannot see):",
        f"  {'day':<12}{'indicator':<11}{'cells':>6}  {'vs data':>17}  {'vs truth':>17}",
    ]
    for a in result.accuracy:
        lines.append(
            f"  {a['day']:<12}{a['indicator']:<11}{a['vs_data']['cells']:>6}  "
            f"{_pct(a['vs_data']):>17}  {_pct(a['vs_truth']):>17}"
        )
    ws = result.workspace
    lines += [
        "",
        f"Done in {result.seconds:.0f} s. Outputs:",
        f"  releases     {ws / 'releases'}  (data.parquet, data.csv, metadata.json per release)",
        f"  ledger       {ws / 'ledger.duckdb'}",
        f"  reports      {ws / 'reports'}  (ingest reconciliation)",
        f"  quarantine   {ws / 'quarantine'}",
        *[f"  chart        {c}" for c in result.charts],
        *(
            [f"  transparency {result.transparency}  (public page: agreements, releases, budgets)"]
            if result.transparency
            else []
        ),
        f"Try: mobility explain od_trips --date {result.synth.config['start']} --workspace {ws}",
    ]
    return "\n".join(lines)


def _pct(measure: dict[str, Any]) -> str:
    med, p90 = measure["median_relative_error"], measure["p90_relative_error"]
    if med is None:
        return "n/a"
    return f"{100 * med:5.1f} % / {100 * (p90 or med):5.1f} %"


@click.command()
@click.option(
    "--workspace",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-workspace"),
    show_default=True,
    help="Where the demo writes everything; replaced if it holds a previous demo.",
)
@click.option(
    "--subscribers",
    type=click.IntRange(min=100),
    default=20_000,
    show_default=True,
    help="Size of the synthetic operator.",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=7, show_default=True, help="Length of the period."
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed of the synthetic country.",
)
def demo(*, workspace: Path, subscribers: int, days: int, seed: int) -> None:
    """Run the whole pipeline on a synthetic country and report what it released.

    Creates a workspace, generates a synthetic operator export, runs the daily Prefect flow for
    every day (ingest, then every daily indicator with DP noise and k-thresholds, charged to the
    ledger), releases residents and relocations, and measures accuracy against the truth.
    """
    from flows.demo import run_demo  # noqa: PLC0415 - Prefect is slow to import

    result = run_demo(
        workspace, subscribers=subscribers, days=days, seed=seed, say=click.echo,
        progress=progress_printer(),
    )  # fmt: skip
    click.echo(report(result))
