"""The published releases of a workspace: read from ``releases/``, checked against the ledger.

Only directories ``releases/<indicator>/<release_id>/`` whose ``metadata.json`` names the same
indicator and release id, and whose release id is an entry of the privacy ledger, are listed;
anything else (a half-written ``.tmp-*`` folder, a copied-in directory, a symbolic link leading out
of the workspace) is ignored and reported in :attr:`ReleaseCatalog.ignored`. Data files are checked
against the SHA-256 recorded in their metadata before they are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import polars as pl

from aggregation.export.zones import Geography
from aggregation.release import open_context
from aggregation.release.publish import DATA_FILES, METADATA_FILE, sha256_file
from schemas.errors import MobilityError
from schemas.indicators import Indicator, Period
from schemas.release_metadata import MetadataError, ReleaseMetadata

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from aggregation.ledger import LedgerEntry
    from aggregation.release import ReleaseContext
    from schemas.workspace import Workspace


@dataclass(frozen=True)
class ReleaseRecord:
    """One published release: its directory, its metadata and its ledger entry."""

    directory: Path
    metadata: ReleaseMetadata = field(hash=False, compare=False)
    ledger_status: str = "published"
    ledger_seq: int = 0
    """Position of its entry in the ledger's chain (release order)."""
    agreement: str | None = None
    """The data-sharing agreement it was made under (from its ledger entry), if any."""

    @property
    def release_id(self) -> str:
        """The release id (equal to its ledger entry id)."""
        return self.metadata.release_id

    @property
    def indicator(self) -> Indicator:
        """The indicator released."""
        return self.metadata.indicator

    @property
    def source(self) -> str:
        """The data released from: ``cdr`` or ``gps`` (releases made before GPS was a source
        do not say, and are CDR)."""
        return self.metadata.source

    @property
    def level(self) -> str:
        """The admin level of its zones."""
        return self.metadata.level

    @property
    def value_column(self) -> str:
        """The value column it publishes (``count``, ``distance_m``, ``subscribers``)."""
        return self.metadata.value_column

    @property
    def period(self) -> Period:
        """The days released (or the home period counted, for period indicators)."""
        return self.metadata.period

    @property
    def created_at(self) -> str:
        """When it was published (ISO 8601, UTC)."""
        return self.metadata.created_at

    @property
    def ci95(self) -> int:
        """The 95 % half-width of the noise of one cell."""
        return self.metadata.ci95_half_width

    def path(self, name: str) -> Path:
        """One of the release's own files (``data.parquet``, ``data.csv``, ``metadata.json``)."""
        if name not in (*DATA_FILES, METADATA_FILE):
            msg = f"A release has the files {[*DATA_FILES, METADATA_FILE]}, not {name!r}."
            raise MobilityError(msg)
        path = self.directory / name
        self.verify(name)
        return path

    def verify(self, name: str) -> None:
        """Raise :class:`MobilityError` unless data file ``name`` has the hash in the metadata."""
        if name == METADATA_FILE:
            return
        expected = self.metadata.files.get(name)
        found = sha256_file(self.directory / name)
        if expected != found:
            msg = (
                f"{self.directory / name} does not match the SHA-256 recorded in its "
                f"metadata.json ({expected}); the file changed after publication. Restore it "
                "from a backup (`mobility audit verify` lists every file the ledger expects)."
            )
            raise MobilityError(msg)

    def data(self) -> pl.DataFrame:
        """The released cells, read from ``data.parquet`` after checking its hash."""
        return pl.read_parquet(self.path("data.parquet"))

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready description (for listings)."""
        m = self.metadata
        return {
            "release_id": self.release_id,
            "indicator": str(self.indicator),
            "value_column": self.value_column,
            "level": self.level,
            "period": m.to_dict()["period"],
            "privacy_unit": str(m.privacy_unit),
            "epsilon": m.epsilon,
            "delta": m.delta,
            "mechanism": m.mechanism,
            "k": m.k,
            "ci95_half_width": m.ci95_half_width,
            "cells_released": m.cells_released,
            "cells_suppressed": m.cells_suppressed,
            "created_at": self.created_at,
            "ledger_status": self.ledger_status,
            "source": self.source,
        }


@dataclass(frozen=True)
class ReleaseCatalog:
    """Every published release of one workspace, plus its public geography."""

    context: ReleaseContext
    records: tuple[ReleaseRecord, ...]
    ignored: tuple[str, ...]

    @classmethod
    def open(cls, root: Path | str) -> ReleaseCatalog:
        """Scan the workspace at ``root``. Reads files and the ledger; writes nothing."""
        ctx = open_context(root, need_secret=False)
        entries = {e.entry_id: e for e in ctx.ledger.entries()}
        records, ignored = _scan(ctx.workspace, entries)
        return cls(ctx, tuple(records), tuple(ignored))

    @property
    def workspace(self) -> Workspace:
        """The workspace scanned."""
        return self.context.workspace

    @cached_property
    def geography(self) -> Geography:
        """The workspace's zones (every level)."""
        return Geography(self.context.zones_table)

    def under_agreements(self, agreements: tuple[str, ...]) -> ReleaseCatalog:
        """The catalog restricted to releases made under ``agreements`` (what a token bound to
        them may see; releases made under no agreement are not among them)."""
        kept = tuple(
            r for r in self.records if r.agreement is not None and r.agreement in agreements
        )
        return replace(self, records=kept)

    def of(self, indicator: Indicator | str) -> list[ReleaseRecord]:
        """Releases of ``indicator``, in ledger order (oldest first)."""
        return [r for r in self.records if r.indicator == Indicator(indicator)]

    def get(self, indicator: Indicator | str, release_id: str) -> ReleaseRecord | None:
        """The release ``release_id`` of ``indicator``, or None."""
        for record in self.of(indicator):
            if record.release_id == release_id:
                return record
        return None


