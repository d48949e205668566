"""``mobility release`` and ``mobility explain``: one indicator over one period, priced first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aggregation.release import explain as explain_release
from aggregation.release import open_context
from aggregation.release import release as run_release
from flows.cli._common import JSON_OPTION, emit_json
from schemas.errors import BudgetExceededError, ConfigurationError
from schemas.geography import ADMIN_LEVELS
from schemas.indicators import ContributionBounds, Indicator
from schemas.indicators import spec as indicator_spec
from schemas.privacy import MECHANISMS
from schemas.release import DEFAULT_K, DEFAULT_RELIABILITY, MAX_RELIABILITY, ReleaseSpec

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable

    from aggregation.release import ReleaseOutcome

_DATE = click.DateTime(formats=["%Y-%m-%d"])
_BOUND_NAMES = list(ContributionBounds.__dataclass_fields__)


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments ``release`` and ``explain`` share."""
    decorators = [
        click.argument("indicator", type=click.Choice([i.value for i in Indicator])),
        click.option("--date", "start", type=_DATE, required=True,
                     help="First day released (for residents/relocations: of the period)."),
        click.option("--to", "end", type=_DATE, default=None,
                     help="Last day released [default: --date]."),
        click.option("--level", type=click.Choice(ADMIN_LEVELS), default="admin2",
                     show_default=True, help="Admin level of the zones."),
        click.option("--epsilon", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Privacy budget of the release [default: the workspace policy's]."),
        click.option("--k", "k", type=click.IntRange(min=0), default=DEFAULT_K,
                     show_default=True, help="Publish a cell only if its noisy value is >= k."),
        click.option("--mechanism", type=click.Choice(MECHANISMS), default=None,
                     help="Noise mechanism [default: the workspace policy's]."),
        click.option("--keys", type=click.Choice(["public", "private"]), default="public",
                     show_default=True,
                     help="public: noise on every zone (pair); private: DP partition selection "
                          "over observed keys (fine geographies; costs δ)."),
        click.option("--value", default=None,
                     help="Value column, for indicators with several [default: all, each "
                          "charged separately]."),
        click.option("--baseline-from", type=_DATE, default=None,
                     help="relocations: first day of the earlier period."),
        click.option("--baseline-to", type=_DATE, default=None,
                     help="relocations: last day of the earlier period."),
        click.option("--source", type=click.Choice(["cdr", "gps"]), default="cdr",
                     show_default=True,
                     help="Data released from: cdr (subscribers' records) or gps (app fixes, "
                          "devices; presence, od_trips, mobility_distance). Both are charged to "
                          "the same windows and caps."),
        click.option("--bound", "bounds", multiple=True, metavar="NAME=N",
                     help=f"Contribution bound override, one of {', '.join(_BOUND_NAMES)}."),
        click.option("--agreement", default=None, metavar="ID",
                     help="The data-sharing agreement the release is made under [default: "
                          "[agreements] default of mobility.toml, when agreements are "
                          "registered]."),
        click.option("--reliability", type=click.FloatRange(min=0, max=MAX_RELIABILITY),
                     default=DEFAULT_RELIABILITY, show_default=True,
                     help="Publish a cell only if its noisy value is also >= this × its ci95 "
                          "(0: k alone)."),
        click.option("--workspace", type=click.Path(path_type=Path, file_okay=False),
                     envvar="MOBILITY_WORKSPACE", required=True,
                     help="The workspace (env: MOBILITY_WORKSPACE)."),
        JSON_OPTION,
    ]  # fmt: skip
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _bounds(indicator: str, pairs: tuple[str, ...]) -> ContributionBounds:
    overrides: dict[str, int] = {}
    for pair in pairs:
        name, _, number = pair.partition("=")
        if not number.isdigit():
            msg = f"--bound {pair!r}: write NAME=N with a whole number N, e.g. max_trips_per_day=4."
            raise ConfigurationError(msg)
        overrides[name.strip()] = int(number)
    return indicator_spec(indicator).bounds(**overrides)


def specs_from(options: dict[str, Any]) -> list[ReleaseSpec]:
    """The release specs the command line asks for (one per value column released)."""
    indicator = options["indicator"]
    columns = indicator_spec(indicator).value_columns
    values = [options["value"]] if options["value"] else list(columns)
    start: dt.datetime = options["start"]
    end: dt.datetime | None = options["end"]
    return [
        ReleaseSpec(
            indicator=Indicator(indicator),
            start=start.date(),
            end=(end or start).date(),
            level=options["level"],
            epsilon=options["epsilon"],
            k=options["k"],
            mechanism=options["mechanism"],
            keys=options["keys"],
            bounds=_bounds(indicator, options["bounds"]),
            value=value if len(columns) > 1 else None,
            baseline_start=options["baseline_from"].date() if options["baseline_from"] else None,
            baseline_end=options["baseline_to"].date() if options["baseline_to"] else None,
            source=options["source"],
            agreement=options["agreement"],
            reliability=options.get("reliability", DEFAULT_RELIABILITY),
        )
        for value in values
    ]


def describe_outcome(outcome: ReleaseOutcome) -> str:
    """One release in a few readable lines."""
    m = outcome.metadata
    state = "already released; returning the stored release" if outcome.reused else "released"
    return "\n".join(
        [
            (
                f"{m.indicator} ({m.value_column}, {m.level}, "
                f"{m.source.upper()}) {m.period.start}..{m.period.end}: {state}"
            ),
            f"  release id : {m.release_id}",
            (
                f"  privacy    : ε={m.epsilon:g} δ={m.delta:g} per {m.privacy_unit}, "
                f"{m.mechanism} scale {m.scale:g} (L1 sensitivity {m.sensitivity.l1})"
            ),
            f"  accuracy   : ±{m.ci95_half_width} (95 % CI per cell)",
            (
                f"  cells      : {m.cells_released} released, "
                f"{m.cells_suppressed} suppressed (noisy value < "
                f"{m.publication_threshold}: k={m.k}, "
                f"reliability {m.reliability:g} × ci95) "
                f"of {m.cells_total}"
            ),
            f"  files      : {outcome.directory}",
        ]
    )


@click.command()
@_options
def release(**options: Any) -> None:
    """Release INDICATOR with DP noise and a k-threshold, paid for from the privacy budget.

    The ledger is charged before anything is published; a release that would exceed a cap is
    refused (exit status 3) and publishes nothing. Asking the same question again returns the
    stored release: no fresh noise, no second charge.
    """
    ctx = open_context(options["workspace"])
    specs = specs_from(options)
    if len(specs) > 1:  # several value columns: refuse up front unless every part fits
        reasons = [r for s in specs for r in explain_release(ctx, s).refusal]
        if reasons:
            raise BudgetExceededError("Refused, nothing published: " + "; ".join(reasons))
    outcomes = [run_release(ctx, s) for s in specs]
    if options["as_json"]:
        emit_json({"releases": [
            {**o.metadata.to_dict(), "directory": str(o.directory), "reused": o.reused}
            for o in outcomes
        ]})  # fmt: skip
    else:
        click.echo("\n".join(describe_outcome(o) for o in outcomes))


@click.command()
@_options
def explain(**options: Any) -> None:
    """Say what releasing INDICATOR would cost and how accurate it would be.

    Reads no staged data and charges nothing: sensitivity, noise scale, ε/δ, the 95 % error
    half-width per cell, and the budget left in every window the release would charge.
    """
    ctx = open_context(options["workspace"], need_secret=False)
    docs = [explain_release(ctx, s).as_dict() for s in specs_from(options)]
    if options["as_json"]:
        emit_json({"explanations": docs})
        return
    for d in docs:
        n = d["noise"]
        click.echo(
            f"{d['indicator']} ({d['value_column']}, {d['level']}, {d['source'].upper()}), "
            "privacy unit "
            f"{d['privacy_unit']}\n"
            f"  sensitivity : L1={d['sensitivity']['l1']} L2={d['sensitivity']['l2']:.3g} "
            f"Linf={d['sensitivity']['linf']}\n"
            f"  noise       : {n['mechanism']} scale {n['scale']:g} → ε={n['epsilon']:g} "
            f"δ={n['delta']:g}\n"
            f"  accuracy    : ±{n['ci_half_width']} per cell (95 %), mean |error| "
            f"{n['expected_abs_error']:.2f}; {d['cells_total']} cells, k={d['k']}"
        )
        click.echo(f"  publication : {d['publication_rule']}")
        t = d.get("totals")
        if t:
            click.echo(
                f"  totals      : {t['share']:.0%} of ε on the {t['margin']} totals as DP values "
                f"(ε={t['epsilon']:g}, scale {t['scale']:g}, ±{t['ci95_half_width']} each, "
                f"95 %); the cells get ε={t['cells_epsilon']:g}. Charged: both (basic "
                "composition); published totals: the DP total and the sum of the cells, "
                "combined by inverse variance"
            )
        if d["already_released"]:
            click.echo(f"  already released as {d['already_released']}: re-running costs nothing")
        for b in d["budget"]:
            click.echo(f"  {b['window']}: spent {b['spent']:g} of {b['cap']:g}, left {b['left']:g}")
        for reason in d["refusal_reasons"]:
            click.echo(f"  WOULD BE REFUSED: {reason}")
