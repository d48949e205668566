"""A data-sharing agreement as code: one TOML file per agreement (and per version of it).

An agreement states who shares what with whom, for which purpose, within which limits. The data
holder writes it, registers it in the workspace's ledger (``mobility agreement add FILE``, a
hash-chained record), and every release made under it is checked against it
(:mod:`aggregation.ledger.agreements`). The keys (see also :data:`AGREEMENT_JSON_SCHEMA`)::

    id = "transport-2026"          # letters, digits, '.', '_', '-'; names the agreement for good
    version = 1                    # 1, 2, 3, ...: each amendment is registered as a new version
    purpose = "..."                # the purpose, in words (published on the transparency page)
    parties = ["...", "..."]       # the parties (data holder, recipients), as they sign
    start = 2026-01-01             # the term: releases may be made from this day ...
    end = 2026-12-31               # ... to this day (UTC), inclusive; after it, releases refuse
    retention_days = 365           # how long recipients may keep released files

    [recipients]                   # who may receive releases made under the agreement
    roles = ["analyst", "operator"]  # API roles (analyst, auditor, operator)
    tokens = []                    # optional: API token ids; empty = any token bound to it

    [releases]                     # what may be released under it
    indicators = ["od_trips", "presence"]
    levels = ["admin1", "admin2"]  # admin levels
    sources = ["cdr"]              # data sources (cdr, gps)
    min_k = 10                     # the smallest threshold k a release may use
    data_from = 2026-01-01         # optional: the first and last day of data it covers
    data_to = 2026-12-31           #   (default: no limit besides the term)

    [budget]                       # charged in addition to the workspace's caps
    epsilon_per_window = 2.0       # ε per accounting window of the workspace (a day by default)
    delta_per_window = 0.0         # δ per accounting window
    epsilon_term = 60.0            # ε summed over every window, over the whole term
    delta_term = 0.0               # δ summed likewise

Budgets use basic composition (sums of ε and δ), whatever the workspace's composition: anyone
can recompute them by hand, and under zCDP they are an upper bound.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError
from schemas.geography import ADMIN_LEVELS
from schemas.indicators import Indicator

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

AGREEMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SOURCES = ("cdr", "gps")
"""Data sources an agreement may allow (CDR; app GPS fixes)."""
RECIPIENT_ROLES = ("analyst", "auditor", "operator")
"""The API roles (:mod:`flows.api.security`)."""
DEFAULT_SOURCE = "cdr"
"""The source of a release whose parameters name none (releases made before sources existed)."""

_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}

AGREEMENT_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mobility-dp data-sharing agreement",
    "description": "An agreement file (TOML), read as JSON with dates as YYYY-MM-DD strings.",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "version", "purpose", "parties", "start", "end", "retention_days",
                 "recipients", "releases", "budget"],
    "properties": {
        "id": {"type": "string", "pattern": AGREEMENT_ID.pattern},
        "version": {"type": "integer", "minimum": 1},
        "purpose": {"type": "string", "minLength": 10},
        "parties": {**_NAMES, "minItems": 2},
        "start": _DATE,
        "end": _DATE,
        "retention_days": {"type": "integer", "minimum": 0, "maximum": 36500},
        "recipients": {
            "type": "object",
            "additionalProperties": False,
            "required": ["roles"],
            "properties": {
                "roles": {**_NAMES, "minItems": 1, "items": {"enum": list(RECIPIENT_ROLES)}},
                "tokens": {**_NAMES, "items": {"type": "string", "pattern": "^[0-9a-f]{12}$"}},
            },
        },
        "releases": {
            "type": "object",
            "additionalProperties": False,
            "required": ["indicators", "levels", "sources", "min_k"],
            "properties": {
                "indicators": {**_NAMES, "minItems": 1,
                               "items": {"enum": [i.value for i in Indicator]}},
                "levels": {**_NAMES, "minItems": 1, "items": {"enum": list(ADMIN_LEVELS)}},
                "sources": {**_NAMES, "minItems": 1, "items": {"enum": list(SOURCES)}},
                "min_k": {"type": "integer", "minimum": 0},
                "data_from": _DATE,
                "data_to": _DATE,
            },
        },
        "budget": {
            "type": "object",
            "additionalProperties": False,
            "required": ["epsilon_per_window", "epsilon_term"],
            "properties": {
                "epsilon_per_window": {"type": "number", "exclusiveMinimum": 0},
                "delta_per_window": {"type": "number", "minimum": 0, "maximum": 1},
                "epsilon_term": {"type": "number", "exclusiveMinimum": 0},
                "delta_term": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    },
}  # fmt: skip
"""JSON Schema of an agreement file (its TOML read as JSON, dates written ``YYYY-MM-DD``)."""


@dataclass(frozen=True, slots=True)
class Agreement:
    """One version of a data-sharing agreement, parsed and checked (see the module docstring)."""

    agreement_id: str
    version: int
    purpose: str
    parties: tuple[str, ...]
    start: dt.date
    end: dt.date
    retention_days: int
    roles: tuple[str, ...]
    tokens: tuple[str, ...]
    indicators: tuple[str, ...]
    levels: tuple[str, ...]
    sources: tuple[str, ...]
    min_k: int
    epsilon_per_window: float
    epsilon_term: float
    delta_per_window: float = 0.0
    delta_term: float = 0.0
    data_from: dt.date | None = None
    data_to: dt.date | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.end < self.start:
            problems.append(f"end {self.end} is before start {self.start}")
        if self.data_from and self.data_to and self.data_to < self.data_from:
            problems.append(f"releases.data_to {self.data_to} is before data_from {self.data_from}")
        if self.epsilon_term < self.epsilon_per_window:
            problems.append(
                f"budget.epsilon_term {self.epsilon_term:g} is below epsilon_per_window "
                f"{self.epsilon_per_window:g}"
            )
        if problems:
            msg = f"Agreement {self.agreement_id!r} version {self.version}: " + "; ".join(problems)
            raise ConfigurationError(msg + ". Fix the agreement file.")

    @property
    def label(self) -> str:
        """``id v<version>``, as messages name it."""
        return f"{self.agreement_id} v{self.version}"

    def in_force(self, day: dt.date) -> bool:
        """Whether ``day`` lies within the term."""
        return self.start <= day <= self.end

    def as_dict(self) -> dict[str, Any]:
        """The agreement as JSON values, in the shape of :data:`AGREEMENT_JSON_SCHEMA` (what
        the ledger records and the transparency page publishes)."""
        releases: dict[str, Any] = {
            "indicators": list(self.indicators),
            "levels": list(self.levels),
            "sources": list(self.sources),
            "min_k": self.min_k,
        }
        if self.data_from is not None:
            releases["data_from"] = self.data_from.isoformat()
        if self.data_to is not None:
            releases["data_to"] = self.data_to.isoformat()
        return {
            "id": self.agreement_id,
            "version": self.version,
            "purpose": self.purpose,
            "parties": list(self.parties),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "retention_days": self.retention_days,
            "recipients": {"roles": list(self.roles), "tokens": list(self.tokens)},
            "releases": releases,
            "budget": {
                "epsilon_per_window": self.epsilon_per_window,
                "delta_per_window": self.delta_per_window,
                "epsilon_term": self.epsilon_term,
                "delta_term": self.delta_term,
            },
        }

    @classmethod
    def from_mapping(cls, document: Mapping[str, Any], *, source: str) -> Agreement:
        """Check ``document`` against the schema and parse it; errors name ``source`` and key."""
        import jsonschema  # noqa: PLC0415 - only agreement commands need it

        doc = _jsonable(dict(document))
        validator = jsonschema.Draft202012Validator(AGREEMENT_JSON_SCHEMA)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
        if errors:
            problems = [
                f"{'.'.join(map(str, e.path)) or '(top level)'}: {e.message}" for e in errors[:5]
            ]
            msg = (
                f"{source} is not a valid agreement: " + "; ".join(problems) + ". Every key is "
                "documented in schemas/agreement.py (and the README's section for the privacy "
                "office)."
            )
            raise ConfigurationError(msg)
        rec, rel, bud = doc["recipients"], doc["releases"], doc["budget"]
        day = dt.date.fromisoformat
        try:
            return cls(
                agreement_id=doc["id"],
                version=doc["version"],
                purpose=doc["purpose"].strip(),
                parties=tuple(doc["parties"]),
                start=day(doc["start"]),
                end=day(doc["end"]),
                retention_days=doc["retention_days"],
                roles=tuple(rec["roles"]),
                tokens=tuple(rec.get("tokens", ())),
                indicators=tuple(rel["indicators"]),
                levels=tuple(rel["levels"]),
                sources=tuple(rel["sources"]),
                min_k=rel["min_k"],
                data_from=day(rel["data_from"]) if "data_from" in rel else None,
                data_to=day(rel["data_to"]) if "data_to" in rel else None,
                epsilon_per_window=float(bud["epsilon_per_window"]),
                epsilon_term=float(bud["epsilon_term"]),
                delta_per_window=float(bud.get("delta_per_window", 0.0)),
                delta_term=float(bud.get("delta_term", 0.0)),
            )
        except ValueError as err:  # a date like 2026-02-30
            msg = f"{source} is not a valid agreement: {err}. Write dates as YYYY-MM-DD."
            raise ConfigurationError(msg) from None


def _jsonable(value: Any) -> Any:
    """TOML values as JSON values: dates as ``YYYY-MM-DD`` (a datetime is refused)."""
    if isinstance(value, dt.datetime):
        msg = f"a date is expected, not the date and time {value.isoformat()}"
        raise ConfigurationError(f"Bad agreement: {msg}.")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def load_agreement(path: Path) -> Agreement:
    """Read and check the agreement file at ``path`` (TOML)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"Agreement file {path} not found."
        raise ConfigurationError(msg) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        msg = f"{path} is not valid TOML ({err}); fix the syntax at that position."
        raise ConfigurationError(msg) from None
    return Agreement.from_mapping(document, source=str(path))
