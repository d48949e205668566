"""Ground truth written by the synthetic generator, for tests, demos and accuracy benchmarks.

Truth tables carry raw identifiers (the synthetic MSISDNs); they exist only for synthetic data.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.contract import Column, Contract
from schemas.quality import InjectedErrorKind

ANCHOR_KINDS = ("home", "work", "other")

TRUE_SUBSCRIBERS = Contract(
    name="true_subscribers",
    description="One row per synthetic subscriber: who they are and where they live and work.",
    columns=(
        Column("msisdn", pa.string(), "Raw subscriber id, as in the raw CDR."),
        Column(
            "device_id",
            pa.string(),
            "Raw device id in the GPS feed, for the subscribers who use the app; else null.",
            nullable=True,
        ),
        Column("home_admin3", pa.string(), "Home zone at the start of the period."),
        Column("work_admin3", pa.string(), "Work zone; null for those who do not commute.", True),
        Column("activity_rate", pa.float64(), "Mean events per day.", unit="events/day"),
        Column(
            "relocation_date",
            pa.date32(),
            "Day from which the subscriber lives at the new home; null if they never move.",
            nullable=True,
        ),
        Column("new_home_admin3", pa.string(), "Home zone after relocating; else null.", True),
    ),
    key=("msisdn",),
)

TRUE_STAYS = Contract(
    name="true_stays",
    description=(
        "Each subscriber-day's true itinerary as stays at anchors, in local time. Consecutive "
        "stays are in different places; a change of admin3 between them is a trip."
    ),
    columns=(
        Column("date", pa.date32(), "Local calendar day."),
        Column("msisdn", pa.string(), "Raw subscriber id."),
        Column("seq", pa.int8(), "Position of the stay in the day, from 0."),
        Column("start", pa.timestamp("ms"), "Start of the stay.", timezone="operator local"),
        Column(
            "end", pa.timestamp("ms"), "End of the stay (exclusive).", timezone="operator local"
        ),
        Column("anchor", pa.string(), "Kind of place.", allowed=ANCHOR_KINDS),
        Column("cell_id", pa.string(), "Cell serving the place."),
        Column("admin3", pa.string(), "admin3 zone of the cell serving the place."),
        Column("lat", pa.float64(), "Latitude of the place, WGS84.", unit="degrees"),
        Column("lon", pa.float64(), "Longitude of the place, WGS84.", unit="degrees"),
    ),
)

TRUE_SUBSCRIBER_DAYS = Contract(
    name="true_subscriber_days",
    description="One row per subscriber-day: the true home zone and how much activity there was.",
    columns=(
        Column("date", pa.date32(), "Local calendar day."),
        Column("msisdn", pa.string(), "Raw subscriber id."),
        Column("home_admin3", pa.string(), "Where the subscriber lives on that day."),
        Column(
            "n_events",
            pa.int32(),
            "Clean CDR events generated that day (before errors).",
            unit="events",
        ),
        Column(
            "n_trips", pa.int16(), "Trips between distinct admin3 zones that day.", unit="trips"
        ),
    ),
)

INJECTED_ERRORS = Contract(
    name="injected_errors",
    description="Every error the generator injected into a raw file, so ingest can be checked.",
    columns=(
        Column("file", pa.string(), "Raw file, relative to the output directory."),
        Column(
            "row_number",
            pa.int64(),
            "1-based position of the affected data row in the file (header excluded).",
        ),
        Column(
            "line",
            pa.int64(),
            "1-based physical line in a CSV file (the header is line 1); null for Parquet.",
            nullable=True,
        ),
        Column(
            "kind",
            pa.string(),
            "What was injected.",
            allowed=tuple(k.value for k in InjectedErrorKind),
        ),
        Column("column", pa.string(), "Column that was corrupted, where one was.", nullable=True),
        Column(
            "duplicate_of",
            pa.int64(),
            "For exact duplicates: row_number of the original row.",
            nullable=True,
        ),
    ),
)
