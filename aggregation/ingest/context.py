"""What ingest needs besides the raw files: the workspace, the key, the reference geography."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aggregation.ingest.pseudonymise import Pseudonymiser, load_secret
from aggregation.ingest.staging import Layout
from aggregation.ingest.zones import CellTable, ZoneIndex
from schemas.workspace import Workspace

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from aggregation.ingest.drops import Feed


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
