"""A DuckDB query as named CTEs with bound parameters, and the connections queries run on.

SQL text is assembled by :func:`sql` from this code's literals and checked identifiers only;
values are always ``$name`` parameters. An :class:`SqlPlan` collects common table expressions
(CTEs) in order, so an indicator runs all of its per-event work as one query.
"""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, LiteralString

import duckdb

from schemas.errors import InternalError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

    import polars as pl

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Sql(str):
    """SQL text assembled only from this code's literals, checked identifiers and other ``Sql``."""

    __slots__ = ()


def _part(value: str) -> str:
    if isinstance(value, Sql):
        return value
    if not _IDENTIFIER.match(value):
        msg = f"{value!r} is not a plain SQL identifier; values must be bound parameters."
        raise InternalError(msg)
    return value


def sql(template: LiteralString, **parts: str | Sequence[str]) -> Sql:
    """``template`` with its ``{name}`` fields filled by ``parts``.

    Each part is an :class:`Sql` fragment, a plain identifier (checked), or a sequence of those
    (joined with ``", "``). Values never go into the text: they are ``$name`` parameters.
    """
    filled = {
        name: _part(p) if isinstance(p, str) else ", ".join(_part(x) for x in p)
        for name, p in parts.items()
    }
    return Sql(template.format(**filled))


def keyed_order(*columns: str) -> Sql:
    """An ``ORDER BY`` list: ``hash($salt, columns…)``, then ``columns`` as tie-breaks.

    The keyed random order of :mod:`aggregation.bounding`; it also breaks ties between home zones.
    """
    return sql("hash($salt, {cols}), {cols}", cols=columns)


@dataclass(frozen=True, slots=True)
class SqlPlan:
    """A query under construction: named CTEs, in order, and the parameter values they bind."""

    ctes: tuple[tuple[str, Sql], ...] = ()
    params: Mapping[str, object] = field(default_factory=dict)
    relations: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    """Frames the query reads by name (computed outside SQL: GPS stays), registered on the
    connection while the query runs."""

    def with_relation(self, name: str, frame: pl.DataFrame) -> SqlPlan:
        """This plan with the frame ``frame`` readable as the table ``name``."""
        _part(name)
        if name in self.relations or any(n == name for n, _ in self.ctes):
            msg = f"Relation {name!r} is defined twice in one plan."
            raise InternalError(msg)
        return SqlPlan(self.ctes, self.params, {**self.relations, name: frame})

    def with_cte(self, name: str, body: Sql, **params: object) -> SqlPlan:
        """This plan with one more CTE ``name`` and the parameters its ``body`` binds."""
        _part(name)
        if any(n == name for n, _ in self.ctes):
            msg = f"CTE {name!r} is defined twice in one plan."
            raise InternalError(msg)
        merged = dict(self.params)
        for k, v in params.items():
            if k in merged and merged[k] != v:
                msg = f"Parameter ${k} is bound to two different values in one plan."
                raise InternalError(msg)
            merged[k] = v
        return SqlPlan((*self.ctes, (name, body)), merged, self.relations)

    def text(self, select: Sql) -> str:
        """The full query text: the CTEs, then ``select``."""
        if not self.ctes:
            return select
        ctes = ",\n".join(f"{n} AS (\n{b}\n)" for n, b in self.ctes)
        return f"WITH {ctes}\n{select}"

    def to_polars(self, select: Sql, con: duckdb.DuckDBPyConnection | None = None) -> pl.DataFrame:
        """Run the plan finished by ``select`` on ``con`` (a fresh connection when omitted)."""
        with connection(con) as c:
            for name, rel in self.relations.items():
                c.register(name, rel.to_arrow())
            try:
                frame: pl.DataFrame = c.sql(
                    self.text(select), params=dict(self.params) or None
                ).pl()
            finally:
                for name in self.relations:
                    c.unregister(name)
            return frame


@contextmanager
def connection(con: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """``con`` itself, or a fresh in-memory DuckDB connection closed on exit."""
    if con is not None:
        yield con
        return
    own = duckdb.connect()
    try:
        yield own
    finally:
        own.close()


@contextmanager
def bounded_connection(
    memory_limit_mb: int, spill_dir: Path, *, preserve_insertion_order: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory DuckDB connection that spills to ``spill_dir`` beyond the memory limit.

    ``spill_dir`` is created, and removed with what DuckDB spilled into it when the connection
    closes (use a directory of this process alone). Queries whose result order does not matter
    may drop ``preserve_insertion_order`` to save memory.
    """
    spill_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": f"{memory_limit_mb}MB",
        "temp_directory": str(spill_dir),
        "preserve_insertion_order": preserve_insertion_order,
    }
    try:
        with duckdb.connect(config=config) as con:
            yield con
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
