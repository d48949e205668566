"""Reference geography for ingest: cell table lookups (CDR) and point-in-polygon (GPS).

CDR events take the zones of their serving cell from the operator's cell table (contract
:data:`~schemas.geography.CELLS`). A cell id missing from the table, or a cell that was not in
service on the event's local date (before ``valid_from`` or after ``valid_to``), is
``unknown_cell``: zones are never guessed.

GPS fixes are located by point-in-polygon against the admin3 polygons of the zones file (contract
:data:`~schemas.geography.ZONES`) with a shapely STRtree, vectorised over a chunk; admin2 and admin1
follow from the zone hierarchy. A point on a boundary shared by several zones belongs to the first
of them in the zones file (the rule the cell table uses too); a point in no zone is
``outside_coverage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import shapely

from schemas.contract import ContractError
from schemas.errors import ConfigurationError
from schemas.geography import CELLS, ZONES

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

ADMIN = ("admin1", "admin2", "admin3")


def _reference_error(path: Path, what: str, key: str, problem: str) -> ConfigurationError:
    msg = (
        f"The {what} {path} {problem}. Fix the file, or point [geography] {key} in "
        "mobility.toml at the right one."
    )
    return ConfigurationError(msg)


@dataclass(frozen=True, slots=True)
class CellTable:
    """The cell table: ``cell_id`` → zones and service period."""

    ids: pl.Enum
    """The cell ids in table order: a cell's code in this enum is its place (its row)."""
    first_day: NDArray[np.int64]
    """Each cell's first day in service, days since the epoch."""
    last_day: NDArray[np.int64]
    """Each cell's last day in service (the last day there is while in service)."""
    places: pa.Table
    """Columns ``cell_id``, ``admin1``-``admin3``: what a staged event of each cell holds."""

    @classmethod
    def load(cls, path: Path) -> CellTable:
        """Read and check a cell table (CSV or Parquet, contract ``cells``)."""
        if not path.is_file():
            raise _reference_error(path, "cell table", "cells", "does not exist")
        try:
            table = _read_cells(path)
            CELLS.validate(table, source=str(path))
        except (pa.ArrowException, OSError, ContractError) as exc:
            raise _reference_error(path, "cell table", "cells", f"cannot be used: {exc}") from exc
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a table is a frame
        dupes = frame.filter(pl.col("cell_id").is_duplicated())["cell_id"].unique().sort()
        if len(dupes):
            raise _reference_error(
                path,
                "cell table",
                "cells",
                f"lists cells more than once: {dupes.head(5).to_list()}",
            )
        return cls(
            pl.Enum(frame["cell_id"]),
            _days(frame["valid_from"]),
            _days(frame["valid_to"]),  # null: in service
            table.select(["cell_id", *ADMIN]),
        )

    def rows(self, cell_id: pl.Series) -> pl.Series:
        """Int64 row of each cell in the table, -1 for a cell not in it (or a null one)."""
        if len(self.first_day) == 0:
            return pl.Series(cell_id.name, np.full(len(cell_id), -1, dtype=np.int64))
        codes = cell_id.cast(self.ids, strict=False).to_physical()  # unknown cells: null
        return codes.cast(pl.Int64).fill_null(-1)

    def in_service(
        self, rows: NDArray[np.int64], local_days: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """The place of cells at table ``rows`` (see :meth:`rows`), or -1 for no row or a cell
        not in service on the local date (days since the epoch)."""
        if len(self.first_day) == 0:
            return np.full(len(rows), -1, dtype=np.int64)
        known = rows >= 0
        at = np.where(known, rows, 0)
        served = (local_days >= self.first_day[at]) & (local_days <= self.last_day[at])
        return np.where(known & served, rows, -1)


def _days(dates: pl.Series) -> NDArray[np.int64]:
    """Dates as days since the epoch; null as the last day there is."""
    return dates.cast(pl.Int64).fill_null(np.iinfo(np.int64).max).to_numpy()


def _read_cells(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path).cast(CELLS.schema)
    options = pacsv.ConvertOptions(
        column_types=CELLS.schema,
        include_columns=CELLS.names,
        strings_can_be_null=True,
    )
    return pacsv.read_csv(path, convert_options=options).cast(CELLS.schema)


class ZoneIndex:
    """Admin3 polygons in an STRtree, with the admin2/admin1 codes above each."""

    def __init__(self, zones: pa.Table, source: str = "zones") -> None:
        admin3 = zones.filter(pc.equal(zones["level"], "admin3"))
        if admin3.num_rows == 0:
            msg = f"{source} holds no admin3 zones; GPS fixes cannot be located."
            raise ConfigurationError(msg)
        self.polygons = shapely.from_wkb(admin3["geometry_wkb"].to_numpy(zero_copy_only=False))
        self.tree = shapely.STRtree(self.polygons)
        parent = dict(
            zip(zones["zone_id"].to_pylist(), zones["parent_id"].to_pylist(), strict=True)
        )
        code3 = admin3["zone_id"].to_pylist()
        code2 = [parent.get(c) for c in code3]
        code1 = [parent.get(c) if c is not None else None for c in code2]
        orphans = [c for c, p1 in zip(code3, code1, strict=True) if p1 is None]
        if orphans:
            msg = (
                f"{source}: admin3 zones {orphans[:5]} have no admin2 and admin1 above them "
                "(parent_id); fix the zones file."
            )
            raise ConfigurationError(msg)
        codes = (code1, code2, code3)
        self.places = pa.table(
            {
                "cell_id": pa.nulls(len(code3), pa.string()),
                **{c: pa.array(v, pa.string()) for c, v in zip(ADMIN, codes, strict=True)},
            }
        )
        """Place table of GPS fixes: row ``i`` is admin3 zone ``i`` (no cell)."""

    @classmethod
    def load(cls, path: Path) -> ZoneIndex:
        """Read and check a zones file (Parquet, contract ``zones``)."""
        if not path.is_file():
            raise _reference_error(path, "zones file", "zones", "does not exist")
        try:
            table = pq.read_table(path)
            ZONES.validate(table, source=str(path))
        except (pa.ArrowException, OSError, ContractError) as exc:
            raise _reference_error(path, "zones file", "zones", f"cannot be used: {exc}") from exc
        return cls(table, source=str(path))

    def locate(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.int64]:
        """Index of the admin3 zone holding each point (first in file order), -1 if none."""
        points = shapely.points(lon, lat)
        point_idx, zone_idx = self.tree.query(points, predicate="intersects")
        found = np.full(len(points), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(found, point_idx, zone_idx.astype(np.int64))
        found[found == np.iinfo(np.int64).max] = -1
        return found
