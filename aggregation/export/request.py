"""What an analyst asks for: an indicator over a period, at a level, for some zones, in a format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from schemas.errors import ConfigurationError
from schemas.geography import ADMIN_LEVELS, AdminLevel
from schemas.indicators import Indicator, Period, spec
from schemas.staged import SOURCES, Source

if TYPE_CHECKING:
    from datetime import date

ExportFormat = Literal["csv", "parquet", "geojson", "xlsx"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet", "geojson", "xlsx")
EXTENSIONS: dict[ExportFormat, str] = {
    "csv": "csv",
    "parquet": "parquet",
    "geojson": "geojson",
    "xlsx": "xlsx",
}


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A request for released data: nothing here can cause noise to be drawn or budget spent.

    ``start``..``end``: the days wanted (daily indicators), or the span in which the released
    periods must lie (``residents``, ``relocations``). ``zones``: codes of the export's level or
    of a coarser one; a cell is kept if any of its zones lies in one of them (empty: every zone).
    ``value``: one value column of an indicator with several (default: all of them).
    ``baseline``: the period the scaled variant (``pct_change``) compares against.
    ``source``: the releases of which data (``cdr``, default, or ``gps``); never mixed.
    """

    indicator: Indicator
    start: date
    end: date
    level: AdminLevel = "admin2"
    zones: tuple[str, ...] = ()
    value: str | None = None
    baseline: Period | None = None
    source: Source = "cdr"

    def __post_init__(self) -> None:
        object.__setattr__(self, "indicator", Indicator(spec(self.indicator).indicator))
        object.__setattr__(self, "zones", tuple(z.strip() for z in self.zones if z.strip()))
        problems: list[str] = []
        if self.end < self.start:
            problems.append(f"--to {self.end} is before --from {self.start}")
        if self.level not in ADMIN_LEVELS:
            problems.append(f"level must be one of {list(ADMIN_LEVELS)}, got {self.level!r}")
        columns = spec(self.indicator).value_columns
        if self.value is not None and self.value not in columns:
            problems.append(
                f"{self.indicator} has the value columns {list(columns)}, not {self.value!r}"
            )
        if self.source not in SOURCES:
            problems.append(f"source must be one of {list(SOURCES)}, got {self.source!r}")
        elif self.source not in spec(self.indicator).sources:
            problems.append(f"{self.indicator} is never released from {self.source.upper()}")
        if problems:
            raise ConfigurationError("Bad export request: " + "; ".join(problems) + ".")

    @property
    def period(self) -> Period:
        """The days (or the span of periods) asked for."""
        return Period(self.start, self.end)

    @property
    def measures(self) -> tuple[str, ...]:
        """The value columns exported."""
        return (self.value,) if self.value else spec(self.indicator).value_columns

    @property
    def daily(self) -> bool:
        """Whether the indicator has one block of cells per day."""
        return spec(self.indicator).daily

    def stem(self) -> str:
        """A file name stem that says what the export holds."""
        parts = [str(self.indicator), self.level, str(self.start), str(self.end)]
        if self.source != "cdr":
            parts.insert(1, self.source)
        if self.value and len(spec(self.indicator).value_columns) > 1:
            parts.append(self.value)
        return "_".join(parts)
