"""What a release says of itself: the typed ``metadata.json`` of every published release.

:class:`ReleaseMetadata` is the one reader and writer of that file. The release builds one and
:func:`~aggregation.release.publish.write_aside` writes :meth:`ReleaseMetadata.to_dict` (keys
sorted, as always); every reader (export, audit, CLI, API, flows) parses the file once with
:meth:`ReleaseMetadata.parse` and reads attributes. ``parse`` then ``to_dict`` gives back the
file's own JSON, value for value and key for key (``tests/test_release_metadata.py`` checks it
on a fresh release and on a file written before this type existed), so the files on disk and
their SHA-256 in the ledger never change. The documented schema of the file is
:data:`schemas.release.METADATA_JSON_SCHEMA`.

Files written by earlier versions lack the keys added since (``git log -p`` of
``aggregation/release/run.py``). Each is read with the meaning it had then and, for the keys of
:data:`LEGACY_KEYS`, named in :attr:`ReleaseMetadata.absent` and left out again when written:

- ``source``, ``accounting`` (before GPS sources): ``cdr``, and "" (no statement);
- ``agreement`` (before data-sharing agreements): no agreement;
- ``reliability``, ``publication_threshold``, ``publication_rule`` (before the reliability bar):
  0 (k alone), k, and "";
- ``margins`` (before margins; also absent for private key sets) and ``totals`` (before DP
  totals; also absent at ``totals_share`` 0): None.

``input_fingerprint`` was written by the first releases only (the inputs are in the ledger
since); it is kept when present. Any other key, or a key missing or of the wrong kind, is a
:class:`MetadataError` naming the file and the key (``scope.windows_charged`` for nested ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from schemas.errors import MobilityError
from schemas.geography import ADMIN_LEVELS, AdminLevel
from schemas.indicators import Indicator, Period
from schemas.json_reading import (
    FieldError,
    ObjectReader,
    day,
    int_map,
    integer,
    json_object,
    nullable,
    number,
    one_of,
    str_map,
    string,
)
from schemas.privacy import MECHANISMS, Mechanism, PrivacyUnit, Sensitivity
from schemas.staged import SOURCES, Source

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import date
    from pathlib import Path

T = TypeVar("T")

LEGACY_KEYS = (
    "source", "accounting", "agreement", "reliability", "publication_threshold",
    "publication_rule",
)  # fmt: skip
"""Keys of ``metadata.json`` that releases made by earlier versions may lack (module docstring)."""

NEIGHBOURING = "add or remove all records of one privacy unit"
"""The neighbouring relation every release states."""


class MetadataError(MobilityError):
    """A ``metadata.json`` that is not a release's metadata: names the file and the key."""


@dataclass(frozen=True)
class ReleaseScope:
    """The days a release is about, its home periods and the accounting windows it charged."""

    days: Period | None
    home_period: Period | None
    previous_home_period: Period | None
    windows_charged: tuple[date, ...]

    def to_dict(self) -> dict[str, Any]:
        """As in ``metadata.json``."""
        return {
            "days": _text(self.days),
            "home_period": _text(self.home_period),
            "previous_home_period": _text(self.previous_home_period),
            "windows_charged": [str(d) for d in self.windows_charged],
        }


@dataclass(frozen=True)
class AgreementRef:
    """The data-sharing agreement (and its version) a release was made under."""

    id: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        """As in ``metadata.json``."""
        return {"id": self.id, "version": self.version}


@dataclass(frozen=True)
class ColumnDoc:
    """One column of the release's data files, as its contract documents it."""

    name: str
    type: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        """As in ``metadata.json``."""
        return {"name": self.name, "type": self.type, "description": self.description}


@dataclass(frozen=True)
class MarginsMetadata:
    """What a release says of its margins (:mod:`aggregation.release.margins`)."""

    files: tuple[str, ...]
    margins: tuple[str, ...]
    derived_from: str
    ci95: str
    dp_totals: str | None = None
    """How the per-date margin combines the DP total with the sum of cells, if it has one."""

    def to_dict(self) -> dict[str, Any]:
        """As in ``metadata.json`` (``dp_totals`` only when there is one)."""
        out: dict[str, Any] = {
            "files": list(self.files), "margins": list(self.margins),
            "derived_from": self.derived_from, "ci95": self.ci95,
        }  # fmt: skip
        if self.dp_totals is not None:
            out["dp_totals"] = self.dp_totals
        return out


