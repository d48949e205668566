"""The workspace: its directory layout and its configuration file, ``mobility.toml``.

A workspace is one directory that holds everything the pipeline keeps for one operator::

    mobility.toml     configuration (parsed here; ``mobility init DIR`` writes the defaults)
    reference/        zones and the cell table (paths configurable under [geography])
    staged/           pseudonymised, zone-mapped events: date=YYYY-MM-DD/shard=NNN/<drop>.parquet,
                      plus staged/_drops/<drop>.json, one manifest per ingested raw file
    quarantine/       rows ingest refused: one <drop>.parquet per raw file, with reason and line
    releases/         published releases
    reports/          one JSON report and one readable summary per ingest run
    ledger.duckdb     the privacy ledger
    api/              API tokens (hashed) and the request log of ``mobility api``
    .tmp/             scratch space of a running ingest or release: DuckDB spills there
                      (removed when it ends)

Configuration sections parsed here: ``[workspace]``, ``[pseudonymisation]``, ``[geography]``,
``[ingest]`` and ``[aggregation]``. The sections ``[privacy]``, ``[schedule]``,
``[indicators]``, ``[gps]`` and ``[agreements]`` are allowed and kept as raw mappings for the
modules that own them. Every error names the file, the key and the fix.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG_FILE = "mobility.toml"
SUBDIRECTORIES = ("staged", "quarantine", "releases", "reports")
RAW_SECTIONS = ("privacy", "schedule", "indicators", "gps", "agreements")
"""Sections kept as raw mappings here and parsed by the modules that own them."""

MAX_SHARDS = 4096
MAX_LATE_DAYS = 31
MIN_BATCH_ROWS = 1_000
MIN_MEMORY_MB = 128
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DEFAULT_CONFIG = """\
# mobility.toml: configuration of one mobility workspace.
# Relative paths are relative to the directory holding this file.

[workspace]
# IANA time zone of the operator. CDR timestamps are wall-clock times in this zone; the "day" of
# every indicator is the local calendar day here.
timezone = "Africa/Lagos"

[pseudonymisation]
# Raw subscriber ids are replaced by a keyed pseudonym (HMAC-SHA256) under a secret that never
# leaves this machine. Ingest reads it from the environment variable named here, or else from
# secret_file; it refuses to run without one. Generate one with:
#     python -c "import secrets; print(secrets.token_hex(32))"
# Keep the secret file outside the workspace, and never change the secret once data is staged.
secret_env = "MOBILITY_SECRET"
# secret_file = "/etc/mobility/pseudonym.key"

[geography]
# Zones of every admin level (Parquet, contract "zones") and the operator's cell table
# (CSV or Parquet, contract "cells").
zones = "reference/zones.parquet"
cells = "reference/cells.csv"

[ingest]
# Staged events are split into this many shards by a hash of the pseudonym, so that each shard
# holds whole subscribers. Do not change it once data is staged.
shards = 16
# Rows of an export for day D are accepted if their local date lies in [D - late_days, D].
late_days = 1
# Rows processed at a time; memory use grows with it, not with the size of the input.
batch_rows = 1000000
# Memory for duplicate detection, which sorts a hash of every row (20 bytes a row). The hashes
# of a file of more than 52 428 rows per MiB here are spread over part files in .tmp/ first.
memory_limit_mb = 3072

[aggregation]
# Memory DuckDB may use for the exact aggregate of one release before it spills to .tmp/ in
# the workspace (on this machine; Dask workers take a share of their own limit instead). Keep it
# well below the machine's memory (the process needs ~1 GiB more); spilling is slower.
memory_limit_mb = 8192

[privacy]
# Privacy unit: one subscriber's records within one accounting window (a local calendar day).
# Basic composition: a window's spend is the sum of the ε of every release that reads it (a
# daily home-based release reads the 7 days of its home window; residents reads its whole period).
# A release that would push any window over a cap is refused and nothing is published.
composition = "basic"
accounting_window = "day"
epsilon_per_window = 6.0
delta_per_window = 1e-6
# Cap over any rolling span of days (a release reading m days of the span counts m times).
# Its δ is capped too (group privacy: m·e^((m-1)·ε)·δ a release); delta_rolling defaults to
# rolling_days × delta_per_window.
rolling_days = 30
epsilon_rolling = 160.0
mechanism = "discrete_laplace"

