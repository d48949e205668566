"""Public key sets and the final step of every indicator: sum contributions over the keys.

Every indicator builds a *contributions* CTE with one or more rows per subscriber and key
(``pseudonym``, the key columns, the value columns). :func:`aggregate_select` sums it per key and,
for public key sets, left-joins it onto every key so unobserved keys get 0. Contributions whose key
is outside the key set (a zone missing from the zone set) are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregation.indicators._days import release_days
from aggregation.sql import Sql, sql
from schemas.indicators import ZoneKeys

if TYPE_CHECKING:
    from aggregation.indicators.request import AggregateRequest, KeyStrategy
    from aggregation.sql import SqlPlan

_HOURS = "(SELECT CAST(range AS TINYINT) AS hour FROM range(24)) h"


def key_set(plan: SqlPlan, request: AggregateRequest) -> SqlPlan:
    """Add CTE ``keys`` (every key of the spec's :class:`~schemas.indicators.KeySet`, columns
    named as its key columns, in key order) and the helper CTEs it reads."""
    ks = request.spec.key_set
    plan = plan.with_cte(
        "keys_zones",
        sql("SELECT unnest($keys_zones) AS zone"),
        keys_zones=list(request.zones.zone_ids),
    )
    select: list[str] = []
    sources: list[str] = []
    where = Sql("")
    if ks.dated:
        dates = list(release_days(request).days())
        plan = plan.with_cte(
            "keys_dates", sql("SELECT unnest($keys_dates) AS date"), keys_dates=dates
        )
        select.append(Sql("d.date"))
        sources.append(Sql("keys_dates d"))
    if ks.zones is ZoneKeys.ZONE:
        select.append(sql("z.zone AS {c}", c=ks.zone_columns[0]))
        sources.append(Sql("keys_zones z"))
    else:
        first, second = ks.zone_columns
        select += [sql("a.zone AS {c}", c=first), sql("b.zone AS {c}", c=second)]
        sources += [Sql("keys_zones a"), Sql("keys_zones b")]
        unordered = ks.zones is ZoneKeys.UNORDERED_PAIR
        where = Sql("WHERE a.zone < b.zone" if unordered else "WHERE a.zone <> b.zone")
    if ks.hourly:
        select.append(Sql("h.hour"))
        sources.append(Sql(_HOURS))
    body = sql(
        "SELECT {select} FROM {sources} {where}", select=select, sources=sources, where=where
    )
    return plan.with_cte("keys", body)


def _sums(columns: tuple[str, ...]) -> list[str]:
    return [sql("CAST(sum({c}) AS BIGINT) AS {c}", c=c) for c in columns]


def aggregate_select(
    plan: SqlPlan, request: AggregateRequest, contributions: str, keys: KeyStrategy
) -> tuple[SqlPlan, Sql]:
    """The plan and final SELECT summing ``contributions`` per key, ordered by the keys."""
    s = request.spec
    k, v = s.key_columns, s.value_columns
    agg = sql("SELECT {k}, {sums} FROM {src} GROUP BY {k}", k=k, sums=_sums(v), src=contributions)
    plan = plan.with_cte("agg", agg)
    if keys == "observed":
        return plan, sql("SELECT * FROM agg ORDER BY {k}", k=k)
    plan = key_set(plan, request)
    on = Sql(" AND ".join(sql("a.{c} = k.{c}", c=c) for c in k))
    values = [sql("CAST(coalesce(a.{c}, 0) AS BIGINT) AS {c}", c=c) for c in v]
    select = sql(
        "SELECT {kk}, {values}\nFROM keys k LEFT JOIN agg a ON {on}\nORDER BY {k}",
        kk=[sql("k.{c}", c=c) for c in k],
        values=values,
        on=on,
        k=k,
    )
    return plan, select


def contributions_select(request: AggregateRequest, contributions: str) -> Sql:
    """The final SELECT giving each subscriber's total per key, ordered."""
    s = request.spec
    cols = ("pseudonym", *s.key_columns)
    return sql(
        "SELECT {cols}, {sums} FROM {src} GROUP BY {cols} ORDER BY {cols}",
        cols=cols,
        sums=_sums(s.value_columns),
        src=contributions,
    )