def _scan(
    workspace: Workspace, entries: Mapping[str, LedgerEntry]
) -> tuple[list[ReleaseRecord], list[str]]:
    root = workspace.releases
    records: list[ReleaseRecord] = []
    ignored: list[str] = []
    if not root.is_dir():
        return records, ignored
    top = root.resolve()
    known = {i.value for i in Indicator}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name in known):
        for directory in sorted(p for p in folder.iterdir() if p.is_dir()):
            problem = _problem(directory, top, entries)
            if isinstance(problem, str):
                if not directory.name.startswith("."):
                    ignored.append(f"{directory}: {problem}")
                continue
            records.append(problem)
    records.sort(key=lambda r: r.ledger_seq)
    return records, ignored


def _problem(directory: Path, top: Path, entries: Mapping[str, LedgerEntry]) -> ReleaseRecord | str:
    """The record of ``directory``, or why it is not a published release."""
    metadata = _metadata(directory, top)
    if isinstance(metadata, str):
        return metadata
    entry = entries.get(directory.name)
    if entry is None or entry.indicator != directory.parent.name:
        return "no matching entry in the privacy ledger (not paid for by this workspace)"
    named = entry.parameters.get("agreement")
    agreement = named if isinstance(named, str) else None
    return ReleaseRecord(directory, metadata, entry.status, entry.seq, agreement)


def _metadata(directory: Path, top: Path) -> ReleaseMetadata | str:
    """The metadata of the release in ``directory``, or why it cannot be one."""
    if directory.name.startswith("."):
        return "not a release (hidden folder)"
    if not directory.resolve().is_relative_to(top):
        return "leads outside the workspace's releases/ folder"
    try:
        path = directory / METADATA_FILE
        stat = path.stat()
        metadata = _read(path, (stat.st_ino, stat.st_size, stat.st_mtime_ns))
    except (OSError, MetadataError) as exc:
        return f"unreadable {METADATA_FILE} ({exc})"
    named = (str(metadata.indicator), metadata.release_id)
    if named != (directory.parent.name, directory.name):
        return f"{METADATA_FILE} names release {named[1]!r} of indicator {named[0]!r}"
    return metadata


@lru_cache(maxsize=32768)
def _read(path: Path, stamp: tuple[int, int, int]) -> ReleaseMetadata:
    """``metadata.json`` at ``path`` parsed, once per ``stamp`` (inode, size, modification time)
    in this process: the API opens the catalog on every request, and a workspace holds thousands
    of releases whose metadata never change once published (a changed file has another stamp
    and is read again; ``audit verify`` reads and hashes every file itself)."""
    del stamp  # the cache key: a file rewritten in place is read again
    return ReleaseMetadata.read(path)
