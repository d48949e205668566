"""What ingest needs besides the raw files: the workspace, the key, the reference geography,
and the workspace's ingest lock with its scratch directory."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aggregation.file_lock import hold_flock
from aggregation.ingest.commit import Layout
from aggregation.ingest.pseudonymise import Pseudonymiser, load_secret
from aggregation.ingest.zones import CellTable, ZoneIndex
from schemas.errors import MobilityError
from schemas.workspace import Workspace

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path

    from aggregation.ingest.drops import Feed

LOCK_FILE = ".ingest.lock"
"""The workspace's ingest lock: one ingest at a time."""


@dataclass
class IngestContext:
    """Everything ingest needs besides the files: settings, key, reference geography."""

    workspace: Workspace
    pseudonymiser: Pseudonymiser
    _cells: CellTable | None = None
    _zones: ZoneIndex | None = None

    @property
    def cells(self) -> CellTable:
        """The cell table, read on first use."""
        if self._cells is None:
            geo = self.workspace.config.geography
            self._cells = CellTable.load(self.workspace.resolve(geo.cells))
        return self._cells

    @property
    def zones(self) -> ZoneIndex:
        """The zone polygons, read on first use."""
        if self._zones is None:
            geo = self.workspace.config.geography
            self._zones = ZoneIndex.load(self.workspace.resolve(geo.zones))
        return self._zones

    @property
    def layout(self) -> Layout:
        """The settings staged data must share."""
        cfg = self.workspace.config
        return Layout(cfg.ingest.shards, cfg.workspace.timezone, self.pseudonymiser.key_id)

    def settings(self) -> dict[str, Any]:
        """Settings for the report (no secret)."""
        cfg = self.workspace.config
        return {
            "timezone": cfg.workspace.timezone,
            "shards": cfg.ingest.shards,
            "late_days": cfg.ingest.late_days,
            "key_id": self.pseudonymiser.key_id,
        }


def prepare(
    workspace: Workspace | Path | str,
    *,
    feeds: Iterable[Feed] = ("cdr", "gps"),
    environ: Mapping[str, str] | None = None,
) -> IngestContext:
    """Open the workspace, load the secret and the reference data the ``feeds`` need.

    Raises :class:`~schemas.errors.ConfigurationError` for a bad configuration, a missing secret
    or unusable reference data, before any file is touched.
    """
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    secret = load_secret(
        ws.config.pseudonymisation, ws.root, os.environ if environ is None else environ
    )
    ctx = IngestContext(ws, Pseudonymiser(secret, ws.config.ingest.shards))
    wanted = set(feeds)
    if "cdr" in wanted:
        _ = ctx.cells
    if "gps" in wanted:
        _ = ctx.zones
    return ctx


class IngestBusyError(MobilityError):
    """Another ingest holds the workspace."""


@contextmanager
def workspace_lock(ws: Workspace) -> Iterator[Path]:
    """Hold the workspace's ingest lock; yield a fresh scratch directory, removed afterwards."""

    def busy(holder: str) -> str:
        return (
            f"Another ingest is running in {ws.root} (it holds {LOCK_FILE}: {holder}); wait for "
            "it to finish, then run this one again."
        )

    lock = ws.root / LOCK_FILE
    with hold_flock(
        lock, exclusive=True, timeout=0, owner="ingest", busy=busy, error=IngestBusyError
    ):
        scratch = ws.scratch / "ingest"
        shutil.rmtree(scratch, ignore_errors=True)  # anything here is left from a crashed run
        scratch.mkdir(parents=True)
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
