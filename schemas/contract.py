"""A data contract: an Arrow schema whose every column is documented, plus conformance checks.

Each contract is defined once (in the module named after the data it describes) and is the single
source of truth for the column names, Arrow types, units, time zones and nullability that writers
produce and readers validate against. The documentation travels inside the Arrow schema as field
metadata, so a Parquet file written against a contract carries its own data dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Iterator


class ContractError(ValueError):
    """A table does not conform to its data contract."""


@dataclass(frozen=True, slots=True)
class Column:
    """One documented column of a contract."""

    name: str
    type: pa.DataType
    description: str
    nullable: bool = False
    unit: str | None = None
    timezone: str | None = None
    allowed: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            msg = f"Column name {self.name!r} must be a valid identifier (snake_case)."
            raise ValueError(msg)
        if not self.description.strip():
            msg = f"Column {self.name!r} needs a description: every contract column is documented."
            raise ValueError(msg)

    def field(self) -> pa.Field:
        """The Arrow field, with the documentation stored as field metadata."""
        meta = {"description": self.description}
        if self.unit is not None:
            meta["unit"] = self.unit
        if self.timezone is not None:
            meta["timezone"] = self.timezone
        if self.allowed is not None:
            meta["allowed"] = ",".join(self.allowed)
        return pa.field(self.name, self.type, nullable=self.nullable, metadata=meta)


@dataclass(frozen=True, slots=True)
class Contract:
    """A named, documented Arrow schema."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            msg = f"Contract {self.name!r} has duplicate column names: {names}."
            raise ValueError(msg)
        missing = [k for k in self.key if k not in names]
        if missing:
            msg = f"Contract {self.name!r} key columns {missing} are not columns of the contract."
            raise ValueError(msg)

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema, carrying the contract name and documentation as metadata."""
        return pa.schema(
            [c.field() for c in self.columns],
            metadata={"contract": self.name, "description": self.description},
        )

    @property
    def names(self) -> list[str]:
        """Column names, in contract order."""
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        """Columns that must not hold nulls."""
        return [c.name for c in self.columns if not c.nullable]

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        msg = f"Contract {self.name!r} has no column {name!r}; it has {self.names}."
        raise KeyError(msg)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def problems(self, table: pa.Table | pa.Schema, *, check_values: bool = True) -> list[str]:
        """Everything about ``table`` that breaks this contract (empty when it conforms)."""
        schema = table if isinstance(table, pa.Schema) else table.schema
        found: list[str] = []
        actual = {f.name: f for f in schema}
        for col in self.columns:
            f = actual.get(col.name)
            if f is None:
                found.append(f"missing column {col.name!r} ({col.type})")
                continue
            if not f.type.equals(col.type):
                found.append(f"column {col.name!r} has type {f.type}, the contract says {col.type}")
        extra = [n for n in actual if n not in {c.name for c in self.columns}]
        if extra:
            found.append(f"unexpected columns {extra}")
        if found or isinstance(table, pa.Schema) or not check_values:
            return found
        for col in self.columns:
            values = table.column(col.name)
            if not col.nullable and values.null_count:
                found.append(f"column {col.name!r} holds {values.null_count} nulls but is required")
            if col.allowed is not None:
                bad = set(values.drop_null().unique().to_pylist()) - set(col.allowed)
                if bad:
                    found.append(
                        f"column {col.name!r} holds values {sorted(bad)[:5]} outside "
                        f"{list(col.allowed)}"
                    )
        return found

    def validate(self, table: pa.Table | pa.Schema, *, source: str = "table") -> None:
        """Raise :class:`ContractError` naming ``source`` and every problem, if any."""
        found = self.problems(table)
        if found:
            msg = f"{source} does not conform to the {self.name!r} contract: " + "; ".join(found)
            raise ContractError(msg)

    def empty(self) -> pa.Table:
        """An empty table with this contract's schema."""
        return self.schema.empty_table()

    def markdown(self) -> str:
        """The contract as a Markdown table, for the docs."""
        lines = [
            f"### `{self.name}`",
            "",
            self.description,
            "",
            "| column | type | nullable | unit / time zone | description |",
            "|---|---|---|---|---|",
        ]
        for c in self.columns:
            extra = ", ".join(x for x in (c.unit, c.timezone) if x)
            allowed = f" One of: {', '.join(c.allowed)}." if c.allowed else ""
            lines.append(
                f"| `{c.name}` | `{c.type}` | {'yes' if c.nullable else 'no'} | {extra} "
                f"| {c.description}{allowed} |"
            )
        return "\n".join(lines) + "\n"
