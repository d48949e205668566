"""Data contracts of the pipeline: documented Arrow schemas and their validation.

Modules:
    contract   -- :class:`Contract` and :class:`Column`: documented Arrow schemas.
    raw        -- raw call-detail records and app/GPS pings as operators export them.
    geography  -- zones (admin1 ⊃ admin2 ⊃ admin3) and the cell reference table.
    staged     -- pseudonymised, zone-mapped events written by ingest.
    quality    -- reason codes for quarantined rows and injected errors.
    truth      -- ground truth written by the synthetic generator.
    errors     -- error classes and the CLI exit status of each.
"""

from schemas.contract import Column, Contract, ContractError

__all__ = ["Column", "Contract", "ContractError"]
