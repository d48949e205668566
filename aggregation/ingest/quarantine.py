"""Quarantined rows: what ingest refused, why, and where to find it in the operator's export.

One Parquet file per drop, ``quarantine/<drop>.parquet`` (contracts :data:`QUARANTINE_CDR` and
:data:`QUARANTINE_GPS`), replaced whenever the drop is ingested again and absent when nothing was
refused. Each row names the source file, the data row number and (for CSV) the physical line, the
reason code and the column at fault, then the row's raw values as text.

Raw identifiers never leave ingest, not even into quarantine: the id column (``msisdn`` or
``device_id``) is replaced by its keyed pseudonym, and a malformed line is recorded by file, line
and field count only (its id cannot be located reliably). Every other raw value is kept as written
so the operator can see what was wrong. ``quarantine/`` therefore still holds raw, non-identifying
values of the operator's own data (times, cells, coordinates): it stays inside the operator's
walls and is never exported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from aggregation.ingest.reading import ID_COLUMN, LINE, RAW_CONTRACTS, ROW
from aggregation.ingest.validation import COLUMN, DETAIL, REASON
from schemas.contract import Column, Contract
from schemas.quality import QuarantineReason

if TYPE_CHECKING:
    from pathlib import Path

    from aggregation.ingest.drops import Feed

_REASONS = tuple(r.value for r in QuarantineReason)
_TIME_TEXT = {"cdr": "%Y-%m-%d %H:%M:%S", "gps": "%Y-%m-%dT%H:%M:%S%.3fZ"}


def _contract(feed: Feed) -> Contract:
    raw = RAW_CONTRACTS[feed]
    id_col = ID_COLUMN[feed]
    values = tuple(
        Column(
            f"{c.name}_pseudonym" if c.name == id_col else c.name,
            pa.string(),
            (
                f"Keyed pseudonym of the raw {c.name} (never the raw id); null if it was empty."
                if c.name == id_col
                else f"Raw value as written (text); null if empty or on a malformed line. "
                f"{c.description}"
            ),
            nullable=True,
        )
        for c in raw.columns
    )
    return Contract(
        name=f"quarantine_{feed}",
        description=f"Rows of {feed.upper()} exports that ingest refused, with the reason.",
        columns=(
            Column("file", pa.string(), "Name of the raw file the row came from."),
            Column("row_number", pa.int64(), "1-based data row in the file (header excluded)."),
            Column(
                "line",
                pa.int64(),
                "1-based physical line in a CSV file (the header is line 1); null for Parquet.",
                nullable=True,
            ),
            Column("reason", pa.string(), "Why the row was refused.", allowed=_REASONS),
            Column(
                "column",
                pa.string(),
                "The column at fault; null for malformed lines.",
                nullable=True,
            ),
            Column("detail", pa.string(), "What was wrong, in words.", nullable=True),
            *values,
        ),
    )


QUARANTINE_CDR = _contract("cdr")
QUARANTINE_GPS = _contract("gps")
QUARANTINE: dict[Feed, Contract] = {"cdr": QUARANTINE_CDR, "gps": QUARANTINE_GPS}


def quarantine_rows(bad: pl.DataFrame, feed: Feed, file_name: str, *, text: bool) -> pa.Table:
    """Refused rows of a classified chunk (with a ``pseudonym`` column) as quarantine rows."""
    id_col = ID_COLUMN[feed]
    raw = RAW_CONTRACTS[feed]
    values = []
    for name in raw.names:
        if name == id_col:
            values.append(pl.col("pseudonym").alias(f"{name}_pseudonym"))
            continue
        col = pl.col(name)
        dtype = bad.schema[name]
        if not text and isinstance(dtype, pl.Datetime):
            col = col.dt.to_string(_TIME_TEXT[feed])
        values.append(col.cast(pl.String).alias(name))
    frame = bad.select(
        pl.lit(file_name).alias("file"),
        pl.col(ROW).alias("row_number"),
        pl.col(LINE).alias("line"),
        pl.col(REASON).alias("reason"),
        pl.col(COLUMN).alias("column"),
        pl.col(DETAIL).alias("detail"),
        *values,
    )
    return frame.to_arrow().cast(QUARANTINE[feed].schema)


class QuarantineWriter:
    """Appends quarantine rows of one drop to a Parquet file (created on the first row)."""

    def __init__(self, path: Path, feed: Feed) -> None:
        self.path = path
        self.feed = feed
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table) -> None:
        """Append rows."""
        if table.num_rows == 0:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path, QUARANTINE[self.feed].schema, compression="zstd"
            )
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> Path | None:
        """Finish the file; the path, or ``None`` if no row was quarantined."""
        if self._writer is None:
            return None
        self._writer.close()
        return self.path
