"""Tool calls with reasoning, from each of the three source shapes, as LLaMA-Factory trains them.

ShareGPT ``function_call``/``observation`` turns with a ``tools`` string, OpenAI ``tool_calls`` + ``role: tool`` with
a ``tools`` list, and LLaMA-Factory v1 ``tool_call`` parts are converted by the CLI with ``--template T`` and loaded
by LLaMA-Factory's own SFT loader with T on the tiny model (tests/lf_harness.py), for ``qwen3`` and ``seed_oss`` (a
tool-capable reasoning template with other thought words and another tool syntax): the tools are in the prompt,
each call is trained in T's tool syntax with its thought before it in T's words, the tool's reply is masked, the
final answer is trained. The expected words and tool syntax are read from LLaMA-Factory, not typed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run
from lf_harness import IGNORE_INDEX, encode_with_llamafactory

from lf_reasoning.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL

TEMPLATES = ("qwen3", "seed_oss")
CUTOFF = 8192  # the tool prompts are long in the tiny model's small vocabulary: nothing may be cut
WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"name": "get_time", "description": "Local time of a city", "parameters": WEATHER["parameters"]}


def _call(name: str, city: str) -> dict[str, Any]:
    return {"name": name, "arguments": {"city": city}}


# Per shape: the source records, and per record the expected exchanges: (calls, call thought, reply as written,
# answer thought, answer) for each tool step + answer, in order.
SHAREGPT = [
    {  # parallel calls (a JSON list) after a thought in markup, then a plain follow-up exchange
        "conversations": [
            {"from": "human", "value": "Weather in Paris and Rome?"},
            {
                "from": "function_call",
                "value": "<think>\nBoth cities are needed.\n</think>\n\n"
                + json.dumps([_call("get_weather", "Paris"), _call("get_weather", "Rome")]),
            },
            {"from": "observation", "value": '[{"temp": 21}, {"temp": 25}]'},
            {"from": "gpt", "value": "<think>\nRome is warmer.\n</think>\n\nParis 21 °C, Rome 25 °C."},
            {"from": "human", "value": "Thanks!"},
            {"from": "gpt", "value": "<think>\nBe polite.\n</think>\n\nYou are welcome."},
        ],
        "tools": json.dumps([WEATHER]),
    },
    {  # glaive-style: a call without a thought, a record without tools ("[]") in the same file
        "conversations": [
            {"from": "human", "value": "Time in Oslo?"},
            {"from": "function_call", "value": json.dumps(_call("get_time", "Oslo"))},
            {"from": "observation", "value": '{"time": "10:00"}'},
            {"from": "gpt", "value": "It is 10:00 in Oslo."},
        ],
        "tools": json.dumps([TIME]),
    },
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}], "tools": "[]"},
]
OPENAI = [
    {  # parallel tool_calls; the replies come in another order than the calls, matched by tool_call_id
        "messages": [
            {"role": "system", "content": "You help travellers."},
            {"role": "user", "content": "Weather and time in Lima?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Two tools, one call each.",
                "tool_calls": [
                    {
                        "id": "a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'},
                    },
                    {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Lima"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "b", "content": '{"time": "08:00"}'},
            {"role": "tool", "tool_call_id": "a", "content": '{"temp": 18}'},
            {"role": "assistant", "reasoning_content": "Report both.", "content": "18 °C at 08:00."},
        ],
        "tools": [{"type": "function", "function": WEATHER}, {"type": "function", "function": TIME}],
    },
]
V1 = [
    {  # LLaMA-Factory's reason_tool_use demo shape: reasoning + tool_call parts, a `tool` turn, tools as a string
        "messages": [
            {"role": "user", "content": [{"type": "text", "value": "Weather in Rome?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "reasoning", "value": "Use get_weather."},
                    {"type": "tool_call", "value": json.dumps(_call("get_weather", "Rome"))},
                ],
            },
            {"role": "tool", "content": [{"type": "text", "value": '{"temp": 25}'}]},
            {
                "role": "assistant",
                "content": [{"type": "reasoning", "value": "Warm."}, {"type": "text", "value": "25 °C."}],
            },
        ],
        "tools": json.dumps([{"type": "function", "function": WEATHER}]),
    },
    {  # ends on (parallel) calls: a sample that teaches the calls, trained as the last response
        "messages": [
            {"role": "user", "content": [{"type": "text", "value": "Weather and time in Oslo?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "reasoning", "value": "Both tools."},
                    {"type": "tool_call", "value": json.dumps(_call("get_weather", "Oslo"))},
                    {"type": "tool_call", "value": json.dumps(_call("get_time", "Oslo"))},
                ],
            },
        ],
        "tools": json.dumps([WEATHER, TIME]),
    },
]
SHAPES = {"sharegpt": SHAREGPT, "openai": OPENAI, "v1": V1}
PARIS_ROME = [_call("get_weather", "Paris"), _call("get_weather", "Rome")]
LIMA = [_call("get_weather", "Lima"), _call("get_time", "Lima")]
# several replies in one observation turn: a JSON list naming the call each answers, in the order of the calls
LIMA_REPLIES = json.dumps(
    [{"name": "get_weather", "content": '{"temp": 18}'}, {"name": "get_time", "content": '{"time": "08:00"}'}]
)
EXPECTED = {  # per shape, per written record: [(calls, call thought, reply)] and [(thought, answer)] per exchange
    "sharegpt": [
        (
            [(PARIS_ROME, "Both cities are needed.", '[{"temp": 21}, {"temp": 25}]')],
            [("Rome is warmer.", "Paris 21 °C, Rome 25 °C."), ("Be polite.", "You are welcome.")],
        ),
        ([([_call("get_time", "Oslo")], None, '{"time": "10:00"}')], [(None, "It is 10:00 in Oslo.")]),
        ([], [(None, "Hello.")]),
    ],
    "openai": [([(LIMA, "Two tools, one call each.", LIMA_REPLIES)], [("Report both.", "18 °C at 08:00.")])],
    "v1": [
        ([([_call("get_weather", "Rome")], "Use get_weather.", '{"temp": 25}')], [("Warm.", "25 °C.")]),
        ([([_call("get_weather", "Oslo"), _call("get_time", "Oslo")], "Both tools.", None)], []),
    ],
}


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR with a dataset ``SHAPE_T`` per shape and template, converted by the CLI."""
    root = tmp_path_factory.mktemp("tool_calls")
    out = root / "data"
    for shape, records in SHAPES.items():
        src = _write_jsonl(root / f"{shape}.jsonl", records)
        for template in TEMPLATES:
            args = ["--name", f"{shape}_{template}", "--dataset-dir", str(out), "--template", template]
            code, output = run("convert", str(src), *args, "--workers", "1")
            assert code == EXIT_OK, output
    return out


