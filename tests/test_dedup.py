"""The dedup rule: by default a record is a repeat only when the whole conversation repeats (system, every turn,
thought and answer, case and spacing folded); ``--dedup prompt`` keeps one sample per prompt; a dedup removing more
than 10% of the samples says so loudly. Real files through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import run

WARNING = "WARNING: --dedup"


def conversation(*turns: tuple[str, str, str | None], system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    for question, answer, thought in turns:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer, **({"reasoning_content": thought} if thought else {})})
    return {"messages": messages}


def convert(tmp_path: Path, records: list[dict[str, Any]], *args: str) -> tuple[int, str, list[dict[str, Any]]]:
    src = tmp_path / "src.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "data"
    code, output = run("convert", str(src), "--name", "d", "--dataset-dir", str(out), "--force", *args)
    written = [json.loads(line) for line in (out / "d.jsonl").read_text(encoding="utf-8").splitlines()]
    return code, output, written


def rejects(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "data" / "d.rejects.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


# Three distinct multi-turn conversations that share their questions (the case the old prompt dedup broke).
SHARED_QUESTIONS = [
    conversation(("Tell me a fact.", "Water boils at 100 °C.", None), ("Another?", "Ice melts at 0 °C.", None)),
    conversation(("Tell me a fact.", "Light is fast.", None), ("Another?", "Sound is slower.", None)),
    conversation(("Tell me a fact.", "Cats purr.", None), ("Another?", "Dogs bark.", None)),
]


def test_distinct_conversations_sharing_questions_are_all_kept(tmp_path: Path) -> None:
    code, out, written = convert(tmp_path, SHARED_QUESTIONS)
    assert code == 0 and len(written) == 3, out
    assert WARNING not in out and not rejects(tmp_path)


def test_dedup_prompt_keeps_one_per_prompt_and_says_so_loudly(tmp_path: Path) -> None:
    code, out, written = convert(tmp_path, SHARED_QUESTIONS, "--dedup", "prompt")
    assert code == 0 and len(written) == 1, out
    assert written[0]["messages"][1]["content"] == "Water boils at 100 °C."  # the first one is kept
    assert "duplicate_prompt (filtered)" in out
    assert f"{WARNING} prompt removed 2 of 3 samples (67%) as repeats" in out
    assert "--dedup off keeps every sample" in out
    assert [r["reason"] for r in rejects(tmp_path)] == ["duplicate_prompt", "duplicate_prompt"]


def test_repeated_conversations_are_dropped_case_and_spacing_folded(tmp_path: Path) -> None:
    a = conversation(("What is 2+2?", "4", "2 + 2 = 4."), system="Be brief.")
    folded = conversation(("what  is 2+2?", " 4\n", "\n2 + 2 = 4. "), system="be brief.")  # ends trimmed by readers
    records = [a, folded, conversation(("What is 2+2?", "4", "Two and two make four."), system="Be brief.")]
    code, out, written = convert(tmp_path, records)
    assert code == 0 and len(written) == 2, out  # the third differs in its thought: not a repeat
    assert [r["reason"] for r in rejects(tmp_path)] == ["duplicate"]
    assert rejects(tmp_path)[0]["where"].endswith(":2")
    assert f"{WARNING} conversation removed 1 of 3 samples (33%)" in out

    code, out, written = convert(tmp_path, records, "--dedup", "exact")
    assert code == 0 and len(written) == 3 and WARNING not in out, out
    code, out, written = convert(tmp_path, [a, a, a], "--dedup", "off")
    assert code == 0 and len(written) == 3 and WARNING not in out, out


@pytest.mark.parametrize(("think", "kept"), [("keep", 2), ("drop", 1)])
def test_the_conversation_is_compared_as_written(tmp_path: Path, think: str, kept: int) -> None:
    """With --think drop the thoughts are not written, so samples that differ only there are repeats."""
    records = [conversation(("q", "a", "one way")), conversation(("q", "a", "another way"))]
    code, out, written = convert(tmp_path, records, "--think", think)
    assert code == 0 and len(written) == kept, out


def test_a_few_repeats_need_no_warning(tmp_path: Path) -> None:
    records = [conversation((f"question {i}", f"answer {i}", None)) for i in range(20)] + [
        conversation(("question 0", "answer 0", None))
    ]
    code, out, written = convert(tmp_path, records)
    assert code == 0 and len(written) == 20, out
    assert "duplicate (filtered)" in out and WARNING not in out  # 1 of 21 is under 10%


def test_repeated_samples_of_one_prompt_are_kept_by_default(tmp_path: Path) -> None:
    """distill --n K writes K answers per prompt: all kept unless --dedup prompt."""
    records = [conversation(("Name a prime.", answer, f"I pick {answer}.")) for answer in ("2", "3", "5")]
    code, out, written = convert(tmp_path, records)
    assert code == 0 and len(written) == 3, out
