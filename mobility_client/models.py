"""What the API answers, as frozen dataclasses (built from its JSON by :meth:`from_json`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl


def _day(text: object) -> date | None:
    return date.fromisoformat(str(text)) if text else None


@dataclass(frozen=True)
class IndicatorInfo:
    """An indicator, its columns, and what of it was released."""

    name: str
    description: str
    key_columns: tuple[str, ...]
    value_columns: tuple[str, ...]
    daily: bool
    releases: int
    levels: tuple[str, ...]
    first_day: date | None
    last_day: date | None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> IndicatorInfo:
        """From one item of ``GET /v1/indicators``."""
        return cls(
            name=doc["indicator"], description=doc["description"],
            key_columns=tuple(doc["key_columns"]), value_columns=tuple(doc["value_columns"]),
            daily=bool(doc["daily"]), releases=int(doc["releases"]),
            levels=tuple(doc["levels"]), first_day=_day(doc["first_day"]),
            last_day=_day(doc["last_day"]),
        )  # fmt: skip


@dataclass(frozen=True)
class Privacy:
    """The privacy parameters of one release: what protects every number it published.

    ``epsilon``/``delta``: the DP guarantee per ``privacy_unit``; ``k``: cells whose *noisy*
    value was below k were suppressed; ``ci95_half_width``: the noise added to each cell lies
    within ``± ci95_half_width`` with 95 % probability (a noise interval: for a published cell
    near k the true value lies in ``value ± ci95_half_width`` less often, as the analysts'
    guide explains).
    """

    release_id: str
    indicator: str
    level: str
    start: date
    end: date
    privacy_unit: str
    mechanism: str
    epsilon: float
    delta: float
    k: int
    ci95_half_width: int
    cells_released: int
    cells_suppressed: int

    @classmethod
    def from_json(cls, doc: dict[str, Any], indicator: str | None = None) -> Privacy:
        """From a release's summary, metadata, or an export's ``mobility.releases`` item."""
        return cls(
            release_id=doc["release_id"], indicator=doc.get("indicator", indicator or ""),
            level=doc["level"], start=date.fromisoformat(doc["period"]["start"]),
            end=date.fromisoformat(doc["period"]["end"]), privacy_unit=doc["privacy_unit"],
            mechanism=doc["mechanism"], epsilon=float(doc["epsilon"]),
            delta=float(doc["delta"]), k=int(doc["k"]),
            ci95_half_width=int(doc["ci95_half_width"]),
            cells_released=int(doc["cells_released"]),
            cells_suppressed=int(doc["cells_suppressed"]),
        )  # fmt: skip


@dataclass(frozen=True)
class Release:
    """A published release, as listed by ``GET /v1/releases``."""

    privacy: Privacy
    value_column: str
    ledger_status: str
    created_at: str

    @property
    def release_id(self) -> str:
        """The release's id (also its privacy-ledger entry id)."""
        return self.privacy.release_id

    @property
    def indicator(self) -> str:
        """The indicator released."""
        return self.privacy.indicator

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Release:
        """From one item of ``GET /v1/releases``."""
        return cls(Privacy.from_json(doc), doc["value_column"], doc["ledger_status"],
                   doc["created_at"])  # fmt: skip


@dataclass(frozen=True)
class ReleaseDetails:
    """A release's whole ``metadata.json`` (sensitivity, scale, bounds...) and its privacy."""

    privacy: Privacy
    ledger_status: str
    metadata: dict[str, Any] = field(hash=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ReleaseDetails:
        """From ``GET /v1/releases/{indicator}/{release_id}``."""
        return cls(Privacy.from_json(doc["metadata"]), doc["ledger_status"], doc["metadata"])


@dataclass(frozen=True)
class Export:
    """Released cells for a request, with the privacy of every release they come from."""

    data: pl.DataFrame
    releases: tuple[Privacy, ...]
    descriptor: dict[str, Any] = field(hash=False)

    def to_pandas(self) -> pd.DataFrame:
        """The data as a pandas DataFrame (needs pandas and pyarrow installed)."""
        return self.data.to_pandas()
