"""The records of the ledger: charges (entries), publications, refusals and budget policies.

Every record is immutable once written and carries ``seq`` (one numbering shared by all kinds),
``prev_hash`` (the hash of the record numbered ``seq - 1``) and its own hash: together they form
one hash chain (see :mod:`aggregation.ledger.chain`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from aggregation.budget import Charge
from aggregation.ledger.hashing import canonical_json, sha256_hex
from schemas.privacy import PrivacyCost, PrivacyUnit

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import date, datetime

    from schemas.privacy import NoiseSpec

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

Status = Literal["pending", "published"]
"""``pending``: charged, publication in progress or interrupted (a rerun of the same question
finishes it). ``published``: a publication record lists its files."""

RecordKind = Literal["charge", "publication", "refusal", "policy", "agreement"]


def frozen_mapping(mapping: Mapping[str, object]) -> Mapping[str, object]:
    """A read-only copy of ``mapping``."""
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class FileDigest:
    """A file, by its path relative to the workspace (POSIX) and the SHA-256 of its bytes."""

    path: str
    sha256: str

    def __post_init__(self) -> None:
        if _SHA256_HEX.fullmatch(self.sha256) is None:
            msg = f"sha256 of {self.path!r} must be 64 lowercase hex digits; got {self.sha256!r}."
            raise ValueError(msg)

    def as_json(self) -> dict[str, object]:
        """``{"path": …, "sha256": …}``."""
        return {"path": self.path, "sha256": self.sha256}


OutputFile = FileDigest
"""A published file (the name the release code uses)."""


def files_digest(files: tuple[FileDigest, ...]) -> str:
    """SHA-256 of the canonical JSON list of ``files`` (the input fingerprint of a release)."""
    return sha256_hex(canonical_json(list(files)))


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """What a release asks the ledger for, known before any noise is drawn.

    ``parameters`` hold whatever defines the question besides the indicator and the windows
    (zone level, contribution bounds, the resolved mechanism, …); ``noise`` is the spec built by
    :mod:`aggregation.mechanisms` — its cost is what OpenDP's privacy map returned. ``inputs``
    are the staged files read (paths relative to the workspace, content hashes), kept for the
    auditor; ``input_fingerprint`` is their digest. ``unit`` is the privacy unit the windows
    are of; the ledger records it as text (:attr:`privacy_unit`).

    ``k_threshold`` is the release's k (``ReleaseSpec.k``, ``k`` in metadata and the API) under
    the ledger's name for it: a column of ``ledger_entries`` and a key of the hashed release key
    and entry content, so renaming it would change the hashes of every existing ledger. Code
    says ``k`` everywhere else; the mechanisms' ``min_threshold`` is the floor of a partition
    threshold, which a release sets to its k.
    """

    indicator: str
    parameters: Mapping[str, object]
    windows: tuple[date, ...]
    unit: PrivacyUnit
    noise: NoiseSpec
    input_fingerprint: str
    code_version: str
    k_threshold: int | None = None
    inputs: tuple[FileDigest, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", frozen_mapping(self.parameters))
        object.__setattr__(self, "windows", tuple(sorted(self.windows)))
        Charge(self.windows, self.noise.cost)  # validates the windows
        if not self.indicator or not isinstance(self.unit, PrivacyUnit):
            msg = (
                "A release names its indicator and privacy unit; got "
                f"indicator={self.indicator!r}, unit={self.unit!r}."
            )
            raise ValueError(msg)
        if self.k_threshold is not None and self.k_threshold < 0:
            msg = f"k_threshold must be non-negative; got {self.k_threshold!r}."
            raise ValueError(msg)
        canonical_json(dict(self.parameters))  # fails early on values JSON cannot hold

    @property
    def privacy_unit(self) -> str:
        """The privacy unit as every release states it and the ledger records it."""
        return str(self.unit)

    @property
    def release_key(self) -> str:
        """The idempotency key of this request (see :func:`release_key`)."""
        return release_key(self)


def _noise_summary(noise: NoiseSpec) -> dict[str, object]:
    cost = noise.cost
    return {
        "mechanism": noise.mechanism,
        "scale": noise.scale,
        "sensitivity": [noise.sensitivity.l1, noise.sensitivity.l2, noise.sensitivity.linf],
        "epsilon": cost.epsilon,
        "delta": cost.delta,
        "rho": cost.rho,
        "zcdp_delta": cost.zcdp_delta,
        "threshold": noise.threshold,
        "l0": noise.l0,
    }


def release_key(request: ReleaseRequest) -> str:
    """SHA-256 of the canonical JSON of the question a request asks.

    Covers ``indicator``, ``parameters`` (of the *resolved* question: defaults applied),
    ``windows``, ``k_threshold`` and the noise (mechanism, scale, sensitivity, cost,
    threshold): the same question asked again, through any door, gets the same key, and any
    change to what would be published gets a new one.
    """
    return sha256_hex(
        canonical_json(
            {
                "indicator": request.indicator,
                "parameters": dict(request.parameters),
                "windows": list(request.windows),
                "k_threshold": request.k_threshold,
                "noise": _noise_summary(request.noise),
            }
        )
    )


@dataclass(frozen=True, slots=True)
class Publication:
    """The record that a charged release was published: its files and cell counts."""

    seq: int
    entry_id: str
    outputs: tuple[FileDigest, ...]
    cells_released: int
    cells_suppressed: int
    published_at: datetime
    prev_hash: str
    record_hash: str


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One release's charge (a row of ``ledger_entries``), with its publication if it has one.

    The charge is written, hashed and chained before any noise is drawn, and never changes;
    ``entry_hash`` covers it alone. Publication is a later record of its own
    (:class:`Publication`), so the hash of a pending charge noted during a run stays valid.
    """

    seq: int
    entry_id: str
    release_key: str
    indicator: str
    parameters: Mapping[str, object] = field(hash=False)
    privacy_unit: str
    windows: tuple[date, ...]
    composition: str
    mechanism: str
    l1: int
    l2: float
    linf: int
    scale: float
    epsilon: float
    delta: float
    rho: float | None
    zcdp_delta: float
    partition_threshold: int | None
    l0: int | None
    k_threshold: int | None
    input_fingerprint: str
    inputs: tuple[FileDigest, ...]
    code_version: str
    created_at: datetime
    prev_hash: str
    entry_hash: str
    publication: Publication | None = None

    @property
    def status(self) -> Status:
        """``published`` once a publication record names this entry, else ``pending``."""
        return "pending" if self.publication is None else "published"

    @property
    def outputs(self) -> tuple[FileDigest, ...]:
        """The published files (none while pending)."""
        return () if self.publication is None else self.publication.outputs

    @property
    def published_at(self) -> datetime | None:
        """When the publication was recorded."""
        return None if self.publication is None else self.publication.published_at

    @property
    def cells_released(self) -> int | None:
        """Cells published (None while pending)."""
        return None if self.publication is None else self.publication.cells_released

    @property
    def cells_suppressed(self) -> int | None:
        """Cells suppressed below k (None while pending)."""
        return None if self.publication is None else self.publication.cells_suppressed

    @property
    def unit(self) -> PrivacyUnit:
        """The privacy unit the entry records (``ValueError`` if its text names none)."""
        return PrivacyUnit.parse(self.privacy_unit)

    @property
    def cost(self) -> PrivacyCost:
        """What this entry charged each window it reads."""
        return PrivacyCost(
            epsilon=self.epsilon, delta=self.delta, rho=self.rho, zcdp_delta=self.zcdp_delta
        )

    def as_charge(self) -> Charge:
        """The entry as the budget sees it."""
        return Charge(self.windows, self.cost)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the budget refused, and why. Nothing was charged or published for it; the
    refusal is a chained record like any other, so it cannot be edited or deleted unseen."""

    seq: int
    refusal_id: str
    release_key: str
    indicator: str
    parameters: Mapping[str, object] = field(hash=False)
    windows: tuple[date, ...]
    mechanism: str
    epsilon: float
    delta: float
    rho: float | None
    reason: str
    created_at: datetime
    prev_hash: str
    record_hash: str


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """The budget policy in force from this record on (the ``[privacy]`` section, parsed).

    A policy record is appended before the first charge and whenever ``mobility.toml`` states
    another policy; a new policy never applies to windows already charged (see
    :mod:`aggregation.ledger.policies`).
    """

    seq: int
    policy_id: str
    policy: Mapping[str, object] = field(hash=False)
    recorded_at: datetime
    prev_hash: str
    record_hash: str


@dataclass(frozen=True, slots=True)
class AgreementRecord:
    """One version of a data-sharing agreement, registered (``mobility agreement add``).

    ``agreement`` is the agreement as JSON values (:meth:`schemas.agreement.Agreement.as_dict`).
    The version in force for an agreement id is the one registered last; releases made under it
    name the id and the version (see :mod:`aggregation.ledger.agreements`).
    """

    seq: int
    record_id: str
    agreement_id: str
    version: int
    agreement: Mapping[str, object] = field(hash=False)
    recorded_at: datetime
    prev_hash: str
    record_hash: str
