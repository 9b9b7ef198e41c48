"""Every spelling of thought and answer markup lf-reasoning reads, and the words it writes thoughts in.

Readers split these tags out (``thoughts``), filters reject a thought or answer that still holds one, ``validate``
flags them in a registered dataset and custom templates default to the written form: all from this one list.
"""

from __future__ import annotations

from dataclasses import dataclass

# (open, close) pairs of thought markup, most specific first.
THOUGHT_TAGS = (
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("<think>", "</think>"),
    ("<reasoning>", "</reasoning>"),
)
# Wrappers around the answer that are dropped (their content is the answer).
ANSWER_TAGS = (
    ("<|begin_of_solution|>", "<|end_of_solution|>"),
    ("<answer>", "</answer>"),
)
# LLaMA-Factory's default thought words (``ReasoningTemplate.thought_words``): what ``convert`` writes without
# ``--template``.
THOUGHT_OPEN = "<think>\n"
THOUGHT_CLOSE = "\n</think>\n\n"
EMPTY_THOUGHT = THOUGHT_OPEN.rstrip("\n") + "\n\n" + THOUGHT_CLOSE.lstrip("\n")  # "<think>\n\n</think>\n\n"


@dataclass(frozen=True, slots=True)
class ThoughtWords:
    """How a thought is written around the answer: ``open + thought + close + answer``, and ``empty`` (the whole
    block) for an empty thought. A LLaMA-Factory template's own words come from
    :func:`lf_reasoning.llamafactory.thought_words.template_words`; :data:`DEFAULT_WORDS` needs no import."""

    open: str
    close: str
    empty: str

    def render(self, thought: str | None, answer: str) -> str:
        """The assistant text: the thought block (none when ``thought`` is None) then the answer."""
        if thought is None:
            return answer
        return (self.empty if thought == "" else self.open + thought + self.close) + answer

    def split(self, text: str) -> tuple[str, str] | None:
        """``(thought, answer)`` when ``text`` starts with a thought block in exactly these words, else None."""
        if text.startswith(self.empty):
            return "", text[len(self.empty) :]
        if not text.startswith(self.open):
            return None
        end = text.find(self.close, len(self.open))
        if end < 0:
            return None
        thought = text[len(self.open) : end]
        if not thought and self.empty != self.open + self.close:
            return None  # an empty thought written otherwise than this template's own empty block
        return thought, text[end + len(self.close) :]

    def markers(self) -> tuple[str, str]:
        """The visible parts of the words (what LLaMA-Factory looks for to tell that a response has a thought)."""
        return self.open.strip(), self.close.strip()


# LLaMA-Factory's default words (every ``<think>\n`` template, and templates without words of their own).
DEFAULT_WORDS = ThoughtWords(THOUGHT_OPEN, THOUGHT_CLOSE, EMPTY_THOUGHT)


# The common tail of each pair ("think>" is in "<think>" and "</think>"): one substring scan finds either tag,
# which keeps the per-record check of every thought and answer cheap.
def _common_tail(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return a[len(a) - n :]


_NEEDLES = tuple(_common_tail(open_, close) for open_, close in THOUGHT_TAGS)


def has_markup(text: str) -> bool:
    """True when ``text`` holds any thought tag of :data:`THOUGHT_TAGS` (open or close)."""
    return any(needle in text for needle in _NEEDLES)
