"""Raw inputs as an operator exports them: call-detail records and app/GPS pings.

Raw files carry raw identifiers (MSISDNs, device ids). They are read only by ingest, which
pseudonymises them; nothing downstream of ingest ever sees these columns.

File naming: one file per export day, ``cdr_YYYY-MM-DD.{csv,csv.gz,parquet}`` and
``gps_YYYY-MM-DD.{csv,csv.gz,parquet}``. CSV files are UTF-8, comma-separated, with a header line;
timestamps are written as ``YYYY-MM-DD HH:MM:SS`` (CDR, operator local time) or
``YYYY-MM-DDTHH:MM:SS.fffZ`` (GPS, UTC); empty fields are nulls. Timestamps are millisecond
Arrow timestamps in every contract (Parquet has no unit of whole seconds); CDR carry whole seconds.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.contract import Column, Contract

EVENT_TYPES = ("call", "sms", "data")
DIRECTIONS = ("in", "out")

RAW_CDR = Contract(
    name="raw_cdr",
    description=(
        "One row per network event (voice call, SMS or data session) as exported by the operator's "
        "mediation system. The event is attributed to the cell that served it."
    ),
    columns=(
        Column(
            "record_id",
            pa.string(),
            "Operator's unique record identifier of the event (mediation sequence number).",
        ),
        Column(
            "msisdn",
            pa.string(),
            "Raw subscriber identifier: the subscriber's phone number in E.164 digits "
            "without '+'. "
            "Personal data: never leaves ingest.",
        ),
        Column(
            "event_time",
            pa.timestamp("ms"),
            "Start of the event, wall-clock time of the operator's time zone (no offset stored; "
            "ingest converts it to UTC with the time zone from the workspace configuration).",
            timezone="operator local (naive)",
        ),
        Column("cell_id", pa.string(), "Identifier of the serving cell; a key of the cell table."),
        Column("event_type", pa.string(), "Kind of event.", allowed=EVENT_TYPES),
        Column(
            "direction",
            pa.string(),
            "Whether the subscriber originated ('out') or received ('in') the call or SMS; "
            "null for data sessions.",
            nullable=True,
            allowed=DIRECTIONS,
        ),
        Column(
            "duration_s",
            pa.int32(),
            "Duration of a call or data session; null for SMS. Never negative.",
            nullable=True,
            unit="seconds",
        ),
        Column(
            "volume_bytes",
            pa.int64(),
            "Bytes transferred (up + down) during a data session; null for calls and SMS.",
            nullable=True,
            unit="bytes",
        ),
    ),
    key=("record_id",),
)

ACCURACY_M = Column(
    "accuracy_m",
    pa.float32(),
    "Reported horizontal accuracy (68 % radius); null when the device did not report it.",
    nullable=True,
    unit="metres",
)
"""A fix's accuracy: raw, and staged as it came (``schemas.staged.STAGED_FIXES``)."""

RAW_GPS = Contract(
    name="raw_gps",
    description=(
        "One row per location fix reported by a mobile app (GPS/GNSS or network-assisted), as "
        "collected by the operator's app platform."
    ),
    columns=(
        Column(
            "device_id",
            pa.string(),
            "Raw device identifier (app instance id). Personal data: never leaves ingest.",
        ),
        Column(
            "timestamp",
            pa.timestamp("ms", tz="UTC"),
            "Time of the fix.",
            timezone="UTC",
        ),
        Column("lat", pa.float64(), "Latitude, WGS84, in [-90, 90].", unit="degrees"),
        Column("lon", pa.float64(), "Longitude, WGS84, in [-180, 180].", unit="degrees"),
        ACCURACY_M,
    ),
)
