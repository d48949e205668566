"""One chunk of a raw file, step by step: flagged and coded, identified, then as staged rows.

Each function takes a chunk (a Polars frame read from the file) at one stage of
:mod:`aggregation.ingest.pipeline` and hands it to the next; they run in the pipeline's reading
and preparing threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from aggregation.ingest.reading import ID_COLUMN
from aggregation.ingest.staging import FixCoords, StagedRows
from aggregation.ingest.validation import LAT, LON, UTC, flag, flag_ids
from schemas.staged import STAGED_EVENT_TYPES

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from aggregation.ingest.drops import Feed
    from aggregation.ingest.idtable import IdTable
    from aggregation.ingest.zones import CellTable

PID = "_pid"
"""Position of a row's id in the drop's table of pseudonyms."""
CELL_ROW, EVENT_TYPE = "_cell_row", "_event_type"
"""A CDR row's cell as its row in the cell table (-1: not in it), and its event type as its
index in :data:`~schemas.staged.STAGED_EVENT_TYPES` (null: not one of them)."""


def flag_and_code(
    feed: Feed, rule_args: dict[str, Any], cells: CellTable | None, chunk: pl.DataFrame
) -> pl.DataFrame:
    """``chunk`` flagged (:func:`~aggregation.ingest.validation.flag`), with its CDR rows' cells
    and event types as numbers: the row of the cell in the cell table, the index of the type in
    :data:`~schemas.staged.STAGED_EVENT_TYPES` (null: not a staged type).

    Runs in the reading thread: the string columns are coded there, not on the main thread.
    """
    chunk = flag(chunk, feed, **rule_args)
    if cells is None:
        return chunk
    event_type = chunk["event_type"].cast(pl.Enum(STAGED_EVENT_TYPES), strict=False)
    return chunk.with_columns(
        cells.rows(chunk["cell_id"]).alias(CELL_ROW),
        event_type.to_physical().alias(EVENT_TYPE),
    )


def identify(ids: IdTable, feed: Feed, chunk: pl.DataFrame) -> pl.DataFrame:
    """Flagged ``chunk`` with the position (``_pid``) and shard of each row's id in ``ids``,
    whether the id is well formed, and rows with an ill-formed id flagged too
    (:func:`~aggregation.ingest.validation.flag_ids`).

    Runs in the preparing thread, one chunk at a time in file order, so new ids are numbered in
    order of first appearance. Duplicate rows are identified too: their ids are those of the
    rows they copy, so they add no id.
    """
    pid = ids.positions(chunk[ID_COLUMN[feed]], PID)
    return flag_ids(chunk.with_columns(pid, ids.shards(pid), ids.well_formed(pid)))


MICROS_PER_DAY = 86_400_000_000
MICROS_PER_HOUR = 3_600_000_000


def micros(times: pl.Series) -> NDArray[np.int64]:
    """Datetimes as microseconds since the epoch (nulls: any value; mask them)."""
    return times.dt.cast_time_unit("us").to_physical().fill_null(0).to_numpy()


def fix_coords(chunk: pl.DataFrame) -> FixCoords:
    """The coordinates of every row of a GPS ``chunk`` (meaningful for the valid rows only)."""
    return FixCoords(
        lat=chunk[LAT].fill_null(0.0).cast(pl.Float64).to_numpy(),
        lon=chunk[LON].fill_null(0.0).cast(pl.Float64).to_numpy(),
        accuracy_m=chunk["accuracy_m"]  # text in CSV: checked by the rules already
        .cast(pl.Float64, strict=False)
        .cast(pl.Float32)
        .fill_null(float("nan"))
        .to_numpy(),
    )


def staged_rows(
    chunk: pl.DataFrame,
    place: NDArray[np.int64],
    local_us: NDArray[np.int64],
    local_days: NDArray[np.int64],
    feed: Feed,
) -> StagedRows:
    """Every row of ``chunk`` as staged integer columns (see :class:`StagedRows`); meaningful
    for the valid, located rows only, which the writer keeps (by a mask)."""
    if feed == "cdr":  # unknown types (refused rows): null
        types = chunk[EVENT_TYPE].fill_null(0).cast(pl.UInt8).to_numpy()
    else:
        types = np.full(len(chunk), STAGED_EVENT_TYPES.index("gps"), dtype=np.uint8)
    seconds = np.floor_divide(micros(chunk[UTC]), 1_000_000)
    hours = np.floor_divide(local_us, MICROS_PER_HOUR)
    return StagedRows(
        pid=chunk[PID].fill_null(0).to_numpy(),
        place=place.astype(np.uint32),
        event_ms=seconds * 1000,
        local_days=local_days.astype(np.int32),
        local_hour=np.remainder(hours, 24).astype(np.int8),
        event_type=types,
        shard=chunk["shard"].fill_null(0).to_numpy(),
    )
