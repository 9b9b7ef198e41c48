"""Column templates: ``--prompt-template`` placeholders name source columns, so one prompt is built from several;
an unknown placeholder stops the run naming the template file and the columns seen. Real files, the real CLI and
LLaMA-Factory's loader for what ends up in the prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lf_harness import encode_with_llamafactory

from lf_reasoning.errors import EXIT_ERROR, EXIT_PARTIAL, UserError
from lf_reasoning.record.prompt_template import PromptTemplate
from tests.cli_runner import run

MCQ = [
    {"question": "Which planet is largest?", "options": ["A. Mars", "B. Jupiter"], "answer": "B", "why": "Size."},
    {"question": "Which is a noble gas?", "options": ["A. Neon", "B. Iron"], "answer": "A", "why": "Group 18."},
]


def files(tmp_path: Path, records: list[dict[str, Any]], template: str) -> tuple[Path, Path]:
    src = tmp_path / "mcq.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    tpl = tmp_path / "mcq_prompt.txt"
    tpl.write_text(template + "\n", encoding="utf-8")
    return src, tpl


def convert(src: Path, tpl: Path, out: Path, *args: str) -> tuple[int, str]:
    return run("convert", str(src), "--name", "mcq", "--dataset-dir", str(out), "--prompt-template", str(tpl), *args)


MAP = ("--map", "prompt=question", "--map", "thought=why", "--map", "answer=answer")


def test_several_columns_make_one_prompt(tiny_model: Path, tmp_path: Path) -> None:
    src, tpl = files(tmp_path, MCQ, "{question}\n\n{options}\n\nAnswer with a letter.")
    code, out = convert(src, tpl, tmp_path / "data", *MAP)
    assert code == 0, out
    first, second = encode_with_llamafactory(tiny_model, tmp_path / "data", "mcq", "qwen3")
    assert "Which planet is largest?\n\nA. Mars\nB. Jupiter\n\nAnswer with a letter." in first.prompt_text
    assert "<think>\nSize.\n</think>\n\nB" in first.label_text
    assert "Which is a noble gas?\n\nA. Neon\nB. Iron" in second.prompt_text


def test_columns_beside_the_prompt_of_a_detected_shape(tmp_path: Path) -> None:
    """{prompt} is the prompt as the detected reader built it; other placeholders are columns of the record."""
    records = [{"instruction": "Pick one.", "input": "", "output": "B", "choices": "A. x | B. y"}]
    src, tpl = files(tmp_path, records, "{prompt}\nChoices: {choices}\nLiteral {{braces}} and \\boxed{}.")
    code, out = convert(src, tpl, tmp_path / "data")
    assert code == 0 and "format alpaca" in out, out
    record = json.loads((tmp_path / "data" / "mcq.jsonl").read_text(encoding="utf-8"))
    assert record["messages"][0]["content"] == "Pick one.\nChoices: A. x | B. y\nLiteral {braces} and \\boxed{}."


def test_unknown_placeholder_names_the_file_and_the_columns(tmp_path: Path) -> None:
    src, tpl = files(tmp_path, MCQ, "{question}\n\n{choices}")
    code, out = convert(src, tpl, tmp_path / "data", *MAP)
    assert code == EXIT_ERROR
    assert f"{tpl}: placeholder {{choices}} names no column of {src}:1" in out
    assert "its columns are [answer, options, question, why]" in out
    assert not (tmp_path / "data" / "mcq.jsonl").exists()


def test_a_template_without_placeholders_is_refused(tmp_path: Path) -> None:
    src, tpl = files(tmp_path, MCQ, "Answer the question.")
    code, out = convert(src, tpl, tmp_path / "data", *MAP)
    assert code == EXIT_ERROR and f"{tpl}: the prompt template has no placeholder" in out, out
    with pytest.raises(UserError, match="--prompt-template: the prompt template has no placeholder"):
        PromptTemplate("no placeholder; {1} and \\frac{}{} are not placeholders")


def test_a_later_record_without_the_column_is_rejected(tmp_path: Path) -> None:
    records = [*MCQ, {"question": "Odd one?", "answer": "A", "why": "w"}]  # no options
    src, tpl = files(tmp_path, records, "{question}\n\n{options}")
    code, out = convert(src, tpl, tmp_path / "data", *MAP)
    assert code == EXIT_PARTIAL and "missing_field (invalid input)" in out, out
    (rejected,) = [json.loads(line) for line in (tmp_path / "data" / "mcq.rejects.jsonl").read_text().splitlines()]
    assert rejected["where"] == f"{src}:3" and "column 'options' of" in rejected["detail"]


def test_history_turns_are_wrapped_only_by_prompt_only_templates(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "1"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "2"},
        ],
        "topic": "counting",
    }
    src, tpl = files(tmp_path, [record], "Q: {prompt}")
    assert convert(src, tpl, tmp_path / "a")[0] == 0
    messages = json.loads((tmp_path / "a" / "mcq.jsonl").read_text())["messages"]
    assert [m["content"] for m in messages[::2]] == ["Q: first", "Q: second"]
    src, tpl = files(tmp_path, [record], "[{topic}] {prompt}")
    assert convert(src, tpl, tmp_path / "b")[0] == 0
    messages = json.loads((tmp_path / "b" / "mcq.jsonl").read_text())["messages"]
    assert [m["content"] for m in messages[::2]] == ["first", "[counting] second"]


def test_distill_sends_the_prompt_built_from_columns(tmp_path: Path) -> None:
    from openai_server import OpenAIServer

    src, tpl = files(tmp_path, MCQ, "{question}\n\n{options}")
    out = tmp_path / "distilled.jsonl"
    with OpenAIServer() as server:
        base = ("distill", str(src), "--out", str(out), "--base-url", server.url, "--model", "m")
        code, output = run(*base, "--prompt-template", str(tpl))
        assert code == 0, output
        sent = sorted(r.body["messages"][-1]["content"] for r in server.requests)
        assert sent == ["Which is a noble gas?\n\nA. Neon\nB. Iron", "Which planet is largest?\n\nA. Mars\nB. Jupiter"]
        assert {r["reference_answer"] for r in map(json.loads, out.read_text().splitlines())} == {"A", "B"}
        # resuming OUT with another template would mix questions: refused
        tpl.write_text("{question}\n", encoding="utf-8")
        code, output = run(*base, "--prompt-template", str(tpl))
        assert code == EXIT_ERROR and "holds replies made with --prompt-template" in output, output
        # an unknown placeholder stops the run before any request
        tpl.write_text("{question}\n{choices}\n", encoding="utf-8")
        server.requests.clear()
        code, output = run(*base[:3], str(tmp_path / "other.jsonl"), *base[4:], "--prompt-template", str(tpl))
        assert code == EXIT_ERROR and f"{tpl}: placeholder {{choices}} names no column of {src}:1" in output, output
        assert not server.requests
