"""Ground-truth indicators from a synthetic export's truth tables, to measure accuracy against.

These read the true itineraries (``truth/stays_*.parquet``), not the CDR: they say what really
happened in the synthetic country, including what sparse CDR cannot see. :func:`score_stays`
compares stays detected in the app's GPS fixes with the same itineraries.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class StayScores:
    """How detected stays compare with the true itineraries of the same devices and days.

    A detected stay is *correct* when a true stay covers at least half of it in time and the true
    place lies within ``max_distance_m`` of the detected centre; a true stay is *found* when a
    correct detected stay overlaps it. A true stay is
    *observable* when at least two fixes fall inside it, ``min_dwell`` or more apart: no rule can
    find the others from the fixes (recall over all true stays mixes the detector with how often
    the app reports).
    """

    detected: int
    correct: int
    true: int
    observable: int
    found_observable: int
    found: int

    @property
    def precision(self) -> float:
        """Correct detected stays over all detected stays."""
        return self.correct / self.detected if self.detected else float("nan")

    @property
    def recall(self) -> float:
        """Observable true stays found over all observable true stays."""
        return self.found_observable / self.observable if self.observable else float("nan")

    @property
    def recall_all(self) -> float:
        """True stays found over all true stays of the devices and days with fixes."""
        return self.found / self.true if self.true else float("nan")


METRES_PER_DEGREE = 111_195.0
"""Length of one degree of latitude (mean Earth radius), metres."""


def score_stays(
    detected: pl.DataFrame,
    fixes: pl.DataFrame,
    out_dir: Path,
    *,
    min_dwell_ms: int,
    max_distance_m: float = 200.0,
) -> StayScores:
    """Score ``detected`` (device, day, start_ms, end_ms, lat, lon; local milliseconds) against
    the truth, given the ``fixes`` (device, day, time_ms local) they were found in."""
    devices = (
        pl.read_parquet(out_dir / "truth" / "subscribers.parquet")
        .filter(pl.col("device_id").is_not_null())
        .select(pl.col("device_id").alias("device"), "msisdn")
    )
    days = fixes["day"].unique().sort().to_list()
    truth = (
        pl.concat([pl.read_parquet(out_dir / "truth" / f"stays_{d}.parquet") for d in days])
        .join(devices, on="msisdn")
        .select(
            "device",
            pl.col("date").alias("day"),
            "seq",
            pl.col("lat").alias("t_lat"),
            pl.col("lon").alias("t_lon"),
            pl.col("start").dt.epoch("ms").alias("t_start"),
            pl.col("end").dt.epoch("ms").alias("t_end"),
        )
        .join(fixes.select("device", "day").unique(), on=["device", "day"])
    )
    east = (pl.col("lon") - pl.col("t_lon")) * (pl.col("t_lat") * (3.141592653589793 / 180)).cos()
    north = pl.col("lat") - pl.col("t_lat")
    found_stays = detected.select("device", "day", "start_ms", "end_ms", "lat", "lon")
    pairs = found_stays.join(truth, on=["device", "day"]).with_columns(
        overlap=pl.min_horizontal("end_ms", "t_end") - pl.max_horizontal("start_ms", "t_start"),
        near=(east.pow(2) + north.pow(2)).sqrt() * METRES_PER_DEGREE <= max_distance_m,
    )
    half = (pl.col("overlap") * 2 >= pl.col("end_ms") - pl.col("start_ms")) & pl.col("near")
    correct = pairs.filter(half).select("device", "day", "start_ms").unique()
    found = pairs.filter(half & (pl.col("overlap") > 0)).select("device", "day", "seq").unique()
    inside = (
        fixes.join(truth, on=["device", "day"])
        .filter((pl.col("time_ms") >= pl.col("t_start")) & (pl.col("time_ms") < pl.col("t_end")))
        .group_by("device", "day", "seq")
        .agg(span=pl.col("time_ms").max() - pl.col("time_ms").min(), fixes=pl.len())
    )
    observable = inside.filter((pl.col("fixes") >= 2) & (pl.col("span") >= min_dwell_ms))  # noqa: PLR2004
    return StayScores(
        detected=detected.height,
        correct=correct.height,
        true=truth.height,
        observable=observable.height,
        found_observable=observable.join(found, on=["device", "day", "seq"]).height,
        found=found.height,
    )


def synthetic_fixes(out_dir: Path, day: dt.date, timezone: str) -> pl.DataFrame:
    """The raw GPS fixes of ``day`` in a synthetic export, in local time: device, day, time_ms
    (milliseconds of local wall-clock time since the epoch), lat, lon, accuracy_m."""
    raw = out_dir / "raw"
    path = next(raw.glob(f"gps_{day}.*"))
    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    local = (
        pl.col("timestamp")
        .str.to_datetime(time_zone="UTC")
        .dt.convert_time_zone(timezone)
        .dt.replace_time_zone(None)
        if frame.schema["timestamp"] == pl.String
        else pl.col("timestamp").dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    )
    return frame.select(
        pl.col("device_id").alias("device"),
        local.dt.date().alias("day"),
        local.dt.epoch("ms").alias("time_ms"),
        pl.col("lat").cast(pl.Float64),
        pl.col("lon").cast(pl.Float64),
        pl.col("accuracy_m").cast(pl.Float64),
    ).filter(pl.col("day") == day)
