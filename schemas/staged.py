"""Staged events: what ingest writes and every indicator reads. No raw identifier is present.

Layout on disk: ``staged/date=YYYY-MM-DD/shard=NNN/<drop>.parquet`` where ``date`` is the local
calendar day and ``shard = pseudonym-hash mod S``, so that every shard holds whole subscribers.

GPS drops also write a *sidecar* table of their fixes with coordinates,
``staged/_fixes/date=YYYY-MM-DD/shard=NNN/<drop>.parquet`` (:data:`STAGED_FIXES`): same day, shard
and drop as the fix's row in ``staged_events``. A sidecar rather than coordinate columns in every
staged file: CDR files keep their schema and bytes (so every CDR read, digest and release key is
unchanged, and DuckDB never meets two file schemas under one glob), coordinates (as sensitive as
the raw data) sit in one folder that only GPS indicators read, and a CDR release's input
fingerprint does not cover them.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

from schemas.contract import Column, Contract
from schemas.raw import ACCURACY_M

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

Source = Literal["cdr", "gps"]
"""Which feed an indicator reads: call-detail records (subscribers) or app GPS fixes (devices)."""

FIXES_DIR = "_fixes"
"""Staged GPS fixes with their coordinates live under ``staged/_fixes/``, beside the events."""

STAGED_FIXES = Contract(
    name="staged_fixes",
    description=(
        "One row per validated, deduplicated, pseudonymised and zone-mapped app GPS fix, with its "
        "coordinates: the sidecar of the fix's row in staged_events, written by the same ingest "
        "into staged/_fixes/date=YYYY-MM-DD/shard=NNN/<drop>.parquet (same day, shard and drop). "
        "Coordinates are as sensitive as the raw data: they stay inside the data holder's walls, "
        "are read only to find stays and path lengths, and are never published."
    ),
    columns=(
        Column(
            "pseudonym",
            pa.string(),
            "Keyed pseudonym of the device: hex HMAC-SHA256 of the raw device id under the "
            "workspace secret (truncated to 128 bits), as in staged_events.",
        ),
        Column("event_time", pa.timestamp("ms", tz="UTC"), "Time of the fix.", timezone="UTC"),
        Column(
            "local_date",
            pa.date32(),
            "Calendar day of the fix in the operator's time zone: the day of the indicators.",
        ),
        Column(
            "local_hour",
            pa.int8(),
            "Hour of the day (0-23) in the operator's time zone.",
            unit="hour",
        ),
        Column("lat", pa.float64(), "Latitude of the fix, WGS84.", unit="degrees"),
        Column("lon", pa.float64(), "Longitude of the fix, WGS84.", unit="degrees"),
        ACCURACY_M,
        Column("admin1", pa.string(), "admin1 zone of the fix."),
        Column("admin2", pa.string(), "admin2 zone of the fix."),
        Column("admin3", pa.string(), "admin3 zone of the fix (point in polygon)."),
    ),
)

DAY_ZONES_DIR = "_day_zones"
"""Per-subscriber-day summaries of staged CDR events live under ``staged/_day_zones/``."""

DAY_ZONES_FILE = "day.parquet"
"""The summary of one day-shard: ``staged/_day_zones/date=YYYY-MM-DD/shard=NNN/day.parquet``."""

STAGED_DAY_ZONES = Contract(
    name="staged_day_zones",
    description=(
        "Internal, never published: one row per subscriber, local day and zone with a CDR event, "
        "and the local hours of those events, summarised from one day-shard of staged_events into "
        "staged/_day_zones/date=YYYY-MM-DD/shard=NNN/day.parquet. Home-based indicators read it "
        "instead of every event of their home period; it gives exactly the same homes and zones "
        "seen. Its Parquet metadata names the staged files it was made from, by SHA-256, and a "
        "summary whose files changed is made again before it is read."
    ),
    columns=(
        Column(
            "pseudonym",
            pa.string(),
            "Keyed pseudonym of the subscriber, as in staged_events (no raw identifier).",
        ),
        Column("local_date", pa.date32(), "Calendar day of the events (the partition's day)."),
        Column("admin1", pa.string(), "admin1 zone of the events."),
        Column("admin2", pa.string(), "admin2 zone of the events."),
        Column("admin3", pa.string(), "admin3 zone of the events."),
        Column(
            "hours",
            pa.int32(),
            "Local hours with at least one CDR event in the zone that day, as a bit mask: bit h "
            "(value 2^h) is set when an event fell in hour h (0-23).",
        ),
        Column(
            "distance_m",
            pa.int64(),
            "Metres the subscriber travelled that day (the whole day, on every row of the "
            "subscriber-day): great-circle distances between the admin3 centroids of consecutive "
            "distinct admin3 zones, each rounded to whole metres, unclipped, as mobility_distance "
            "measures it. Null in a summary made without centroids.",
            nullable=True,
        ),
    ),
)
