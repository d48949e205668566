"""Stays from app location fixes: where a device dwelt, from when to when.

The rule (:class:`schemas.gps.StayRule`, defaults justified there): within one device-day, in
time order, a stay starts at a fix and takes every following fix within ``radius_m`` of the
stay's centre (the mean position of the fixes taken so far); up to ``max_outliers`` consecutive
fixes outside the radius are skipped as position errors if a fix comes back inside; a fix outside
after that, or a gap over ``max_gap_minutes``, ends the stay. The run is a stay if it spans at
least ``min_dwell_minutes`` from its first fix to its last; otherwise the next fix starts a new
candidate. Fixes less accurate than ``max_accuracy_m`` are left out first.

Distances use a flat projection around the device's first fix (metres east and north): over the
few kilometres a stay spans, its error is far below a fix's own error.

This is one pass over fixes sorted by (device-day, time), compiled with numba: linear in the
number of fixes, with no Python per device. Trips between stays are counted like CDR trips:
consecutive stays in distinct zones.

For the GPS indicators (:func:`stays_and_paths`), a stay's zone is the zone of its fix nearest its
centre (fixes are zone-mapped at ingest, so no polygon is needed here), and a device-day's path
length is the sum of great-circle distances between its consecutive accurate fixes, where every
fix from a stay's first to its last (skipped outliers included) stands at the stay's centre: a
device at rest adds nothing however its fixes jitter, and a move adds the distance from one
stay's centre to the next through the fixes in between.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np
import polars as pl

from schemas.errors import ConfigurationError
from schemas.gps import StayRule

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aggregation.ingest.zones import ZoneIndex

ADMIN = ("admin1", "admin2", "admin3")

EARTH_RADIUS_M = 6_371_008.8
"""Mean radius of the Earth (IUGG), metres."""

FIX_COLUMNS = ("device", "day", "time_ms", "lat", "lon", "accuracy_m")
"""Columns :func:`detect_stays` reads: a device key, its day (any sortable key), the fix time
in milliseconds, WGS84 degrees, and the reported accuracy in metres (null: unknown, kept)."""

STAY_SCHEMA = pl.Schema(
    {
        "device": pl.String,
        "day": pl.Date,
        "seq": pl.Int32,
        "start_ms": pl.Int64,
        "end_ms": pl.Int64,
        "lat": pl.Float64,
        "lon": pl.Float64,
        "fixes": pl.Int32,
    }
)


@numba.njit(nogil=True, cache=True)
def _stays(
    group: NDArray[np.int64],
    time_ms: NDArray[np.int64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    radius_m: float,
    min_dwell_ms: int,
    max_outliers: int,
    max_gap_ms: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Stays of fixes sorted by (group, time): rows of (first fix, last fix, fixes taken) and
    the centre (lat, lon) of each."""
    n = len(time_ms)
    bounds = np.empty((n, 3), dtype=np.int64)
    centre = np.empty((n, 2), dtype=np.float64)
    found = 0
    to_rad = math.pi / 180.0
    i = 0
    while i < n:
        g = group[i]
        scale_x = EARTH_RADIUS_M * to_rad * math.cos(lat[i] * to_rad)
        scale_y = EARTH_RADIUS_M * to_rad
        sum_x = 0.0
        sum_y = 0.0
        count = 1
        last = i
        misses = 0
        k = i + 1
        while k < n and group[k] == g and time_ms[k] - time_ms[last] <= max_gap_ms:
            cx = sum_x / count
            cy = sum_y / count
            dx = (lon[k] - lon[i]) * scale_x - cx
            dy = (lat[k] - lat[i]) * scale_y - cy
            if dx * dx + dy * dy <= radius_m * radius_m:
                sum_x += (lon[k] - lon[i]) * scale_x
                sum_y += (lat[k] - lat[i]) * scale_y
                count += 1
                last = k
                misses = 0
            else:
                misses += 1
                if misses > max_outliers:
                    break
            k += 1
        if count >= 2 and time_ms[last] - time_ms[i] >= min_dwell_ms:  # noqa: PLR2004
            bounds[found, 0] = i
            bounds[found, 1] = last
            bounds[found, 2] = count
            centre[found, 0] = lat[i] + sum_y / count / scale_y
            centre[found, 1] = lon[i] + sum_x / count / scale_x
            found += 1
            i = last + 1
        else:
            i += 1
    return bounds[:found], centre[:found]


@numba.njit(nogil=True, cache=True)
def _nearest_and_paths(
    group: NDArray[np.int64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    bounds: NDArray[np.int64],
    centre: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """For fixes sorted by (group, time) and their stays: the fix nearest each stay's centre,
    and the path length (metres) of the group each fix belongs to, at the group's first fix
    (NaN elsewhere)."""
    n = len(lat)
    to_rad = math.pi / 180.0
    at_lat = lat.copy()
    at_lon = lon.copy()
    nearest = np.empty(len(bounds), dtype=np.int64)
    for s in range(len(bounds)):
        scale_x = math.cos(centre[s, 0] * to_rad)
        best = -1.0
        for k in range(bounds[s, 0], bounds[s, 1] + 1):
            dx = (lon[k] - centre[s, 1]) * scale_x
            dy = lat[k] - centre[s, 0]
            d = dx * dx + dy * dy
            if best < 0.0 or d < best:
                best = d
                nearest[s] = k
            at_lat[k] = centre[s, 0]
            at_lon[k] = centre[s, 1]
    paths = np.full(n, np.nan)
    first = 0
    total = 0.0
    for i in range(n):
        if i > 0 and group[i] == group[i - 1]:
            p1 = at_lat[i - 1] * to_rad
            p2 = at_lat[i] * to_rad
            h = (
                math.sin((p2 - p1) / 2) ** 2
                + math.cos(p1)
                * math.cos(p2)
                * math.sin((at_lon[i] - at_lon[i - 1]) * to_rad / 2) ** 2
            )
            total += 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))
        else:
            if i > 0:
                paths[first] = total
            first = i
            total = 0.0
    if n > 0:
        paths[first] = total
    return nearest, paths


