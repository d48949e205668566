"""Extract: from staged events to per-subscriber-day stays, trips, home zones and distances.

Everything here is a building block of one DuckDB query: each function adds a named common table
expression (CTE) to an :class:`~aggregation.sql.SqlPlan`, so an indicator runs all of its
per-event work as a single query (window functions over ``pseudonym, local_date``), and values are
always bound parameters. The package's modules: :mod:`.source` (where staged data are),
:mod:`.steps` (CDR building blocks), :mod:`.gps` (GPS fixes, stays and paths), :mod:`.frames`
(a plan run on its own, returning a Polars frame, for tests, debugging and documentation),
:mod:`.day_zones` (per-subscriber-day summaries that home detection reads instead of a period's
events).

Definitions (at the admin level of the zone set; the local calendar day is the day):

* **zone sequence**: a subscriber-day's events ordered by ``event_time`` (ties by zone).
* **stay**: a maximal run of consecutive events in the same zone (``seq`` from 0).
* **trip**: a change of zone between two consecutive events of the same subscriber-day,
  ``origin → destination`` with ``origin != destination``. A day with stays A, B, A has trips
  A→B and B→A. Trips never span midnight: the first event of a day starts a stay, not a trip.
  ``depart_time`` is the last event in the origin, ``arrival_time`` the first in the destination.
* **home zone** over a period: see :class:`schemas.indicators.HomeRule` (modal zone over distinct
  nights, keyed tie-break, minimum number of nights).
* **daily distance**: the sum over a subscriber-day's trips of the great-circle distance between
  the centroids of origin and destination (spherical Earth, R = 6371.0088 km), each trip rounded
  to whole metres so sums are exact integers. A zone without a centroid adds 0.

App GPS fixes (the ``staged_fixes`` sidecar, :data:`schemas.staged.STAGED_FIXES`) are read by
:func:`staged_fixes` (fixes as events: pseudonym, times, zone) and :func:`gps_stays` (stays and
path lengths per device-day, found by :mod:`aggregation.gps_stays` in Python and handed to the
query as registered relations, :meth:`SqlPlan.with_relation`). A device-day is then the unit a
subscriber-day is for CDR.
"""

from aggregation.extract.day_zones import (
    current_day_zones,
    homes_from_day_zones,
    remove_summary,
    staged_day_distances,
    staged_day_zones,
)
from aggregation.extract.frames import (
    daily_distances_frame,
    homes_frame,
    stays_frame,
    trips_frame,
)
from aggregation.extract.gps import gps_stays, read_fixes, staged_fixes
from aggregation.extract.source import EventSource, StagedFiles, StagedSource, level_column
from aggregation.extract.steps import (
    EARTH_RADIUS_KM,
    centroids,
    daily_distances,
    homes,
    staged_events,
    stays,
    trips,
    zone_changes,
)

__all__ = [
    "EARTH_RADIUS_KM",
    "EventSource",
    "StagedFiles",
    "StagedSource",
    "centroids",
    "current_day_zones",
    "daily_distances",
    "daily_distances_frame",
    "gps_stays",
    "homes",
    "homes_frame",
    "homes_from_day_zones",
    "level_column",
    "read_fixes",
    "remove_summary",
    "staged_day_distances",
    "staged_day_zones",
    "staged_events",
    "staged_fixes",
    "stays",
    "stays_frame",
    "trips",
    "trips_frame",
    "zone_changes",
]
