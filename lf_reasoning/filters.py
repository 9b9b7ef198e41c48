"""The filters users of R1-distill and OpenR1 dumps apply by hand, as one reusable check per sample."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from lf_reasoning.errors import RecordError
from lf_reasoning.render import ThinkMode
from lf_reasoning.sample import ReasoningSample

Dedup = Literal["normalized", "exact", "off"]
_NOT_WORD = re.compile(r"[\W_]+")
_MARKUP = ("<think>", "</think>", "<|begin_of_thought|>", "<|end_of_thought|>")


def normalize_prompt(text: str) -> str:
    """Case, width, whitespace and punctuation folded, so trivially different copies collide."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@dataclass
class SampleFilter:
    """Call it on each sample: ``None`` keeps it, a :class:`RecordError` says why it is dropped."""

    think: ThinkMode = "keep"
    min_score: float | None = None
    require_verified: bool = False
    dedup: Dedup = "normalized"
    _seen: set[bytes] = field(default_factory=set, repr=False)

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
        for text in (s.thought or "", s.answer):
            for tag in _MARKUP:
                if tag in text:
                    return RecordError("stray_markup", f"{tag} inside the thought or answer")
        if self.dedup != "off":
            key = "\x00".join([s.system or "", *(t.prompt for t in s.history), s.prompt])
            if self.dedup == "normalized":
                key = normalize_prompt(key)
            digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
            if digest in self._seen:
                return RecordError("duplicate_prompt", f"prompt already seen ({self.dedup} dedup)")
            self._seen.add(digest)
        return None
