"""Alpaca instruction data, with or without ``<think>`` markup in ``output`` (the 110k SFT variant)."""

from __future__ import annotations

from typing import Any

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import fields
from lf_reasoning.record.sample import ReasoningSample, Turn
from lf_reasoning.record.thoughts import split_thought


def detect_alpaca(record: dict[str, Any]) -> str | None:
    if {"instruction", "output"} <= record.keys():
        return "has instruction/output (Alpaca)"
    return None


def read_alpaca(record: dict[str, Any]) -> list[ReasoningSample]:
    prompt = fields.text(record, "instruction")
    query = fields.text(record, "input", required=False)
    if query:  # LLaMA-Factory joins instruction and input with a newline
        prompt = f"{prompt}\n{query}"
    thought, answer = fields.thought_and_answer(record, None, "output")
    return [instruction_sample(record, prompt, thought, answer)]


def instruction_sample(
    record: dict[str, Any], prompt: str, thought: str | None, answer: str, reference: str | None = None
) -> ReasoningSample:
    """A sample with the fields instruction-style dumps share (Alpaca, R1 distill): system, Alpaca-style history,
    score, ``repo_name`` as the source, id."""
    return ReasoningSample(
        prompt=prompt,
        thought=thought,
        answer=answer,
        system=fields.text(record, "system", required=False),
        history=read_history(record.get("history")),
        score=fields.number(record, "score"),
        source=fields.identifier(record, "repo_name"),
        id=fields.identifier(record, "id"),
        reference=reference,
    )


def read_history(value: Any) -> list[Turn]:
    """Alpaca-style ``[[query, response], …]`` earlier turns (responses may hold thought markup)."""
    if not value:
        return []
    if not isinstance(value, list):
        raise RecordError("wrong_type", f"field 'history' is {fields.kind(value)}, expected a list of pairs")
    turns = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise RecordError("wrong_type", f"history[{i}] is not a [query, response] pair of strings")
        try:
            thought, answer = split_thought(pair[1])
        except RecordError as err:
            raise RecordError(err.reason, f"history[{i}]: {err.detail}") from None
        turns.append(Turn(prompt=pair[0], answer=answer, thought=thought))
    return turns
