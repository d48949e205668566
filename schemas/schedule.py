"""The ``[schedule]`` section of ``mobility.toml``: what the daily flow does, and when."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.errors import ConfigurationError
from schemas.geography import ADMIN_LEVELS, AdminLevel
from schemas.indicators import Indicator, spec
from schemas.release import DEFAULT_K

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from schemas.indicators import IndicatorSpec

DAILY_DEFAULT: tuple[Indicator, ...] = (
    Indicator.EVENT_COUNTS,
    Indicator.PRESENCE,
    Indicator.OD_TRIPS,
    Indicator.OD_CONNECTIONS,
    Indicator.HOME_AWAY,
    Indicator.MOBILITY_DISTANCE,
)
"""Indicators released every day by default (``residents`` and ``relocations`` are periodic)."""

_KEYS = ("cron", "drops", "lag_days", "level", "k", "daily", "daily_gps")


@dataclass(frozen=True)
class ScheduleSettings:
    """What ``mobility run`` and ``mobility serve`` do.

    ``cron``: when the deployment runs (in ``mobility serve``); ``drops``: the folder the operator's
    daily exports land in (relative to the workspace); ``lag_days``: a run releases the day that
    many days before today (exports arrive after midnight); ``level``, ``k``: of every release;
    ``daily``: the indicators released for each day (from CDR); ``daily_gps``: those also
    released for each day from app GPS fixes (indicators with a GPS definition only; their
    releases are charged to the same windows and caps as the CDR ones).
    """

    cron: str = "0 6 * * *"
    drops: Path = Path("drops")
    lag_days: int = 1
    level: AdminLevel = "admin2"
    k: int = DEFAULT_K
    daily: tuple[Indicator, ...] = DAILY_DEFAULT
    daily_gps: tuple[Indicator, ...] = ()

    @classmethod
    def from_mapping(cls, section: Mapping[str, object], source: str) -> ScheduleSettings:
        """Parse ``[schedule]``; errors name the key and the fix."""

        def fail(key: str, problem: str) -> ConfigurationError:
            return ConfigurationError(f"{source}: [schedule] {key}: {problem}")

        unknown = sorted(set(section) - set(_KEYS))
        if unknown:
            raise fail(unknown[0], f"unknown key; the keys are {list(_KEYS)}.")
        cron = section.get("cron", cls.cron)
        if not isinstance(cron, str) or len(cron.split()) != 5:  # noqa: PLR2004 - cron fields
            raise fail(
                "cron", f"must be a 5-field cron expression such as '0 6 * * *'; got {cron!r}."
            )
        drops = section.get("drops", str(cls.drops))
        if not isinstance(drops, str) or not drops:
            raise fail("drops", f"must be a folder path; got {drops!r}.")
        lag = section.get("lag_days", cls.lag_days)
        if not isinstance(lag, int) or isinstance(lag, bool) or not 0 <= lag <= 31:  # noqa: PLR2004
            raise fail("lag_days", f"must be a whole number of days in 0-31; got {lag!r}.")
        level = section.get("level", cls.level)
        if level not in ADMIN_LEVELS:
            raise fail("level", f"must be one of {list(ADMIN_LEVELS)}; got {level!r}.")
        k = section.get("k", cls.k)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise fail("k", f"must be a non-negative whole number; got {k!r}.")
        indicators = _indicators(
            "daily", section.get("daily", [i.value for i in DAILY_DEFAULT]), fail,
            lambda s: None if s.daily else "is not a daily indicator (it has no date key).",
        )  # fmt: skip
        from_gps = _indicators("daily_gps", section.get("daily_gps", []), fail, _no_daily_gps)
        return cls(
            cron=cron, drops=Path(drops), lag_days=lag, level=level,
            k=k, daily=tuple(indicators), daily_gps=from_gps,
        )  # fmt: skip


def _indicators(
    key: str,
    value: object,
    fail: Callable[[str, str], ConfigurationError],
    refusal: Callable[[IndicatorSpec], str | None],
) -> tuple[Indicator, ...]:
    """``[schedule] <key>``: a list of indicator names, each known and, as ``refusal`` judges
    its catalogue row, fit for the list (``refusal`` gives why not, or None)."""
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise fail(key, f"must be a list of indicator names; got {value!r}.")
    found = []
    for name in value:
        try:
            s = spec(name)
        except ConfigurationError as exc:
            raise fail(key, str(exc)) from None
        why = refusal(s)
        if why is not None:
            raise fail(key, f"{name} {why}")
        found.append(s.indicator)
    return tuple(found)


def _no_daily_gps(s: IndicatorSpec) -> str | None:
    """``[schedule] daily_gps``: daily indicators with a GPS definition."""
    if "gps" in s.sources and s.daily:
        return None
    with_gps = [i.value for i in Indicator if "gps" in spec(i).sources]
    return f"has no daily GPS definition; choose among {with_gps}."
