"""Chain-of-thought sets: medical-o1-reasoning-SFT and s1K."""

from __future__ import annotations

from typing import Any

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import fields
from lf_reasoning.record.sample import ReasoningSample
from lf_reasoning.record.thoughts import merge_thought


def detect_medical_cot(record: dict[str, Any]) -> str | None:
    if {"Question", "Complex_CoT", "Response"} <= record.keys():
        return "has Question/Complex_CoT/Response (medical-o1 CoT set)"
    return None


def read_medical_cot(record: dict[str, Any]) -> list[ReasoningSample]:
    fields.text(record, "Complex_CoT")  # required here, unlike a reasoning field of an API reply
    thought, answer = fields.thought_and_answer(record, "Complex_CoT", "Response")
    return [ReasoningSample(prompt=fields.text(record, "Question"), thought=thought, answer=answer)]


def detect_s1k(record: dict[str, Any]) -> str | None:
    if {"question", "thinking_trajectories", "attempt"} <= record.keys():
        return "has question/thinking_trajectories/attempt (s1K)"
    return None


def read_s1k(record: dict[str, Any]) -> list[ReasoningSample]:
    trajectory = fields.items(record, "thinking_trajectories")[0]
    if not isinstance(trajectory, str):
        raise RecordError("wrong_type", "thinking_trajectories[0] is not a string")
    thought, answer = merge_thought(trajectory, fields.text(record, "attempt"))
    solution = record.get("solution")
    return [
        ReasoningSample(
            prompt=fields.text(record, "question"),
            thought=thought,
            answer=answer,
            source=fields.identifier(record, "source_type"),
            reference=solution if isinstance(solution, str) else None,
        )
    ]
