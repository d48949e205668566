"""What a release is: its request (:class:`ReleaseSpec`) and what it publishes (files + metadata).

A release directory ``releases/<indicator>/<release_id>/`` holds ``data.parquet`` and ``data.csv``
(long format: the indicator's key columns, then ``value`` and ``ci95``) and ``metadata.json``,
which validates against :data:`METADATA_JSON_SCHEMA`. Suppressed cells (noisy value below k) are
absent from the data files; their number is in the metadata.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import pyarrow as pa

from schemas.contract import Column, Contract
from schemas.errors import ConfigurationError
from schemas.geography import ADMIN_LEVELS, AdminLevel
from schemas.gps import StayRule
from schemas.indicators import ContributionBounds, Indicator, Period, Scope, spec
from schemas.privacy import (
    MECHANISMS,
    Mechanism,
    release_parameter_problems,
    totals_share_problems,
)
from schemas.staged import SOURCES, Source

HOME_WINDOW_DAYS = 7
"""Home zones of daily home-based indicators are computed over the 7 days ending on the last day
released (or over the released days, if there are more): long enough for the home rule's nights."""

KeySetKind = Literal["public", "private"]
"""``public``: noise on every cell of the public key set (zones are public), zeros included.
``private``: DP partition selection (OpenDP's Laplace/Gaussian threshold) over the keys observed,
for fine geographies where the set of non-empty cells itself must stay private; costs a δ."""

DEFAULT_K = 10
"""Default threshold: a cell is published only if its *noisy* value is at least k."""

MAX_RELIABILITY = 100.0
"""Largest reliability bar accepted (a bar beyond it would publish next to nothing)."""

