"""Orchestration and entry points: Prefect flows and tasks, and the ``mobility`` command line.

Flows and tasks are thin wrappers over functions in :mod:`aggregation`; single-shot commands call
:mod:`aggregation` directly. Modules:
    ingest        -- the ingest flow (one task per raw file, then the reconciliation report).
    daily         -- the daily flow (ingest what is new, release the scheduled indicators) and
                     backfills, and how a command runs them.
    deployments   -- the Prefect deployments ``mobility serve`` offers (cron in the workspace's
                     time zone, module-path entrypoints, one run at a time).
    dask_executor -- exact aggregates shard by shard on a Dask cluster.
    prefect_api   -- the Prefect API a command reports to: a real server or a temporary one.
    run_lock      -- one run of a workspace at a time.
    retries       -- tasks retry on operating-system errors only.
    demo          -- the whole job on a synthetic country.
    cli           -- the ``mobility`` command and its subcommands.
"""