@dataclass(frozen=True)
class TotalsMetadata:
    """The per-date totals released as DP values of their own
    (:mod:`aggregation.release.totals`)."""

    share: float
    margin: str
    epsilon: float
    cells_epsilon: float
    mechanism: Mechanism
    scale: float
    std_dev: float
    ci95_half_width: int
    sensitivity: Sensitivity
    composition: str
    published_as: str

    def to_dict(self) -> dict[str, Any]:
        """As in ``metadata.json`` and ``explain``."""
        return {
            "share": self.share, "margin": self.margin, "epsilon": self.epsilon,
            "cells_epsilon": self.cells_epsilon, "mechanism": self.mechanism,
            "scale": self.scale, "std_dev": self.std_dev,
            "ci95_half_width": self.ci95_half_width,
            "sensitivity": self.sensitivity.as_dict(),
            "composition": self.composition, "published_as": self.published_as,
        }  # fmt: skip


@dataclass(frozen=True)
class ReleaseMetadata:
    """A release's ``metadata.json``: what was released, at what cost, how accurate, which files.

    Fields follow the file's keys; those an older file lacks (:data:`LEGACY_KEYS`) hold what such
    a release meant (source ``cdr``, reliability 0, publication threshold k, no agreement, ""
    for the statements it did not make), and ``absent`` names them, so that :meth:`to_dict`
    leaves them out again and a file reads and writes back the same.
    """

    release_id: str
    ledger_entry_id: str
    indicator: Indicator
    value_column: str
    level: AdminLevel
    period: Period
    scope: ReleaseScope
    privacy_unit: PrivacyUnit
    neighbouring: str
    mechanism: Mechanism
    epsilon: float
    delta: float
    rho: float | None
    sensitivity: Sensitivity
    scale: float
    ci95_half_width: int
    confidence: float
    expected_abs_error: float
    k: int
    cells_total: int
    cells_released: int
    cells_suppressed: int
    contribution_bounds: Mapping[str, int]
    code_version: str
    created_at: str
    """When it was published: ISO 8601 in UTC, to the second."""
    files: Mapping[str, str]
    """SHA-256 of each data file, by name (``metadata.json`` itself is hashed in the ledger)."""
    columns: tuple[ColumnDoc, ...]
    source: Source
    accounting: str
    """How releases of both sources share the budget."""
    agreement: AgreementRef | None
    reliability: float
    publication_threshold: int
    """The least noisy value published."""
    publication_rule: str
    margins: MarginsMetadata | None = None
    totals: TotalsMetadata | None = None
    input_fingerprint: str | None = None
    """Written by the first releases only."""
    absent: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        bounds, files = dict(self.contribution_bounds), dict(self.files)
        object.__setattr__(self, "contribution_bounds", MappingProxyType(bounds))
        object.__setattr__(self, "files", MappingProxyType(files))
        unknown = self.absent - set(LEGACY_KEYS)
        if unknown:
            msg = f"Release metadata may lack only {list(LEGACY_KEYS)}, not {sorted(unknown)}."
            raise ValueError(msg)

    def __reduce__(self) -> tuple[Callable[[object], ReleaseMetadata], tuple[dict[str, Any]]]:
        """Pickled as its JSON document (its mappings are read-only proxies, which pickle
        cannot copy): a Dask worker or a Prefect result gets an equal object back."""
        return ReleaseMetadata.parse, (self.to_dict(),)

    def with_files(self, files: Mapping[str, str]) -> ReleaseMetadata:
        """The same metadata listing ``files`` (name → SHA-256)."""
        return replace(self, files=files)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``metadata.json``: keys sorted at every depth, as in the file
        (``json.loads`` of the file gives this, key for key and value for value)."""
        out: dict[str, Any] = {
            "release_id": self.release_id,
            "ledger_entry_id": self.ledger_entry_id,
            "indicator": str(self.indicator),
            "value_column": self.value_column,
            "level": self.level,
            "period": {"start": str(self.period.start), "end": str(self.period.end)},
            "scope": self.scope.to_dict(),
            "privacy_unit": str(self.privacy_unit),
            "neighbouring": self.neighbouring,
            "mechanism": self.mechanism,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "rho": self.rho,
            "sensitivity": self.sensitivity.as_dict(),
            "scale": self.scale,
            "ci95_half_width": self.ci95_half_width,
            "confidence": self.confidence,
            "expected_abs_error": self.expected_abs_error,
            "k": self.k,
            "cells_total": self.cells_total,
            "cells_released": self.cells_released,
            "cells_suppressed": self.cells_suppressed,
            "contribution_bounds": dict(self.contribution_bounds),
            "code_version": self.code_version,
            "created_at": self.created_at,
            "files": dict(self.files),
            "columns": [c.to_dict() for c in self.columns],
            "source": self.source,
            "accounting": self.accounting,
            "agreement": self.agreement.to_dict() if self.agreement is not None else None,
            "reliability": self.reliability,
            "publication_threshold": self.publication_threshold,
            "publication_rule": self.publication_rule,
        }
        for key in self.absent:
            del out[key]
        if self.margins is not None:
            out["margins"] = self.margins.to_dict()
        if self.totals is not None:
            out["totals"] = self.totals.to_dict()
        if self.input_fingerprint is not None:
            out["input_fingerprint"] = self.input_fingerprint
        return _sorted(out)

    def as_json(self) -> str:
        """The text of ``metadata.json``."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def parse(cls, document: object, where: str = "metadata.json") -> ReleaseMetadata:
        """Read the JSON document of a ``metadata.json`` (``where``: the file, for errors).

        :class:`MetadataError` naming ``where`` and the key when a key is missing, holds a
        value of the wrong kind, or is not a key of release metadata.
        """
        return _parsed(_release, document, where)

    @classmethod
    def read(cls, path: Path) -> ReleaseMetadata:
        """Parse the ``metadata.json`` at ``path`` (:class:`MetadataError` naming it when it is
        not a release's metadata; ``OSError`` when it cannot be read)."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:  # not UTF-8, or not JSON
            msg = f"{path} is not JSON ({exc}): it is not a release's metadata. {_RESTORE}"
            raise MetadataError(msg) from exc
        return cls.parse(document, str(path))


# --- reading the file (schemas/json_reading.py names the key of every problem) ---------------

_RESTORE = (
    "Restore the file from a backup; `mobility audit verify` checks every release's files "
    "against the ledger."
)


def _parsed(read: Callable[[ObjectReader], T], document: object, where: str) -> T:
    """``read`` of the JSON object ``document``, problems raised as :class:`MetadataError`."""
    if not isinstance(document, dict):
        msg = f"{where} is not a JSON object: it is not a release's metadata. {_RESTORE}"
        raise MetadataError(msg)
    try:
        return json_object(read)(document)
    except FieldError as exc:
        msg = (
            f"{where}: key {exc.key!r} {exc.problem}: it is not a release's metadata (or not "
            f"one this version of mobility-dp reads). {_RESTORE}"
        )
        raise MetadataError(msg) from exc


def _release(r: ObjectReader) -> ReleaseMetadata:
    k = r.get("k", integer)
    return ReleaseMetadata(
        release_id=r.get("release_id", string),
        ledger_entry_id=r.get("ledger_entry_id", string),
        indicator=r.get("indicator", _indicator),
        value_column=r.get("value_column", string),
        level=r.get("level", _level),
        period=r.get("period", json_object(_period)),
        scope=r.get("scope", json_object(_scope)),
        privacy_unit=r.get("privacy_unit", _privacy_unit),
        neighbouring=r.get("neighbouring", string),
        mechanism=r.get("mechanism", _mechanism),
        epsilon=r.get("epsilon", number),
        delta=r.get("delta", number),
        rho=r.get("rho", nullable(number)),
        sensitivity=r.get("sensitivity", json_object(_sensitivity)),
        scale=r.get("scale", number),
        ci95_half_width=r.get("ci95_half_width", integer),
        confidence=r.get("confidence", number),
        expected_abs_error=r.get("expected_abs_error", number),
        k=k,
        cells_total=r.get("cells_total", integer),
        cells_released=r.get("cells_released", integer),
        cells_suppressed=r.get("cells_suppressed", integer),
        contribution_bounds=r.get("contribution_bounds", int_map),
        code_version=r.get("code_version", string),
        created_at=r.get("created_at", string),
        files=r.get("files", str_map),
        columns=r.items("columns", json_object(_column)),
        source=r.optional("source", _source, "cdr"),
        accounting=r.optional("accounting", string, ""),
        agreement=r.optional("agreement", nullable(json_object(_agreement)), None),
        reliability=r.optional("reliability", number, 0.0),
        publication_threshold=r.optional("publication_threshold", integer, k),
        publication_rule=r.optional("publication_rule", string, ""),
        margins=r.optional("margins", json_object(_margins), None),
        totals=r.optional("totals", json_object(_totals), None),
        input_fingerprint=r.optional("input_fingerprint", string, None),
        absent=frozenset(key for key in LEGACY_KEYS if not r.has(key)),
    )


def _margins(r: ObjectReader) -> MarginsMetadata:
    return MarginsMetadata(
        files=r.items("files", string),
        margins=r.items("margins", string),
        derived_from=r.get("derived_from", string),
        ci95=r.get("ci95", string),
        dp_totals=r.optional("dp_totals", string, None),
    )


def _totals(r: ObjectReader) -> TotalsMetadata:
    return TotalsMetadata(
        share=r.get("share", number),
        margin=r.get("margin", string),
        epsilon=r.get("epsilon", number),
        cells_epsilon=r.get("cells_epsilon", number),
        mechanism=r.get("mechanism", _mechanism),
        scale=r.get("scale", number),
        std_dev=r.get("std_dev", number),
        ci95_half_width=r.get("ci95_half_width", integer),
        sensitivity=r.get("sensitivity", json_object(_sensitivity)),
        composition=r.get("composition", string),
        published_as=r.get("published_as", string),
    )


def _period(r: ObjectReader) -> Period:
    return Period(r.get("start", day), r.get("end", day))


def _scope(r: ObjectReader) -> ReleaseScope:
    return ReleaseScope(
        days=r.get("days", nullable(_period_text)),
        home_period=r.get("home_period", nullable(_period_text)),
        previous_home_period=r.get("previous_home_period", nullable(_period_text)),
        windows_charged=r.items("windows_charged", day),
    )


def _sensitivity(r: ObjectReader) -> Sensitivity:
    return Sensitivity(l1=r.get("l1", integer), l2=r.get("l2", number), linf=r.get("linf", integer))


def _agreement(r: ObjectReader) -> AgreementRef:
    return AgreementRef(id=r.get("id", string), version=r.get("version", integer))


def _column(r: ObjectReader) -> ColumnDoc:
    return ColumnDoc(r.get("name", string), r.get("type", string), r.get("description", string))


def _indicator(value: object) -> Indicator:
    return Indicator(string(value))


def _level(value: object) -> AdminLevel:
    return cast("AdminLevel", one_of(value, ADMIN_LEVELS))


def _mechanism(value: object) -> Mechanism:
    return cast("Mechanism", one_of(value, MECHANISMS))


def _source(value: object) -> Source:
    return cast("Source", one_of(value, SOURCES))


def _privacy_unit(value: object) -> PrivacyUnit:
    return PrivacyUnit.parse(string(value))


def _period_text(value: object) -> Period:
    """A period as ``str(Period)`` writes it: ``2026-03-02`` or ``2026-03-02..2026-03-08``."""
    return Period.parse(string(value))


def _text(period: Period | None) -> str | None:
    return str(period) if period is not None else None


def _sorted(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the keys of every object sorted, as ``json.dumps(sort_keys=True)``."""

    def order(value: object) -> object:
        if isinstance(value, dict):
            return {k: order(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [order(v) for v in value]
        return value

    return {k: order(document[k]) for k in sorted(document)}
