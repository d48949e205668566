"""Pure computation, no orchestration (never imports Prefect): every stage of the data flow.

Modules and packages:
    ingest        -- raw exports → validated, quarantined, pseudonymised, zone-mapped staged events.
    extract       -- per subscriber-day: events, stays, trips, homes, distances (DuckDB SQL plans).
    bounding      -- contribution bounding in a keyed random order, independent of other people.
    indicators    -- exact bounded aggregates of every indicator over its public key set.
    mechanisms    -- OpenDP measurements: vector noise, partition selection, error bars.
    budget        -- composition and caps: what a window has spent and has left.
    ledger        -- the persistent privacy ledger (DuckDB): charges, publications, refusals and
                     budget policies in one hash chain, charged before release.
    release       -- privatise, suppress, publish: a paid-for, self-describing release.
    unprotected   -- the no-privacy reference aggregates (never published; for accuracy/benchmarks).
"""
