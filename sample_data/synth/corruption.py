"""Error injection: the faults real operator exports carry, each one recorded in the truth.

A share ``error_rate`` of the rows of each file gets exactly one fault, drawn uniformly among the
kinds the format can carry: exact duplicates (a copy inserted right after the row), missing
required values, unparseable timestamps (CSV only), timestamps far outside the export day,
invalid values, unknown cell ids (CDR only) and malformed lines (CSV only: a field too few or too
many). Row numbers in the truth are 1-based positions in the written file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.quality import InjectedErrorKind as Kind

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from sample_data.synth.config import OutputFormat

_BAD_TIMES_CDR = ("2026-02-30 25:61:00", "not-a-time", "03/02/2026 08:15", "1772438100", "")
_BAD_TIMES_GPS = ("2026-02-30T25:61:00Z", "yesterday", "1772438100123", "2026-03-02 08:15")
_BAD_EVENT_TYPES = ("voice", "MMS", "CALL ", "?", "video")
OUT_OF_WINDOW_DAYS = (30, 400)
REQUIRED = {"cdr": ("msisdn", "event_time", "cell_id", "event_type"),
            "gps": ("device_id", "timestamp", "lat", "lon")}  # fmt: skip
TIME_COLUMN = {"cdr": "event_time", "gps": "timestamp"}


def kinds_for(feed: str, fmt: OutputFormat) -> tuple[Kind, ...]:
    """The fault kinds a file of this feed and format can carry."""
    kinds = [
        Kind.EXACT_DUPLICATE,
        Kind.MISSING_VALUE,
        Kind.TIMESTAMP_OUT_OF_WINDOW,
        Kind.INVALID_VALUE,
    ]
    if feed == "cdr":
        kinds.append(Kind.UNKNOWN_CELL)
    if fmt == "csv":
        kinds += [Kind.UNPARSEABLE_TIMESTAMP, Kind.MALFORMED_LINE]
    return tuple(kinds)


@dataclass
class Injected:
    """Faults injected into one chunk, by position in the chunk as written (0-based)."""

    position: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    column: list[str | None] = field(default_factory=list)
    duplicate_of: list[int | None] = field(default_factory=list)

    def add(self, pos: NDArray[np.int64], kind: Kind, column: list[str | None],
            duplicate_of: NDArray[np.int64] | None = None) -> None:  # fmt: skip
        """Record faults of one kind at positions ``pos``."""
        self.position += pos.tolist()
        self.kind += [kind.value] * pos.size
        self.column += column
        self.duplicate_of += (
            duplicate_of.tolist() if duplicate_of is not None else [None] * pos.size
        )


@dataclass(frozen=True)
class Corrupted:
    """A chunk after injection: the table to write, the lines to break, and what was done."""

    table: pa.Table
    malformed: NDArray[np.int64]
    injected: Injected


def _whole(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _replace(col: pa.ChunkedArray | pa.Array, pos: NDArray[np.int64], values: pa.Array) -> pa.Array:
    """``col`` with the values at sorted positions ``pos`` replaced by ``values`` (or nulls)."""
    arr = _whole(col)
    if pos.size == 0:
        return arr
    mask = np.zeros(len(arr), dtype=bool)
    mask[pos] = True
    return pc.replace_with_mask(arr, pa.array(mask), values.cast(arr.type))


Columns = dict[str, pa.ChunkedArray | pa.Array]


def corrupt(
    table: pa.Table, feed: str, fmt: OutputFormat, rate: float, rng: np.random.Generator
) -> Corrupted:
    """Inject faults into a clean chunk of ``feed`` ('cdr' or 'gps')."""
    injected = Injected()
    m = table.num_rows
    n_faults = int(rng.binomial(m, rate)) if rate > 0 else 0
    if n_faults == 0:
        if fmt == "csv":
            time_col = TIME_COLUMN[feed]
            table = table.set_column(
                table.schema.get_field_index(time_col),
                time_col,
                _format_time(table[time_col], feed),
            )
        return Corrupted(table, np.zeros(0, np.int64), injected)
    rows = np.sort(rng.choice(m, size=n_faults, replace=False))
    kinds = np.array(kinds_for(feed, fmt))[rng.integers(0, len(kinds_for(feed, fmt)), n_faults)]

    is_dup = kinds == Kind.EXACT_DUPLICATE
    repeat = np.ones(m, dtype=np.int64)
    repeat[rows[is_dup]] = 2
    table = table.take(pa.array(np.repeat(np.arange(m), repeat)))
    written_at = np.cumsum(repeat) - repeat  # position of each original row after insertion
    dups = written_at[rows[is_dup]]
    injected.add(dups + 1, Kind.EXACT_DUPLICATE, [None] * dups.size, duplicate_of=dups)

    def at(kind: Kind) -> NDArray[np.int64]:
        return np.asarray(written_at[rows[kinds == kind]], dtype=np.int64)

    columns: Columns = {n: table.column(n) for n in table.column_names}
    _shift_times(columns, at(Kind.TIMESTAMP_OUT_OF_WINDOW), feed, rng, injected)
    _invalidate(columns, at(Kind.INVALID_VALUE), feed, rng, injected)
    if feed == "cdr":
        _unknown_cells(columns, at(Kind.UNKNOWN_CELL), rng, injected)
    _blank(columns, at(Kind.MISSING_VALUE), feed, rng, injected)
    if fmt == "csv":
        time_col = TIME_COLUMN[feed]
        columns[time_col] = _format_time(columns[time_col], feed)
        _garble_times(columns, at(Kind.UNPARSEABLE_TIMESTAMP), feed, rng, injected)
    malformed = at(Kind.MALFORMED_LINE)
    injected.add(malformed, Kind.MALFORMED_LINE, [None] * malformed.size)
    return Corrupted(pa.table(columns), malformed, injected)


def _shift_times(
    columns: Columns, pos: NDArray[np.int64], feed: str, rng: np.random.Generator, log: Injected
) -> None:
    """Move timestamps 30 to 400 days away from the export day."""
    time_col = TIME_COLUMN[feed]
    days = rng.integers(*OUT_OF_WINDOW_DAYS, pos.size) * rng.choice([-1, 1], pos.size)
    shifted = pc.add(
        _whole(columns[time_col]).take(pa.array(pos)),
        pa.array(days * 86_400_000_000, pa.duration("us")),
    )
    columns[time_col] = _replace(columns[time_col], pos, shifted)
    log.add(pos, Kind.TIMESTAMP_OUT_OF_WINDOW, [time_col] * pos.size)


def _invalidate(
    columns: Columns, pos: NDArray[np.int64], feed: str, rng: np.random.Generator, log: Injected
) -> None:
    """Unknown event types (CDR) or impossible coordinates (GPS)."""
    if feed == "cdr":
        bad = rng.choice(_BAD_EVENT_TYPES, pos.size)
        columns["event_type"] = _replace(columns["event_type"], pos, pa.array(bad))
        log.add(pos, Kind.INVALID_VALUE, ["event_type"] * pos.size)
        return
    on_lat = rng.random(pos.size) < 0.5  # noqa: PLR2004 - half on each coordinate
    lat_pos, lon_pos = pos[on_lat], pos[~on_lat]
    columns["lat"] = _replace(columns["lat"], lat_pos, pa.array(rng.uniform(91, 180, lat_pos.size)))
    columns["lon"] = _replace(
        columns["lon"], lon_pos, pa.array(rng.uniform(-360, -181, lon_pos.size))
    )
    log.add(pos, Kind.INVALID_VALUE, ["lat" if b else "lon" for b in on_lat])


def _unknown_cells(
    columns: Columns, pos: NDArray[np.int64], rng: np.random.Generator, log: Injected
) -> None:
    """Cell ids that the cell table does not have (real tables have no ``XX`` sites)."""
    fake = [f"XX{int(v):05d}-9" for v in rng.integers(0, 100_000, pos.size)]
    columns["cell_id"] = _replace(columns["cell_id"], pos, pa.array(fake, pa.string()))
    log.add(pos, Kind.UNKNOWN_CELL, ["cell_id"] * pos.size)


def _blank(
    columns: Columns, pos: NDArray[np.int64], feed: str, rng: np.random.Generator, log: Injected
) -> None:
    """Nulls in required columns."""
    which = rng.choice(REQUIRED[feed], pos.size)
    for name in REQUIRED[feed]:
        sel = pos[which == name]
        columns[name] = _replace(columns[name], sel, pa.nulls(sel.size))
    log.add(pos, Kind.MISSING_VALUE, which.tolist())


def _garble_times(
    columns: Columns, pos: NDArray[np.int64], feed: str, rng: np.random.Generator, log: Injected
) -> None:
    """Timestamps in other formats, impossible dates, or words (CSV only)."""
    time_col = TIME_COLUMN[feed]
    bad = rng.choice(_BAD_TIMES_CDR if feed == "cdr" else _BAD_TIMES_GPS, pos.size)
    bad = np.where(bad == "", "   ", bad)  # blank, but not empty (empty means null)
    columns[time_col] = _replace(columns[time_col], pos, pa.array(bad, pa.string()))
    log.add(pos, Kind.UNPARSEABLE_TIMESTAMP, [time_col] * pos.size)


def _format_time(col: pa.ChunkedArray | pa.Array, feed: str) -> pa.Array:
    """Timestamps as the export writes them: local ``YYYY-MM-DD HH:MM:SS`` or UTC ISO 8601 ``Z``."""
    if feed == "cdr":
        return col.cast(pa.timestamp("s")).cast(pa.string())  # CDR carry whole seconds
    return pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ")


def break_lines(text: bytes, positions: NDArray[np.int64], rng: np.random.Generator,
                header: bool) -> bytes:  # fmt: skip
    """Malform the CSV data lines at ``positions``: drop trailing fields or add one."""
    if positions.size == 0:
        return text
    lines = text.split(b"\n")
    offset = 1 if header else 0
    for pos in positions.tolist():
        fields = lines[pos + offset].split(b",")
        if rng.random() < 0.5:  # noqa: PLR2004
            lines[pos + offset] = b",".join(fields[: int(rng.integers(1, len(fields) - 1))])
        else:
            lines[pos + offset] = b",".join([*fields, b"EXTRA"])
    return b"\n".join(lines)
