"""The demo: a synthetic country run through the whole pipeline on the embedded default.

``run_demo`` creates a workspace, writes a synthetic operator export into it, runs the daily
Prefect flow as a backfill over every day (ingest, then every daily indicator), releases the
period indicators (``residents``, ``relocations``), and measures accuracy against the synthetic
ground truth.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from aggregation import unprotected
from aggregation.export.charts import make_demo_charts
from aggregation.extract import StagedSource
from aggregation.release import open_context, release
from aggregation.transparency.page import build_transparency, write_site
from sample_data.synth import Summary, SynthConfig, generate
from sample_data.synth.truth import true_od_trips, true_presence
from schemas.agreement import load_agreement
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator
from schemas.release import ReleaseSpec
from schemas.workspace import CONFIG_FILE, DEFAULT_CONFIG, init_workspace

if TYPE_CHECKING:
    from collections.abc import Callable

    from schemas.geography import AdminLevel

EXAMPLE_AGREEMENT = """\
# An example data-sharing agreement (issue 20); every key is documented in schemas/agreement.py.
id = "demo-transport"
version = 1
purpose = \"\"\"Daily origin-destination flows, presence and home-based indicators of Nulland, for \
the Ministry of Transport's monitoring of mobility during the lockdown.\"\"\"
parties = ["Nulland Telecom (data holder)", "Nulland Ministry of Transport (recipient)"]
start = {start}
end = {end}
retention_days = 365

[recipients]
roles = ["analyst", "operator"]

[releases]
indicators = ["event_counts", "presence", "od_trips", "od_connections", "home_away",
              "mobility_distance", "residents", "relocations"]
levels = ["admin1", "admin2"]
sources = ["cdr"]
min_k = 10

[budget]
epsilon_per_window = 6.0
epsilon_term = 200.0
"""
"""The demo's agreement; ``{start}`` and ``{end}``: a term from the first synthetic day to a year
after today (a term is when releases may be made)."""

AGREEMENT_FILE = "agreements/demo-transport.toml"
MARKER = ".mobility-demo"
DEMO_KEY = "demo-secret.key"
LEVEL: AdminLevel = "admin2"
GPS_SHARE = 0.3
"""Share of the demo's subscribers on the app: 0.3 rather than the generator's 0.1, so that the
GPS releases of presence and od_trips clear k = 10 on the main zones and flows (20 000
subscribers: about 6 000 devices)."""


def _demo_config() -> str:
    text = DEFAULT_CONFIG
    replacements = {
        'zones = "reference/zones.parquet"': 'zones = "synthetic/reference/zones.parquet"',
        'cells = "reference/cells.csv"': 'cells = "synthetic/reference/cells.csv"',
        '# secret_file = "/etc/mobility/pseudonym.key"': f'secret_file = "{DEMO_KEY}"',
        'drops = "drops"': 'drops = "synthetic/raw"',
        # GPS beside CDR: presence and od_trips from the app panel too (GPS_SHARE of the
        # subscribers), charged to the same windows; the cap leaves room for both sources.
        "daily_gps = []": 'daily_gps = ["presence", "od_trips"]',
        "epsilon_per_window = 6.0": "epsilon_per_window = 8.0",
    }
    for old, new in replacements.items():
        if old not in text:
            msg = f"The workspace template changed: the demo cannot find {old!r} in it (a bug)."
            raise ConfigurationError(msg)
        text = text.replace(old, new, 1)
    return text + '\n[agreements]\ndefault = "demo-transport"\n'


def register_example_agreement(root: Path, start: dt.date) -> Path:
    """Write the demo's agreement file into the workspace and register it in the ledger."""
    end = max(start, dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=365)
    path = root / AGREEMENT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE_AGREEMENT.format(start=start, end=end), encoding="utf-8")
    open_context(root, need_secret=False).ledger.register_agreement(load_agreement(path))
    return path


