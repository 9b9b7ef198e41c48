"""The filters users of R1-distill and OpenR1 dumps apply by hand, as one reusable check per sample."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Literal

from lf_reasoning.errors import RecordError
from lf_reasoning.record.markup import has_markup
from lf_reasoning.record.render import ThinkMode
from lf_reasoning.record.sample import ReasoningSample

Dedup = Literal["normalized", "exact", "off"]


def normalize_prompt(text: str) -> str:
    """Case, width (full-width forms) and whitespace folded, so trivially different copies collide."""
    if not unicodedata.is_normalized("NFKC", text):  # the check is ~40x cheaper than normalising
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.casefold().split())


@dataclass(frozen=True)
class SampleFilter:
    """Call it on each sample: ``None`` keeps it, a :class:`RecordError` says why it is dropped.

    Deduplication needs state shared across the whole run, so it is separate: :func:`prompt_digest`.
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
        if not s.answer.strip():
            return RecordError("empty_answer", "the answer is empty")
        if self.think == "keep" and s.thought is not None and not s.thought.strip():
            return RecordError("empty_thought", "the thought is empty (use --think empty/drop to train without)")
        if has_markup(s.thought or "") or has_markup(s.answer):
            return RecordError("stray_markup", "thought markup inside the thought or answer")
        return None


def prompt_digest(s: ReasoningSample, dedup: Dedup) -> bytes | None:
    """A 16-byte key of the system prompt and every user turn; equal keys are duplicates."""
    if dedup == "off":
        return None
    key = "\x00".join([s.system or "", *(t.prompt for t in s.history), s.prompt])
    if dedup == "normalized":
        key = normalize_prompt(key)
    return hashlib.blake2b(key.encode(), digest_size=16).digest()
