"""Readers and detection on single records (the LLaMA-Factory side is covered in test_convert_shapes.py)."""

from __future__ import annotations

import pytest

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.formats import FORMATS, detect_format, resolve_reader
from lf_reasoning.record.sample import Turn


def test_r1_distill_keeps_history_and_metadata() -> None:
    record = {
        "input": "q2",
        "reasoning_content": " t2 ",
        "content": "\na2",
        "score": 9,
        "repo_name": "xhs/xhs",
        "history": [["q1", "<think>t1</think>a1"]],
        "reference_answer": "42",
    }
    fmt, why = detect_format(record, "x:1")
    assert fmt.name == "r1_distill" and "reasoning_content" in why
    (sample,) = fmt.read(record)
    assert (sample.prompt, sample.thought, sample.answer) == ("q2", "t2", "a2")
    assert sample.history == [Turn(prompt="q1", answer="a1", thought="t1")]
    assert (sample.score, sample.source, sample.reference) == (9, "xhs/xhs", "42")


@pytest.mark.parametrize(
    ("record", "name"),
    [
        ({"problem": "p", "generations": ["<think>t</think>a"]}, "openr1"),
        ({"question": "q", "thinking_trajectories": ["t"], "attempt": "a"}, "s1k"),
        ({"Question": "q", "Complex_CoT": "t", "Response": "a"}, "medical_cot"),
        ({"messages": [{"role": "user", "content": "q"}]}, "messages"),
        ({"conversations": [{"from": "human", "value": "q"}]}, "sharegpt"),
        ({"instruction": "q", "output": "a"}, "alpaca"),
    ],
)
def test_detection(record: dict, name: str) -> None:
    assert detect_format(record, "x:1")[0].name == name


def test_undetectable_record_names_its_keys() -> None:
    with pytest.raises(UserError, match=r"x:1: cannot tell the format from the keys \[a, b\]"):
        detect_format({"b": 1, "a": 2}, "x:1")


def test_sharegpt_turn_order_is_checked() -> None:
    read = FORMATS["sharegpt"].read
    with pytest.raises(RecordError, match="second user message"):
        read({"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]})
    with pytest.raises(RecordError, match="does not end with an assistant"):
        read({"conversations": [{"from": "human", "value": "a"}]})
    with pytest.raises(RecordError, match="turn 0 is a tool call without a user message before it") as err:
        read({"conversations": [{"from": "function_call", "value": '{"name": "f", "arguments": {}}'}]})
    assert err.value.reason == "bad_turn_order"
    with pytest.raises(RecordError, match="role 'narrator'; supported: user, assistant, system"):
        read({"conversations": [{"from": "narrator", "value": "a"}]})


def test_column_mapping() -> None:
    fmt = resolve_reader("auto", ["prompt=Q", "thought=T", "answer=A", "score=S"])
    assert fmt is not None
    (sample,) = fmt.read({"Q": "q", "T": "t", "A": "a", "S": "7.5"})
    assert (sample.prompt, sample.thought, sample.answer, sample.score) == ("q", "t", "a", 7.5)


def test_verify_verdicts_feed_the_filters(tmp_path) -> None:
    """The output of `lf-reasoning verify` converts directly: wrong answers dropped, verified ones scored 10."""
    import json

    from lf_reasoning.commands.convert import ConvertOptions, convert
    from lf_reasoning.record.inputs import Inputs

    base = {"input": "q", "reasoning_content": "t", "content": "a"}
    rows = [
        {**base, "input": "right", "verify": {"method": "math_verify", "verdict": True, "score": 10}},
        {**base, "input": "wrong", "verify": {"method": "math_verify", "verdict": False, "score": 0}},
        {**base, "input": "unsure", "verify": {"method": "unverifiable", "verdict": None, "score": None}},
        {**base, "input": "judged", "score": 7, "verify": {"method": "math_verify", "verdict": True, "score": 10}},
    ]
    src = tmp_path / "verified.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = convert(ConvertOptions(Inputs((str(src),)), "v", tmp_path / "out"))
    assert report.written == 3 and report.filtered == {"failed_verification": 1}
    assert report.scores == {10: 1, 7: 1, 0: 1}
    report = convert(ConvertOptions(Inputs((str(src),)), "v", tmp_path / "out", require_verified=True, min_score=8))
    kept = [json.loads(x)["messages"][0]["content"] for x in (tmp_path / "out" / "v.jsonl").read_text().splitlines()]
    assert kept == ["right"]
