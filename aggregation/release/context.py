"""Everything a release needs from its workspace, opened once: policy, ledger, zones, keys."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from aggregation.bounding import BoundingKey
from aggregation.extract import StagedSource
from aggregation.ingest.pseudonymise import load_secret
from aggregation.ledger import Ledger
from schemas.budget_policy import BudgetPolicy
from schemas.errors import ConfigurationError
from schemas.geography import ZONES
from schemas.gps import StayRule
from schemas.indicators import Indicator, ZoneSet
from schemas.staged import FIXES_DIR
from schemas.workspace import Workspace

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import pyarrow as pa

    from schemas.geography import AdminLevel
    from schemas.staged import Source

_BOUNDING_LABEL = b"mobility-dp/contribution-bounding-order/v1"


def code_version() -> str:
    """The version of this code, recorded in every release and ledger entry."""
    try:
        return f"mobility-dp {version('mobility-dp')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "mobility-dp (unpackaged)"


@dataclass(frozen=True)
class ReleaseContext:
    """A workspace opened for releases. The secret is only held as a derived bounding key."""

    workspace: Workspace
    policy: BudgetPolicy
    ledger: Ledger
    bounding_key: BoundingKey | None

    @cached_property
    def zones_table(self) -> pa.Table:
        """The public zones (every level), from the workspace's geography."""
        path = self.workspace.resolve(self.workspace.config.geography.zones)
        if not path.exists():
            msg = (
                f"Zones file {path} not found: set [geography] zones in "
                f"{self.workspace.root / 'mobility.toml'} to the zones Parquet of your geography."
            )
            raise ConfigurationError(msg)
        # One file: ParquetFile.read, not read_table, whose dataset layer imports pandas when it
        # is installed (a second on every command's start-up).
        table = pq.ParquetFile(path).read()
        ZONES.validate(table, source=str(path))
        return table

    def zones(self, level: AdminLevel) -> ZoneSet:
        """The public key set of zones at ``level``."""
        return ZoneSet.from_table(self.zones_table, level)

    @property
    def source(self) -> StagedSource:
        """The staged events."""
        return StagedSource(self.workspace.staged)

    def source_for(self, feed: Source) -> StagedSource:
        """What releases from ``feed`` read: the staged events (CDR), or the staged GPS fixes
        with their coordinates (``staged/_fixes``)."""
        return self.source if feed == "cdr" else StagedSource(self.workspace.staged / FIXES_DIR)

    @cached_property
    def stay_rule(self) -> StayRule:
        """How stays are found in GPS fixes: the ``[gps]`` section of ``mobility.toml``."""
        return StayRule.from_mapping(
            self.workspace.config.gps, str(self.workspace.root / "mobility.toml")
        )

    def require_bounding_key(self) -> BoundingKey:
        """The key of contribution bounding; releases that read data need the secret."""
        if self.bounding_key is None:
            env = self.workspace.config.pseudonymisation.secret_env
            msg = (
                "Releasing needs the workspace secret (it keys the random order of contribution "
                f"bounding): set {env} as for ingest, or name a secret_file in mobility.toml."
            )
            raise ConfigurationError(msg)
        return self.bounding_key


def open_context(
    root: Path | str, *, environ: Mapping[str, str] | None = None, need_secret: bool = True
) -> ReleaseContext:
    """Open the workspace at ``root`` for releases (``need_secret=False`` for explain/audit)."""
    workspace = Workspace.open(root)
    policy = BudgetPolicy.from_mapping(
        workspace.config.privacy,
        indicators=[i.value for i in Indicator],
        source=str(workspace.root / "mobility.toml"),
    )
    key: BoundingKey | None = None
    env = os.environ if environ is None else environ
    try:
        secret = load_secret(workspace.config.pseudonymisation, workspace.root, env)
    except ConfigurationError:
        if need_secret:
            raise
    else:
        mac = secret.mac()
        mac.update(_BOUNDING_LABEL)
        key = BoundingKey(hmac.new(mac.digest(), _BOUNDING_LABEL, "sha256").digest())
    return ReleaseContext(workspace, policy, Ledger(workspace.ledger, policy), key)