def test_written_as_sharegpt_with_function_call_and_observation_turns_and_a_tools_column(converted: Path) -> None:
    info = json.loads((converted / "dataset_info.json").read_text())
    for shape in SHAPES:
        assert info[f"{shape}_qwen3"]["columns"] == {"messages": "messages", "system": "system", "tools": "tools"}
        assert info[f"{shape}_qwen3"]["tags"]["function_tag"] == "function_call"
    rows = _read_jsonl(converted / "sharegpt_qwen3.jsonl")
    assert [m["role"] for m in rows[0]["messages"]] == [
        *("user", "function_call", "observation", "assistant", "user", "assistant")
    ]
    # the thought in the template's words before the call JSON; parallel calls as one JSON list
    assert rows[0]["messages"][1]["content"] == "<think>\nBoth cities are needed.\n</think>\n\n" + json.dumps(
        PARIS_ROME, ensure_ascii=False
    )
    assert json.loads(rows[0]["tools"]) == [WEATHER]
    assert "tools" not in rows[2]  # "[]": no tools, and LLaMA-Factory reads the missing column as none
    (lima,) = _read_jsonl(converted / "openai_qwen3.jsonl")
    assert lima["system"] == "You help travellers."
    assert lima["messages"][2]["content"] == LIMA_REPLIES  # the replies in the order of the calls, each named
    seed = _read_jsonl(converted / "v1_seed_oss.jsonl")
    assert seed[0]["messages"][1]["content"] == "<seed:think>Use get_weather.</seed:think>" + json.dumps(
        _call("get_weather", "Rome")
    )
    assert [m["role"] for m in seed[1]["messages"]] == ["user", "function_call"]  # ends on the calls


