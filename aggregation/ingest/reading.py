"""Reading raw files: CSV (plain or gzipped) and Parquet, with exact row and line numbers.

Every raw file becomes a :class:`Source`: a Parquet file to scan, the number of data rows the file
holds, and a lazy scan (:meth:`Source.scan`) of the contract's columns plus bookkeeping columns:

``_row``        1-based position of the data row in the file (header and blank lines excluded)
``_line``       1-based physical line in a CSV file (the header is line 1); null for Parquet
``_fields``     number of fields found on a malformed CSV line; null otherwise
``_malformed``  the CSV line does not split into the contract's columns

CSV is read line by line, vectorised with Arrow, so that every row keeps its physical line number,
into a text-only Parquet file in the workspace's scratch directory. That file holds raw ids while
the run lasts; it is deleted when the file's ingest ends (or by the next ingest after a crash).
Exports are line-oriented and no value of the raw contracts holds a comma, a quote or a line break,
so a line is a row; a field may be wrapped in double quotes. A line is *malformed* when it does not
split into exactly the contract's number of fields, is not valid UTF-8, or holds a stray quote.
Blank lines are skipped (they hold no row). An empty field is a null; anything else, even blanks,
is a value. The header must name exactly the contract's columns, in any order.

Parquet files must have exactly the contract's columns, with compatible types (any string type
for strings, any integer type for integers, integers or floats for coordinates; CDR ``event_time``
a timestamp without time zone, GPS ``timestamp`` one with a time zone).

A file that cannot be read at all raises :class:`RawFileError`; the caller stages nothing from it.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.errors import MobilityError
from schemas.raw import RAW_CDR, RAW_GPS

if TYPE_CHECKING:
    import io
    from pathlib import Path

    from aggregation.ingest.drops import Feed, RawFile
    from schemas.contract import Contract

ROW, LINE, FIELDS, MALFORMED = "_row", "_line", "_fields", "_malformed"
RAW_CONTRACTS: dict[Feed, Contract] = {"cdr": RAW_CDR, "gps": RAW_GPS}
ID_COLUMN: dict[Feed, str] = {"cdr": "msisdn", "gps": "device_id"}
TIME_COLUMN: dict[Feed, str] = {"cdr": "event_time", "gps": "timestamp"}
BLOCK_BYTES = 16 << 20
NOTHING_STAGED = "Nothing from it was staged"
READ_ERRORS = (
    OSError,
    EOFError,
    zlib.error,
    pa.ArrowException,
    pl.exceptions.PolarsError,
    ValueError,
)
"""What reading a damaged file may raise."""


class RawFileError(MobilityError):
    """A raw file cannot be read at all (corrupt, truncated, wrong columns); nothing is staged."""


@dataclass(frozen=True, slots=True)
class Source:
    """A raw file made scannable: the Parquet file to read and how many data rows it holds."""

    raw: RawFile
    parquet: Path
    rows_in: int
    text: bool
    """Columns hold the text as written (CSV) rather than typed values (Parquet)."""

    @property
    def contract(self) -> Contract:
        """The raw contract of the file's feed."""
        return RAW_CONTRACTS[self.raw.feed]

    def scan(self) -> pl.LazyFrame:
        """The rows in file order with the bookkeeping columns, lazily (typed or text)."""
        if self.text:
            return pl.scan_parquet(self.parquet)
        lf = pl.scan_parquet(self.parquet, row_index_name=ROW, row_index_offset=1)
        casts = []
        for name, dtype in _CANONICAL[self.raw.feed].items():
            col = pl.col(name)
            if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
                col = col.dt.convert_time_zone("UTC")
            casts.append(col.cast(dtype))
        return lf.select(
            pl.col(ROW).cast(pl.Int64),
            pl.lit(None, pl.Int64).alias(LINE),
            pl.lit(None, pl.Int32).alias(FIELDS),
            pl.lit(value=False).alias(MALFORMED),
            *casts,
        )

    def unreadable(self, exc: BaseException) -> RawFileError:
        """The error to raise when reading the file fails part-way."""
        return _unreadable(self.raw, exc)


