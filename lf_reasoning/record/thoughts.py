"""Thought markup: split every known variant into (thought, answer); render it in a template's exact words.

LLaMA-Factory's reasoning templates recognise a thought only when written exactly in their thought words (by
default ``"<think>\\n" + thought + "\\n</think>\\n\\n" + answer``; its ``remove_thought`` matches literally), so
every source variant is parsed here and re-rendered in one form: :class:`~lf_reasoning.record.markup.ThoughtWords`.
"""

from __future__ import annotations

from lf_reasoning.errors import RecordError
from lf_reasoning.record.markup import ANSWER_TAGS, DEFAULT_WORDS, THOUGHT_TAGS, ThoughtWords


def render_response(thought: str | None, answer: str, words: ThoughtWords = DEFAULT_WORDS) -> str:
    """The assistant text LLaMA-Factory expects: the thought block in ``words`` (when there is one), then the answer."""
    return words.render(thought, answer)


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


def has_exact_thought(response: str, words: ThoughtWords = DEFAULT_WORDS) -> bool:
    """True when a response starts with a thought in exactly ``words`` (what the template can strip)."""
    return words.split(response) is not None