def _lf_template(name: str) -> Any:
    from llamafactory.data.template import TEMPLATES as LF_TEMPLATES

    return LF_TEMPLATES[name]


def _call_text(template: Any, calls: list[dict[str, Any]]) -> str:
    """The calls in the template's tool syntax, by LLaMA-Factory's own tool utils (what its FunctionFormatter
    writes after the thought)."""
    from llamafactory.data.tool_utils import FunctionCall

    functions = [FunctionCall(c["name"], json.dumps(c["arguments"], ensure_ascii=False)) for c in calls]
    return template.format_tools.tool_utils.function_formatter(functions)


@pytest.mark.parametrize("template_name", TEMPLATES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_loaded_by_llamafactory_tools_shown_calls_trained_replies_masked(
    converted: Path, tiny_model: Path, shape: str, template_name: str
) -> None:
    template = _lf_template(template_name)
    open_, close = template.thought_words
    rows = _read_jsonl(converted / f"{shape}_{template_name}.jsonl")
    name = f"{shape}_{template_name}"
    thinking = encode_with_llamafactory(
        tiny_model, converted, name, template_name, enable_thinking=True, cutoff_len=CUTOFF
    )
    plain = encode_with_llamafactory(
        tiny_model, converted, name, template_name, enable_thinking=False, cutoff_len=CUTOFF
    )
    assert len(thinking) == len(plain) == len(EXPECTED[shape])
    for row, example, off, (steps, answers) in zip(rows, thinking, plain, EXPECTED[shape], strict=True):
        if "tools" in row:  # the tool schemas, as the template's tool prompt, in the masked system prompt
            tool_prompt = template.format_tools.apply(content=row["tools"])[0]
            assert tool_prompt and tool_prompt in example.prompt_text, example.prompt_text
            assert WEATHER["description"] in example.prompt_text or TIME["description"] in example.prompt_text
        for calls, thought, reply in steps:
            call = _call_text(template, calls)
            if thought is not None:  # the thought, in T's words, then the call in T's tool syntax: both trained
                assert open_ + thought + close + call in example.label_text, example.label_text
            else:  # LLaMA-Factory adds T's empty thought to the call turn (seed_oss: before the turn's BOS)
                assert call in example.label_text and template.add_thought("") in example.label_text
            assert call in off.label_text  # enable_thinking false: the call stays trained
            if reply is not None:  # the tool's reply masked
                assert reply in example.prompt_text and reply not in example.label_text and reply not in off.label_text
            else:  # the conversation ends on the calls: after them only the template's end of turn is trained
                tail = example.label_text.rsplit(call, 1)[1]
                assert len(tail.strip()) < 30 and open_.strip() not in tail, tail
            if thought is not None:
                assert thought not in off.label_text and thought not in off.prompt_text  # … its thought is removed
        for thought, answer in answers:
            before = open_ + thought + close if thought is not None else template.add_thought("")
            assert before + answer in example.label_text, example.label_text
            assert answer in off.label_text
            if thought is not None:
                assert thought not in off.label_text and thought not in off.prompt_text


def test_lengths_count_the_tools_and_calls_as_llamafactory_does(converted: Path, tiny_model: Path) -> None:
    """`convert --max-tokens` and the lengths `config` and `stats` measure."""
    from lf_reasoning.llamafactory.lengths import measure_lengths

    (loaded,) = encode_with_llamafactory(tiny_model, converted, "openai_qwen3", "qwen3", cutoff_len=CUTOFF)
    total = len(loaded.input_ids)
    measured = measure_lengths(converted, "openai_qwen3", str(tiny_model), "qwen3")
    assert list(measured.total) == [total]
    assert measured.prompt[0] == sum(label == IGNORE_INDEX for label in loaded.labels)
    src = _write_jsonl(converted.parent / "lima.jsonl", OPENAI)
    rejects = converted.parent / "lima.rejects.jsonl"  # named: a run that writes nothing keeps only a named one
    for limit, written in ((total, 1), (total - 1, 0)):
        code, out = run(
            "convert", str(src), "--name", f"lima_{limit}", "--dataset-dir", str(converted.parent / "counted"),
            "--max-tokens", str(limit), "--tokenizer", str(tiny_model), "--template", "qwen3", "--workers", "1",
            "--rejects", str(rejects),
        )  # fmt: skip
        assert code == (EXIT_OK if written else EXIT_ERROR), out
        if not written:
            assert f"{total} tokens > --max-tokens {limit}" in rejects.read_text(encoding="utf-8")


def test_inspect_shows_the_call_trained_and_the_reply_masked(converted: Path, tiny_model: Path) -> None:
    code, out = run(
        "inspect", "v1_qwen3", "--dataset-dir", str(converted), "--model", str(tiny_model), "--template", "qwen3",
        "--json",
    )  # fmt: skip
    assert code == EXIT_OK, out
    shown = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    loaded = encode_with_llamafactory(tiny_model, converted, "v1_qwen3", "qwen3")[0]  # the record shown first
    trained = [flag for s in shown["segments"] for flag in [s["trained"]] * s["tokens"]]
    assert trained == [label != IGNORE_INDEX for label in loaded.labels]
    tool = [(s["trained"], s["text"]) for s in shown["segments"] if s["role"] == "tool"]
    assert tool[0][0] and '"get_weather"' in tool[0][1] and "Use get_weather." in tool[0][1]
    assert tool[1] == (False, '{"temp": 25}')


def test_alpaca_style_refuses_tool_records(tmp_path: Path) -> None:
    src = _write_jsonl(tmp_path / "sg.jsonl", SHAREGPT)
    code, out = run("convert", str(src), "--name", "sg", "--dataset-dir", str(tmp_path / "data"), "--style", "alpaca")
    assert code == EXIT_PARTIAL, out  # the plain record is written; the tool records are rejected with the reason
    rejects = _read_jsonl(tmp_path / "data" / "sg.rejects.jsonl")
    assert [r["reason"] for r in rejects] == ["tools_need_sharegpt"] * 2
    assert (
        "tools_need_sharegpt (invalid input)" in out
        and "Alpaca style cannot hold" in rejects[0]["detail"]
        and "--style sharegpt" in rejects[0]["detail"]
    )
    assert len(_read_jsonl(tmp_path / "data" / "sg.jsonl")) == 1


def _conversation(*turns: tuple[str, str], tools: Any = None) -> dict[str, Any]:
    record: dict[str, Any] = {"conversations": [{"from": role, "value": value} for role, value in turns]}
    if tools is not None:
        record["tools"] = tools
    return record


CALL = json.dumps(_call("get_weather", "Paris"))
TOOLS = json.dumps([WEATHER])
ASK, REPLY, ANSWER = ("human", "Weather?"), ("observation", '{"temp": 21}'), ("gpt", "21 °C.")
BAD = {  # reason, a fragment of the detail, the record
    "call without reply": (
        "tool_call_without_reply",
        "the call of get_weather before turn 2 has no tool reply",
        _conversation(ASK, ("function_call", CALL), ANSWER, tools=TOOLS),
    ),
    "ends on a reply": (
        "bad_turn_order",
        "ends on a tool reply, without the final answer",
        _conversation(ASK, ("function_call", CALL), REPLY, tools=TOOLS),
    ),
    "reply without call": (
        "bad_turn_order",
        "turn 1 is a tool reply (observation) without a tool call",
        _conversation(ASK, REPLY, ANSWER, tools=TOOLS),
    ),
    "unknown function": (
        "unknown_tool",
        "calls 'get_time', which is not in the record's tools (the tools are get_weather)",
        _conversation(ASK, ("function_call", json.dumps(_call("get_time", "Paris"))), REPLY, ANSWER, tools=TOOLS),
    ),
    "call without tools": (
        "unknown_tool",
        "the record has no 'tools' list",
        _conversation(ASK, ("function_call", CALL), REPLY, ANSWER),
    ),
    "call not JSON": (
        "bad_tool_call",
        'conversations[1] is not valid JSON (Expecting value); a call is {"name": "...", "arguments": {...}}',
        _conversation(ASK, ("function_call", "get_weather(Paris)"), REPLY, ANSWER, tools=TOOLS),
    ),
    "call without name": (
        "bad_tool_call",
        "conversations[1] has no function 'name'",
        _conversation(ASK, ("function_call", '{"arguments": {}}'), REPLY, ANSWER, tools=TOOLS),
    ),
    "arguments not an object": (
        "bad_tool_call",
        "the arguments of 'get_weather' are a list, expected an object",
        _conversation(ASK, ("function_call", '{"name": "get_weather", "arguments": [1]}'), REPLY, ANSWER, tools=TOOLS),
    ),
    "tools not JSON": (
        "bad_tools",
        "field 'tools' is not valid JSON",
        _conversation(ASK, ANSWER, tools="[{name: get_weather}]"),
    ),
    "tool without name": (
        "bad_tools",
        "tools[0] has no 'name'",
        _conversation(ASK, ANSWER, tools=json.dumps([{"description": "x"}])),
    ),
    "text beside calls": (
        "text_beside_tool_call",
        "messages[1] has text beside its tool calls ('Let me check.')",
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [{"function": _call("get_weather", "x")}],
                },
                {"role": "tool", "content": "{}"},
                {"role": "assistant", "content": "Done."},
            ],
            "tools": [WEATHER],
        },
    ),
    "replies do not match calls": (
        "tool_reply_count",
        "the 2 tool call(s) before turn 5 have 3 replies",
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "tool_calls": [{"function": _call("get_weather", "x")}] * 2},
                *[{"role": "tool", "content": "{}"}] * 3,
                {"role": "assistant", "content": "Done."},
            ],
            "tools": [WEATHER],
        },
    ),
    "reply to another call": (
        "tool_reply_id",
        "do not answer the calls b",
        {
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": i, "function": {"name": "get_weather", "arguments": "{}"}} for i in ("a", "b")
                    ],
                },
                {"role": "tool", "tool_call_id": "a", "content": "{}"},
                {"role": "tool", "tool_call_id": "c", "content": "{}"},
                {"role": "assistant", "content": "Done."},
            ],
            "tools": [WEATHER],
        },
    ),
    "tools in a format without tool turns": (
        "tools_not_supported",
        "the alpaca format has no tool turns",
        {"instruction": "Weather?", "input": "", "output": "21 °C.", "tools": TOOLS},
    ),
}