[privacy.epsilon]
# Default ε of one release of each indicator (mobility_distance: shared by its two columns).
event_counts = 0.25
presence = 0.5
od_trips = 1.0
od_connections = 0.25
home_away = 0.1
mobility_distance = 0.2
residents = 0.5
relocations = 0.5

[privacy.totals_share]
# Share of each release's ε spent on its per-date totals, released as DP values of their own
# (0 to 0.5; 0: totals are sums of the noisy cells only). The cells get the rest; the release is
# charged both. Discrete Laplace releases over public key sets only. One number
# (`totals_share = 0.2` under [privacy]) gives every indicator the same share; an indicator not
# listed here gets 0, and so does every indicator without the setting (a workspace made before
# it keeps its release keys). Chosen with the project's utility benchmark (a synthetic country
# of 20 000 subscribers): each is the smallest share that keeps the lockdown change of the daily
# totals within 1 point of the exact aggregate's on 99 % of simulated draws, or 0.5 where none
# reaches it (od_connections, home_away, mobility_distance). residents and relocations: 0.2, the
# one default share before shares per indicator (not measured).
event_counts = 0.1
presence = 0.0
od_trips = 0.15
od_connections = 0.5
home_away = 0.5
mobility_distance = 0.5
residents = 0.2
relocations = 0.2

[schedule]
# The daily flow (`mobility run`, `mobility serve`): when it runs, where exports land, what it
# releases. Each run releases the day `lag_days` before today (local time).
cron = "0 6 * * *"
drops = "drops"
lag_days = 1
level = "admin2"
k = 10
daily = ["event_counts", "presence", "od_trips", "od_connections", "home_away", "mobility_distance"]
# Indicators also released every day from app GPS fixes (presence, od_trips, mobility_distance
# have a GPS definition). GPS releases are charged to the same windows and caps as CDR ones.
daily_gps = []

[gps]
# Stays in app GPS fixes (docs: schemas/gps.py): a run of fixes within radius_m of its centre
# for at least min_dwell_minutes; fixes less accurate than max_accuracy_m are left out; up to
# max_outliers consecutive fixes outside the radius are position errors; a gap longer than
# max_gap_minutes ends a stay.
radius_m = 200.0
min_dwell_minutes = 20.0
max_accuracy_m = 100.0
max_outliers = 1
max_gap_minutes = 360.0

# Data-sharing agreements (`mobility agreement add FILE`): once one is registered, every
# release names the agreement it is made under (--agreement ID), or is made under this one.
# [agreements]
# default = "transport-2026"

# Section read by the indicator modules (reserved):

[indicators]
"""


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    """The ``[workspace]`` section."""

    timezone: str = "Africa/Lagos"


@dataclass(frozen=True, slots=True)
class PseudonymisationSettings:
    """The ``[pseudonymisation]`` section: where the secret comes from (never the secret itself)."""

    secret_env: str = "MOBILITY_SECRET"  # noqa: S105 - a variable name, not a secret
    secret_file: Path | None = None


@dataclass(frozen=True, slots=True)
class GeographySettings:
    """The ``[geography]`` section: reference files, as written (relative to the workspace)."""

    zones: Path = Path("reference/zones.parquet")
    cells: Path = Path("reference/cells.csv")


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """The ``[ingest]`` section."""

    shards: int = 16
    late_days: int = 1
    batch_rows: int = 1_000_000
    memory_limit_mb: int = 3072


@dataclass(frozen=True, slots=True)
class AggregationSettings:
    """The ``[aggregation]`` section."""

    memory_limit_mb: int = 8192


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """A parsed ``mobility.toml``."""

    path: Path
    workspace: WorkspaceSettings
    pseudonymisation: PseudonymisationSettings
    geography: GeographySettings
    ingest: IngestSettings
    aggregation: AggregationSettings
    privacy: Mapping[str, Any]
    schedule: Mapping[str, Any]
    indicators: Mapping[str, Any]
    gps: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The raw ``[gps]`` section (:class:`schemas.gps.StayRule` parses it)."""
    agreements: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """``[agreements]``: ``default``, the agreement a release names when it names none
    (:mod:`aggregation.release.agreements`)."""


