"""Orchestration and entry points: Prefect flows and tasks, and the ``mobility`` command line.

Flows and tasks are thin wrappers over functions in :mod:`aggregation`; single-shot commands call
:mod:`aggregation` directly. Modules:
    ingest  -- the ingest flow (one task per raw file, then the reconciliation report).
    daily   -- the daily flow (ingest what is new, release the scheduled indicators) and backfills.
    demo    -- the whole job on a synthetic country.
    cli     -- the ``mobility`` command and its subcommands.
"""
