"""Distillation dumps: Chinese-DeepSeek-R1-Distill-data-110k and OpenR1-Math-220k."""

from __future__ import annotations

from typing import Any

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import fields
from lf_reasoning.record.formats.columns import prompt_reader
from lf_reasoning.record.formats.instruction import instruction_sample
from lf_reasoning.record.sample import ReasoningSample
from lf_reasoning.record.thoughts import split_thought


def detect_r1_distill(record: dict[str, Any]) -> str | None:
    if {"input", "content", "reasoning_content"} <= record.keys():
        return "has input/content/reasoning_content (R1 distill dump)"
    return None


def read_r1_distill(record: dict[str, Any]) -> list[ReasoningSample]:
    thought, answer = fields.thought_and_answer(record, "reasoning_content", "content")
    reference = fields.reference(record, "reference_answer")
    return [instruction_sample(record, fields.text(record, "input"), thought, answer, reference)]


def detect_openr1(record: dict[str, Any]) -> str | None:
    if {"problem", "generations"} <= record.keys():
        return "has problem/generations (OpenR1-Math)"
    return None


def read_openr1(record: dict[str, Any]) -> list[ReasoningSample | RecordError]:
    """One sample per generation (or the reason it cannot be used); Math-Verify's verdict goes to ``meta``."""
    problem = fields.text(record, "problem")
    generations = fields.items(record, "generations")
    verified = _optional_list(record, "correctness_math_verify")
    finish = _optional_list(record, "finish_reasons")
    samples: list[ReasoningSample | RecordError] = []
    for i, generation in enumerate(generations):
        if not isinstance(generation, str):
            raise RecordError("wrong_type", f"generations[{i}] is {fields.kind(generation)}, expected a string")
        meta: dict[str, Any] = {"generation": i}
        if i < len(verified) and isinstance(verified[i], bool):
            meta["verified"] = verified[i]
        if i < len(finish) and finish[i] is not None:
            meta["finish_reason"] = finish[i]
        if meta.get("finish_reason", "stop") != "stop":  # cut off: its thought never closes
            samples.append(
                RecordError(
                    "unfinished", f"generations[{i}] ended with finish_reason {meta['finish_reason']!r}, not 'stop'"
                )
            )
            continue
        try:
            thought, answer = split_thought(generation)
        except RecordError as err:
            samples.append(RecordError(err.reason, f"generations[{i}]: {err.detail}"))
            continue
        samples.append(
            ReasoningSample(
                prompt=problem,
                thought=thought,
                answer=answer,
                source=fields.identifier(record, "source"),
                id=fields.identifier(record, "uuid"),
                reference=fields.reference(record, "answer"),
                meta=meta,
            )
        )
    return samples


def _optional_list(record: dict[str, Any], key: str) -> list[Any]:
    """A list field that may be absent (one item per generation)."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError("wrong_type", f"field '{key}' is {fields.kind(value)}, expected a list")
    return value


# distill reads an OpenR1 prompt whatever became of the dump's generations
read_openr1_prompt = prompt_reader({"prompt": "problem", "reference": "answer", "id": "uuid", "source": "source"})
