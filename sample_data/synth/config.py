"""Parameters of a synthetic country and its operator export."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Literal

from schemas.errors import ConfigurationError

OutputFormat = Literal["csv", "parquet"]
Scenario = Literal["none", "lockdown", "evacuation"]

SCENARIOS: tuple[Scenario, ...] = ("none", "lockdown", "evacuation")
FORMATS: tuple[OutputFormat, ...] = ("csv", "parquet")

CHUNK_SUBSCRIBERS = 25_000
"""Subscribers generated together. Fixed, so that the output never depends on the hardware."""


@dataclass(frozen=True, slots=True)
class SynthConfig:
    """Everything that determines a synthetic export; the same config always gives the same bytes.

    Attributes:
        subscribers: number of subscribers of the operator.
        days: number of consecutive local calendar days to export.
        start: first day.
        seed: random seed; every random draw derives from it.
        error_rate: share of raw rows that get one injected error (0 = clean export).
        fmt: format of the raw export files.
        scenario: a real signal for the indicators to find: ``lockdown`` cuts commuting and
            visits from ``scenario_start``; ``evacuation`` moves everyone living in one zone
            elsewhere on ``scenario_start``; ``none`` keeps every week alike.
        scenario_start: first day of the scenario (default: the middle of the period).
        gps_share: share of subscribers whose app also reports GPS fixes.
        relocation_share: share of subscribers who move house once during the period.
        timezone: the operator's time zone (CDR timestamps are wall-clock time there).
        admin1, admin2, admin3: number of zones at each admin level.
        sites: number of cell sites (masts); each carries three cells (sectors).
    """

    subscribers: int = 20_000
    days: int = 7
    start: dt.date = dt.date(2026, 3, 2)
    seed: int = 0
    error_rate: float = 0.0
    fmt: OutputFormat = "csv"
    scenario: Scenario = "lockdown"
    scenario_start: dt.date | None = None
    gps_share: float = 0.1
    relocation_share: float = 0.01
    timezone: str = "Africa/Lagos"
    admin1: int = 5
    admin2: int = 30
    admin3: int = 300
    sites: int = 600

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.subscribers >= 1, f"subscribers must be at least 1; got {self.subscribers}."),
            (self.days >= 1, f"days must be at least 1; got {self.days}."),
            (
                0.0 <= self.error_rate <= 0.5,  # noqa: PLR2004 - beyond half, nothing is an export
                f"error_rate must lie in [0, 0.5]; got {self.error_rate}.",
            ),
            (self.fmt in FORMATS, f"format must be one of {FORMATS}; got {self.fmt!r}."),
            (
                self.scenario in SCENARIOS,
                f"scenario must be one of {SCENARIOS}; got {self.scenario!r}.",
            ),
            (0.0 <= self.gps_share <= 1.0, f"gps_share must lie in [0, 1]; got {self.gps_share}."),
            (
                0.0 <= self.relocation_share <= 1.0,
                f"relocation_share must lie in [0, 1]; got {self.relocation_share}.",
            ),
            (
                1 <= self.admin1 <= self.admin2 <= self.admin3,
                (
                    "zone counts must nest: 1 <= admin1 <= admin2 <= admin3; got "
                    f"{self.admin1}, {self.admin2}, {self.admin3}."
                ),
            ),
            (self.sites >= self.admin1, f"sites must be at least admin1; got {self.sites}."),
            (0 <= self.seed < 2**63, f"seed must lie in [0, 2**63); got {self.seed}."),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigurationError(msg)
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"Unknown time zone {self.timezone!r}: use an IANA name such as 'Africa/Lagos'."
            raise ConfigurationError(msg) from exc
        if self.scenario_start is not None and not (self.start <= self.scenario_start <= self.end):
            msg = (
                f"scenario_start {self.scenario_start} must lie within the period "
                f"{self.start}..{self.end}."
            )
            raise ConfigurationError(msg)

    @property
    def end(self) -> dt.date:
        """Last day of the period (inclusive)."""
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def dates(self) -> list[dt.date]:
        """Every day of the period."""
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]

    @property
    def effective_scenario_start(self) -> dt.date:
        """The day the scenario starts (the middle of the period unless given)."""
        if self.scenario_start is not None:
            return self.scenario_start
        return self.start + dt.timedelta(days=self.days // 2)

    @property
    def chunks(self) -> int:
        """Number of subscriber chunks."""
        return -(-self.subscribers // CHUNK_SUBSCRIBERS)
