"""Reading a JSON document into typed values, naming the key of every problem.

An :class:`ObjectReader` reads the keys of one JSON object through small readers (``string``,
``integer``, ``number``, ``day``, ``nullable(...)``, ``json_object(...)`` for a nested object),
and :meth:`ObjectReader.done` refuses any key it did not read. A problem raises
:class:`FieldError` with the key's path (``sensitivity.l1``) and what is wrong with it; the
caller turns it into a message naming its file (:mod:`schemas.release_metadata`). Numbers are
kept as they are (an int stays an int), so a document read and written back is the same.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from schemas.errors import MobilityError

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


class FieldError(Exception):
    """A key (``a.b`` for nested ones) missing, unknown or holding a value of the wrong kind."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


class InvalidValueError(ValueError):
    """A JSON value of the wrong kind (the reader adds the key)."""


class ObjectReader:
    """Reads the keys of one JSON object; :meth:`done` refuses the keys it did not read."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[str] = set()

    def has(self, key: str) -> bool:
        """Whether the object has ``key``."""
        return key in self.document

    def get(self, key: str, read: Callable[[Any], T]) -> T:
        """The value of required ``key`` through ``read``."""
        if key not in self.document:
            raise FieldError(key, "is missing")
        return self._read(key, read)

    def optional(self, key: str, read: Callable[[Any], T], default: T) -> T:
        """The value of ``key`` through ``read``, ``default`` when the key is absent."""
        return self._read(key, read) if key in self.document else default

    def items(self, key: str, read: Callable[[Any], T]) -> tuple[T, ...]:
        """The list under required ``key``, each item through ``read``."""
        return self.get(key, lambda v: tuple(read(item) for item in as_list(v)))

    def _read(self, key: str, read: Callable[[Any], T]) -> T:
        self.seen.add(key)
        value = self.document[key]
        try:
            return read(value)
        except FieldError as exc:  # in a nested object
            raise FieldError(f"{key}.{exc.key}", exc.problem) from exc
        except (MobilityError, ValueError, TypeError) as exc:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."  # noqa: PLR2004
            raise FieldError(key, f"is invalid: {shown} ({exc})") from exc

    def done(self) -> None:
        """Refuse keys this reader did not read."""
        unknown = sorted(set(self.document) - self.seen)
        if unknown:
            raise FieldError(unknown[0], "is not a key this object may have")


def json_object(read: Callable[[ObjectReader], T]) -> Callable[[Any], T]:
    """A reader of a JSON object whose keys ``read`` reads, every one of them."""

    def parse(value: object) -> T:
        if not isinstance(value, dict):
            raise InvalidValueError("not a JSON object")
        reader = ObjectReader(value)
        out = read(reader)
        reader.done()
        return out

    return parse


def string(value: object) -> str:
    """A JSON string."""
    if not isinstance(value, str):
        raise InvalidValueError("not a string")
    return value


def integer(value: object) -> int:
    """A JSON integer (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError("not an integer")
    return value


def number(value: object) -> float:
    """An int or a float, kept as it is (so that it is written back as it was)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValueError("not a number")
    return value


def as_list(value: object) -> list[Any]:
    """A JSON array."""
    if not isinstance(value, list):
        raise InvalidValueError("not a list")
    return value


def nullable(read: Callable[[Any], T]) -> Callable[[Any], T | None]:
    """``read``, or None for a JSON null."""
    return lambda value: None if value is None else read(value)


def int_map(value: object) -> dict[str, int]:
    """A JSON object of integers."""
    if not isinstance(value, dict):
        raise InvalidValueError("not a JSON object")
    return {str(k): integer(v) for k, v in value.items()}


def str_map(value: object) -> dict[str, str]:
    """A JSON object of strings."""
    if not isinstance(value, dict):
        raise InvalidValueError("not a JSON object")
    return {str(k): string(v) for k, v in value.items()}


def one_of(value: object, allowed: tuple[str, ...]) -> str:
    """A JSON string among ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidValueError(f"not one of {list(allowed)}")
    return value


def day(value: object) -> date:
    """A date as ISO 8601 text (``2026-03-02``)."""
    return date.fromisoformat(string(value))
