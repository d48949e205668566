"""Inline SVG charts of an agreement's budget: used against the budget, per window and overall.

Plain SVG written as text: no script, no font and nothing else to load, so the page works
offline and shows the same everywhere.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

WIDTH = 720
USED = "#2f6690"
LEFT = "#d8e4ee"
CAP = "#c0392b"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def term_bar_svg(used: float, budget: float) -> str:
    """One horizontal bar: ε used over the term against the term's budget."""
    share = min(used / budget, 1.0) if budget > 0 else 1.0
    bar = WIDTH - 20
    label = f"ε used over the term: {used:g} of {budget:g} ({100 * used / budget:.0f} %)"
    return (
        f'<svg role="img" aria-label="{_e(label)}" width="{WIDTH}" height="46" '
        f'viewBox="0 0 {WIDTH} 46" xmlns="http://www.w3.org/2000/svg">'
        f'<rect x="10" y="18" width="{bar}" height="18" fill="{LEFT}"/>'
        f'<rect class="used" x="10" y="18" width="{bar * share:.1f}" height="18" fill="{USED}"/>'
        f'<text x="10" y="13">{_e(label)}</text></svg>'
    )


def window_chart_svg(windows: Sequence[tuple[str, float]], cap: float, window_name: str) -> str:
    """Bars of ε used per accounting window, with the agreement's cap per window as a line."""
    if not windows:
        return f"<p>No {_e(window_name)} of data has been charged under this agreement.</p>"
    height, top, bottom, left = 190, 34, 40, 40
    plot_h, plot_w = height - top - bottom, WIDTH - left - 10
    scale = max(cap, *(eps for _, eps in windows)) or 1.0
    step = plot_w / len(windows)
    bars = []
    for i, (window, eps) in enumerate(windows):
        h = plot_h * eps / scale
        x = left + i * step
        bars.append(
            f'<rect class="used" x="{x + step * 0.1:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{step * 0.8:.1f}" height="{h:.1f}" fill="{USED}">'
            f"<title>{_e(window)}: ε {eps:g} of {cap:g}</title></rect>"
        )
    every = max(1, len(windows) // 8)
    ticks = [
        f'<text x="{left + i * step + step / 2:.1f}" y="{height - bottom + 14}" '
        f'text-anchor="middle">{_e(window[5:])}</text>'
        for i, (window, _) in enumerate(windows)
        if i % every == 0
    ]
    cap_y = top + plot_h * (1 - cap / scale)
    label = f"ε used per {window_name} of data against the agreement's cap of {cap:g}"
    return (
        f'<svg role="img" aria-label="{_e(label)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<line x1="{left}" y1="{top + plot_h}" x2="{WIDTH - 10}" y2="{top + plot_h}" '
        'stroke="#4a5565"/>'
        + "".join(bars)
        + f'<line class="cap" x1="{left}" y1="{cap_y:.1f}" x2="{WIDTH - 10}" y2="{cap_y:.1f}" '
        f'stroke="{CAP}" stroke-dasharray="5 3"/>'
        f'<text x="{WIDTH - 12}" y="{cap_y - 4:.1f}" text-anchor="end" fill="{CAP}">'
        f"cap ε {cap:g}</text>"
        f'<text x="{left}" y="12">{_e(label)}</text>'
        + "".join(ticks)
        + f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text></svg>'
    )
