"""Every spelling of thought and answer markup lf-reasoning reads, and the one form it writes.

Readers split these tags out (``thoughts``), filters reject a thought or answer that still holds one, ``validate``
flags them in a registered dataset and custom templates default to the written form: all from this one list.
"""

from __future__ import annotations

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
# LLaMA-Factory's default thought words (``ReasoningTemplate.thought_words``): what ``convert`` writes.
THOUGHT_OPEN = "<think>\n"
THOUGHT_CLOSE = "\n</think>\n\n"
EMPTY_THOUGHT = THOUGHT_OPEN.rstrip("\n") + "\n\n" + THOUGHT_CLOSE.lstrip("\n")  # "<think>\n\n</think>\n\n"


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
