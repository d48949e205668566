"""The workspace layout and mobility.toml: defaults, and errors that name the key and the fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from schemas.budget_policy import BudgetPolicy
from schemas.errors import ConfigurationError
from schemas.indicators import Indicator
from schemas.schedule import DAILY_DEFAULT, ScheduleSettings
from schemas.workspace import (
    DEFAULT_CONFIG,
    AggregationSettings,
    GeographySettings,
    IngestSettings,
    PseudonymisationSettings,
    Workspace,
    WorkspaceSettings,
    init_workspace,
    load_config,
)


def test_init_creates_the_layout_and_documented_defaults(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    for sub in ("staged", "quarantine", "releases", "reports"):
        assert (ws.root / sub).is_dir()
    assert ws.ledger == ws.root / "ledger.duckdb"
    cfg = ws.config
    assert cfg.workspace == WorkspaceSettings(timezone="Africa/Lagos")
    assert cfg.pseudonymisation == PseudonymisationSettings("MOBILITY_SECRET", None)
    assert cfg.geography == GeographySettings(
        Path("reference/zones.parquet"), Path("reference/cells.csv")
    )
    assert cfg.ingest == IngestSettings(shards=16, late_days=1)
    policy = BudgetPolicy.from_mapping(cfg.privacy, indicators=[i.value for i in Indicator])
    assert policy.epsilon_per_window > 0
    assert set(policy.default_epsilon) == {i.value for i in Indicator}
    schedule = ScheduleSettings.from_mapping(cfg.schedule, source="mobility.toml")
    assert schedule.daily == DAILY_DEFAULT
    assert dict(cfg.indicators) == {}
    assert "#" in DEFAULT_CONFIG  # documented


def test_default_text_and_dataclass_defaults_agree() -> None:
    data = tomllib.loads(DEFAULT_CONFIG)
    assert data["workspace"]["timezone"] == WorkspaceSettings().timezone
    assert data["ingest"]["shards"] == IngestSettings().shards
    assert data["ingest"]["batch_rows"] == IngestSettings().batch_rows
    assert data["ingest"]["memory_limit_mb"] == IngestSettings().memory_limit_mb
    assert data["aggregation"]["memory_limit_mb"] == AggregationSettings().memory_limit_mb


def test_the_aggregation_memory_limit_is_read_and_checked(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    config = tmp_path / "mobility.toml"
    config.write_text(config.read_text().replace("memory_limit_mb = 8192", "memory_limit_mb = 300"))
    assert Workspace.open(ws.root).config.aggregation.memory_limit_mb == 300
    config.write_text(config.read_text().replace("memory_limit_mb = 300", "memory_limit_mb = 1"))
    with pytest.raises(ConfigurationError, match=r"\[aggregation\] memory_limit_mb"):
        Workspace.open(ws.root)


def test_init_never_overwrites(tmp_path: Path) -> None:
    init_workspace(tmp_path)
    with pytest.raises(ConfigurationError, match="already exists"):
        init_workspace(tmp_path)


def test_open_a_directory_that_is_not_a_workspace(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="mobility init"):
        Workspace.open(tmp_path)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mobility.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ingest]\nshards = 0\n", r"\[ingest\] shards must be an integer from 1 to 4096; got 0"),
        ("[ingest]\nshards = true\n", r"\[ingest\] shards must be an integer"),
        ("[ingest]\nlate_days = 'one'\n", r"\[ingest\] late_days must be an integer"),
        ("[ingest]\nshard = 8\n", r"unknown key 'shard' in \[ingest\]; the keys of \[ingest\] are"),
        ("[workspace]\ntimezone = 'Mars/Olympus'\n", r"not a known IANA time zone: 'Mars/Olympus'"),
        ("[pseudonymisation]\nsecret_env = 'MY-SECRET'\n", r"secret_env must be an environment"),
        ("[pseudonymisation]\nsecret_file = ''\n", r"secret_file must be a path"),
        ("[geography]\ncells = 3\n", r"\[geography\] cells must be a non-empty string"),
        ("[ingets]\n", r"unknown section or key 'ingets'"),
        ("shards = 16\n", r"unknown section or key 'shards'"),
        ("[privacy\n", r"not valid TOML"),
    ],
)
def test_errors_name_the_key_and_the_fix(tmp_path: Path, text: str, message: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_sections_of_other_modules_are_kept_raw(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "[privacy]\nepsilon_per_day = 1.0\n[privacy.window]\nunit = 'day'\n"
        "[schedule]\ncron = '0 3 * * *'\n[indicators]\nenabled = ['presence']\n",
    )
    cfg = load_config(path)
    assert cfg.privacy["epsilon_per_day"] == 1.0
    assert cfg.privacy["window"] == {"unit": "day"}
    assert cfg.schedule["cron"] == "0 3 * * *"
    assert cfg.indicators["enabled"] == ["presence"]
    with pytest.raises(TypeError):
        cfg.privacy["epsilon_per_day"] = 2.0  # type: ignore[index]


def test_relative_paths_resolve_against_the_workspace(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path)
    assert ws.resolve(ws.config.geography.cells) == ws.root / "reference" / "cells.csv"
    assert ws.resolve(Path("/abs/cells.csv")) == Path("/abs/cells.csv")