DEFAULT_RELIABILITY = 2.0
"""Default reliability bar: a cell is published only if its *noisy* value is also at least
``reliability × ci95`` (its own 95 % noise half-width, a function of the public noise scale).

Why 2: a published row then has ci95 ≤ value / 2, so its 95 % noise interval stays within ±50 %
of what is printed (an analyst can read it as a number, not as noise); and an empty cell clears
the bar only when its noise exceeds twice the 95 % half-width, for the discrete Laplace
P(Z ≥ 2h) ≈ (P(|Z| > h))² / 2 ≈ 0.13 % (k = 10 alone lets 5 % of empty cells through at the
default scale of ``od_trips``, 4, and 44 % at that of ``event_counts``, 80, whose ci95 is 240).
A cell whose bounded value is at least 3 × ci95 is published with probability ≥ 97.5 %.
``benchmarks/bench_utility.py`` measures what it does to the published rows. 0 turns the bar
off (k alone, as releases made before it).
"""


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    """One release request: which indicator, over which days, at which level, at what price.

    ``start``..``end`` are the days released (daily indicators) or the period whose home zones are
    counted (``residents``; for ``relocations``, the later period, compared with the baseline
    ``baseline_start``..``baseline_end``, by default the same number of days just before).
    ``epsilon`` None takes the workspace policy's default for the indicator, ``mechanism`` None the
    policy's mechanism. ``value`` names the
    value column for indicators with several (``mobility_distance``: ``distance_m`` and
    ``subscribers`` are released, and charged, separately).

    ``source`` is the data read: ``cdr`` (default) or ``gps`` (app fixes; the indicators with a
    GPS definition), whose stays follow ``stay_rule`` (None: the workspace's ``[gps]`` rule,
    filled in when the release is planned). The source enters the release key only when it is
    ``gps``, so CDR questions keep the keys they always had.

    ``agreement`` names the data-sharing agreement the release is made under (None: the workspace
    default, if agreements are registered); ``agreement_version`` is filled in by the plan with
    the version in force.

    ``totals_share`` is the share of the release's ε spent on its per-date totals, released as
    DP values of their own (None: the policy's ``[privacy] totals_share``, filled in when the
    release is planned; 0: none). It enters the release key only when it is above 0.
    """

    indicator: Indicator
    start: date
    end: date
    level: AdminLevel = "admin2"
    epsilon: float | None = None
    k: int = DEFAULT_K
    mechanism: Mechanism | None = None
    bounds: ContributionBounds = field(default_factory=ContributionBounds)
    value: str | None = None
    keys: KeySetKind = "public"
    baseline_start: date | None = None
    baseline_end: date | None = None
    confidence: float = 0.95
    source: Source = "cdr"
    stay_rule: StayRule | None = None
    agreement: str | None = None
    agreement_version: int | None = None
    reliability: float = DEFAULT_RELIABILITY
    totals_share: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "indicator", Indicator(spec(self.indicator).indicator))
        problems = []
        if self.end < self.start:
            problems.append(f"--to {self.end} is before --date {self.start}")
        if self.level not in ADMIN_LEVELS:
            problems.append(f"level must be one of {list(ADMIN_LEVELS)}, got {self.level!r}")
        problems += release_parameter_problems(epsilon=self.epsilon, k=self.k)
        if self.mechanism is not None and self.mechanism not in MECHANISMS:
            problems.append(f"mechanism must be one of {list(MECHANISMS)}, got {self.mechanism!r}")
        columns = spec(self.indicator).value_columns
        if self.value is not None and self.value not in columns:
            problems.append(
                f"{self.indicator} has value columns {list(columns)}, not {self.value!r}"
            )
        if self.value is None and len(columns) > 1:
            problems.append(f"{self.indicator} has several value columns {list(columns)}; name one")
        if self.keys not in ("public", "private"):
            problems.append(f"keys must be 'public' or 'private', got {self.keys!r}")
        if self.keys == "private" and columns != ("count",):
            problems.append(f"private key sets are for counts; {self.indicator} releases sums")
        if (self.baseline_start is None) != (self.baseline_end is None):
            problems.append("give both --baseline-from and --baseline-to, or neither")
        problems += self._source_problems() + _reliability_problems(self.reliability)
        if self.totals_share is not None:
            problems += totals_share_problems(self.totals_share)
        if problems:
            raise ConfigurationError("Bad release request: " + "; ".join(problems) + ".")

    def _source_problems(self) -> list[str]:
        if self.source not in SOURCES:
            return [f"source must be one of {list(SOURCES)}, got {self.source!r}"]
        problems = []
        if self.source not in spec(self.indicator).sources:
            with_gps = [i.value for i in Indicator if "gps" in spec(i).sources]
            problems.append(
                f"{self.indicator} has no {self.source.upper()} definition (indicators from GPS: "
                f"{with_gps})"
            )
        if self.stay_rule is not None and self.source != "gps":
            problems.append("a stay rule is for GPS releases only")
        return problems

    @property
    def value_column(self) -> str:
        """The value column this release publishes."""
        return self.value or spec(self.indicator).value_columns[0]

    @property
    def period(self) -> Period:
        """The days released (or the home period counted)."""
        return Period(self.start, self.end)

    def scope(self) -> Scope:
        """The scope of the aggregate: release days and the periods homes are computed over."""
        s = spec(self.indicator)
        fields_ = set(s.scope_fields)
        days = self.period if "days" in fields_ else None
        home: Period | None = None
        previous: Period | None = None
        if "home_period" in fields_:
            if days is not None:  # daily home-based: a window of nights ending on the last day
                first = min(self.start, self.end - timedelta(days=HOME_WINDOW_DAYS - 1))
                home = Period(first, self.end)
            else:
                home = self.period
        if "previous_home_period" in fields_:
            if self.baseline_start is not None and self.baseline_end is not None:
                previous = Period(self.baseline_start, self.baseline_end)
            else:
                n = self.period.n_days
                previous = Period(self.start - timedelta(days=n), self.start - timedelta(days=1))
        scope = Scope(days=days, home_period=home, previous_home_period=previous)
        s.check_scope(scope)
        return scope

    def parameters(self) -> dict[str, Any]:
        """What defines the question besides indicator and windows, for the ledger's release key."""
        scope = self.scope()
        return (
            {
                "level": self.level,
                "value": self.value_column,
                "days": str(scope.days) if scope.days else None,
                "home_period": str(scope.home_period) if scope.home_period else None,
                "previous_home_period": (
                    str(scope.previous_home_period) if scope.previous_home_period else None
                ),
                "bounds": {
                    name: getattr(self.bounds, name) for name in spec(self.indicator).bounds_used
                },
                "k": self.k,
                "keys": self.keys,
                "mechanism": self.mechanism,
                "confidence": self.confidence,
                **self._source_parameters(),
            }
            | ({"reliability": self.reliability} if self.reliability else {})
            | ({"totals_share": self.totals_share} if self.totals_share else {})
            | (self._agreement_parameters())
        )

    def _agreement_parameters(self) -> dict[str, Any]:
        """The agreement named, if any: only then part of the release key, so that releases
        made without agreements keep their keys."""
        if self.agreement is None:
            return {}
        return {"agreement": self.agreement, "agreement_version": self.agreement_version}

    def _source_parameters(self) -> dict[str, Any]:
        """``source`` and the stay rule, for GPS releases only: a CDR question's parameters (and
        release key) are what they were before GPS was a source."""
        if self.source == "cdr":
            return {}
        rule = self.stay_rule or StayRule()
        return {"source": self.source, "stay_rule": dict(sorted(asdict(rule).items()))}


def _reliability_problems(reliability: object) -> list[str]:
    if (
        isinstance(reliability, int | float)
        and not isinstance(reliability, bool)
        and math.isfinite(reliability)
        and 0 <= reliability <= MAX_RELIABILITY
    ):
        return []
    rule = f"reliability must be a number from 0 to {MAX_RELIABILITY:g} (times the cell's ci95)"
    return [f"{rule}; got {reliability!r}"]