def prepare_workspace(root: Path) -> None:
    """A fresh demo workspace at ``root`` (a previous demo there is replaced, nothing else)."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            msg = (
                f"{root} exists and is not a demo workspace; the demo will not touch it. "
                "Choose another --workspace."
            )
            raise ConfigurationError(msg)
        shutil.rmtree(root)
    init_workspace(root)
    (root / MARKER).write_text("created by `mobility demo`; deleted by the next demo run\n")
    (root / CONFIG_FILE).write_text(_demo_config(), encoding="utf-8")
    (root / DEMO_KEY).write_text(secrets.token_hex(32) + "\n")


@dataclass
class DemoResult:
    """What the demo did and measured."""

    workspace: Path
    synth: Summary
    days: list[dict[str, Any]] = field(default_factory=list)
    period: list[dict[str, Any]] = field(default_factory=list)
    budget: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    charts: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    transparency: Path | None = None


def accuracy(released: pl.DataFrame, truth: pl.DataFrame, keys: list[str]) -> dict[str, Any]:
    """Median and 90th-percentile relative error over cells with at least 100 true units."""
    big = truth.filter(pl.col("true_value") >= 100)  # noqa: PLR2004 - the issue's threshold
    joined = big.join(released, on=keys, how="left").with_columns(
        pl.col("value").fill_null(0)  # suppressed cells count as 0
    )
    errors = ((joined["value"] - joined["true_value"]).abs() / joined["true_value"]).to_list()
    return {
        "cells": len(errors),
        "median_relative_error": statistics.median(errors) if errors else None,
        "p90_relative_error": (
            statistics.quantiles(errors, n=10)[-1] if len(errors) >= 2 else None  # noqa: PLR2004
        ),
    }


def run_demo(
    root: Path,
    *,
    subscribers: int,
    days: int,
    seed: int,
    say: Callable[[str], None],
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """The whole job on a synthetic country; ``say`` reports each step."""
    from flows.daily import run_backfill  # noqa: PLC0415 - Prefect is slow to import

    started = dt.datetime.now(dt.UTC)
    root = root.resolve()
    prepare_workspace(root)
    say(f"Workspace {root} (demo pseudonymisation key in {DEMO_KEY}; use your own for real data)")
    config = SynthConfig(
        subscribers=subscribers, days=days, seed=seed, error_rate=0.002, gps_share=GPS_SHARE
    )
    say(f"Generating a synthetic country: {subscribers:,} subscribers, {days} days ...")
    synth = generate(config, root / "synthetic", progress=progress)
    result = DemoResult(workspace=root, synth=synth)
    agreement = register_example_agreement(root, config.start)
    say(f"Registered the example data-sharing agreement {agreement.relative_to(root)}")

    say("Running the daily Prefect flow for every day (ingest, then every daily indicator) ...")
    result.days = run_backfill(str(root), config.start, config.end)

    say("Releasing the period indicators (residents, relocations) ...")
    ctx = open_context(root)
    period_specs = [ReleaseSpec(Indicator.RESIDENTS, config.start, config.end, level=LEVEL)]
    if days >= 6:  # noqa: PLR2004 - two home periods of at least 3 nights each
        half = days // 2
        period_specs.append(
            ReleaseSpec(
                Indicator.RELOCATIONS, config.end - dt.timedelta(days=half - 1), config.end,
                level=LEVEL, baseline_start=config.start,
                baseline_end=config.start + dt.timedelta(days=half - 1),
            )
        )  # fmt: skip
    for spec in period_specs:
        outcome = release(ctx, spec)
        result.period.append(
            {"indicator": str(spec.indicator), "release_id": outcome.metadata.release_id,
             "cells_released": outcome.metadata.cells_released,
             "cells_suppressed": outcome.metadata.cells_suppressed,
             "epsilon": outcome.metadata.epsilon}
        )  # fmt: skip

    result.budget = [
        {"window": str(b.window), "spent": b.epsilon_spent, "cap": b.epsilon_cap,
         "releases": b.releases}
        for b in ctx.ledger.window_budgets(config.dates)
    ]  # fmt: skip
    say("Drawing the OD flow map and the time series ...")
    result.charts = make_demo_charts(root, root / "charts", level=LEVEL)
    say("Writing the public transparency page ...")
    result.transparency = write_site(build_transparency(ctx), root / "transparency").page
    result.accuracy = measure_accuracy(result.days, root / "synthetic", root / "staged")
    result.seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
    return result


def measure_accuracy(
    days: list[dict[str, Any]], synthetic: Path, staged: Path
) -> list[dict[str, Any]]:
    """od_trips and presence per day, against (a) the exact unbounded aggregate of the same staged
    data (error = DP noise + bounding bias) and (b) the synthetic itineraries (adds what sparse
    CDR cannot see)."""
    rows = []
    truths = {"od_trips": (true_od_trips, unprotected.od_trips, ["origin", "destination"]),
              "presence": (true_presence, unprotected.presence, ["zone"])}  # fmt: skip
    for day in days:
        date = dt.date.fromisoformat(day["day"])
        files = StagedSource(staged).files_for([date])
        for r in day["released"]:
            if r["indicator"] not in truths or r.get("source", "cdr") != "cdr":
                continue  # GPS against the truth: benchmarks/bench_accuracy.py --sources
            truth_of, data_of, keys = truths[r["indicator"]]
            released = pl.read_parquet(Path(r["directory"]) / "data.parquet")
            data = data_of(files, date, LEVEL).drop("date")
            rows.append(
                {"day": day["day"], "indicator": r["indicator"],
                 "vs_data": accuracy(released, data, keys),
                 "vs_truth": accuracy(released, truth_of(synthetic, date, LEVEL), keys)}
            )  # fmt: skip
    return rows
