"""Every reasoning field is read, and nothing is dropped silently: `thinking` turns, long columns no reader uses,
records with tools (written with them or refused with their reason, never without them), s1K-1.1's two traces,
forced formats that cannot read a file. Real files, the real CLI, and LLaMA-Factory's own loader for what is trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lf_harness import encode_with_llamafactory

from lf_reasoning.errors import EXIT_ERROR, EXIT_PARTIAL
from tests.cli_runner import run

LONG_COT = "First, list what is known. " * 12 + "Then 6 × 7 = 42."  # over 200 characters


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def convert(src: Path, out: Path, name: str, *args: str) -> tuple[int, str]:
    return run("convert", str(src), "--name", name, "--dataset-dir", str(out), *args)


def test_thinking_field_is_the_thought_and_is_trained(tiny_model: Path, tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "thinking.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "What is 6 times 7?"},
                    {"role": "assistant", "content": "42", "thinking": "6 × 7 = 42."},
                ]
            }
        ],
    )
    code, out = convert(src, tmp_path / "data", "thinking")
    assert code == 0, out
    (example,) = encode_with_llamafactory(tiny_model, tmp_path / "data", "thinking", "qwen3")
    assert "<think>\n6 × 7 = 42.\n</think>\n\n42" in example.label_text
    (stripped,) = encode_with_llamafactory(tiny_model, tmp_path / "data", "thinking", "qwen3", enable_thinking=False)
    assert "6 × 7" not in stripped.label_text + stripped.prompt_text


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"thinking": "a", "reasoning_content": "a"}, None),  # the same thought under two names: one thought
        ({"reasoning": "", "thinking": "b"}, None),  # an empty one does not hide the other
        ({"thinking": "a", "reasoning": "b"}, "two_thoughts"),
        ({"thinking": ["a"]}, "wrong_type"),
    ],
)
def test_several_thought_fields(tmp_path: Path, fields: dict[str, Any], reason: str | None) -> None:
    turn = {"role": "assistant", "content": "42", **fields}
    src = write_jsonl(tmp_path / "t.jsonl", [{"messages": [{"role": "user", "content": "q"}, turn]}] * 1)
    write_jsonl(
        tmp_path / "ok.jsonl",
        [{"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "x"}]}],
    )
    code, out = run(
        "convert", str(src), str(tmp_path / "ok.jsonl"), "--name", "t", "--dataset-dir", str(tmp_path / "d")
    )
    if reason is None:
        assert code == 0, out
        assert read_jsonl(tmp_path / "d" / "t.jsonl")[0]["messages"][1]["content"].startswith("<think>\n")
    else:
        assert code == EXIT_PARTIAL and f"{reason} (invalid input)" in out, out
        assert read_jsonl(tmp_path / "d" / "t.rejects.jsonl")[0]["reason"] == reason


def test_unused_long_column_is_named_with_its_map(tiny_model: Path, tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "cot.jsonl",
        [{"instruction": "What is 6 times 7?", "output": "42", "chain_of_thought": LONG_COT, "tag": "x" * 300}]
        + [
            {"instruction": f"q{i}", "output": "a", "chain_of_thought": LONG_COT + str(i), "tag": "t"} for i in range(3)
        ],
    )
    code, out = convert(src, tmp_path / "data", "cot")
    assert code == 0, out
    fix = "--map prompt=instruction --map thought=chain_of_thought --map answer=output"
    assert f"column 'chain_of_thought' ({len(LONG_COT):,} characters in the first record) is read by no field" in out
    assert fix in out
    assert "column 'tag'" in out  # any long text, not only thought-like names
    # the suggested --map works and trains the column as the thought
    code, out = convert(src, tmp_path / "data", "cot_mapped", *fix.split())
    assert code == 0 and "column 'chain_of_thought'" not in out and "column 'tag'" in out, out
    first = encode_with_llamafactory(tiny_model, tmp_path / "data", "cot_mapped", "qwen3")[0]
    assert f"<think>\n{LONG_COT}\n</think>\n\n42" in first.label_text


def test_used_and_short_columns_are_not_reported(tmp_path: Path) -> None:
    long_answer = "The answer, explained at length. " * 10
    src = write_jsonl(
        tmp_path / "plain.jsonl",
        [{"instruction": "Explain.", "output": f"<think>\n{LONG_COT}\n</think>\n\n{long_answer}", "note": "short"}],
    )
    code, out = convert(src, tmp_path / "data", "plain")
    assert code == 0 and "read by no field" not in out, out


TOOL_RECORDS = {
    "openai_tool_calls": {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "Call the tool.",
                "tool_calls": [
                    {"id": "1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "1", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "21 °C."},
        ]
    },
    "openai_tools_field": {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
    },
    "sharegpt_function_call": {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "21 °C."},
        ],
        "tools": '[{"name": "weather", "description": "", "parameters": {}}]',
    },
    "sharegpt_tools_string_only": {
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}],
        "tools": '[{"name": "weather", "description": "", "parameters": {}}]',
    },
    "v1_tool_call_part": {
        "messages": [
            {"role": "user", "content": [{"type": "text", "value": "Weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "reasoning", "value": "Call it."},
                    {"type": "tool_call", "value": '{"name": "weather", "arguments": {}}'},
                ],
            },
        ]
    },
}


# Tool calls need the record's `tools` list (the model must see what it calls): those without are refused.
NO_TOOLS_LIST = {"openai_tool_calls", "v1_tool_call_part"}


@pytest.mark.parametrize("shape", sorted(TOOL_RECORDS))
def test_records_with_tools_keep_them_or_are_rejected_never_written_without_them(tmp_path: Path, shape: str) -> None:
    record = TOOL_RECORDS[shape]
    key = "messages" if "messages" in record else "conversations"
    fine = (
        {"messages": [{"role": "user", "content": "Plain?"}, {"role": "assistant", "content": "Yes."}]}
        if key == "messages"
        else {"conversations": [{"from": "human", "value": "Plain?"}, {"from": "gpt", "value": "Yes."}], "tools": "[]"}
    )
    src = write_jsonl(tmp_path / f"{shape}.jsonl", [fine, record])
    code, out = convert(src, tmp_path / "data", shape)
    written = read_jsonl(tmp_path / "data" / f"{shape}.jsonl")
    if shape not in NO_TOOLS_LIST:  # written with its tools (tests/test_tool_calls.py: as LLaMA-Factory trains them)
        assert code == 0, out
        tools = record["tools"] if isinstance(record["tools"], list) else json.loads(record["tools"])
        assert len(written) == 2 and json.loads(written[1]["tools"]) == tools and "tools" not in written[0]
        return
    assert code == EXIT_PARTIAL, out
    assert "unknown_tool (invalid input)" in out and "the record has no 'tools' list" in out
    assert len(written) == 1  # only the record without tool calls
    (rejected,) = read_jsonl(tmp_path / "data" / f"{shape}.rejects.jsonl")
    assert rejected["reason"] == "unknown_tool" and rejected["where"].endswith(":2")


def test_s1k_1_1_uses_deepseek_by_default_and_gemini_on_request(tiny_model: Path, tmp_path: Path) -> None:
    record = {
        "question": "How many edges has a tetrahedron?",
        "solution": "6",
        "cot_type": "math",
        "source_type": "geometry",
        "metadata": json.dumps({"note": "m" * 300}),  # long, but left out on purpose: not reported
        "cot": None,
        "gemini_thinking_trajectory": "Gemini: C(4,2) = 6. " + "g" * 250,
        "gemini_attempt": "Gemini says 6.",
        "deepseek_thinking_trajectory": "DeepSeek: 4 vertices, each pair joined: 6. " + "d" * 250,
        "deepseek_attempt": "DeepSeek says 6.",
    }
    src = write_jsonl(tmp_path / "s1k11.jsonl", [record])
    code, out = convert(src, tmp_path / "data", "s1_ds")
    assert code == 0, out
    assert "format s1k: has question/deepseek_thinking_trajectory/deepseek_attempt (s1K-1.1)" in out
    assert "--format s1k_gemini" in out and "read by no field" not in out
    (ds,) = encode_with_llamafactory(tiny_model, tmp_path / "data", "s1_ds", "qwen3")
    assert "<think>\nDeepSeek: 4 vertices" in ds.label_text and ds.label_text.split("</think>\n\n")[1].startswith(
        "DeepSeek says 6."
    )
    assert "Gemini" not in ds.label_text + ds.prompt_text

    code, out = convert(src, tmp_path / "data", "s1_gem", "--format", "s1k_gemini")
    assert code == 0 and "read by no field" not in out, out
    (gem,) = encode_with_llamafactory(tiny_model, tmp_path / "data", "s1_gem", "qwen3")
    assert "<think>\nGemini: C(4,2) = 6." in gem.label_text and "Gemini says 6." in gem.label_text
    assert "DeepSeek" not in gem.label_text + gem.prompt_text


def test_s1k_1_0_still_reads_thinking_trajectories(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "s1k.jsonl",
        [{"question": "q", "solution": "6", "thinking_trajectories": ["t"], "attempt": "6", "cot": None}],
    )
    code, out = convert(src, tmp_path / "data", "s1")
    assert code == 0 and "(s1K)" in out, out
    assert read_jsonl(tmp_path / "data" / "s1.jsonl")[0]["messages"][1]["content"] == "<think>\nt\n</think>\n\n6"


def test_a_forced_format_that_cannot_read_the_file_suggests_a_map(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "qa.jsonl", [{"problem": "2+2?", "rationale": "2+2=4", "response": "4"}])
    code, out = convert(src, tmp_path / "data", "qa", "--format", "s1k")
    assert code == EXIT_ERROR, out
    assert f"{src}:1: --format s1k cannot read this file: field 'thinking_trajectories' is missing" in out
    assert "its columns are [problem, rationale, response]" in out
    assert "--map prompt=problem --map thought=rationale --map answer=response" in out
    assert not (tmp_path / "data" / "qa.jsonl").exists()
    # a --map naming a column the file lacks is refused the same way, before anything is written
    code, out = convert(src, tmp_path / "data", "qa", "--map", "prompt=question", "--map", "answer=response")
    assert code == EXIT_ERROR and "--map cannot read this file: field 'question' is missing" in out, out
    # and the suggestion itself converts the file
    code, out = convert(
        src,
        tmp_path / "data",
        "qa",
        "--map",
        "prompt=problem",
        "--map",
        "thought=rationale",
        "--map",
        "answer=response",
    )
    assert code == 0, out


def test_cannot_tell_the_format_suggests_a_map_from_the_keys(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "odd.jsonl", [{"Question": "q", "Complex_Reasoning": "t", "Final": "a"}])
    code, out = convert(src, tmp_path / "data", "odd")
    assert code == EXIT_ERROR and "cannot tell the format from the keys [Complex_Reasoning, Final, Question]" in out
    assert "--map prompt=Question --map thought=Complex_Reasoning --map answer=COLUMN" in out, out


def test_unused_long_turn_field_is_named(tmp_path: Path) -> None:
    turn = {"role": "assistant", "content": "42", "chain_of_thought": LONG_COT}
    src = write_jsonl(tmp_path / "turns.jsonl", [{"messages": [{"role": "user", "content": "6 × 7?"}, turn]}])
    code, out = convert(src, tmp_path / "data", "turns")
    assert code == 0, out
    assert "turn field 'messages[1].chain_of_thought'" in out
    assert "rename it to one of reasoning, reasoning_content, thinking" in out


@pytest.mark.parametrize(
    "beside",
    [
        {"reasoning": {"style": "freetext", "content": "92 > 90, so the grade alone qualifies."}},  # DeepFabric
        {"thinking": "92 > 90, so the grade alone qualifies."},
    ],
)
def test_a_thought_beside_messages_is_the_last_answers(tmp_path: Path, beside: dict[str, Any]) -> None:
    record = {
        "messages": [
            {"role": "developer", "content": "Explain briefly."},  # OpenAI's system role for reasoning models
            {"role": "user", "content": "Grade 92, needs 90+ or 3 activities: eligible?"},
            {"role": "assistant", "content": "Yes."},
        ],
        **beside,
    }
    code, out = convert(write_jsonl(tmp_path / "df.jsonl", [record]), tmp_path / "data", "df")
    assert code == 0, out
    (written,) = read_jsonl(tmp_path / "data" / "df.jsonl")
    assert written["system"] == "Explain briefly."
    assert written["messages"][-1]["content"] == "<think>\n92 > 90, so the grade alone qualifies.\n</think>\n\nYes."
