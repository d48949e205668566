"""Raw files and their names: which feed, which export day, which format, which drop.

An operator drops one file per feed and export day, named ``cdr_YYYY-MM-DD.<ext>`` or
``gps_YYYY-MM-DD.<ext>`` with ``<ext>`` one of ``csv``, ``csv.gz`` or ``parquet`` (see
:mod:`schemas.raw`). The *drop id* is the name without its extension (``cdr_2026-03-02``): it names
everything ingest writes for the file, so re-ingesting a file (in any of the formats) replaces
exactly what the previous ingest of that drop wrote.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable

Feed = Literal["cdr", "gps"]
FileFormat = Literal["csv", "csv.gz", "parquet"]

_NAME = re.compile(r"^(?P<feed>cdr|gps)_(?P<day>\d{4}-\d{2}-\d{2})\.(?P<ext>csv|csv\.gz|parquet)$")
NAMING_RULE = "cdr_YYYY-MM-DD.csv|.csv.gz|.parquet or gps_YYYY-MM-DD.csv|.csv.gz|.parquet"


@dataclass(frozen=True, slots=True)
class RawFile:
    """One raw export file."""

    path: Path
    feed: Feed
    export_day: dt.date
    fmt: FileFormat

    @property
    def drop_id(self) -> str:
        """Name of everything ingest writes for this file, e.g. ``cdr_2026-03-02``."""
        return f"{self.feed}_{self.export_day.isoformat()}"

    @property
    def name(self) -> str:
        """The file name, as reports and quarantine rows cite it."""
        return self.path.name


def parse_name(path: Path) -> RawFile | None:
    """The raw file at ``path`` if its name follows the naming rule, else ``None``."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    try:
        day = dt.date.fromisoformat(match["day"])
    except ValueError:
        return None
    feed: Feed = "cdr" if match["feed"] == "cdr" else "gps"
    ext = match["ext"]
    fmt: FileFormat = "csv" if ext == "csv" else "csv.gz" if ext == "csv.gz" else "parquet"
    return RawFile(path=path, feed=feed, export_day=day, fmt=fmt)


def discover(paths: Iterable[Path | str]) -> list[RawFile]:
    """The raw files named by ``paths`` (files, or directories searched one level deep).

    Files named explicitly must follow the naming rule; in directories, other files are ignored.
    Raises :class:`ConfigurationError` for a missing path, a badly named file, a directory without
    raw files, or two files of the same drop (e.g. ``cdr_2026-03-02.csv`` and ``.parquet``).
    """
    found: list[RawFile] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            in_dir = [r for p in sorted(path.iterdir()) if p.is_file() and (r := parse_name(p))]
            if not in_dir:
                msg = f"Directory {path} holds no raw files named {NAMING_RULE}."
                raise ConfigurationError(msg)
            found.extend(in_dir)
        elif path.is_file():
            raw = parse_name(path)
            if raw is None:
                msg = (
                    f"{path}: raw files must be named {NAMING_RULE} (one file per feed and "
                    "export day); rename the file."
                )
                raise ConfigurationError(msg)
            found.append(raw)
        else:
            msg = f"{path} does not exist; pass raw files or directories that hold them."
            raise ConfigurationError(msg)
    if not found:
        msg = "No raw files given; pass at least one file or directory."
        raise ConfigurationError(msg)
    return _unique_drops(found)


def _unique_drops(files: list[RawFile]) -> list[RawFile]:
    by_drop: dict[str, RawFile] = {}
    for raw in files:
        resolved = RawFile(raw.path.resolve(), raw.feed, raw.export_day, raw.fmt)
        other = by_drop.get(raw.drop_id)
        if other is not None and other.path != resolved.path:
            msg = (
                f"{other.path} and {resolved.path} are the same drop ({raw.drop_id}); "
                "ingest only one of them."
            )
            raise ConfigurationError(msg)
        by_drop[raw.drop_id] = resolved
    return sorted(by_drop.values(), key=lambda r: (r.export_day, r.feed))
