"""The persistent privacy ledger: hash-chained records in a DuckDB file.

The ledger is charged *before* anything is published, atomically; refused requests and the
budget policy are recorded too. Accounting rules live in :mod:`aggregation.budget`.

Modules: :mod:`~aggregation.ledger.records` (what is recorded: charges, publications, refusals,
policies), :mod:`~aggregation.ledger.hashing` (canonical JSON), :mod:`~aggregation.ledger.chain`
(what each hash covers; the chain of all records), :mod:`~aggregation.ledger.tables` (DuckDB
tables and the schema version), :mod:`~aggregation.ledger.locks` (cross-process locks),
:mod:`~aggregation.ledger.transaction` (an open charge), :mod:`~aggregation.ledger.agreements`
(the rule an agreement sets), :mod:`~aggregation.ledger.reading` (connections and every read) and
:mod:`~aggregation.ledger.store` (the :class:`Ledger`: charges, refusals, policies, agreements).

**One chain.** Every record — a charge (``ledger_entries``), a publication, a refusal, a budget
policy — is numbered by one ``seq`` and chained by ``prev_hash`` → its hash (SHA-256 of its
canonical JSON). Records are never updated. A pending charge is completed by *appending* its
publication, so a head hash noted while a release runs stays in the chain for good.

**One release = one transaction** (:meth:`Ledger.charge`, a context manager)::

    with ledger.charge(request) as tx:        # check every window and rolling span, then
        if tx.reused:                          # record a pending charge (committed), or find
            return tx.entry                    # the stored release of the same question
        tx.noise_at_risk()                     # from here noise may reach the disk
        values = mechanism.release(exact)      # draw noise, write files aside, hash them
        tx.publish(outputs=..., cells_released=..., cells_suppressed=..., move=rename_into_place)

- A refused request raises :class:`~schemas.errors.BudgetExceededError` before the block runs;
  nothing is charged, the refusal is recorded (and chained).
- An exception inside the block rolls the pending charge back only while no noise can be on
  disk: before ``noise_at_risk()``, or after the caller destroyed its files and said so with
  ``noise_destroyed()``. Otherwise the charge stays pending: noise on disk is always paid for.
- ``publish`` passes the point of no return, calls ``move`` (which makes the files visible),
  then appends the publication record with the outputs' SHA-256.
- If the process dies (kill -9, power loss) after the charge, the committed pending charge
  stays spent. A rerun of the same question (same release key) gets it back as ``tx.resumed``
  and finishes it — publishing the files already written if they are complete, else drawing
  the noise again under the same charge after destroying what was left — so one question ends
  with one charge and one published answer.

**Re-runs.** A request whose release key matches a published entry gets that entry back
(``tx.reused``), whatever the budget now says, and charges nothing.

**Agreements.** Each version of a data-sharing agreement is a chained record too
(:meth:`Ledger.register_agreement`); a release made under one names it in its parameters, and
the charge refuses (and records) a release outside it — its budget included — under the same
writer lock as the workspace caps (:mod:`~aggregation.ledger.agreements`).

**Concurrency.** See :mod:`~aggregation.ledger.locks`: a whole charge transaction holds the
writer lock, so check-then-append is atomic across processes and threads, and the pending
charge stays the head of the chain until it is published or rolled back.
"""

from aggregation.ledger.chain import (
    ENTRY_COLUMNS,
    ChainLink,
    canonical_entry_json,
    chain_links,
    compute_entry_hash,
    entry_content,
    policy_hash,
    publication_hash,
    refusal_hash,
)
from aggregation.ledger.hashing import GENESIS_HASH, canonical_json, sha256_hex
from aggregation.ledger.records import (
    AgreementRecord,
    FileDigest,
    LedgerEntry,
    OutputFile,
    PolicyRecord,
    Publication,
    Refusal,
    ReleaseRequest,
    Status,
    files_digest,
    release_key,
)
from aggregation.ledger.store import Ledger
from aggregation.ledger.tables import SCHEMA_VERSION
from aggregation.ledger.transaction import ChargeTransaction

__all__ = [
    "ENTRY_COLUMNS",
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "AgreementRecord",
    "ChainLink",
    "ChargeTransaction",
    "FileDigest",
    "Ledger",
    "LedgerEntry",
    "OutputFile",
    "PolicyRecord",
    "Publication",
    "Refusal",
    "ReleaseRequest",
    "Status",
    "canonical_entry_json",
    "canonical_json",
    "chain_links",
    "compute_entry_hash",
    "entry_content",
    "files_digest",
    "policy_hash",
    "publication_hash",
    "refusal_hash",
    "release_key",
    "sha256_hex",
]