@dataclass(frozen=True, slots=True)
class Workspace:
    """A workspace directory and its configuration."""

    root: Path
    config: WorkspaceConfig

    @classmethod
    def open(cls, root: Path | str) -> Workspace:
        """The workspace at ``root``; raise :class:`ConfigurationError` if it is not one."""
        root = Path(root).expanduser().resolve()
        config_path = root / CONFIG_FILE
        if not config_path.is_file():
            msg = (
                f"{root} is not a workspace: it has no {CONFIG_FILE}. "
                f"Create one with 'mobility init {root}', or pass the right --workspace."
            )
            raise ConfigurationError(msg)
        return cls(root, load_config(config_path))

    def resolve(self, path: Path) -> Path:
        """``path`` from the configuration, made absolute against the workspace root."""
        return path if path.is_absolute() else self.root / path

    @property
    def staged(self) -> Path:
        """Directory of staged events."""
        return self.root / "staged"

    @property
    def quarantine(self) -> Path:
        """Directory of quarantined rows."""
        return self.root / "quarantine"

    @property
    def releases(self) -> Path:
        """Directory of releases."""
        return self.root / "releases"

    @property
    def reports(self) -> Path:
        """Directory of run reports."""
        return self.root / "reports"

    @property
    def ledger(self) -> Path:
        """The privacy ledger (a DuckDB file)."""
        return self.root / "ledger.duckdb"

    @property
    def scratch(self) -> Path:
        """Scratch space of running commands; anything left there after a crash is stale."""
        return self.root / ".tmp"


def init_workspace(root: Path | str) -> Workspace:
    """Create a workspace at ``root``: the default ``mobility.toml`` and the data directories.

    Refuses to overwrite an existing ``mobility.toml``; missing directories are created.
    """
    root = Path(root).expanduser().resolve()
    config_path = root / CONFIG_FILE
    if config_path.exists():
        msg = (
            f"{config_path} already exists; the workspace is left as it is. "
            "Edit that file, or choose a new directory."
        )
        raise ConfigurationError(msg)
    if root.exists() and not root.is_dir():
        msg = f"{root} exists and is not a directory; choose a directory for the workspace."
        raise ConfigurationError(msg)
    root.mkdir(parents=True, exist_ok=True)
    for sub in SUBDIRECTORIES:
        (root / sub).mkdir(exist_ok=True)
    config_path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return Workspace(root, load_config(config_path))


