"""Staged events: what ingest writes and every indicator reads. No raw identifier is present.

Layout on disk: ``staged/date=YYYY-MM-DD/shard=NNN/<drop>.parquet`` where ``date`` is the local
calendar day and ``shard = pseudonym-hash mod S``, so that every shard holds whole subscribers.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.contract import Column, Contract

SOURCES = ("cdr", "gps")
STAGED_EVENT_TYPES = ("call", "sms", "data", "gps")

STAGED_EVENTS = Contract(
    name="staged_events",
    description=(
        "One row per validated, deduplicated, pseudonymised and zone-mapped event. The privacy "
        "unit (subscriber) is identified only by its keyed pseudonym."
    ),
    columns=(
        Column(
            "pseudonym",
            pa.string(),
            "Keyed pseudonym of the subscriber or device: hex HMAC-SHA256 of the raw id under the "
            "workspace secret (truncated to 128 bits). Not reversible without the secret.",
        ),
        Column("event_time", pa.timestamp("ms", tz="UTC"), "Time of the event.", timezone="UTC"),
        Column(
            "local_date",
            pa.date32(),
            "Calendar day of the event in the operator's time zone: the day of the indicators.",
        ),
        Column(
            "local_hour",
            pa.int8(),
            "Hour of the day (0-23) in the operator's time zone.",
            unit="hour",
        ),
        Column("source", pa.string(), "Which raw feed the event came from.", allowed=SOURCES),
        Column("event_type", pa.string(), "Kind of event.", allowed=STAGED_EVENT_TYPES),
        Column(
            "cell_id",
            pa.string(),
            "Serving cell for CDR events; null for GPS fixes.",
            nullable=True,
        ),
        Column("admin1", pa.string(), "admin1 zone of the event."),
        Column("admin2", pa.string(), "admin2 zone of the event."),
        Column("admin3", pa.string(), "admin3 zone of the event."),
    ),
)