def open_source(raw: RawFile, scratch: Path) -> Source:
    """Check ``raw`` and make it scannable (CSV is normalised into ``scratch``)."""
    if raw.fmt == "parquet":
        return Source(raw, raw.path, _check_parquet(raw), text=False)
    out = scratch / f"{raw.drop_id}.lines.parquet"
    try:
        with gzip.open(raw.path, "rb") if raw.fmt == "csv.gz" else raw.path.open("rb") as stream:
            rows = _CsvNormaliser(raw, out).run(stream)
    except RawFileError:
        raise
    except READ_ERRORS as exc:
        raise _unreadable(raw, exc) from exc
    return Source(raw, out, rows, text=True)


def _unreadable(raw: RawFile, exc: BaseException) -> RawFileError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind = {"csv.gz": "gzipped CSV", "csv": "CSV", "parquet": "Parquet"}[raw.fmt]
    msg = (
        f"{raw.path}: cannot read this {kind} file ({detail}). {NOTHING_STAGED}; "
        "export the file again (is it complete?) and ingest it again."
    )
    return RawFileError(msg)


# --- Parquet ----------------------------------------------------------------------------------


def _type_ok(feed: Feed, name: str, t: pa.DataType) -> str | None:
    """Why ``t`` cannot hold column ``name`` of the feed's contract, or ``None`` if it can."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    want = RAW_CONTRACTS[feed].column(name).type
    if pa.types.is_null(t):
        return None
    if pa.types.is_timestamp(want):
        return _timestamp_problem(name, t, want)
    if pa.types.is_string(want):
        ok, kind = pa.types.is_string(t) or pa.types.is_large_string(t), "hold strings"
        ok = ok or pa.types.is_string_view(t)
    elif pa.types.is_integer(want):
        ok, kind = pa.types.is_integer(t), "be an integer"
    else:
        ok, kind = pa.types.is_floating(t) or pa.types.is_integer(t), "be a number"
    return None if ok else f"{name} has type {t}; it must {kind}"


def _timestamp_problem(name: str, t: pa.DataType, want: pa.DataType) -> str | None:
    if not pa.types.is_timestamp(t):
        return f"{name} has type {t}; it must be a timestamp"
    if want.tz is None and t.tz is not None:
        return f"{name} has time zone {t.tz}; it must be naive operator-local time"
    if want.tz is not None and t.tz is None:
        return f"{name} has no time zone; it must be a UTC (time-zone-aware) timestamp"
    return None


def _check_parquet(raw: RawFile) -> int:
    try:
        meta = pq.ParquetFile(raw.path)
        schema = meta.schema_arrow
        rows = int(meta.metadata.num_rows)
    except READ_ERRORS as exc:
        raise _unreadable(raw, exc) from exc
    contract = RAW_CONTRACTS[raw.feed]
    problems = _column_problems(raw.feed, schema.names)
    if not problems:
        problems = [p for f in schema if (p := _type_ok(raw.feed, f.name, f.type))]
    if problems:
        msg = (
            f"{raw.path}: not a {raw.feed.upper()} export per the {contract.name!r} contract: "
            + "; ".join(problems)
            + f". {NOTHING_STAGED}; export it with the contract's columns."
        )
        raise RawFileError(msg)
    return rows


def _column_problems(feed: Feed, names: list[str]) -> list[str]:
    contract = RAW_CONTRACTS[feed]
    missing = [c for c in contract.names if c not in names]
    extra = [c for c in names if c not in contract.names]
    dupes = sorted({c for c in names if names.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if dupes:
        problems.append(f"repeated columns {dupes}")
    other: Feed = "gps" if feed == "cdr" else "cdr"
    if problems and sorted(names) == sorted(RAW_CONTRACTS[other].names):
        problems.append(f"the columns are those of a {other.upper()} export: check the file name")
    return problems


_CANONICAL: dict[Feed, dict[str, pl.DataType]] = {
    "cdr": {
        "record_id": pl.String(),
        "msisdn": pl.String(),
        "event_time": pl.Datetime("us"),
        "cell_id": pl.String(),
        "event_type": pl.String(),
        "direction": pl.String(),
        "duration_s": pl.Int64(),
        "volume_bytes": pl.Int64(),
    },
    "gps": {
        "device_id": pl.String(),
        "timestamp": pl.Datetime("us", "UTC"),
        "lat": pl.Float64(),
        "lon": pl.Float64(),
        "accuracy_m": pl.Float64(),
    },
}


# --- CSV --------------------------------------------------------------------------------------


def csv_schema(feed: Feed) -> pa.Schema:
    """Schema of a normalised CSV file: bookkeeping columns, then every raw column as text."""
    return pa.schema(
        [
            pa.field(ROW, pa.int64(), nullable=False),
            pa.field(LINE, pa.int64(), nullable=False),
            pa.field(FIELDS, pa.int32()),
            pa.field(MALFORMED, pa.bool_(), nullable=False),
            *(pa.field(c, pa.string()) for c in RAW_CONTRACTS[feed].names),
        ]
    )


class _CsvNormaliser:
    """Turns a CSV stream into a Parquet file of text columns with line numbers, block by block."""

    def __init__(self, raw: RawFile, out: Path) -> None:
        self.raw = raw
        self.out = out
        self.names = RAW_CONTRACTS[raw.feed].names
        self.order: list[int] = []
        self.next_line = 2
        self.rows = 0

    def run(self, stream: io.BufferedIOBase) -> int:
        buffer = self._read_header(stream)
        schema = csv_schema(self.raw.feed)
        with pq.ParquetWriter(self.out, schema, compression="lz4") as writer:
            while True:
                block = stream.read(BLOCK_BYTES)
                buffer += block
                if not block:
                    if buffer:
                        self._write(writer, buffer + b"\n")
                    break
                cut = buffer.rfind(b"\n")
                if cut >= 0:
                    self._write(writer, buffer[: cut + 1])
                    buffer = buffer[cut + 1 :]
        return self.rows

    def _read_header(self, stream: io.BufferedIOBase) -> bytes:
        buffer = b""
        while b"\n" not in buffer:
            block = stream.read(1 << 16)
            if not block:
                break
            buffer += block
        head, _, rest = buffer.partition(b"\n")
        try:
            text = head.decode("utf-8").lstrip("\ufeff").rstrip("\r")
        except UnicodeDecodeError as exc:
            msg = (
                f"{self.raw.path}: the header line is not UTF-8 text ({exc}). {NOTHING_STAGED}; "
                "is this a CSV file?"
            )
            raise RawFileError(msg) from exc
        if not text:
            msg = (
                f"{self.raw.path}: the file is empty or has no header line. {NOTHING_STAGED}; "
                f"the first line must name the columns {','.join(self.names)}."
            )
            raise RawFileError(msg)
        header = [h.strip().strip('"') for h in text.split(",")]
        problems = _column_problems(self.raw.feed, header)
        if problems:
            msg = (
                f"{self.raw.path}: the header does not name the columns of a "
                f"{self.raw.feed.upper()} export: {'; '.join(problems)}. Expected the columns "
                f"{','.join(self.names)}. {NOTHING_STAGED}."
            )
            raise RawFileError(msg)
        self.order = [header.index(n) for n in self.names]
        return rest

    def _write(self, writer: pq.ParquetWriter, body: bytes) -> None:
        """Write the lines of ``body`` (whole lines, each ending with a newline)."""
        pieces = pc.list_flatten(pc.split_pattern(pa.array([body], pa.binary()), pattern=b"\n"))
        lines_bin = pieces.slice(0, len(pieces) - 1)  # the piece after the last newline is empty
        numbers = np.arange(self.next_line, self.next_line + len(lines_bin), dtype=np.int64)
        self.next_line += len(lines_bin)
        lines, valid_utf8 = _decode(lines_bin)
        lines = pc.utf8_rtrim(lines, characters="\r")
        keep = pc.greater(pc.utf8_length(lines), 0)  # blank lines hold no row
        lines, numbers, valid_utf8 = (
            lines.filter(keep),
            numbers[keep.to_numpy(zero_copy_only=False)],
            valid_utf8[keep.to_numpy(zero_copy_only=False)],
        )
        if len(lines) == 0:
            return
        table = self._split(lines, numbers, valid_utf8)
        writer.write_table(table)
        self.rows += table.num_rows

    def _split(self, lines: pa.Array, numbers: np.ndarray, valid_utf8: np.ndarray) -> pa.Table:
        n_cols = len(self.names)
        fields = pc.split_pattern(lines, pattern=",")
        counts = pc.list_value_length(fields).to_numpy(zero_copy_only=False).astype(np.int32)
        good = (counts == n_cols) & valid_utf8
        values = pc.list_flatten(fields.filter(pa.array(good)))
        columns = [_field_values(values, pos, n_cols) for pos in self.order]
        stray = _unquote(columns)
        if stray is not None:
            good_idx = np.flatnonzero(good)
            good[good_idx[stray]] = False
            columns = [c.filter(pa.array(~stray)) for c in columns]
        rows = np.arange(self.rows + 1, self.rows + len(lines) + 1, dtype=np.int64)
        bad = ~good
        n_bad = int(bad.sum())
        good_t = pa.table(
            [
                pa.array(rows[good]),
                pa.array(numbers[good]),
                pa.nulls(int(good.sum()), pa.int32()),
                pa.array(np.zeros(int(good.sum()), dtype=bool)),
                *columns,
            ],
            schema=csv_schema(self.raw.feed),
        )
        if n_bad == 0:
            return good_t
        bad_t = pa.table(
            [
                pa.array(rows[bad]),
                pa.array(numbers[bad]),
                pa.array(np.where(valid_utf8[bad], counts[bad], 0).astype(np.int32)),
                pa.array(np.ones(n_bad, dtype=bool)),
                *(pa.nulls(n_bad, pa.string()) for _ in self.names),
            ],
            schema=csv_schema(self.raw.feed),
        )
        both = pa.concat_tables([good_t, bad_t])
        return both.take(pc.sort_indices(both[ROW]))


def _decode(lines: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Lines as UTF-8 text, and which of them were valid UTF-8 (invalid ones become empty)."""
    try:
        return lines.cast(pa.string()), np.ones(len(lines), dtype=bool)
    except pa.ArrowInvalid:
        pass
    valid = np.ones(len(lines), dtype=bool)
    texts: list[str] = []
    for i, raw_line in enumerate(lines.to_pylist()):  # rare: only blocks holding bad bytes
        try:
            texts.append(raw_line.decode("utf-8"))
        except UnicodeDecodeError:
            valid[i] = False
            texts.append("?")
    return pa.array(texts, pa.string()), valid


def _field_values(values: pa.Array, pos: int, n_cols: int) -> pa.Array:
    """Column ``pos`` of rows of exactly ``n_cols`` fields, flattened row-major; '' becomes null."""
    col = values.take(pa.array(np.arange(pos, len(values), n_cols, dtype=np.int64)))
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


def _unquote(columns: list[pa.Array]) -> np.ndarray | None:
    """Strip one pair of enclosing double quotes in place; rows left with a quote, or ``None``."""
    stray: np.ndarray | None = None
    for i, written in enumerate(columns):
        if not pc.any(pc.match_substring(written, '"')).as_py():
            continue
        quoted = pc.and_(
            pc.and_(pc.starts_with(written, '"'), pc.ends_with(written, '"')),
            pc.greater_equal(pc.utf8_length(written), 2),
        )
        inner = pc.utf8_slice_codeunits(written, 1, -1)
        col = pc.if_else(quoted, inner, written)
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
        bad = pc.fill_null(pc.match_substring(col, '"'), fill_value=False)
        bad_np = bad.to_numpy(zero_copy_only=False)
        stray = bad_np if stray is None else stray | bad_np
        columns[i] = col
    return stray
