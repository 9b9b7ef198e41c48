"""The tiny model builder: default tokenizer, and one learnt from a corpus (what the news demo trains)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from transformers import AutoTokenizer

CORPUS = "国足主场绝杀对手\n<think>\n\n</think>\n\n体育\n央行宣布降准，股市大涨\n<think>\n\n</think>\n\n财经\n" * 20


def test_a_corpus_gives_one_token_per_chinese_character_and_keeps_the_markup(tiny_model: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    out = tmp_path / "news_model"
    done = subprocess.run(
        [sys.executable, "-m", "lf_reasoning.tiny_model", str(out), str(corpus)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(out)
    learnt, default = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(tiny_model)
    text = "国足主场绝杀对手"
    pieces = learnt.tokenize(text)
    assert len(pieces) == len(text), pieces  # characters, never merged across characters
    assert len(default.tokenize(text)) > len(text)  # the built-in corpus spells these as bytes
    assert learnt.tokenize("<think>\n\n</think>\n\n体育")[:4] == ["<think>", "ĊĊ", "</think>", "ĊĊ"]
    assert learnt.all_special_tokens == default.all_special_tokens  # what the templates need
    for tok in (learnt, default):
        assert tok.decode(tok.encode(text + "\n</think>", add_special_tokens=False)) == text + "\n</think>"


def test_an_unreadable_corpus_is_an_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lf_reasoning.tiny_model", str(tmp_path / "m"), str(tmp_path / "missing.txt")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "cannot read a corpus file" in done.stderr and "missing.txt" in done.stderr
    assert not (tmp_path / "m").exists()