def _usable(fixes: pl.DataFrame, rule: StayRule, extra: tuple[str, ...] = ()) -> pl.DataFrame:
    """The fixes a stay can be found in (located, accurate enough), sorted by (device, day,
    time, position), with the number of their device-day as ``_group``."""
    columns = (*FIX_COLUMNS, *extra)
    missing = [c for c in columns if c not in fixes.columns]
    if missing:
        msg = f"Stay detection needs the columns {list(columns)}; missing {missing}."
        raise ConfigurationError(msg)
    return (
        fixes.select(columns)
        .filter(
            pl.col("lat").is_not_null()
            & pl.col("lon").is_not_null()
            & (pl.col("accuracy_m").is_null() | (pl.col("accuracy_m") <= rule.max_accuracy_m))
        )
        # A total order: fixes sharing a millisecond sort by position, so stays (and the
        # aggregates an auditor recomputes) do not depend on the order the files list them in.
        .sort("device", "day", "time_ms", "lat", "lon", "accuracy_m")
        .with_columns(pl.struct("device", "day").rank("dense").cast(pl.Int64).alias("_group"))
    )


def _run(usable: pl.DataFrame, rule: StayRule) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    return _stays(
        usable["_group"].to_numpy(),
        usable["time_ms"].cast(pl.Int64).to_numpy(),
        usable["lat"].cast(pl.Float64).to_numpy(),
        usable["lon"].cast(pl.Float64).to_numpy(),
        rule.radius_m,
        round(rule.min_dwell_minutes * 60_000),
        rule.max_outliers,
        round(rule.max_gap_minutes * 60_000),
    )


def _stay_frame(
    usable: pl.DataFrame, bounds: NDArray[np.int64], centre: NDArray[np.float64]
) -> pl.DataFrame:
    firsts = pl.Series(bounds[:, 0], dtype=pl.Int64)
    lasts = pl.Series(bounds[:, 1], dtype=pl.Int64)
    found = pl.DataFrame(
        {
            "device": usable["device"].gather(firsts),
            "day": usable["day"].gather(firsts),
            "start_ms": usable["time_ms"].gather(firsts).cast(pl.Int64),
            "end_ms": usable["time_ms"].gather(lasts).cast(pl.Int64),
            "lat": centre[:, 0],
            "lon": centre[:, 1],
            "fixes": pl.Series(bounds[:, 2], dtype=pl.Int32),
        }
    )
    found = found.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int32).over("device", "day").alias("seq")
    )
    return found.select(STAY_SCHEMA.names()).cast(dict(STAY_SCHEMA))  # type: ignore[arg-type]


def stays_and_paths(
    fixes: pl.DataFrame, rule: StayRule, zone: str = "zone"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The stays of ``fixes`` (columns :data:`FIX_COLUMNS` and ``zone``) with the zone of each
    (that of its fix nearest its centre), and the path length of every device-day with an
    accurate fix.

    Returns ``(stays, paths)``: ``stays`` has the columns of :data:`STAY_SCHEMA` and ``zone``;
    ``paths`` has ``device, day, distance_m`` (whole metres, unclipped). Both depend on each
    device-day's own fixes only.
    """
    usable = _usable(fixes, rule, (zone,))
    bounds, centre = _run(usable, rule)
    nearest, paths = _nearest_and_paths(
        usable["_group"].to_numpy(),
        usable["lat"].cast(pl.Float64).to_numpy(),
        usable["lon"].cast(pl.Float64).to_numpy(),
        bounds,
        centre,
    )
    stays = _stay_frame(usable, bounds, centre).with_columns(
        usable[zone].gather(pl.Series(nearest, dtype=pl.Int64)).alias("zone")
    )
    starts = ~np.isnan(paths)
    per_day = pl.DataFrame(
        {
            "device": usable["device"].filter(pl.Series(starts)),
            "day": usable["day"].filter(pl.Series(starts)),
            "distance_m": pl.Series(np.round(paths[starts]), dtype=pl.Float64).cast(pl.Int64),
        }
    )
    return stays, per_day


def detect_stays(fixes: pl.DataFrame, rule: StayRule | None = None) -> pl.DataFrame:
    """The stays in ``fixes`` (columns :data:`FIX_COLUMNS`), one row each (:data:`STAY_SCHEMA`):
    device, day, their order in the day, first and last fix time, centre, number of fixes."""
    rule = rule or StayRule()
    usable = _usable(fixes, rule)
    bounds, centre = _run(usable, rule)
    return _stay_frame(usable, bounds, centre)


def with_zones(stays: pl.DataFrame, zones: ZoneIndex) -> pl.DataFrame:
    """``stays`` with the admin1-3 zones of their centres (null outside every zone)."""
    found = zones.locate(stays["lon"].to_numpy(), stays["lat"].to_numpy())
    codes = {name: zones.places[name].to_pylist() for name in ADMIN}
    located = pl.DataFrame({"_zone": range(len(codes["admin3"])), **codes}).cast(
        {"_zone": pl.Int64}
    )
    rows = pl.Series("_zone", found, dtype=pl.Int64)
    return stays.with_columns(rows).join(located, on="_zone", how="left").drop("_zone")
