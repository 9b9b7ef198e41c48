"""convert's fast paths in the filters: the prompt folding and the markup check give what the plain versions give."""

from __future__ import annotations

import random
import unicodedata

from lf_reasoning.record import filters
from lf_reasoning.record.filters import SampleFilter, normalize_prompt
from lf_reasoning.record.markup import THOUGHT_TAGS, has_markup
from lf_reasoning.record.sample import ReasoningSample


def _plain_fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def test_prompt_folding_is_nfkc_whatever_the_mix() -> None:
    # full-width forms next to combining marks, compatibility characters, Hangul jamo, ligatures, precomposed and
    # decomposed letters: the regex step may only take a shortcut NFKC itself would take
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + [chr(c) for c in range(0xFF00, 0xFFF0)]
    alphabet += list("\u3000\u0301\u0308\u0338e\u00e9\ufb01\u2460\u3002\u4e00\uac00\u1100\u1161\u11a8\u212b\u00c5")
    rng = random.Random(0)
    for _ in range(30_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        assert normalize_prompt(text) == _plain_fold(text), repr(text)
    assert normalize_prompt("请计算（１＋２）　ＡＢＣ，答案？") == "请计算(1+2) abc,答案?"


def test_markup_check_matches_has_markup() -> None:
    keep = SampleFilter()
    tags = [tag for pair in THOUGHT_TAGS for tag in pair]
    texts = ["plain thought", "x > 0 so", "<b>bold</b>", *tags, *(f"a {tag} b" for tag in tags), "think>", "|>"]
    for text in texts:
        assert filters._holds_markup(text) == has_markup(text), text
        sample = ReasoningSample(prompt="p", thought=text, answer="a")
        assert (keep(sample) is not None) == has_markup(text), text
