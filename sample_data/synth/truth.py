"""Ground-truth indicators from a synthetic export's truth tables, to measure accuracy against.

These read the true itineraries (``truth/stays_*.parquet``), not the CDR: they say what really
happened in the synthetic country, including what sparse CDR cannot see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

LEVEL_CODE_LENGTH = {"admin1": 4, "admin2": 6, "admin3": 8}
"""Zone codes nest by prefix: the first characters of an admin3 code are its admin2 and admin1."""


def _stays(out_dir: Path, day: dt.date, level: str) -> pl.DataFrame:
    width = LEVEL_CODE_LENGTH[level]
    return (
        pl.read_parquet(out_dir / "truth" / f"stays_{day}.parquet")
        .with_columns(pl.col("admin3").str.slice(0, width).alias("zone"))
        .sort("msisdn", "seq")
    )


def true_od_trips(out_dir: Path, day: dt.date, level: str) -> pl.DataFrame:
    """True trips between distinct zones of ``level`` on ``day``: origin, destination, trips."""
    stays = _stays(out_dir, day, level)
    return (
        stays.with_columns(pl.col("zone").shift(1).over("msisdn").alias("origin"))
        .filter(pl.col("origin").is_not_null() & (pl.col("origin") != pl.col("zone")))
        .group_by("origin", pl.col("zone").alias("destination"))
        .agg(pl.len().cast(pl.Int64).alias("true_value"))
    )


def true_presence(out_dir: Path, day: dt.date, level: str) -> pl.DataFrame:
    """Subscribers who spent time in each zone of ``level`` on ``day``: zone, true_value."""
    stays = _stays(out_dir, day, level)
    return stays.group_by("zone").agg(
        pl.col("msisdn").n_unique().cast(pl.Int64).alias("true_value")
    )