def release_contract(indicator: Indicator | str) -> Contract:
    """The long-format data contract of one indicator's released files."""
    s = spec(indicator)
    key_docs = {
        "date": (pa.date32(), "Local calendar day."),
        "hour": (pa.int8(), "Local hour of the day, 0-23."),
    }
    columns = [
        Column(name, *key_docs.get(name, (pa.string(), f"Zone code ({name.replace('_', ' ')}).")))
        for name in s.key_columns
    ]
    columns += [
        Column(
            "value",
            pa.int64(),
            "Released value: the exact bounded aggregate plus DP noise (may be below the true "
            "count, never published below k, nor below reliability × ci95: see the release's "
            "publication_threshold).",
        ),
        Column(
            "ci95",
            pa.int64(),
            "Half-width of the 95 % interval of the noise added to the cell (the noise lies "
            "within ± ci95 with 95 % probability; bounding bias not included). A noise "
            "interval, not a confidence interval for a published cell: cells are published "
            "only when their noisy value reaches k, so near k the bounded value lies in value "
            "± ci95 less often (about 78 % for a true 0 published at k = 10, noise scale 6).",
        ),
    ]
    return Contract(
        name=f"release_{s.indicator}",
        description=(
            f"{s.description} Differentially private; cells below k or below reliability × "
            "ci95 suppressed."
        ),
        columns=tuple(columns),
    )


METADATA_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mobility-dp release metadata",
    "type": "object",
    "required": [
        "release_id", "ledger_entry_id", "indicator", "value_column", "level", "period",
        "scope", "privacy_unit", "mechanism", "epsilon", "delta", "rho", "sensitivity", "scale",
        "ci95_half_width", "confidence", "k", "cells_total", "cells_released", "cells_suppressed",
        "contribution_bounds", "code_version", "created_at", "files",
        "columns",
    ],
    "properties": {
        "release_id": {"type": "string", "minLength": 1},
        "ledger_entry_id": {"type": "string", "minLength": 1},
        "indicator": {"enum": [i.value for i in Indicator]},
        "value_column": {"type": "string"},
        "level": {"enum": list(ADMIN_LEVELS)},
        "period": {
            "type": "object",
            "required": ["start", "end"],
            "properties": {"start": {"type": "string", "format": "date"},
                           "end": {"type": "string", "format": "date"}},
        },
        "scope": {"type": "object"},
        "privacy_unit": {"type": "string"},
        "mechanism": {"enum": list(MECHANISMS)},
        "epsilon": {"type": "number", "exclusiveMinimum": 0},
        "delta": {"type": "number", "minimum": 0, "maximum": 1},
        "rho": {"type": ["number", "null"]},
        "sensitivity": {
            "type": "object",
            "required": ["l1", "l2", "linf"],
            "properties": {"l1": {"type": "integer"}, "l2": {"type": "number"},
                           "linf": {"type": "integer"}},
        },
        "scale": {"type": "number", "exclusiveMinimum": 0},
        "ci95_half_width": {"type": "integer", "minimum": 0},
        "confidence": {"type": "number"},
        "k": {"type": "integer", "minimum": 0},
        "cells_total": {"type": "integer", "minimum": 0},
        "cells_released": {"type": "integer", "minimum": 0},
        "cells_suppressed": {"type": "integer", "minimum": 0},
        "contribution_bounds": {"type": "object"},
        "code_version": {"type": "string"},
        "created_at": {"type": "string"},
        "files": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
        "columns": {"type": "array", "items": {"type": "object"}},
        "source": {"enum": list(SOURCES)},
        "accounting": {"type": "string"},
        "agreement": {
            "description": "The data-sharing agreement the release was made under (issue 20).",
            "type": ["object", "null"],
            "required": ["id", "version"],
            "properties": {"id": {"type": "string"}, "version": {"type": "integer"}},
        },
        "reliability": {"type": "number", "minimum": 0},
        "publication_threshold": {"type": "integer", "minimum": 0},
        "publication_rule": {"type": "string"},
        "margins": {"type": "object"},
        "totals": {
            "description": "The per-date totals released as DP values of their own (issue 19).",
            "type": "object",
            "required": ["share", "epsilon", "scale", "sensitivity", "ci95_half_width"],
            "properties": {"share": {"type": "number", "minimum": 0, "maximum": 1},
                           "epsilon": {"type": "number", "exclusiveMinimum": 0},
                           "scale": {"type": "number", "exclusiveMinimum": 0},
                           "sensitivity": {"type": "object"},
                           "ci95_half_width": {"type": "integer", "minimum": 0}},
        },
    },
}  # fmt: skip
"""JSON Schema of ``metadata.json``; ``tests/test_release.py`` validates every release with it."""
