"""Typed access to fields of a raw record: every failure is a :class:`RecordError` naming the field."""

from __future__ import annotations

from typing import Any

from lf_reasoning.errors import RecordError

_MISSING = object()


def text(record: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    """A string field; ``None`` when optional and absent/null. Numbers are not silently turned into text."""
    value = record.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise RecordError("missing_field", f"field '{key}' is missing")
        return None
    if not isinstance(value, str):
        raise RecordError("wrong_type", f"field '{key}' is {type(value).__name__}, expected a string")
    return value


def number(record: dict[str, Any], key: str) -> float | None:
    """An optional numeric field (CSV gives strings: those are parsed)."""
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError("wrong_type", f"field '{key}' is bool, expected a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise RecordError("wrong_type", f"field '{key}' is {value!r}, expected a number")


def identifier(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    return None if value is None else str(value)


def items(record: dict[str, Any], key: str) -> list[Any]:
    """A required non-empty list field."""
    value = record.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise RecordError("missing_field", f"field '{key}' is missing")
    if not isinstance(value, list):
        raise RecordError("wrong_type", f"field '{key}' is {type(value).__name__}, expected a list")
    if not value:
        raise RecordError("empty_field", f"field '{key}' is an empty list")
    return value


def thought_and_answer(record: dict[str, Any], thought_key: str | None, answer_key: str) -> tuple[str | None, str]:
    """Split ``answer_key`` (which may hold markup) and merge it with an optional separate thought field."""
    from lf_reasoning.record.thoughts import merge_thought

    field_thought = text(record, thought_key, required=False) if thought_key else None
    try:
        return merge_thought(field_thought, text(record, answer_key))
    except RecordError as err:
        raise RecordError(err.reason, f"field '{answer_key}': {err.detail}") from None
