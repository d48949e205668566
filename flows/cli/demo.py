"""``mobility demo``: the whole job on the embedded default, on a synthetic country."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli._common import progress_printer
from flows.cli.synth import describe
from sample_data.synth import SynthConfig, generate


@click.command()
@click.option(
    "--workspace",
    type=click.Path(path_type=Path),
    envvar="MOBILITY_WORKSPACE",
    default=Path("demo-workspace"),
    show_default=True,
    help="Where the demo writes everything (env: MOBILITY_WORKSPACE).",
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
    """Generate a synthetic country and say what was made.

    Run it again to start afresh: the previous demo export in the workspace is replaced.
    """
    out = workspace / "synthetic"
    config = SynthConfig(subscribers=subscribers, days=days, seed=seed, error_rate=0.002)
    click.echo(f"Generating a synthetic country ({subscribers:,} subscribers, {days} days) ...")
    summary = generate(config, out, overwrite=True, progress=progress_printer())
    click.echo(describe(summary))
