"""Reason codes for rows ingest refuses; shared by ingest and the generator's error injection."""

from __future__ import annotations

from enum import StrEnum


class QuarantineReason(StrEnum):
    """Why a raw row was quarantined instead of staged. Stable codes: reports and tests use them."""

    MALFORMED_LINE = "malformed_line"
    """The CSV line does not split into the contract's columns (wrong field count, bad quoting)."""
    MISSING_VALUE = "missing_value"
    """A required column is empty or null."""
    UNPARSEABLE_TIMESTAMP = "unparseable_timestamp"
    """The timestamp is not in the contract's format."""
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
    """The timestamp parses but lies outside the export day's accepted window."""
    INVALID_VALUE = "invalid_value"
    """A value is outside its allowed set or range (event type, duration, coordinates)."""
    UNKNOWN_CELL = "unknown_cell"
    """The cell id is not in the cell reference table (never guessed)."""
    OUTSIDE_COVERAGE = "outside_coverage"
    """A GPS position falls outside every zone of the geography."""


class InjectedErrorKind(StrEnum):
    """What the synthetic generator injected into a row. Maps onto ingest outcomes."""

    MALFORMED_LINE = QuarantineReason.MALFORMED_LINE.value
    MISSING_VALUE = QuarantineReason.MISSING_VALUE.value
    UNPARSEABLE_TIMESTAMP = QuarantineReason.UNPARSEABLE_TIMESTAMP.value
    TIMESTAMP_OUT_OF_WINDOW = QuarantineReason.TIMESTAMP_OUT_OF_WINDOW.value
    INVALID_VALUE = QuarantineReason.INVALID_VALUE.value
    UNKNOWN_CELL = QuarantineReason.UNKNOWN_CELL.value
    EXACT_DUPLICATE = "exact_duplicate"
    """An exact copy of another row of the same file: dropped and counted, not quarantined."""