def load_config(path: Path | str) -> WorkspaceConfig:
    """Parse and check a ``mobility.toml``; raise :class:`ConfigurationError` naming the fix."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"Configuration file {path} not found; create a workspace with 'mobility init DIR'."
        raise ConfigurationError(msg) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path} is not valid TOML ({exc}); fix the syntax at that position."
        raise ConfigurationError(msg) from exc
    reader = _Reader(path, data)
    reader.check_sections()
    return WorkspaceConfig(
        path=path,
        workspace=_workspace_section(reader),
        pseudonymisation=_pseudonymisation_section(reader),
        geography=_geography_section(reader),
        ingest=_ingest_section(reader),
        aggregation=AggregationSettings(
            memory_limit_mb=reader.integer(
                "aggregation",
                "memory_limit_mb",
                AggregationSettings().memory_limit_mb,
                MIN_MEMORY_MB,
                1 << 20,
            )
        ),
        privacy=reader.raw("privacy"),
        schedule=reader.raw("schedule"),
        indicators=reader.raw("indicators"),
        gps=reader.raw("gps"),
        agreements=reader.raw("agreements"),
    )


class _Reader:
    """Typed access to the sections of a parsed TOML document, with errors naming the key."""

    PARSED: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {
            "workspace": ("timezone",),
            "pseudonymisation": ("secret_env", "secret_file"),
            "geography": ("zones", "cells"),
            "ingest": ("shards", "late_days", "batch_rows", "memory_limit_mb"),
            "aggregation": ("memory_limit_mb",),
        }
    )

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def fail(self, section: str, key: str, problem: str, fix: str) -> ConfigurationError:
        msg = f"{self.path}: [{section}] {key} {problem}; {fix}"
        return ConfigurationError(msg)

    def check_sections(self) -> None:
        allowed = (*self.PARSED, *RAW_SECTIONS)
        for name, value in self.data.items():
            if name not in allowed:
                msg = (
                    f"{self.path}: unknown section or key {name!r} at the top level; "
                    f"allowed sections are {', '.join(f'[{a}]' for a in allowed)}."
                )
                raise ConfigurationError(msg)
            if not isinstance(value, dict):
                msg = f"{self.path}: {name!r} must be a section ([{name}]), not a value."
                raise ConfigurationError(msg)
        for name, keys in self.PARSED.items():
            for key in self.data.get(name, {}):
                if key not in keys:
                    msg = (
                        f"{self.path}: unknown key {key!r} in [{name}]; "
                        f"the keys of [{name}] are {', '.join(keys)}."
                    )
                    raise ConfigurationError(msg)

    def get(self, section: str, key: str) -> Any:
        return self.data.get(section, {}).get(key)

    def string(self, section: str, key: str, default: str) -> str:
        value = self.get(section, key)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.fail(
                section, key, f"must be a non-empty string; got {value!r}", f'write {key} = "..."'
            )
        return value

    def integer(self, section: str, key: str, default: int, low: int, high: int) -> int:
        value = self.get(section, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(
                section,
                key,
                f"must be an integer from {low} to {high}; got {value!r}",
                f"for example {key} = {default}",
            )
        return value

    def raw(self, section: str) -> Mapping[str, Any]:
        return MappingProxyType(dict(self.data.get(section, {})))


def _workspace_section(reader: _Reader) -> WorkspaceSettings:
    tz = reader.string("workspace", "timezone", WorkspaceSettings().timezone)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise reader.fail(
            "workspace",
            "timezone",
            f"is not a known IANA time zone: {tz!r}",
            'use a name such as "Africa/Lagos" or "Europe/Paris"',
        ) from exc
    return WorkspaceSettings(timezone=tz)


def _pseudonymisation_section(reader: _Reader) -> PseudonymisationSettings:
    env = reader.string("pseudonymisation", "secret_env", PseudonymisationSettings().secret_env)
    if not _ENV_NAME.match(env):
        raise reader.fail(
            "pseudonymisation",
            "secret_env",
            f"must be an environment variable name; got {env!r}",
            'for example secret_env = "MOBILITY_SECRET"',
        )
    file = reader.get("pseudonymisation", "secret_file")
    if file is not None and (not isinstance(file, str) or not file.strip()):
        raise reader.fail(
            "pseudonymisation",
            "secret_file",
            f"must be a path; got {file!r}",
            'write secret_file = "/path/to/secret.key" or remove the line',
        )
    return PseudonymisationSettings(
        secret_env=env, secret_file=Path(file).expanduser() if file else None
    )


def _geography_section(reader: _Reader) -> GeographySettings:
    defaults = GeographySettings()
    return GeographySettings(
        zones=Path(reader.string("geography", "zones", str(defaults.zones))),
        cells=Path(reader.string("geography", "cells", str(defaults.cells))),
    )


def _ingest_section(reader: _Reader) -> IngestSettings:
    defaults = IngestSettings()
    return IngestSettings(
        shards=reader.integer("ingest", "shards", defaults.shards, 1, MAX_SHARDS),
        late_days=reader.integer("ingest", "late_days", defaults.late_days, 0, MAX_LATE_DAYS),
        batch_rows=reader.integer(
            "ingest", "batch_rows", defaults.batch_rows, MIN_BATCH_ROWS, 100_000_000
        ),
        memory_limit_mb=reader.integer(
            "ingest", "memory_limit_mb", defaults.memory_limit_mb, MIN_MEMORY_MB, 1 << 20
        ),
    )
