"""The budget timeline: a PNG an auditor can file, drawn with matplotlib's Agg renderer.

Top panel: per accounting window, what each indicator charged (ε under basic composition, ρ
under zCDP), stacked, against the window's cap; refused requests are marked with a red cross at
the cap of the windows they asked for. Bottom panel: spend of the rolling span ending on each
day against the rolling cap. No pyplot: a bare :class:`~matplotlib.figure.Figure` keeps no global
state and needs no display.
"""

from __future__ import annotations

import io
import math
from datetime import timedelta
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from aggregation.budget import rho_for_epsilon

if TYPE_CHECKING:
    from datetime import date

    from matplotlib.axes import Axes

    from aggregation.audit.spend import SpendSummary

_BAR = 0.8
"""Bar width, in days."""
_DPI = 110
_MAX_TICKS = 12


def _x(days: list[date], origin: date) -> list[float]:
    """Days as numbers: days since ``origin`` (the first window)."""
    return [float((d - origin).days) for d in days]


def _window_caps(summary: SpendSummary) -> list[float]:
    """Each window's cap in the unit plotted (ε, or the ρ the window may reach)."""
    if summary.policy.composition == "basic":
        return [w.epsilon_cap for w in summary.windows]
    return [rho_for_epsilon(w.epsilon_cap, w.delta_cap - w.delta_spent) for w in summary.windows]


def _draw_windows(ax: Axes, summary: SpendSummary) -> None:
    unit = "ε" if summary.policy.composition == "basic" else "ρ"
    days = [w.window for w in summary.windows]
    x = _x(days, days[0])
    indicators = sorted({name for spend in summary.by_window.values() for name in spend})
    bottom = [0.0] * len(days)
    for name in indicators:
        heights = [summary.by_window.get(d, {}).get(name, 0.0) for d in days]
        ax.bar(x, heights, width=_BAR, bottom=bottom, label=name)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    caps = _window_caps(summary)
    half = _BAR / 2 + 0.05
    ax.hlines(caps, [v - half for v in x], [v + half for v in x], colors="black", label="cap")
    cap_of = dict(zip(days, caps, strict=True))
    refused = sorted({d for r in summary.refusals for d in r.windows if d in cap_of})
    if refused:
        heights = [cap_of[d] for d in refused]
        ax.scatter(
            _x(refused, days[0]), heights, marker="x", s=60, color="red", zorder=3, label="refused"
        )
    ax.set_ylabel(f"{unit} charged per window")
    ax.set_title(f"Spend per accounting window ({summary.policy.composition} composition)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _draw_rolling(ax: Axes, summary: SpendSummary) -> None:
    x = _x([r.end for r in summary.rolling], summary.windows[0].window)
    ax.plot(x, [r.epsilon_spent for r in summary.rolling], marker=".", label="spent")
    ax.plot(x, [r.epsilon_cap for r in summary.rolling], color="black", label="cap")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("ε over the span")
    ax.set_title(f"Rolling {summary.policy.rolling_days}-day span ending on each day")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def timeline_png(summary: SpendSummary) -> bytes:
    """The timeline as PNG bytes (an empty chart with a note when nothing was charged)."""
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    if summary.windows:
        _draw_windows(top, summary)
        _draw_rolling(bottom, summary)
        first = summary.windows[0].window
        span = (summary.windows[-1].window - first).days
        step = max(1, math.ceil((span + 1) / _MAX_TICKS))
        ticks = list(range(0, span + 1, step))
        bottom.set_xticks(ticks, [str(first + timedelta(days=t)) for t in ticks])
        top.set_xlim(-1, span + 1)
        fig.autofmt_xdate()
    else:
        top.text(0.5, 0.5, "No release has been charged yet.", ha="center", va="center")
        top.set_axis_off()
        bottom.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()
