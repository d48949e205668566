"""Validation rules: which raw rows are quarantined, and why.

Every rule maps onto one :class:`~schemas.quality.QuarantineReason`. A row that breaks several
rules is quarantined once, for the first rule it breaks in this order of precedence (and, within a
reason, for the first column in contract order):

1. ``malformed_line``      the CSV line does not split into the contract's columns
2. ``missing_value``       a required column is empty (CDR: record_id, msisdn, event_time, cell_id,
                           event_type; GPS: device_id, timestamp, lat, lon)
3. ``unparseable_timestamp`` CSV timestamps not written ``YYYY-MM-DD HH:MM:SS`` (CDR, local time)
                           or ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` (GPS, UTC), or naming no real instant
4. ``timestamp_out_of_window`` the row's *local* date is outside the export day's accepted window
                           ``[D - late_days, D]`` for a file of export day ``D``. CDR times are
                           operator-local already; GPS times (UTC) are converted with the
                           workspace time zone first.
5. ``invalid_value``       msisdn not 6-15 digits; event_type not call/sms/data; direction not
                           in/out; duration_s or volume_bytes not a non-negative integer (duration
                           within 32 bits); a CDR local time that does not exist in the time zone
                           (the hour skipped at a daylight-saving change); lat outside [-90, 90],
                           lon outside [-180, 180], accuracy_m negative, or any of them not a
                           finite number
6. ``unknown_cell``        (CDR) the cell is not in the cell table, or was not in service on the
                           row's local date (see :mod:`aggregation.ingest.zones`)
   ``outside_coverage``    (GPS) the position lies outside every admin3 zone

Rules 1-5 are evaluated here, vectorised: :func:`flag` marks the rows that break any rule, and
:func:`explain` names the first rule broken, for those rows only. Rule 6 needs the reference
geography and is applied by :mod:`aggregation.ingest.zones`. Ambiguous local times (the hour
repeated when clocks go back) are read as the earlier instant. GPS timestamps are kept to the
second (truncated).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numba
import numpy as np
import polars as pl

from aggregation.ingest.reading import FIELDS, MALFORMED, RAW_CONTRACTS, TIME_COLUMN
from schemas.quality import QuarantineReason as Reason
from schemas.raw import DIRECTIONS, EVENT_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed

REASON, COLUMN, DETAIL, BAD = "_reason", "_column", "_detail", "_bad"
UTC, LOCAL, LAT, LON = "_utc", "_local", "_lat", "_lon"
"""Derived columns: instant (UTC), local wall-clock time, and parsed coordinates (GPS)."""

CDR_TIME_FORMAT = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
GPS_TIME_FORMAT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
MSISDN_FORMAT = r"^[0-9]{6,15}$"
ID_FORMAT: dict[Feed, str | None] = {"cdr": MSISDN_FORMAT, "gps": None}
"""The format a feed's subscriber id must have (a regular expression), if any."""
ID_OK = "_id_ok"
"""Whether the row's id has its feed's :data:`ID_FORMAT`: the id table checks each distinct id
once (see :meth:`~aggregation.ingest.idtable.IdTable.well_formed`), and :func:`flag_ids` adds
what it says to the rows' flags; :func:`explain` needs this column beside the raw ones."""
INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Window:
    """The local dates a file of one export day may hold."""

    first: dt.date
    last: dt.date

    @classmethod
    def for_export(cls, export_day: dt.date, late_days: int) -> Window:
        """``[export_day - late_days, export_day]``."""
        return cls(export_day - dt.timedelta(days=late_days), export_day)

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One way a row can be refused: the reason, the column at fault, the test, the explanation."""

    reason: Reason
    column: str | None
    broken: pl.Expr
    detail: pl.Expr


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def flag(rows: FrameT, feed: Feed, *, text: bool, window: Window, timezone: str) -> FrameT:
    """``rows`` with the derived columns and ``_bad``: the row breaks one of rules 1-5, the
    format of its id left out (:func:`flag_ids` adds it, once the ids are checked).

    ``text`` says whether the raw columns hold text as written in a CSV file (parsed here) or
    typed values read from Parquet (see :meth:`aggregation.ingest.reading.Source.scan`).
    """
    rules = _rules(feed, text=text, window=window, timezone=timezone, ids=False)
    broken = pl.any_horizontal(r.broken.fill_null(value=False) for r in rules)
    parsed = _parse(feed, text=text, timezone=timezone, window=window)
    return rows.with_columns(parsed).with_columns(broken.alias(BAD))


def flag_ids(rows: FrameT) -> FrameT:
    """Flagged ``rows`` (see :func:`flag`) also flagged where the id is not well formed
    (``_id_ok`` false; a missing id is flagged by :func:`flag` already)."""
    return rows.with_columns((pl.col(BAD) | ~pl.col(ID_OK).fill_null(value=True)).alias(BAD))


def explain(
    bad: pl.DataFrame, feed: Feed, *, text: bool, window: Window, timezone: str
) -> pl.DataFrame:
    """Flagged rows with ``_reason``, ``_column`` and ``_detail`` of the first rule they break."""
    rules = _rules(feed, text=text, window=window, timezone=timezone)
    return bad.with_columns(
        _first(rules, lambda r: pl.lit(r.reason.value)).alias(REASON),
        _first(rules, lambda r: pl.lit(r.column, pl.String)).alias(COLUMN),
        _first(rules, lambda r: r.detail).alias(DETAIL),
    )


def _first(rules: list[Rule], value: Callable[[Rule], pl.Expr]) -> pl.Expr:
    """The value of the first rule broken, row by row (null when none is)."""
    result = pl.lit(None, pl.String)
    for rule in reversed(rules):
        result = pl.when(rule.broken.fill_null(value=False)).then(value(rule)).otherwise(result)
    return result


# --- parsing ----------------------------------------------------------------------------------


def _parse(feed: Feed, *, text: bool, timezone: str, window: Window) -> list[pl.Expr]:
    if feed == "cdr":
        local = (
            pl.col("event_time").str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
            if text
            else pl.col("event_time")
        )
        utc = local.map_batches(
            LocalClock.of(timezone, window).to_utc,
            return_dtype=pl.Datetime("us", "UTC"),
            is_elementwise=True,
        )
        return [local.alias(LOCAL), utc.alias(UTC)]
    utc = (
        pl.col("timestamp")
        .str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False)
        .dt.replace_time_zone("UTC")
        if text
        else pl.col("timestamp")
    )
    local = utc.dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    return [
        utc.alias(UTC),
        local.alias(LOCAL),
        _number("lat", text=text).alias(LAT),
        _number("lon", text=text).alias(LON),
    ]


def _to_utc(local: pl.Series, timezone: str) -> pl.Series:
    """Local wall-clock times as instants: the earlier of two on a repeated hour, null in a
    skipped one."""
    aware = local.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    return aware.dt.convert_time_zone("UTC").dt.cast_time_unit("us")


class LocalClock:
    """Local times of one time zone to UTC, fast around an export's window.

    The offset from UTC of every second of the window (and a day on either side) is worked out
    once, by polars' own conversion (:func:`_to_utc`), and each time in that range then takes
    its second's offset: the same instant, at the cost of a subtraction. Time zones change
    offset on whole seconds, so a second has one offset, or none in a skipped hour. Times
    outside the range (rare: they are refused as out of window) are converted one by one.
    """

    def __init__(self, timezone: str, window: Window) -> None:
        self.timezone = timezone
        self._start = (window.first - dt.timedelta(days=1) - _EPOCH).days * 86_400
        days = (window.last - window.first).days + 3
        seconds = pl.Series(
            np.arange(self._start, self._start + days * 86_400, dtype=np.int64) * 1_000_000
        ).cast(pl.Datetime("us"))
        offsets = (
            seconds.to_physical()
            - _to_utc(seconds, timezone).dt.replace_time_zone(None).to_physical()
        )
        self._skipped = offsets.is_null().to_numpy()
        self._offsets = offsets.fill_null(0).to_numpy()

    @staticmethod
    @functools.lru_cache(maxsize=4)  # 9 bytes per second held: 3 MiB for a 2-day window
    def of(timezone: str, window: Window) -> LocalClock:
        """The clock of ``timezone`` around ``window``, made once (each chunk asks for it)."""
        return LocalClock(timezone, window)

    def to_utc(self, local: pl.Series) -> pl.Series:
        """``local`` (naive, any time unit) as UTC instants, in microseconds."""
        us = local.dt.cast_time_unit("us").to_physical()
        values = us.fill_null(0).to_numpy()
        status = np.empty(len(values), dtype=np.uint8)
        utc = _shifted(values, self._start, self._offsets, self._skipped, status)
        result = pl.Series(utc, dtype=pl.Int64)
        missing = np.flatnonzero(status != _SHIFTED) if len(status) else np.empty(0, np.int64)
        if len(missing):
            result = result.scatter(missing, None)
            outside = np.flatnonzero((status == _OUTSIDE) & us.is_not_null().to_numpy())
            if len(outside):
                exact = _to_utc(local.gather(outside), self.timezone).dt.replace_time_zone(None)
                result = result.scatter(outside, exact.to_physical())
        return result.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


_SHIFTED, _SKIPPED, _OUTSIDE = 0, 1, 2


@numba.njit(nogil=True, cache=True)
def _shifted(
    values: NDArray[np.int64],
    start: int,
    offsets: NDArray[np.int64],
    skipped: NDArray[np.bool_],
    status: NDArray[np.uint8],
) -> NDArray[np.int64]:
    """Each local time (microseconds) less its second's offset; ``status`` says which were
    shifted, which fall in a skipped second and which are outside the table."""
    out = np.empty(len(values), dtype=np.int64)
    for i in range(len(values)):
        at = values[i] // 1_000_000 - start  # floor division, as for times before 1970
        if at < 0 or at >= len(offsets):
            status[i] = _OUTSIDE
            out[i] = 0
        elif skipped[at]:
            status[i] = _SKIPPED
            out[i] = 0
        else:
            status[i] = _SHIFTED
            out[i] = values[i] - offsets[at]
    return out


_EPOCH = dt.date(1970, 1, 1)


def _number(name: str, *, text: bool) -> pl.Expr:
    col = pl.col(name)
    return col.cast(pl.Float64, strict=False) if text else col.cast(pl.Float64)


def _integer(name: str, *, text: bool) -> pl.Expr:
    col = pl.col(name)
    return col.str.to_integer(strict=False) if text else col.cast(pl.Int64)


def _unparsed(name: str, value: pl.Expr) -> pl.Expr:
    """The raw value is present but did not parse."""
    return pl.col(name).is_not_null() & value.is_null()


# --- rules ------------------------------------------------------------------------------------


def _rules(
    feed: Feed, *, text: bool, window: Window, timezone: str, ids: bool = True
) -> list[Rule]:
    """The rules in the order :func:`explain` tries them; ``ids``: with that of the id format."""
    contract = RAW_CONTRACTS[feed]
    time_col = TIME_COLUMN[feed]
    rules = [
        Rule(
            Reason.MALFORMED_LINE,
            None,
            pl.col(MALFORMED),
            pl.format(
                "{} fields where the header has {} (or a stray quote, or bytes that are not UTF-8)",
                pl.col(FIELDS),
                pl.lit(len(contract.names)),
            ),
        ),
    ]
    rules += [
        Rule(Reason.MISSING_VALUE, name, pl.col(name).is_null(), pl.lit("empty"))
        for name in contract.required
    ]
    if text:
        fmt = CDR_TIME_FORMAT if feed == "cdr" else GPS_TIME_FORMAT
        written = "YYYY-MM-DD HH:MM:SS" if feed == "cdr" else "YYYY-MM-DDTHH:MM:SS.fffZ"
        rules.append(
            Rule(
                Reason.UNPARSEABLE_TIMESTAMP,
                time_col,
                ~pl.col(time_col).str.contains(fmt)
                | pl.col(LOCAL if feed == "cdr" else UTC).is_null(),
                pl.lit(f"not a real time written {written}"),
            )
        )
    local_date = pl.col(LOCAL).dt.date()
    first = dt.datetime.combine(window.first, dt.time())
    after = dt.datetime.combine(window.last + dt.timedelta(days=1), dt.time())
    rules.append(
        Rule(
            Reason.TIMESTAMP_OUT_OF_WINDOW,
            time_col,
            ~((pl.col(LOCAL) >= first) & (pl.col(LOCAL) < after)),  # local date in the window
            pl.format(
                "local date {} outside the accepted window {}", local_date, pl.lit(str(window))
            ),
        )
    )
    rules += _cdr_value_rules(text, timezone, ids=ids) if feed == "cdr" else _gps_value_rules(text)
    return rules


def _one_of(column: str, values: Iterable[str]) -> pl.Expr:
    """The column equals one of a few ``values`` (faster than ``is_in`` for a handful)."""
    return pl.any_horizontal(pl.col(column) == v for v in values)


def _invalid(column: str, broken: pl.Expr, detail: str) -> Rule:
    return Rule(Reason.INVALID_VALUE, column, broken, pl.lit(detail))


def _cdr_value_rules(text: bool, timezone: str, *, ids: bool) -> list[Rule]:
    duration = _integer("duration_s", text=text)
    volume = _integer("volume_bytes", text=text)
    msisdn = _invalid(
        "msisdn",
        ~pl.col(ID_OK),  # msisdn matches MSISDN_FORMAT
        "not an E.164 number of 6 to 15 digits",
    )
    return [
        *([msisdn] if ids else []),
        _invalid("event_type", ~_one_of("event_type", EVENT_TYPES), "not call, sms or data"),
        _invalid(
            "direction",
            pl.col("direction").is_not_null() & ~_one_of("direction", DIRECTIONS),
            "not in or out",
        ),
        _invalid(
            "duration_s",
            _unparsed("duration_s", duration) | ~duration.is_between(0, INT32_MAX),
            "not a whole number of seconds from 0 to 2^31-1",
        ),
        _invalid(
            "volume_bytes",
            _unparsed("volume_bytes", volume) | (volume < 0),
            "not a non-negative whole number of bytes",
        ),
        _invalid(
            "event_time",
            pl.col(UTC).is_null(),
            f"local time that does not exist in {timezone} (daylight-saving gap)",
        ),
    ]


def _gps_value_rules(text: bool) -> list[Rule]:
    accuracy = _number("accuracy_m", text=text)
    return [
        _invalid(
            "lat",
            pl.col(LAT).is_null() | ~pl.col(LAT).is_between(-90.0, 90.0),
            "not a latitude in [-90, 90]",
        ),
        _invalid(
            "lon",
            pl.col(LON).is_null() | ~pl.col(LON).is_between(-180.0, 180.0),
            "not a longitude in [-180, 180]",
        ),
        _invalid(
            "accuracy_m",
            _unparsed("accuracy_m", accuracy) | ~accuracy.is_finite() | (accuracy < 0),
            "not a non-negative number of metres",
        ),
    ]
