"""Typed access to fields of a raw record: every failure is a :class:`RecordError` naming the field."""

from __future__ import annotations

from typing import Any

from lf_reasoning.errors import RecordError

_MISSING = object()


def kind(value: Any) -> str:
    """A value's type as the user's file spells it (JSON): an object, a list, a number, a boolean, a string."""
    if isinstance(value, bool):
        return "a boolean"
    for types, name in ((dict, "an object"), (list | tuple, "a list"), (int | float, "a number"), (str, "a string")):
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def _named(key: str, within: str | None) -> str:
    """``field 'key'`` of a record, or ``within.key`` of a part of it (``messages[2].content``)."""
    return f"{within}.{key}" if within else f"field '{key}'"


def text(record: dict[str, Any], key: str, *, required: bool = True, within: str | None = None) -> str | None:
    """A string field; ``None`` when optional and absent/null. Numbers are not silently turned into text.
    ``within`` names the part of the record ``record`` is, for messages (``conversations[1]``)."""
    value = record.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise RecordError("missing_field", f"{_named(key, within)} is missing")
        return None
    if not isinstance(value, str):
        raise RecordError("wrong_type", f"{_named(key, within)} is {kind(value)}, expected a string")
    return value


def reference(record: dict[str, Any], key: str) -> str | None:
    """An optional reference answer: a string, or a number (GSM8K-style ``42``, ``2.5``) as its text."""
    value = record.get(key)
    if value is not None and reference_text(value) is None:
        raise RecordError("wrong_type", f"field '{key}' is {kind(value)}, expected a string or a number")
    return reference_text(value)


def reference_text(value: Any) -> str | None:
    """A reference answer's text: a string as is, a number as written (``42.0`` → ``"42"``), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None


def number(record: dict[str, Any], key: str) -> float | None:
    """An optional numeric field (CSV gives strings: those are parsed)."""
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError("wrong_type", f"field '{key}' is a boolean, expected a number")
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
        raise RecordError("wrong_type", f"field '{key}' is {kind(value)}, expected a list")
    if not value:
        raise RecordError("empty_field", f"field '{key}' is an empty list")
    return value


def thought_and_answer(record: dict[str, Any], thought_key: str | None, answer_key: str) -> tuple[str | None, str]:
    """Split ``answer_key`` (which may hold markup) and merge it with an optional separate thought field."""
    from lf_reasoning.record.thoughts import merge_thought

    field_thought = text(record, thought_key, required=False) if thought_key else None
    answer = text(record, answer_key)
    assert answer is not None  # required
    try:
        return merge_thought(field_thought, answer)
    except RecordError as err:  # broken markup: say in which field
        raise RecordError(err.reason, f"field '{answer_key}': {err.detail}") from None
