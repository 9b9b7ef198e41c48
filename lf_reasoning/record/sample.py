"""The one canonical record every reader produces and every writer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ToolStep:
    """An assistant turn that calls tools (several calls are made in parallel), then what the tools replied.

    ``calls`` are ``{"name": str, "arguments": dict}`` in the order made; ``replies`` has one text per call, or one
    for all of them (a single observation turn). ``thought`` is the reasoning before the calls.
    """

    calls: list[dict[str, Any]]
    replies: list[str]
    thought: str | None = None


@dataclass(slots=True)
class Turn:
    """One earlier user → assistant exchange of a multi-turn conversation; ``steps``: its tool calls, between the
    prompt and the answer."""

    prompt: str
    answer: str
    thought: str | None = None
    steps: list[ToolStep] = field(default_factory=list)


@dataclass(slots=True)
class ReasoningSample:
    """A prompt with its (optional) thought and its answer.

    ``thought`` is ``None`` when the source has no thought at all (plain instruction data) and ``""``
    when it has an empty one. Thought and answer are stored without markup; writers render them. ``tools`` is the
    JSON list of tool schemas the model is shown (as LLaMA-Factory's ``tools`` column holds it); ``steps`` are the
    last exchange's tool calls before its answer.
    """

    prompt: str
    answer: str
    thought: str | None = None
    system: str | None = None
    history: list[Turn] = field(default_factory=list)
    score: float | None = None
    source: str | None = None  # the subset/origin a record came from (e.g. 110k `repo_name`)
    id: str | None = None
    reference: str | None = None  # a reference answer (for verification)
    meta: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping (usage, verdicts…)
    tools: str | None = None
    steps: list[ToolStep] = field(default_factory=list)

    @property
    def ends_on_call(self) -> bool:
        """The conversation ends on a tool call, without reply or answer (``answer`` is empty): a sample that
        teaches the call, which LLaMA-Factory trains as the last response."""
        return bool(self.steps) and not self.steps[-1].replies
