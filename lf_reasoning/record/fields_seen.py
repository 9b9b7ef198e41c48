"""What a file's first record says about its columns: the ``--map`` that would read them, and long text that no
reader used (so a thought in an unknown column such as ``chain_of_thought`` is never dropped without a word)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lf_reasoning.errors import RecordError
from lf_reasoning.record.sample import ReasoningSample

# A text field this long that no sample field holds is worth a word: shorter ones are ids, labels, categories.
LONG_TEXT = 200
# Column names public sets use, by role, lower-cased, most telling first (for the suggested --map).
PROMPT_COLUMNS = ("prompt", "question", "problem", "query", "instruction", "input", "title", "text")
THOUGHT_COLUMNS = (
    "thinking",
    "reasoning",
    "reasoning_content",
    "thought",
    "thoughts",
    "chain_of_thought",
    "complex_cot",
    "cot",
    "rationale",
    "deepseek_thinking_trajectory",
    "explanation",
)
ANSWER_COLUMNS = (
    "answer",
    "response",
    "output",
    "completion",
    "attempt",
    "deepseek_attempt",
    "content",
    "solution",
    "target",
    "label",
)


def suggest_map(record: dict[str, Any], *, thought: str | None = None) -> str:
    """A ``--map`` for ``record`` built from its keys (``COLUMN`` where none fits); ``thought`` forces that column."""
    by_name = {key.lower(): key for key in record}

    def pick(names: Sequence[str], taken: set[str | None]) -> str | None:
        exact = (by_name[n] for n in names if n in by_name)
        within = (key for n in names for lower, key in by_name.items() if n in lower)  # question_text, Final_Answer
        return next((key for key in (*exact, *within) if key not in taken), None)

    prompt = pick(PROMPT_COLUMNS, {thought})
    thought = thought or pick(THOUGHT_COLUMNS, {prompt})
    answer = pick(ANSWER_COLUMNS, {prompt, thought})
    parts = [f"--map prompt={prompt or 'COLUMN'}"]
    if thought:
        parts.append(f"--map thought={thought}")
    parts.append(f"--map answer={answer or 'COLUMN'}")
    return " ".join(parts)


def unused_text_fields(
    record: dict[str, Any], samples: Iterable[ReasoningSample | RecordError], unread: Iterable[str] = ()
) -> list[tuple[str, int]]:
    """``(key, length)`` of every top-level text field of at least :data:`LONG_TEXT` characters whose text is in
    none of ``samples``' fields. ``unread``: keys the format leaves out on purpose (s1K-1.1's other trace)."""
    texts: list[str] = []
    skip = set(unread)
    for s in samples:
        if isinstance(s, RecordError):
            continue
        for turn in (*s.history, s):
            texts += [turn.prompt, turn.answer, turn.thought or ""]
            texts += [x for step in turn.steps for x in (step.thought or "", *step.replies)]
        texts += [s.system or "", s.reference or ""]
        if s.tools is not None:  # read (and re-serialised: its text may differ from the source's)
            skip.add("tools")
    seen = "\x00".join(texts)
    fields = [(key, value) for key, value in record.items() if key not in skip]
    for turns_key in ("messages", "conversations"):  # a turn's own fields (e.g. a thought under an unknown name)
        turns = record.get(turns_key)
        if isinstance(turns, list):
            fields += [
                (f"{turns_key}[{i}].{k}", v)
                for i, t in enumerate(turns)
                if isinstance(t, dict) and t.get("from", t.get("role")) != "function_call"  # calls: parsed, re-written
                for k, v in t.items()
            ]
    unused = []
    for key, value in fields:
        if not isinstance(value, str):
            continue
        text = value.strip()
        if len(text) < LONG_TEXT:
            continue
        # Readers strip markup and whitespace and wrap prompts in templates, so look for inner pieces of the text:
        # one found means the field was read.
        pieces = (text[n * len(text) // 4 :][:32] for n in (1, 2, 3))
        if not any(piece in seen for piece in pieces):
            unused.append((key, len(text)))
    return unused


def unused_notes(
    src: str, record: dict[str, Any], samples: Sequence[ReasoningSample | RecordError], unread: Iterable[str] = ()
) -> list[str]:
    """One line per unused long text field of ``record`` (the first of ``src``), with the ``--map`` that reads it
    (a turn's field: the names a turn's thought is read from)."""
    from lf_reasoning.record.formats.conversation import THOUGHT_FIELDS  # formats import this module

    notes = []
    for key, length in unused_text_fields(record, samples, unread):
        what = f"'{key}' ({length:,} characters in the first record) is read by no field and is not written"
        if "." in key:  # a turn's field: no --map reaches inside turns
            fix = f"rename it to one of {', '.join(THOUGHT_FIELDS)} to train it as the turn's thought"
            notes.append(f"note: {src}: turn field {what}; {fix}")
        else:
            notes.append(f"note: {src}: column {what}; to train it as the thought: {suggest_map(record, thought=key)}")
    return notes
