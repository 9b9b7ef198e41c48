"""Thought markup: split every known variant into (thought, answer); render LLaMA-Factory's exact form.

LLaMA-Factory's reasoning templates recognise a thought only when written exactly as
``"<think>\\n" + thought + "\\n</think>\\n\\n" + answer`` (its ``remove_thought`` matches literally), so
every source variant is parsed here and re-rendered in that one form.
"""

from __future__ import annotations

from lf_reasoning.errors import RecordError
from lf_reasoning.record.markup import ANSWER_TAGS, EMPTY_THOUGHT, THOUGHT_CLOSE, THOUGHT_OPEN, THOUGHT_TAGS


def render_response(thought: str | None, answer: str) -> str:
    """The assistant text LLaMA-Factory expects: the thought block (when there is one) then the answer."""
    if thought is None:
        return answer
    return THOUGHT_OPEN + thought + THOUGHT_CLOSE + answer


def split_thought(text: str) -> tuple[str | None, str]:
    """Split ``text`` into ``(thought, answer)``; ``thought`` is ``None`` when there is no markup.

    Accepts ``<think>x</think>y`` with any whitespace, ``x</think>y`` (opening tag prefilled by the chat
    template), ``<|begin_of_thought|>…<|end_of_thought|>`` with ``<|begin_of_solution|>…`` and
    ``<reasoning>…</reasoning>``; drops ``<answer>`` wrappers. Raises :class:`RecordError` for several
    thought blocks or one that never closes.
    """
    thought: str | None = None
    answer = text
    for open_tag, close_tag in THOUGHT_TAGS:
        if open_tag not in text and close_tag not in text:
            continue
        n_open, n_close = text.count(open_tag), text.count(close_tag)
        if n_open > 1 or n_close > 1:
            raise RecordError(
                "multiple_thoughts", f"{max(n_open, n_close)} {open_tag}…{close_tag} blocks; expected one"
            )
        if n_close == 0:
            raise RecordError("unclosed_thought", f"{open_tag} is never closed by {close_tag}")
        start = text.find(open_tag)
        end = text.find(close_tag)
        if start > end:
            raise RecordError("unbalanced_thought", f"{close_tag} comes before {open_tag}")
        before = text[:start] if start >= 0 else ""
        if before.strip():
            raise RecordError("text_before_thought", f"text before {open_tag}: {before.strip()[:60]!r}")
        thought = text[start + len(open_tag) if start >= 0 else 0 : end].strip()
        answer = text[end + len(close_tag) :]
        break
    return thought, strip_answer_wrapper(answer)


def strip_answer_wrapper(answer: str) -> str:
    """Remove ``<answer>…</answer>``/``<|begin_of_solution|>…`` wrappers and surrounding whitespace."""
    answer = answer.strip()
    for open_tag, close_tag in ANSWER_TAGS:
        if answer.startswith(open_tag):
            end = answer.rfind(close_tag)
            if end < 0:
                raise RecordError("unclosed_answer", f"{open_tag} is never closed by {close_tag}")
            tail = answer[end + len(close_tag) :].strip()
            if tail:
                raise RecordError("text_after_answer", f"text after {close_tag}: {tail[:60]!r}")
            return answer[len(open_tag) : end].strip()
    return answer


def merge_thought(field_thought: str | None, content: str) -> tuple[str | None, str]:
    """Combine a separate reasoning field (API replies, R1 dumps) with content that may hold markup."""
    inline, answer = split_thought(content)
    if field_thought is None or not field_thought.strip():
        return (inline if inline is not None else field_thought and field_thought.strip()), answer
    if inline:
        raise RecordError("two_thoughts", "a reasoning field and inline thought markup are both present")
    return field_thought.strip(), answer


def has_exact_thought(response: str) -> bool:
    """True when a response uses LLaMA-Factory's exact thought words (what its templates can strip)."""
    if not response.startswith(THOUGHT_OPEN):
        return False
    return response.find(THOUGHT_CLOSE) > 0 or response.startswith(EMPTY_THOUGHT)
