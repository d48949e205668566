"""Consistent levels: noisy totals of nested zones post-processed so that lower levels add up.

When the same day is released at several admin levels (admin1 ⊃ admin2 ⊃ admin3), each level is
a separate noisy answer and the admin3 zones of an admin2 zone do not add up to it. This module
turns them into one set of numbers that do, in two steps (as the US Census TopDown algorithm
and Hay et al., "Boosting the accuracy of differentially private histograms through
consistency", VLDB 2010):

1. **Weighted least squares on the tree** (:func:`least_squares`): the estimate of every zone
   that is closest, in the variance-weighted sense, to all the noisy values at once, under the
   constraint that children sum to their parent. For independent noise this is the minimum-
   variance linear unbiased estimate, computed exactly in two passes: up the tree, each zone
   combines its own value with the sum of its children's estimates (inverse-variance weights);
   down the tree, the gap between a parent's final value and its children's sum is shared out
   in proportion to the children's variances.
2. **Non-negative integers** (:func:`non_negative_integers`): top down, each parent's integer
   is split among its children by projecting their estimates onto the non-negative vectors with
   that sum (Euclidean projection onto the simplex), then rounding by largest remainder. Every
   level is then non-negative whole numbers, and each zone is exactly the sum of its children.

Both steps read only noisy values and their noise variances (functions of the public scales):
post-processing, no budget spent, nothing read from the data. The quantities must be additive
across levels for the result to mean anything (``event_counts``: events of admin3 zones add up
to their admin2 zone); ``presence`` and the OD indicators are not (one subscriber seen in two
admin3 zones of one admin2 zone is counted once there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


@dataclass(frozen=True, slots=True)
class NoisyLevel:
    """The noisy totals of every zone of one level, their noise variances, and their parents.

    ``parents`` maps each zone to its zone one level up (empty for the top level, whose zones
    share one implicit national root that has no measurement of its own).
    """

    values: Mapping[str, float]
    variances: Mapping[str, float]
    parents: Mapping[str, str]

    def __post_init__(self) -> None:
        if set(self.values) != set(self.variances):
            msg = "Every zone of a level needs a noisy value and a noise variance."
            raise ConfigurationError(msg)
        bad = [z for z, v in self.variances.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            msg = f"Noise variances must be finite and positive; zones {bad[:5]} are not."
            raise ConfigurationError(msg)


ROOT = ""
"""The implicit national root above the top level."""


def _children(levels: Sequence[NoisyLevel]) -> list[dict[str, list[str]]]:
    """For each level, its zones' children one level down (the root's children at index 0)."""
    out: list[dict[str, list[str]]] = []
    for i, level in enumerate(levels):
        kids: dict[str, list[str]] = {}
        for zone in sorted(level.values):
            parent = ROOT if i == 0 else level.parents.get(zone)
            if parent is None or (i > 0 and parent not in levels[i - 1].values):
                msg = (
                    f"Zone {zone!r} has no parent among the zones one level up ({parent!r}): "
                    "the levels must nest (every zone inside one zone of the level above)."
                )
                raise ConfigurationError(msg)
            kids.setdefault(parent, []).append(zone)
        out.append(kids)
    return out


def least_squares(levels: Sequence[NoisyLevel]) -> list[dict[str, float]]:
    """The weighted least-squares estimates of every zone of every level (coarsest first), such
    that each zone equals the sum of its children. See the module docstring."""
    if not levels:
        return []
    kids = _children(levels)
    est: list[dict[str, float]] = [dict(level.values) for level in levels]
    var: list[dict[str, float]] = [dict(level.variances) for level in levels]
    for i in range(len(levels) - 2, -1, -1):  # up: combine own value with the children's sum
        for zone, children in kids[i + 1].items():
            total = math.fsum(est[i + 1][c] for c in children)
            spread = math.fsum(var[i + 1][c] for c in children)
            own, own_var = est[i][zone], var[i][zone]
            weight = 1.0 / own_var + 1.0 / spread
            est[i][zone] = (own / own_var + total / spread) / weight
            var[i][zone] = 1.0 / weight
    root = math.fsum(est[0].values())
    final: list[dict[str, float]] = [{} for _ in levels]
    parents: dict[str, float] = {ROOT: root}
    for i in range(len(levels)):  # down: share each parent's gap in proportion to variances
        for parent, children in kids[i].items():
            gap = parents[parent] - math.fsum(est[i][c] for c in children)
            spread = math.fsum(var[i][c] for c in children)
            for c in children:
                final[i][c] = est[i][c] + gap * var[i][c] / spread
        parents = final[i]
    return final


def _simplex(values: Sequence[float], total: float) -> list[float]:
    """The Euclidean projection of ``values`` onto {y >= 0, sum(y) = total} (total >= 0)."""
    if total <= 0:
        return [0.0] * len(values)
    ordered = sorted(values, reverse=True)
    running, theta = 0.0, 0.0
    for j, u in enumerate(ordered, start=1):
        running += u
        candidate = (running - total) / j
        if u - candidate > 0:
            theta = candidate
    return [max(v - theta, 0.0) for v in values]


def _largest_remainder(values: Sequence[float], total: int, names: Sequence[str]) -> list[int]:
    """Whole numbers >= 0 summing to ``total``, each the floor of its value or one more (the
    largest fractional parts get the extra units; ties by name, so the result is reproducible)."""
    floors = [math.floor(v) for v in values]
    left = total - sum(floors)
    order = sorted(range(len(values)), key=lambda i: (-(values[i] - floors[i]), names[i]))
    for i in order[: max(left, 0)]:
        floors[i] += 1
    return floors


def non_negative_integers(
    levels: Sequence[NoisyLevel], estimates: Sequence[Mapping[str, float]]
) -> list[dict[str, int]]:
    """Whole numbers >= 0 for every zone, each zone the exact sum of its children, closest to
    ``estimates`` (from :func:`least_squares`) top down. See the module docstring."""
    if not levels:
        return []
    kids = _children(levels)
    out: list[dict[str, int]] = [{} for _ in levels]
    parents: dict[str, int] = {ROOT: max(0, round(math.fsum(estimates[0].values())))}
    for i in range(len(levels)):
        for parent, children in kids[i].items():
            projected = _simplex([estimates[i][c] for c in children], parents[parent])
            whole = _largest_remainder(projected, parents[parent], children)
            out[i].update(zip(children, whole, strict=True))
        for zone in levels[i].values:  # a zone whose parent is absent cannot happen (checked)
            out[i].setdefault(zone, 0)
        parents = out[i]
    return out


def consistent(levels: Sequence[NoisyLevel]) -> list[dict[str, int]]:
    """Least squares, then non-negative whole numbers: every level adds up to the one above."""
    return non_negative_integers(levels, least_squares(levels))
