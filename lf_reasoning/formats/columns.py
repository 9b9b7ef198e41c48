"""Any flat table, read through an explicit ``--map FIELD=COLUMN`` mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lf_reasoning.errors import UserError
from lf_reasoning.formats import fields
from lf_reasoning.sample import ReasoningSample

MAPPABLE = ("prompt", "thought", "answer", "system", "score", "source", "id", "reference")


def parse_mapping(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["prompt=Question", …]`` → ``{"prompt": "Question", …}``; prompt and answer are required."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise UserError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. --map prompt=Question")
        if field not in MAPPABLE:
            raise UserError(f"--map {pair!r}: unknown field '{field}'; fields are {', '.join(MAPPABLE)}")
        mapping[field] = column
    missing = [f for f in ("prompt", "answer") if f not in mapping]
    if missing:
        raise UserError(f"--map needs {' and '.join(missing)}: e.g. --map prompt=Question --map answer=Response")
    return mapping


def column_reader(mapping: dict[str, str]) -> Callable[[dict[str, Any]], list[ReasoningSample]]:
    def read(record: dict[str, Any]) -> list[ReasoningSample]:
        if "thought" in mapping:
            fields.text(record, mapping["thought"])  # a mapped thought column must be there
        thought, answer = fields.thought_and_answer(record, mapping.get("thought"), mapping["answer"])
        optional = {f: mapping.get(f) for f in ("system", "reference")}
        return [
            ReasoningSample(
                prompt=fields.text(record, mapping["prompt"]),
                thought=thought,
                answer=answer,
                system=fields.text(record, optional["system"], required=False) if optional["system"] else None,
                reference=fields.text(record, optional["reference"], required=False) if optional["reference"] else None,
                score=fields.number(record, mapping["score"]) if "score" in mapping else None,
                source=fields.identifier(record, mapping["source"]) if "source" in mapping else None,
                id=fields.identifier(record, mapping["id"]) if "id" in mapping else None,
            )
        ]

    return read
