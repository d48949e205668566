"""Local times to UTC through the per-second table give polars' own conversion, exactly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.ingest.validation import LocalClock, Window, _to_utc

# Days with a clock change: spring forward, fall back, a 30-minute shift, and a plain day.
CASES = [
    ("Europe/London", dt.date(2026, 3, 29)),
    ("Europe/London", dt.date(2026, 10, 25)),
    ("America/Santiago", dt.date(2026, 4, 5)),
    ("Australia/Lord_Howe", dt.date(2026, 4, 5)),
    ("Africa/Lagos", dt.date(2026, 3, 2)),
]


def _times(day: dt.date, offsets_us: list[int | None]) -> pl.Series:
    start = dt.datetime.combine(day, dt.time()) - dt.timedelta(days=3)
    base = int((start - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000  # noqa: DTZ001
    values = [None if o is None else base + o for o in offsets_us]
    return pl.Series(values, dtype=pl.Int64).cast(pl.Datetime("us"))


@pytest.mark.parametrize(("timezone", "day"), CASES)
def test_every_second_around_a_clock_change(timezone: str, day: dt.date) -> None:
    clock = LocalClock(timezone, Window(day - dt.timedelta(days=1), day))
    local = _times(day, list(range(3 * 86_400 * 1_000_000, 4 * 86_400 * 1_000_000, 1_000_000)))
    assert clock.to_utc(local).equals(_to_utc(local, timezone))


@settings(deadline=None, max_examples=60)
@given(
    case=st.sampled_from(CASES),
    # seven days from three days before the window: inside it, around it, and far outside
    offsets=st.lists(st.one_of(st.none(), st.integers(0, 7 * 86_400 * 1_000_000 - 1)), max_size=50),
    unit=st.sampled_from(["us", "ms"]),
)
def test_any_time_inside_or_outside_the_window(
    case: tuple[str, dt.date], offsets: list[int | None], unit: str
) -> None:
    timezone, day = case
    clock = LocalClock(timezone, Window(day - dt.timedelta(days=1), day))
    local = _times(day, offsets).dt.cast_time_unit(unit)  # type: ignore[arg-type]
    expected = _to_utc(local, timezone)
    got = clock.to_utc(local)
    assert got.dtype == pl.Datetime("us", "UTC")
    assert got.equals(expected), np.flatnonzero((got != expected).fill_null(value=True))
