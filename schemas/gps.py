"""The ``[gps]`` section of ``mobility.toml``: how stays are found in app location fixes.

A *stay* is a run of one device's fixes that stay within ``radius_m`` of their centre for at least
``min_dwell_minutes`` (:mod:`aggregation.gps_stays`). The defaults follow the stay-point
literature that works on smartphone traces: a 200 m radius and a 20-minute dwell are the values
of Zheng et al.'s stay points (200 m, 20–30 min, GeoLife), of Hariharan & Toyama's place
extraction, and of scikit-mobility's ``stay_locations`` (``spatial_radius_km=0.2``,
``minutes_for_a_stop=20``). A 200 m radius is about ten times the median error of a phone's GNSS
fix outdoors, so the error of one fix rarely breaks a stay, yet two shops in one street stay
apart; 20 minutes is shorter than any visit the indicators count and longer than a traffic
light. ``benchmarks/bench_gps_stays.py`` measures precision and recall around these values on the
synthetic country.

Fixes whose reported accuracy (68 % radius) is worse than ``max_accuracy_m`` cannot place a
device within a stay's radius and are left out. Up to ``max_outliers`` consecutive fixes outside
the radius, followed by a fix back inside, are taken for position errors (a multipath jump) and
skipped without ending the stay. A gap longer than ``max_gap_minutes`` between two fixes ends a
stay: nothing says where the device was in between.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping


LIMITS: dict[str, tuple[float, float, str]] = {
    "radius_m": (10.0, 5_000.0, "metres"),
    "min_dwell_minutes": (1.0, 24 * 60.0, "minutes"),
    "max_accuracy_m": (1.0, 10_000.0, "metres"),
    "max_outliers": (0, 10, "a whole number of fixes"),
    "max_gap_minutes": (1.0, 24 * 60.0, "minutes"),
}
"""Accepted range of each setting (inclusive), and its unit."""


@dataclass(frozen=True)
class StayRule:
    """When a run of fixes is a stay. Every value is checked on construction."""

    radius_m: float = 200.0
    min_dwell_minutes: float = 20.0
    max_accuracy_m: float = 100.0
    max_outliers: int = 1
    max_gap_minutes: float = 360.0

    def __post_init__(self) -> None:
        for name, (low, high, unit) in LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                msg = f"[gps] {name} must be {unit} in [{low:g}, {high:g}]; got {value!r}."
                raise ConfigurationError(msg)
        if self.max_gap_minutes < self.min_dwell_minutes:
            msg = (
                f"[gps] max_gap_minutes ({self.max_gap_minutes:g}) must be at least "
                f"min_dwell_minutes ({self.min_dwell_minutes:g}): a stay needs two fixes that "
                "far apart."
            )
            raise ConfigurationError(msg)

    @classmethod
    def from_mapping(cls, section: Mapping[str, object], source: str) -> StayRule:
        """Parse ``[gps]``; errors name the file, the key and the fix."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(section) - set(known))
        if unknown:
            msg = f"{source}: [gps] {unknown[0]}: unknown key; the keys are {sorted(known)}."
            raise ConfigurationError(msg)
        values: dict[str, float | int] = {}
        for name, value in section.items():
            integer = name == "max_outliers"
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = f"{source}: [gps] {name}: must be a number; got {value!r}."
                raise ConfigurationError(msg)
            if integer and not isinstance(value, int):
                msg = f"{source}: [gps] {name}: must be a whole number; got {value!r}."
                raise ConfigurationError(msg)
            values[name] = value if integer else float(value)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc}") from None
