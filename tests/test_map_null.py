"""A forced shape (``--map``/``--format``) and a null field in a file's first record: that record is rejected on its
own and the run goes on; only a key the record lacks altogether (a typo in ``--map``) refuses the whole file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run
from openai_server import OpenAIServer

from lf_reasoning.errors import EXIT_ERROR, EXIT_PARTIAL

MAP = ("--map", "prompt=question", "--map", "answer=resp")
GOOD = [{"question": f"q{i}", "resp": f"a{i}"} for i in (1, 2)]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def convert(src: Path, data: Path, *args: str) -> tuple[int, str]:
    return run("convert", str(src), "--name", "n", "--dataset-dir", str(data), *args)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def distill(server: OpenAIServer, src: Path, out: Path, *args: str) -> tuple[int, str]:
    return run("distill", str(src), "--out", str(out), "--base-url", server.url, "--model", "m", *args)


@pytest.mark.parametrize(
    ("first", "reason", "detail"),
    [
        ({"question": None, "resp": "a0"}, "missing_field", "field 'question' is missing"),
        ({"question": "q0", "resp": None}, "missing_field", "field 'resp' is missing"),
        ({"question": "", "resp": "a0"}, "empty_prompt", "field 'question' is empty"),
    ],
)
def test_convert_rejects_a_null_first_record_and_writes_the_rest(
    tmp_path: Path, first: dict[str, Any], reason: str, detail: str
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [first, *GOOD])
    code, out = convert(src, tmp_path / "data", *MAP)
    assert code == EXIT_PARTIAL and "cannot read this file" not in out, out
    assert f"{reason} (invalid input)" in out, out
    (rejected,) = read_jsonl(tmp_path / "data" / "n.rejects.jsonl")
    assert (rejected["where"], rejected["reason"], rejected["detail"]) == (f"{src}:1", reason, detail)
    prompts = [r["messages"][0]["content"] for r in read_jsonl(tmp_path / "data" / "n.jsonl")]
    assert prompts == ["q1", "q2"]


def test_convert_rejects_a_short_first_csv_row(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("question,resp\nq0\nq1,a1\nq2,a2\n", encoding="utf-8")  # row 2 lacks its resp cell
    code, out = convert(src, tmp_path / "data", *MAP)
    assert code == EXIT_PARTIAL, out
    (rejected,) = read_jsonl(tmp_path / "data" / "n.rejects.jsonl")
    assert (rejected["where"], rejected["reason"]) == (f"{src}:2", "missing_field") and "'resp'" in rejected["detail"]
    assert len(read_jsonl(tmp_path / "data" / "n.jsonl")) == 2


def test_convert_forced_format_with_a_null_field_first(tmp_path: Path) -> None:
    # s1k_gemini is never detected, so its reader alone decides whether the first record fits
    s1k = [{"question": f"q{i}", "gemini_thinking_trajectory": f"t{i}", "gemini_attempt": f"a{i}"} for i in range(3)]
    s1k[0]["gemini_thinking_trajectory"] = None
    src = write_jsonl(tmp_path / "s1k.jsonl", s1k)
    code, out = convert(src, tmp_path / "data", "--format", "s1k_gemini")
    assert code == EXIT_PARTIAL, out
    (rejected,) = read_jsonl(tmp_path / "data" / "n.rejects.jsonl")
    assert (rejected["where"], rejected["detail"]) == (f"{src}:1", "field 'gemini_thinking_trajectory' is missing")
    assert len(read_jsonl(tmp_path / "data" / "n.jsonl")) == 2


@pytest.mark.parametrize(
    ("first", "mapping", "named"),
    [
        ({"question": "q0", "resp": "a0"}, ("prompt=question", "answer=respons"), "respons"),
        # a null column read before the absent one: the absent one is named, not the null one
        (
            {"question": "q0", "why": None, "resp": "a0"},
            ("prompt=question", "thought=why", "answer=respons"),
            "respons",
        ),
    ],
)
def test_convert_refuses_a_map_naming_an_absent_column(
    tmp_path: Path, first: dict[str, Any], mapping: tuple[str, ...], named: str
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [first, *GOOD])
    code, out = convert(src, tmp_path / "data", *(arg for pair in mapping for arg in ("--map", pair)))
    assert code == EXIT_ERROR, out
    assert f"{src}:1: --map cannot read this file: field '{named}' is missing" in out, out
    assert f"its columns are [{', '.join(sorted(first))}]" in out
    assert not (tmp_path / "data" / "n.jsonl").exists() and not (tmp_path / "data" / "n.rejects.jsonl").exists()


def test_distill_skips_a_null_first_prompt_and_sends_the_rest(server: OpenAIServer, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "p.jsonl", [{"question": None, "resp": "a0"}, *GOOD])
    out = tmp_path / "out.jsonl"
    code, output = distill(server, src, out, "--map", "prompt=question")
    assert code == EXIT_PARTIAL, output
    assert f"warning: {src}:1: skipped: field 'question' is missing" in output
    assert sorted(r["input"] for r in read_jsonl(out)) == ["q1", "q2"]
    assert sorted(server.prompts_seen()) == ["q1", "q2"]


def test_distill_refuses_a_map_naming_an_absent_column(server: OpenAIServer, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "p.jsonl", [{"question": None, "resp": "a0"}, *GOOD])
    out = tmp_path / "out.jsonl"
    code, output = distill(server, src, out, "--map", "prompt=questoin")
    assert code == EXIT_ERROR, output
    assert f"{src}:1: --map cannot read this file: field 'questoin' is missing" in output
    assert not out.exists() and not server.prompts_seen()
