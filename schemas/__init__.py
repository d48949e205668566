"""Data contracts of the pipeline: documented Arrow schemas and their validation.

Modules:
    contract   -- :class:`Contract` and :class:`Column`: documented Arrow schemas.
    raw        -- raw call-detail records and app/GPS pings as operators export them.
    geography  -- zones (admin1 ⊃ admin2 ⊃ admin3) and the cell reference table.
    staged     -- pseudonymised, zone-mapped events written by ingest (and GPS fixes with their
                  coordinates, a sidecar only GPS indicators read).
    gps        -- the ``[gps]`` section: how stays are found in app fixes.
    quality    -- reason codes for quarantined rows and injected errors.
    truth      -- ground truth written by the synthetic generator.
    privacy    -- privacy units, sensitivities, mechanisms, costs and the budget policy.
    indicators -- the indicator catalogue: keys, contribution bounds, declared sensitivities.
    release    -- a release request and what a release publishes (data contract, metadata).
    workspace  -- the workspace layout and its ``mobility.toml`` configuration.
    schedule   -- the ``[schedule]`` section: what the daily flow releases, and when.
    errors     -- error classes and the CLI exit status of each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.contract import Column, Contract, ContractError

__all__ = ["Column", "Contract", "ContractError"]


def __getattr__(name: str) -> Any:
    """Import :mod:`schemas.contract` (and pyarrow) only when one of its names is asked for."""
    if name in __all__:
        from schemas import contract  # noqa: PLC0415 - lazy: schemas.errors must stay light

        return getattr(contract, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
