"""The publication rule: publish a cell only if its *noisy* value clears k and a reliability bar.

A cell is published when its noisy value is at least ``k`` **and** at least ``reliability ×
ci95``, where ``ci95`` is the cell's 95 % noise half-width. The half-width is a function of the
mechanism and its scale, both public (stated in every release), so the bar is one number,
:func:`publication_threshold`, fixed before any data are seen. Deciding on the noisy value is
post-processing of a DP output, so it costs no budget. Deciding on the true value would be a
data-dependent release and break DP: this module never sees it.
"""

from __future__ import annotations

import math

import polars as pl


def publication_threshold(k: int, reliability: float, ci95: int) -> int:
    """The least noisy value published: ``max(k, ⌈reliability × ci95⌉)`` (values are integers,
    so ``value >= reliability × ci95`` is ``value >= ⌈reliability × ci95⌉``)."""
    return max(k, math.ceil(reliability * ci95))


def suppress_below(noisy: pl.DataFrame, k: int, column: str = "value") -> tuple[pl.DataFrame, int]:
    """Rows of ``noisy`` whose ``column`` is at least ``k``, and how many were suppressed."""
    kept = noisy.filter(pl.col(column) >= k)
    return kept, noisy.height - kept.height


def suppress_unreliable(
    noisy: pl.DataFrame, k: int, reliability: float, ci95: int, column: str = "value"
) -> tuple[pl.DataFrame, int]:
    """Rows of ``noisy`` whose ``column`` clears :func:`publication_threshold`, and how many were
    suppressed. With ``reliability`` 0 this is :func:`suppress_below`."""
    return suppress_below(noisy, publication_threshold(k, reliability, ci95), column)


def publication_rule(k: int, reliability: float, ci95: int) -> str:
    """The rule in words, as release metadata and ``explain`` state it."""
    threshold = publication_threshold(k, reliability, ci95)
    if not reliability:
        return f"a cell is published only if its noisy value is at least k = {k}"
    return (
        f"a cell is published only if its noisy value is at least k = {k} and at least "
        f"{reliability:g} × ci95 = {reliability:g} × {ci95} (its own 95 % noise half-width), "
        f"that is at least {threshold}; every published row then has ci95 ≤ value / "
        f"{reliability:g}"
    )
