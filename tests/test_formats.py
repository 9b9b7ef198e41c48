"""Readers and detection on single records (the LLaMA-Factory side is covered in test_convert_shapes.py)."""

from __future__ import annotations

import pytest

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.formats import FORMATS, detect_format, resolve_reader
from lf_reasoning.sample import Turn


def test_r1_distill_keeps_history_and_metadata() -> None:
    record = {"input": "q2", "reasoning_content": " t2 ", "content": "\na2", "score": 9, "repo_name": "xhs/xhs",
              "history": [["q1", "<think>t1</think>a1"]], "reference_answer": "42"}
    fmt, why = detect_format(record, "x:1")
    assert fmt.name == "r1_distill" and "reasoning_content" in why
    (sample,) = fmt.read(record)
    assert (sample.prompt, sample.thought, sample.answer) == ("q2", "t2", "a2")
    assert sample.history == [Turn(prompt="q1", answer="a1", thought="t1")]
    assert (sample.score, sample.source, sample.reference) == (9, "xhs/xhs", "42")


@pytest.mark.parametrize(("record", "name"), [
    ({"problem": "p", "generations": ["<think>t</think>a"]}, "openr1"),
    ({"question": "q", "thinking_trajectories": ["t"], "attempt": "a"}, "s1k"),
    ({"Question": "q", "Complex_CoT": "t", "Response": "a"}, "medical_cot"),
    ({"messages": [{"role": "user", "content": "q"}]}, "messages"),
    ({"conversations": [{"from": "human", "value": "q"}]}, "sharegpt"),
    ({"instruction": "q", "output": "a"}, "alpaca"),
])
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
    with pytest.raises(RecordError, match="role 'function_call'"):
        read({"conversations": [{"from": "function_call", "value": "a"}]})


def test_column_mapping() -> None:
    fmt = resolve_reader("auto", ["prompt=Q", "thought=T", "answer=A", "score=S"])
    assert fmt is not None
    (sample,) = fmt.read({"Q": "q", "T": "t", "A": "a", "S": "7.5"})
    assert (sample.prompt, sample.thought, sample.answer, sample.score) == ("q", "t", "a", 7.5)
