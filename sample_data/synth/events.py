"""Network events (calls, SMS, data sessions) and app GPS fixes along each day's itinerary."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sample_data.synth.country import to_lonlat
from sample_data.synth.itinerary import DAY, HOUR, SATURDAY
from schemas.raw import RAW_CDR, RAW_GPS

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sample_data.synth.country import Country
    from sample_data.synth.itinerary import DayPlan
    from sample_data.synth.population import Subscribers

# Relative activity per local hour: quiet nights, a late-morning rise and an evening peak.
DIURNAL = np.array(
    [1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 4.0, 4.2, 4.5,
     4.8, 4.5, 4.2, 4.2, 4.4, 4.8, 5.2, 5.5, 5.2, 4.5, 3.2, 1.8]
)  # fmt: skip
APP_DIURNAL = np.where(np.arange(24) < 7, 0.15, 1.0)  # noqa: PLR2004 - apps sleep before 7:00
EVENT_TYPE_P = (0.28, 0.17, 0.55)  # call, sms, data
WEEKEND_ACTIVITY = 0.85
GPS_FIXES_PER_DAY = 18.0
EPOCH = dt.date(1970, 1, 1)


def _local_midnight(date: dt.date) -> int:
    return (date - EPOCH).days * DAY


def _seconds_of_day(
    rng: np.random.Generator, weights: NDArray[np.float64], n: int
) -> NDArray[np.int64]:
    hour = rng.choice(24, size=n, p=weights / weights.sum())
    return np.asarray(hour * HOUR + rng.integers(0, HOUR, n), dtype=np.int64)


def cdr_events(
    subs: Subscribers,
    plan: DayPlan,
    country: Country,
    date: dt.date,
    chunk: int,
    rng: np.random.Generator,
) -> tuple[pa.Table, NDArray[np.int32]]:
    """The chunk's clean CDR for the day (time-ordered) and the number of events per subscriber."""
    factor = WEEKEND_ACTIVITY if date.weekday() >= SATURDAY else 1.0
    counts = rng.poisson(subs.rate * factor)
    sub = np.repeat(np.arange(subs.size), counts)
    second = _seconds_of_day(rng, DIURNAL, sub.size)
    order = np.argsort(second, kind="stable")
    sub, second = sub[order], second[order]
    cell = plan.cell[sub, plan.slot_at(sub, second)]
    n = sub.size

    kind = rng.choice(3, size=n, p=EVENT_TYPE_P)
    is_call, is_sms, is_data = kind == 0, kind == 1, kind == 2  # noqa: PLR2004
    outgoing = rng.random(n) < 0.5  # noqa: PLR2004
    call_s = np.clip(rng.lognormal(np.log(75), 0.9, n), 1, 7200)
    data_s = np.clip(rng.lognormal(np.log(420), 1.1, n), 1, 86_400)
    volume = np.clip(rng.lognormal(np.log(3e6), 1.6, n), 1, 5e10).astype(np.int64)

    stamp = date.strftime("%y%m%d")
    record = int(stamp) * 10**12 + chunk * 10**8 + np.arange(n, dtype=np.int64)
    direction = pa.array(np.where(outgoing, "out", "in"), pa.string())
    table = pa.table(
        {
            "record_id": pa.array(record).cast(pa.string()),
            "msisdn": subs.msisdn.take(pa.array(sub)),
            "event_time": pa.array((_local_midnight(date) + second) * 1000, pa.timestamp("ms")),
            "cell_id": country.cells.column("cell_id").take(pa.array(cell)),
            "event_type": pa.array(np.array(["call", "sms", "data"])[kind], pa.string()),
            "direction": pc.if_else(pa.array(is_data), pa.scalar(None, pa.string()), direction),
            "duration_s": pa.array(np.where(is_call, call_s, data_s).astype(np.int32), mask=is_sms),
            "volume_bytes": pa.array(volume, mask=~is_data),
        },
        schema=RAW_CDR.schema,
    )
    return table, counts.astype(np.int32)


def gps_fixes(
    subs: Subscribers,
    plan: DayPlan,
    date: dt.date,
    timezone: str,
    rng: np.random.Generator,
) -> pa.Table:
    """The chunk's app GPS fixes for the day: true position plus a reported-accuracy error."""
    users = np.flatnonzero(subs.has_gps)
    counts = rng.poisson(GPS_FIXES_PER_DAY, users.size)
    sub = np.repeat(users, counts)
    second = _seconds_of_day(rng, APP_DIURNAL, sub.size)
    millis = rng.integers(0, 1000, sub.size)
    order = np.lexsort((millis, second))
    sub, second, millis = sub[order], second[order], millis[order]
    xy = plan.xy[sub, plan.slot_at(sub, second)]
    accuracy = np.clip(rng.lognormal(np.log(12.0), 0.6, sub.size), 3.0, 500.0)
    error_km = rng.normal(0.0, 1.0, (sub.size, 2)) * (accuracy[:, None] / 1000.0) * 0.66
    lon, lat = to_lonlat(xy[:, 0] + error_km[:, 0], xy[:, 1] + error_km[:, 1])
    local = pa.array((_local_midnight(date) + second) * 1000 + millis, pa.timestamp("ms"))
    utc = pc.assume_timezone(local, timezone=timezone, ambiguous="earliest", nonexistent="latest")
    return pa.table(
        {
            "device_id": subs.device_id.take(pa.array(sub)),
            "timestamp": utc.cast(pa.timestamp("ms", tz="UTC")),
            "lat": pa.array(np.round(lat, 6)),
            "lon": pa.array(np.round(lon, 6)),
            "accuracy_m": pa.array(np.round(accuracy, 1).astype(np.float32)),
        },
        schema=RAW_GPS.schema,
    )