def test_bad_tool_shapes_are_rejected_with_their_reason(tmp_path: Path) -> None:
    """One run over a directory: each bad record rejected with its reason and detail, the good ones written."""
    src = tmp_path / "src"
    src.mkdir()
    good = _conversation(ASK, ("function_call", CALL), REPLY, ANSWER, tools=TOOLS)
    _write_jsonl(
        src / "chat.jsonl", [good, *(record for reason, _, record in BAD.values() if "conversations" in record)]
    )
    _write_jsonl(src / "openai.jsonl", [record for _, _, record in BAD.values() if "messages" in record])
    _write_jsonl(src / "alpaca.jsonl", [BAD["tools in a format without tool turns"][2]])
    code, out = run("convert", str(src), "--name", "bad", "--dataset-dir", str(tmp_path / "data"), "--workers", "1")
    assert code == EXIT_PARTIAL, out
    assert len(_read_jsonl(tmp_path / "data" / "bad.jsonl")) == 1
    rejects = _read_jsonl(tmp_path / "data" / "bad.rejects.jsonl")
    assert len(rejects) == len(BAD)
    found = {(r["reason"], r["detail"]) for r in rejects}
    for case, (reason, detail, _) in BAD.items():
        assert any(r == reason and detail in d for r, d in found), (case, found)
        assert f"{reason} (invalid input)" in out


def test_distill_refuses_records_with_tools() -> None:
    """distill sends prompts without tools: a tool record is refused, never sent without them."""
    from lf_reasoning.errors import RecordError
    from lf_reasoning.record.formats import FORMATS

    with pytest.raises(RecordError, match="distill cannot send tools to the API yet") as err:
        FORMATS["sharegpt"].prompt(SHAREGPT[0])
    assert err.value.reason == "tools_not_supported"
    assert FORMATS["sharegpt"].prompt(SHAREGPT[2]).prompt == "Hi"  # "tools": "[]" is no tools
