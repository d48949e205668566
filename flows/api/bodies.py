"""The bodies of successful answers that clients read field by field (listings and metadata).

Declared as response models, they are in the OpenAPI document, and FastAPI checks every answer
against them before sending it.
"""

from __future__ import annotations

from datetime import date  # noqa: TC003 - pydantic reads annotations at run time
from typing import Any, Literal

from pydantic import BaseModel, Field

from flows.api.params import Level  # noqa: TC001 - pydantic reads annotations at run time
from schemas.indicators import Indicator  # noqa: TC001 - pydantic reads annotations at run time


class PeriodBody(BaseModel):
    """First and last day, inclusive."""

    start: date
    end: date


class IndicatorSummary(BaseModel):
    """An indicator, its columns, and what of it was released."""

    indicator: Indicator
    description: str
    key_columns: list[str]
    value_columns: list[str]
    daily: bool = Field(description="Released per day (else per period: residents, relocations).")
    releases: int = Field(ge=0)
    levels: list[Level] = Field(description="Admin levels released.")
    first_day: date | None = Field(description="First day released (null if never).")
    last_day: date | None = Field(description="Last day released (null if never).")


class ReleaseSummary(BaseModel):
    """A published release and the privacy of its numbers."""

    release_id: str
    indicator: Indicator
    value_column: str
    level: Level
    period: PeriodBody
    privacy_unit: str = Field(description="What ε and δ protect, e.g. subscriber-day.")
    epsilon: float = Field(gt=0)
    delta: float = Field(ge=0, le=1)
    mechanism: str
    k: int = Field(ge=0, description="Cells whose noisy value was below k were suppressed.")
    ci95_half_width: int = Field(ge=0, description="The true value is in value ± this, 95 %.")
    cells_released: int = Field(ge=0)
    cells_suppressed: int = Field(ge=0)
    created_at: str
    ledger_status: str
    source: Literal["cdr", "gps"] = Field(
        "cdr", description="Data released from: cdr (subscribers) or gps (app fixes, devices)."
    )


class ReleaseMetadata(BaseModel):
    """A release's ``metadata.json`` (as published) and its status in the privacy ledger."""

    ledger_status: str
    metadata: dict[str, Any]
