"""The filters users of R1-distill and OpenR1 dumps apply by hand, as one reusable check per sample, and the dedup
keys (what counts as a repeat)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import orjson
import xxhash

from lf_reasoning.errors import RecordError
from lf_reasoning.record.markup import THOUGHT_TAGS, has_markup
from lf_reasoning.record.render import ThinkMode
from lf_reasoning.record.sample import ReasoningSample

# conversation (default): the whole written conversation repeats (system, every turn, thought and answer), the
# system and user turns with case, width and spacing folded; exact: the same, byte for byte; prompt: the system
# prompt and user turns repeat, folded (one sample per prompt, for distill dumps with repeated questions); off: keep
# everything. Thoughts and answers are compared as the readers left them (markup split, ends stripped): folding
# kilobytes of generated text per record would cost more than the rest of convert.
Dedup = Literal["conversation", "exact", "prompt", "off"]
DEDUP_MODES: tuple[Dedup, ...] = ("conversation", "exact", "prompt", "off")


_FULL_WIDTH = re.compile("[\u3000\uff01-\uff5e]")  # the ideographic space and the full-width ASCII forms
# The last character of every thought tag: a text holding none of them holds no tag (see _holds_markup).
_TAG_ENDS = tuple(sorted({tag[-1] for pair in THOUGHT_TAGS for tag in pair}))


def normalize_prompt(text: str) -> str:
    """Case, width (full-width forms) and whitespace folded, so trivially different copies collide."""
    if not unicodedata.is_normalized("NFKC", text):  # the check is ~40x cheaper than normalising
        # Full-width punctuation is what usually fails the check in CJK prompts: a regex maps it to ASCII ~4x
        # faster than NFKC does. Each character becomes its own compatibility decomposition, so NFKC of the result
        # is NFKC of the text; when nothing else needed normalising, the result already is it.
        text = _FULL_WIDTH.sub(_half_width, text)
        if not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text)
    return " ".join(text.casefold().split())


def _half_width(match: re.Match[str]) -> str:
    char = match.group()
    return " " if char == "\u3000" else chr(ord(char) - 0xFEE0)


def _holds_markup(text: str) -> bool:
    """:func:`has_markup`, after a search for the tags' last characters (a few character searches instead of one
    per tag over kilobytes of thought: most thoughts hold none of them)."""
    return any(char in text for char in _TAG_ENDS) and has_markup(text)


@dataclass(frozen=True)
class SampleFilter:
    """Call it on each sample: ``None`` keeps it, a :class:`RecordError` says why it is dropped.

    Deduplication needs state shared across the whole run, so it is separate: :func:`dedup_digest`.
    """

    think: ThinkMode = "keep"
    min_score: float | None = None
    require_verified: bool = False

    def __call__(self, s: ReasoningSample) -> RecordError | None:
        finish = s.meta.get("finish_reason")
        if finish is not None and finish != "stop":
            return RecordError("unfinished", f"ended with finish_reason {finish!r}, not 'stop'")
        verified = s.meta.get("verified")
        if verified is False:
            return RecordError("failed_verification", "the answer was verified as wrong")
        if self.require_verified and verified is not True:
            return RecordError("unverified", "no verification verdict (--require-verified)")
        if self.min_score is not None:
            if s.score is None:
                return RecordError("no_score", f"no score to compare with --min-score {self.min_score:g}")
            if s.score < self.min_score:
                return RecordError("score_below_min", f"score {s.score:g} < --min-score {self.min_score:g}")
        if not s.answer.strip() and not s.ends_on_call:
            return RecordError("empty_answer", "the answer is empty")
        if self.think == "keep" and s.thought is not None and not s.thought.strip():
            return RecordError("empty_thought", "the thought is empty (use --think empty/drop to train without)")
        if _holds_markup(s.thought or "") or _holds_markup(s.answer):
            return RecordError("stray_markup", "thought markup inside the thought or answer")
        if any(_holds_markup(step.thought or "") for turn in (*s.history, s) for step in turn.steps):
            return RecordError("stray_markup", "thought markup inside the thought before a tool call")
        return None


def dedup_digest(s: ReasoningSample, dedup: Dedup, think: ThinkMode = "keep") -> bytes | None:
    """A 16-byte key of what ``dedup`` compares; equal keys are duplicates. The conversation is taken as written
    (``think``): with ``--think drop`` two samples differing only in their thoughts are repeats."""
    if dedup == "off":
        return None
    prompts = "\x00".join([s.system or "", s.tools or "", *(t.prompt for t in s.history), s.prompt])
    if dedup != "exact":
        prompts = normalize_prompt(prompts)
    parts: list[str | None] = [prompts]
    if dedup != "prompt":  # every thought as written (none with --think drop/empty) and every answer
        for t in (*s.history, s):  # each turn's tool calls and replies, if any, then its thought and answer
            steps = [[step.thought if think == "keep" else None, step.calls, step.replies] for step in t.steps]
            parts += [orjson.dumps(steps).decode() if steps else None, t.thought if think == "keep" else None, t.answer]
    # orjson encodes the parts (unambiguously) several times faster than str.join + encode, and xxh3 (a dependency
    # of datasets) hashes ~30x faster than blake2b: a conversation key covers kilobytes per record
    return xxhash.xxh3_128_digest(orjson.dumps(parts))
