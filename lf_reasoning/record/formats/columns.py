"""Any flat table, read through an explicit ``--map FIELD=COLUMN`` mapping."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.formats import fields
from lf_reasoning.record.sample import ReasoningSample

# Fields a --map can name. query is appended to the prompt on a new line (like LLaMA-Factory's Alpaca input).
MAPPABLE = ("prompt", "query", "thought", "answer", "system", "score", "source", "id", "reference")
ANSWER_EXAMPLE = "e.g. --map prompt=Question --map answer=Response"


def parse_mapping(pairs: Sequence[str], *, required: Sequence[str] = ("prompt", "answer")) -> dict[str, str]:
    """``["prompt=Question", …]`` → ``{"prompt": "Question", …}``; the ``required`` fields must be mapped."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = (part.strip() for part in pair.partition("="))
        if not sep or not field or not column:
            raise UserError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. --map prompt=Question")
        if field not in MAPPABLE:
            raise UserError(f"--map {pair!r}: unknown field '{field}'; fields are {', '.join(MAPPABLE)}")
        mapping[field] = column
    missing = [f for f in required if f not in mapping]
    if missing == ["prompt"]:
        raise UserError("--map needs prompt=COLUMN (the column holding the question)")
    if missing:
        raise UserError(f"--map needs {' and '.join(missing)}: {ANSWER_EXAMPLE}")
    return mapping


def column_reader(mapping: dict[str, str]) -> Callable[[dict[str, Any]], list[ReasoningSample]]:
    """Samples from mapped columns: prompt and answer required, the rest optional."""
    read_prompt = prompt_reader(mapping)

    def read(record: dict[str, Any]) -> list[ReasoningSample]:
        if "thought" in mapping:
            fields.text(record, mapping["thought"])  # a mapped thought column must be there
        sample = read_prompt(record)
        sample.thought, sample.answer = fields.thought_and_answer(record, mapping.get("thought"), mapping["answer"])
        sample.score = fields.number(record, mapping["score"]) if "score" in mapping else None
        return [sample]

    return read


def prompt_reader(mapping: dict[str, str]) -> Callable[[dict[str, Any]], ReasoningSample]:
    """A prompt (answer left empty) from mapped columns: what ``distill`` sends, with the reference answer kept."""
    prompt_key, query_key, system_key = mapping["prompt"], mapping.get("query"), mapping.get("system")
    reference_key, source_key, id_key = mapping.get("reference"), mapping.get("source"), mapping.get("id")
    text, identifier = fields.text, fields.identifier

    def read(record: dict[str, Any]) -> ReasoningSample:
        prompt = text(record, prompt_key)
        if query_key is not None:
            query = text(record, query_key, required=False)
            if query:
                prompt = f"{prompt}\n{query}"
        if not prompt or prompt.isspace():
            raise RecordError("empty_prompt", f"field '{prompt_key}' is empty")
        return ReasoningSample(
            prompt=prompt,
            answer="",
            system=text(record, system_key, required=False) if system_key is not None else None,
            reference=fields.reference(record, reference_key) if reference_key is not None else None,
            source=identifier(record, source_key) if source_key is not None else None,
            id=identifier(record, id_key) if id_key is not None else None,
        )

    return read
