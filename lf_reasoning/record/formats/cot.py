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


# s1K-1.1 keeps two traces per question; its release trains on DeepSeek-R1's (``--format s1k``), Gemini's is read
# with ``--format s1k_gemini``. s1K (1.0) has one Gemini trace in ``thinking_trajectories``.
_S1K_DEEPSEEK = ("deepseek_thinking_trajectory", "deepseek_attempt")
_S1K_GEMINI = ("gemini_thinking_trajectory", "gemini_attempt")


def detect_s1k(record: dict[str, Any]) -> str | None:
    if {"question", *_S1K_DEEPSEEK} <= record.keys():
        return (
            "has question/deepseek_thinking_trajectory/deepseek_attempt (s1K-1.1): the DeepSeek-R1 trace is used; "
            "--format s1k_gemini takes the Gemini one"
        )
    if {"question", "thinking_trajectories", "attempt"} <= record.keys():
        return "has question/thinking_trajectories/attempt (s1K)"
    return None


def detect_s1k_gemini(record: dict[str, Any]) -> str | None:
    """Never chosen by detection (s1K-1.1 defaults to DeepSeek's trace): ``--format s1k_gemini`` only."""
    return None


def read_s1k(record: dict[str, Any]) -> list[ReasoningSample]:
    if _S1K_DEEPSEEK[0] in record:  # s1K-1.1
        return _s1k_sample(record, fields.text(record, _S1K_DEEPSEEK[0]), _S1K_DEEPSEEK[1])
    trajectory = fields.items(record, "thinking_trajectories")[0]
    if not isinstance(trajectory, str):
        raise RecordError("wrong_type", "thinking_trajectories[0] is not a string")
    return _s1k_sample(record, trajectory, "attempt")


def read_s1k_gemini(record: dict[str, Any]) -> list[ReasoningSample]:
    return _s1k_sample(record, fields.text(record, _S1K_GEMINI[0]), _S1K_GEMINI[1])


def _s1k_sample(record: dict[str, Any], trajectory: str | None, attempt_key: str) -> list[ReasoningSample]:
    thought, answer = merge_thought(trajectory, fields.text(record, attempt_key))
    return [
        ReasoningSample(
            prompt=fields.text(record, "question"),
            thought=thought,
            answer=answer,
            source=fields.identifier(record, "source_type"),
            reference=fields.reference_text(record.get("solution")),  # the worked solution: text, or a number
        )
    ]
