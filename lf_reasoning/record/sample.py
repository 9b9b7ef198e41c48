"""The one canonical record every reader produces and every writer consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Turn:
    """One earlier user → assistant exchange of a multi-turn conversation."""

    prompt: str
    answer: str
    thought: str | None = None


@dataclass(slots=True)
class ReasoningSample:
    """A prompt with its (optional) thought and its answer.

    ``thought`` is ``None`` when the source has no thought at all (plain instruction data) and ``""``
    when it has an empty one. Thought and answer are stored without markup; writers render them.
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
