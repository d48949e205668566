"""The k-threshold: publish a cell only if its *noisy* value is at least k.

Deciding on the noisy value is post-processing of a DP output, so it costs no budget. Deciding on
the true value would be a data-dependent release and break DP: this module never sees it.
"""

from __future__ import annotations

import polars as pl


def suppress_below(noisy: pl.DataFrame, k: int, column: str = "value") -> tuple[pl.DataFrame, int]:
    """Rows of ``noisy`` whose ``column`` is at least ``k``, and how many were suppressed."""
    kept = noisy.filter(pl.col(column) >= k)
    return kept, noisy.height - kept.height
