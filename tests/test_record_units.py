"""Table-driven unit tests of the record package's pure pieces: markup, fields, filters, render, dedup keys, inputs.

The end-to-end suites check what LLaMA-Factory makes of the output; these tables pin each rule on its own.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record import markup
from lf_reasoning.record.filters import SampleFilter, dedup_digest, normalize_prompt
from lf_reasoning.record.formats import fields
from lf_reasoning.record.inputs import Inputs
from lf_reasoning.record.render import response_text, to_record
from lf_reasoning.record.sample import ReasoningSample, Turn
from lf_reasoning.record.thoughts import split_thought


@pytest.mark.parametrize("tag", [tag for pair in markup.THOUGHT_TAGS for tag in pair])
def test_has_markup_finds_every_thought_tag(tag: str) -> None:
    assert markup.has_markup(f"before {tag} after")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("plain answer", False),
        ("a <b>bold</b> answer", False),
        ("x < y and y > z: think about it", False),
        ("<answer>42</answer>", False),  # answer wrappers are not thought markup
        ("<think>", True),
        ("</reasoning>", True),
        ("<|end_of_thought|>", True),
    ],
)
def test_has_markup(text: str, expected: bool) -> None:
    assert markup.has_markup(text) is expected


def test_written_form_is_what_split_reads_back() -> None:
    assert split_thought(markup.THOUGHT_OPEN + "T" + markup.THOUGHT_CLOSE + "A") == ("T", "A")
    assert split_thought(markup.EMPTY_THOUGHT + "A") == ("", "A")


@pytest.mark.parametrize(
    "record,key,required,expected",
    [
        ({"a": "x"}, "a", True, "x"),
        ({"a": None}, "a", False, None),
        ({}, "a", False, None),
        ({}, "a", True, RecordError("missing_field", "")),
        ({"a": 3}, "a", True, RecordError("wrong_type", "")),
    ],
)
def test_fields_text(record: dict[str, Any], key: str, required: bool, expected: Any) -> None:
    if isinstance(expected, RecordError):
        with pytest.raises(RecordError) as err:
            fields.text(record, key, required=required)
        assert err.value.reason == expected.reason and f"'{key}'" in err.value.detail
    else:
        assert fields.text(record, key, required=required) == expected


@pytest.mark.parametrize(
    "value,expected",
    [(9, 9), (8.5, 8.5), ("7", 7.0), ("", None), (None, None), (True, "wrong_type"), ("high", "wrong_type")],
)
def test_fields_number(value: Any, expected: Any) -> None:
    if expected == "wrong_type":
        with pytest.raises(RecordError, match="expected a number"):
            fields.number({"score": value}, "score")
    else:
        assert fields.number({"score": value}, "score") == expected


def sample(**kw: Any) -> ReasoningSample:
    return ReasoningSample(**{"prompt": "q", "thought": "t", "answer": "a", **kw})


@pytest.mark.parametrize(
    "keep,s,reason",
    [
        (SampleFilter(), sample(), None),
        (SampleFilter(), sample(answer="  "), "empty_answer"),
        (SampleFilter(), sample(thought=" "), "empty_thought"),
        (SampleFilter(think="empty"), sample(thought=" "), None),
        (SampleFilter(), sample(thought=None), None),  # plain instruction data
        (SampleFilter(), sample(answer="y <reasoning>z</reasoning>"), "stray_markup"),
        (SampleFilter(), sample(thought="a </think> b"), "stray_markup"),
        (SampleFilter(), sample(meta={"finish_reason": "length"}), "unfinished"),
        (SampleFilter(), sample(meta={"verified": False}), "failed_verification"),
        (SampleFilter(require_verified=True), sample(), "unverified"),
        (SampleFilter(require_verified=True), sample(meta={"verified": True}), None),
        (SampleFilter(min_score=8), sample(score=None), "no_score"),
        (SampleFilter(min_score=8), sample(score=7.5), "score_below_min"),
        (SampleFilter(min_score=8), sample(score=8), None),
    ],
)
def test_sample_filter(keep: SampleFilter, s: ReasoningSample, reason: str | None) -> None:
    error = keep(s)
    assert (error.reason if error else None) == reason


@pytest.mark.parametrize(
    "a,b,dedup,same",
    [
        ("What is 2+2?", "what  is 2+2?", "prompt", True),
        ("ＡＢＣ", "abc", "prompt", True),  # full-width forms fold
        ("What is 2+2?", "what  is 2+2?", "conversation", True),
        ("What is 2+2?", "what  is 2+2?", "exact", False),
        ("q", "q", "off", None),
    ],
)
def test_dedup_digest(a: str, b: str, dedup: Any, same: bool | None) -> None:
    da, db = dedup_digest(sample(prompt=a), dedup), dedup_digest(sample(prompt=b), dedup)
    assert (None if da is None else da == db) == same


def test_dedup_digest_covers_system_and_history() -> None:
    base = sample(history=[Turn("first", "x")])
    for mode in ("prompt", "conversation", "exact"):
        assert dedup_digest(base, mode) != dedup_digest(sample(history=[Turn("other", "x")]), mode)
        assert dedup_digest(base, mode) != dedup_digest(sample(history=[Turn("first", "x")], system="s"), mode)
    assert normalize_prompt(" A\u3000B ") == "a b"


@pytest.mark.parametrize(
    "thought,think,expected",
    [
        ("T", "keep", "<think>\nT\n</think>\n\nA"),
        (None, "keep", "A"),
        ("T", "drop", "A"),
        ("T", "empty", "<think>\n\n</think>\n\nA"),
        (None, "empty", "<think>\n\n</think>\n\nA"),
    ],
)
def test_response_text(thought: str | None, think: Any, expected: str) -> None:
    assert response_text(thought, "A", think) == expected


def test_to_record_layouts() -> None:
    s = sample(system="S", history=[Turn("q0", "a0", "t0")])
    assert to_record(s, "keep", "sharegpt") == {
        "messages": [
            {"role": "user", "content": "q0"},
            {"role": "assistant", "content": "<think>\nt0\n</think>\n\na0"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "<think>\nt\n</think>\n\na"},
        ],
        "system": "S",
    }
    assert to_record(s, "drop", "alpaca") == {
        "instruction": "q",
        "input": "",
        "output": "a",
        "system": "S",
        "history": [["q0", "a0"]],
    }


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"fmt": "nope"}, "unknown format 'nope'"),
        ({"fmt": "columns"}, "needs --map"),
        ({"fmt": "alpaca", "mapping": ("prompt=q", "answer=a")}, "cannot be combined"),
        ({"mapping": ("prompt=q",)}, "--map needs answer"),
        ({"mapping": ("answer=a",), "prompts": True}, "--map needs prompt=COLUMN"),
        ({"mapping": ("question=q", "answer=a")}, "unknown field 'question'"),
        ({"mapping": ("prompt",)}, "expected FIELD=COLUMN"),
    ],
)
def test_inputs_refuse_bad_options_at_once(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        Inputs(("x.jsonl",), **kwargs)


def test_inputs_pickle_without_their_reader() -> None:
    """Worker processes receive the options and rebuild the (closure-holding) --map reader themselves."""
    inputs = Inputs(("x.csv",), mapping=("prompt=q", "answer=a"))
    assert inputs.forced is not None
    copy = pickle.loads(pickle.dumps(inputs))
    assert copy == inputs and copy.reader("columns").read({"q": "Q", "a": "A"})[0].answer == "A"
    assert Inputs(("x",), mapping=("prompt=q",), prompts=True).forced.prompt({"q": "Q"}).prompt == "Q"  # type: ignore[union-attr]


def test_record_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(RecordError("not_an_object", "item is a JSON list")))
    assert (err.reason, err.detail) == ("not_an_object", "item is a JSON list")
