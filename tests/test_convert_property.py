"""Property: whatever records of a JSON, JSON Lines or CSV input are corrupted, ``convert`` rejects exactly those,
each with its location, writes every other record once and in order, never raises, and writes the same files
with one worker and with two worker processes.

Each example is a folder holding one file of each kind, each in a random source shape (Alpaca, OpenAI messages
with ``reasoning_content``, R1 distill dump, medical CoT), 90-200 records built from a few random texts, with up
to 12 records corrupted: bad JSON, a truncated line, a non-object, invalid UTF-8 bytes, a field of the wrong type,
a missing field, an extra comma in a CSV row; given extra fields (still good); or blank lines (no record). JSON
Lines come with Unix or Windows line ends, plain, gzip- or Zstandard-compressed. The folder holds more than one
chunk of records (``commands.convert._CHUNK``), so ``--workers 2`` really sends them to worker processes.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import multiprocessing.process
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import zstandard
from cli_runner import run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lf_reasoning.commands.convert import _CHUNK, ConvertOptions, Kept, Rejected, process_chunk
from lf_reasoning.errors import EXIT_PARTIAL
from lf_reasoning.record.inputs import Inputs

SENTINEL = "\ue000"  # never generated: stands where invalid UTF-8 bytes are put once the file is encoded
BAD_BYTES = (b"\xff", b"\x80", b"\xc3(", b"\xed\xa0\x80")  # invalid byte, lone continuation, cut sequence, surrogate
# Any text but thought/answer markup (no '<' or '>') and not blank: every such record is good.
TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="<>" + SENTINEL), min_size=1, max_size=24
).filter(str.strip)
WRONG = (123, 4.5, True, False, ["x"], {"k": "v"})  # what a string field never is
EXTRA = (1, "x", None, [1, {"a": "b"}], {"nested": ["y"]}, False)
Path_ = tuple[str | int, ...]  # a path into a record: keys and list indexes


@dataclass(frozen=True)
class Content:
    """The random texts of one good record; ``side`` is the shape's optional extra field (Alpaca input,
    messages system prompt, R1 repo_name)."""

    prompt: str
    thought: str | None
    answer: str
    side: str
    form: int  # how Alpaca's output spells the thought
    score: int


@dataclass(frozen=True)
class Shape:
    name: str
    build: Callable[[Content], dict[str, Any]]
    expect: Callable[[Content], tuple[str, str, str]]  # (system, prompt, assistant) as convert writes them
    prompt: Path_  # where invalid UTF-8 is put
    strings: tuple[Path_, ...]  # string fields that can be given a wrong type
    required: tuple[Path_, ...]  # fields whose absence makes the record invalid
    csv: tuple[str, ...] = ()  # the CSV header; () when the shape cannot be a table
    numbers: tuple[Path_, ...] = ()  # numeric fields that can be given a wrong type


def response(thought: str | None, answer: str) -> str:
    """LLaMA-Factory's exact thought form, written independently of lf_reasoning.record.thoughts."""
    return answer.strip() if thought is None else f"<think>\n{thought.strip()}\n</think>\n\n{answer.strip()}"


def _thought(c: Content) -> str:
    return c.thought if c.thought is not None else "a thought"  # shapes whose thought field is required


def _alpaca(c: Content) -> dict[str, Any]:
    t, a = c.thought, c.answer
    forms = (f"<think>\n{t}\n</think>\n\n{a}", f"{t}</think>{a}", f"<think>{t}</think>\n{a}")
    return {"instruction": c.prompt, "input": c.side, "output": a if t is None else forms[c.form % 3]}


def _messages(c: Content) -> dict[str, Any]:
    assistant = {"role": "assistant", "content": c.answer}
    if c.thought is not None:
        assistant["reasoning_content"] = c.thought
    system = [{"role": "system", "content": c.side}] if c.side else []
    return {"messages": [*system, {"role": "user", "content": c.prompt}, assistant]}


SHAPES = (
    Shape(
        "alpaca",
        _alpaca,
        lambda c: ("", f"{c.prompt}\n{c.side}" if c.side else c.prompt, response(c.thought, c.answer)),
        ("instruction",),
        (("instruction",), ("input",), ("output",)),
        (("instruction",), ("output",)),
        csv=("instruction", "input", "output"),
    ),
    Shape(
        "messages",
        _messages,
        lambda c: (c.side, c.prompt, response(c.thought, c.answer)),
        ("messages", -2, "content"),
        (("messages",), ("messages", -2, "content"), ("messages", -1, "content"), ("messages", -2, "role")),
        (("messages",), ("messages", -1)),
    ),
    Shape(
        "r1_distill",
        lambda c: {
            "input": c.prompt,
            "content": c.answer,
            "reasoning_content": _thought(c),
            "score": c.score,
            "repo_name": c.side,
        },
        lambda c: ("", c.prompt, response(_thought(c), c.answer)),
        ("input",),
        (("input",), ("content",), ("reasoning_content",)),
        (("input",), ("content",)),
        csv=("input", "content", "reasoning_content", "score", "repo_name"),
        numbers=(("score",),),
    ),
    Shape(
        "medical_cot",
        lambda c: {"Question": c.prompt, "Complex_CoT": _thought(c), "Response": c.answer},
        lambda c: ("", c.prompt, response(_thought(c), c.answer)),
        ("Question",),
        (("Question",), ("Complex_CoT",), ("Response",)),
        (("Question",), ("Complex_CoT",), ("Response",)),
        csv=("Question", "Complex_CoT", "Response"),
    ),
)

# Corruptions per container, and the reasons convert may give for each (extra_fields: the record stays good;
# blank: an empty or whitespace-only line, which is no record).
KINDS = {
    "json": ("non_object", "wrong_type", "missing", "extra_fields"),
    "jsonl": ("bad_json", "truncated", "non_object", "invalid_utf8", "wrong_type", "missing", "extra_fields", "blank"),
    "csv": ("extra_comma", "truncated", "invalid_utf8", "wrong_type", "blank"),
}
REASONS = {
    "bad_json": {"invalid_json"},
    "truncated": {"invalid_json", "invalid_utf8", "missing_field"},  # a JSON line cut short; a CSV row of one cell
    "non_object": {"not_an_object"},
    "invalid_utf8": {"invalid_utf8"},
    "wrong_type": {"wrong_type", "unsupported_role"},
    "missing": {"missing_field", "bad_turn_order"},
    "extra_comma": {"csv_columns"},
}
# Corruptions that leave no object: the format is detected on a file's first object, which must stay readable.
NOT_OBJECTS = {"bad_json", "non_object", "invalid_utf8", "extra_comma", "blank"}
BAD_JSON = (b"{broken", b"{'single': 'quotes'}", b'{"a": 1,}', b"not json", b'{"a": NaN}', b'{"a" 1}')
NON_OBJECTS: tuple[object, ...] = (5, "text", [1, 2], None, True, 4.5, [{"instruction": "q"}])


@dataclass(frozen=True)
class FileSpec:
    container: str  # json | jsonl | csv
    shape: Shape
    pool: tuple[Content, ...]  # record i holds pool[i % len(pool)]
    n: int
    bad: dict[int, tuple[str, int]]  # index → (corruption, variant picking the field, value or bytes)
    crlf: bool  # JSON Lines written with Windows line ends
    compression: str  # JSON Lines: "", ".gz" or ".zst"
    ascii: bool  # JSON written with \uXXXX escapes rather than UTF-8

    @property
    def records(self) -> int:
        """How many records convert must report read (a blank line is none)."""
        return self.n - sum(kind == "blank" for kind, _ in self.bad.values())


contents = st.builds(
    Content,
    prompt=TEXT,
    thought=st.none() | TEXT,
    answer=TEXT,
    side=st.just("") | TEXT,
    form=st.integers(0, 2),
    score=st.integers(0, 10),
)


@st.composite
def file_specs(draw: st.DrawFn, container: str) -> FileSpec:
    shape = draw(st.sampled_from([s for s in SHAPES if container != "csv" or s.csv]))
    kinds = [k for k in KINDS[container] if not (container == "csv" and k == "wrong_type" and not shape.numbers)]
    n = draw(st.integers(90, 200))
    bad = draw(
        st.dictionaries(st.integers(0, n - 1), st.tuples(st.sampled_from(kinds), st.integers(0, 1 << 16)), max_size=12)
    )
    not_objects = NOT_OBJECTS | ({"truncated"} if container == "jsonl" else set())
    objects = [i for i in sorted(bad) if bad[i][0] not in not_objects]
    first_good = next((i for i in range(n) if i not in bad), n)
    if objects and objects[0] < first_good and bad[objects[0]][0] != "extra_fields":
        del bad[objects[0]]  # corrupt fields in the first object would make the whole file undetectable
    pool = tuple(draw(st.lists(contents, min_size=1, max_size=4)))
    compression = draw(st.sampled_from(("", ".gz", ".zst"))) if container == "jsonl" else ""
    return FileSpec(
        container, shape, pool, n, bad, crlf=draw(st.booleans()), compression=compression, ascii=draw(st.booleans())
    )


def _set(record: dict[str, Any], path: Path_, value: object) -> None:
    *parents, last = path
    node: Any = record
    for key in parents:
        node = node[key]
    node[last] = value


def _delete(record: dict[str, Any], path: Path_) -> None:
    *parents, last = path
    node: Any = record
    for key in parents:
        node = node[key]
    del node[last]


def _corrupt_fields(spec: FileSpec, record: dict[str, Any], kind: str, v: int) -> dict[str, Any]:
    """A copy of ``record`` with a field of the wrong type, a field missing, extra fields, or the sentinel."""
    record, shape = copy.deepcopy(record), spec.shape
    if kind == "wrong_type":
        if spec.container == "csv":  # every CSV cell is text: only a number column can hold the wrong thing
            _set(record, shape.numbers[v % len(shape.numbers)], "high")
        elif shape.numbers and v % 4 == 0:
            _set(record, shape.numbers[0], ("high", True, [1], {"k": "v"})[v // 4 % 4])
        else:
            _set(record, shape.strings[v % len(shape.strings)], WRONG[v % len(WRONG)])
    elif kind == "missing":
        _delete(record, shape.required[v % len(shape.required)])
    elif kind == "extra_fields":
        record[f"x_extra_{v % 97}"] = EXTRA[v % len(EXTRA)]
        if "messages" in record and v % 2:
            record["messages"][-1]["x_note"] = EXTRA[(v // 2) % len(EXTRA)]
    elif kind == "invalid_utf8":
        node: Any = record
        for key in shape.prompt:
            node = node[key]
        _set(record, shape.prompt, node[: v % (len(node) + 1)] + SENTINEL + node[v % (len(node) + 1) :])
    return record


def _encode(text: str, v: int) -> bytes:
    return text.encode().replace(SENTINEL.encode(), BAD_BYTES[v % len(BAD_BYTES)])


def write_file(spec: FileSpec, path: Path) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """Write the file; return what convert must write for its good records, in order, and the location of
    every bad record with its corruption."""
    good: list[tuple[str, str, str]] = []
    bad: dict[str, str] = {}
    items: list[Any] = []  # JSON items, JSON Lines lines (bytes), or CSV rows (bytes)
    line = 2  # CSV: the line a row starts on (after the header)
    if spec.container == "csv":
        items.append(",".join(spec.shape.csv).encode() + b"\r\n")
    for i in range(spec.n):
        content = spec.pool[i % len(spec.pool)]
        record = spec.shape.build(content)
        kind, v = spec.bad.get(i, ("good", 0))
        if kind in ("good", "extra_fields"):
            good.append(spec.shape.expect(content))
        if kind in ("wrong_type", "missing", "extra_fields", "invalid_utf8"):
            record = _corrupt_fields(spec, record, kind, v)
        if spec.container == "json":
            items.append(NON_OBJECTS[v % len(NON_OBJECTS)] if kind == "non_object" else record)
            where = f"{path}#{i}"
        elif spec.container == "jsonl":
            data = _encode(json.dumps(record, ensure_ascii=spec.ascii and kind != "invalid_utf8"), v)
            if kind == "bad_json":
                data = BAD_JSON[v % len(BAD_JSON)] if v % 3 else data + b" trailing"
            elif kind == "truncated":
                data = data[: 1 + v % (len(data) - 1)]
            elif kind == "non_object":
                data = json.dumps(NON_OBJECTS[v % len(NON_OBJECTS)]).encode()
            elif kind == "blank":
                data = (b"", b"  ", b"\t")[v % 3]
            items.append(data)
            where = f"{path}:{i + 1}"
        else:
            cells = [str(record.get(column, "")) for column in spec.shape.csv]
            if kind == "truncated":
                cells = cells[:1]
            elif kind == "extra_comma":
                cells.append("")
            buffer = io.StringIO()
            csv.writer(buffer).writerow(cells)
            row = buffer.getvalue() if kind != "blank" else "\r\n"
            items.append(_encode(row, v))
            where = f"{path}:{line}"
            line += len(re.findall(r"\r\n|\r|\n", row))  # the line breaks Python's csv module counts
        if kind not in ("good", "extra_fields", "blank"):
            bad[where] = kind
    if spec.container == "json":
        path.write_text(json.dumps(items, ensure_ascii=spec.ascii), encoding="utf-8")
    elif spec.container == "jsonl":
        truncated_last = spec.bad.get(spec.n - 1, ("",))[0] == "truncated"
        end = b"\r\n" if spec.crlf else b"\n"
        data = end.join(items) + (b"" if truncated_last else end)  # a file cut off mid-record
        if spec.compression == ".gz":
            data = gzip.compress(data)
        elif spec.compression == ".zst":
            data = zstandard.ZstdCompressor().compress(data)
        path.write_bytes(data)
    else:
        path.write_bytes(b"".join(items))
    return good, bad


def read_jsonl(path: Path) -> list[Any]:
    # split on "\n" only: str.splitlines() also breaks at the U+2028, U+0085, … a JSON string may hold
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


def written(data_file: Path) -> list[tuple[str, str, str]]:
    records = read_jsonl(data_file)
    out = []
    for record in records:
        messages = record["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"], record
        out.append((record["system"], messages[0]["content"], messages[1]["content"]))
    return out


def convert(src: Path, out_dir: Path, workers: int) -> tuple[int, str, int]:
    """Exit code, output and worker processes started by one ``lf-reasoning convert`` run."""
    start = multiprocessing.process.BaseProcess.start
    with mock.patch.object(multiprocessing.process.BaseProcess, "start", autospec=True, side_effect=start) as spy:
        code, out = run(
            "convert", str(src), "--name", "prop", "--dataset-dir", str(out_dir),
            "--workers", str(workers), "--dedup", "off",
        )  # fmt: skip
    return code, out, spy.call_count


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
@given(json_spec=file_specs("json"), jsonl_spec=file_specs("jsonl"), csv_spec=file_specs("csv"))
def test_corrupted_records_are_rejected_with_their_location_and_nothing_else_is_lost(
    json_spec: FileSpec, jsonl_spec: FileSpec, csv_spec: FileSpec
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        good: list[tuple[str, str, str]] = []
        bad: dict[str, str] = {}
        for name, spec in (("a.json", json_spec), ("b.jsonl", jsonl_spec), ("c.csv", csv_spec)):  # sorted: read order
            file_good, file_bad = write_file(spec, src / (name + spec.compression))
            for kind, _ in spec.bad.values():
                event(f"{spec.container}{spec.compression}: {kind}")  # --hypothesis-show-statistics lists them
            good += file_good
            bad |= file_bad
        total = json_spec.records + jsonl_spec.records + csv_spec.records
        assert total > _CHUNK  # several chunks: --workers 2 leaves the in-process path

        outputs = {}
        for workers in (1, 2):
            out_dir = Path(tmp) / f"out{workers}"
            code, out, started = convert(src, out_dir, workers)
            assert code == (EXIT_PARTIAL if bad else 0), out
            assert "Traceback" not in out
            assert started == (2 if workers == 2 else 0), out
            assert re.search(rf"^read\s+{total}\b", out, re.M), out
            assert written(out_dir / "prop.jsonl") == good  # every good record once, in input order
            rejects_file = out_dir / "prop.rejects.jsonl"
            rejects = read_jsonl(rejects_file) if bad else []
            assert bad or not rejects_file.exists()
            assert sorted(r["where"] for r in rejects) == sorted(bad), out  # each bad record once, located
            for r in rejects:
                assert r["reason"] in REASONS[bad[r["where"]]], r
                assert r["detail"] and r["where"] in out  # the warning names it too
            outputs[workers] = ((out_dir / "prop.jsonl").read_bytes(), rejects_file.read_bytes() if bad else b"")
        assert outputs[1] == outputs[2]


# One record of every shape convert reads, with every optional part filled in: the mutations below start here.
FULL_RECORDS: dict[str, dict[str, Any]] = {
    "alpaca": {"instruction": "q", "input": "i", "output": "<think>t</think>a", "system": "s", "history": [["q", "a"]]},
    "messages": {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q", "info": {"reference_answer": "1", "source": "x"}},
            {"role": "assistant", "content": "a", "reasoning_content": "t", "info": {"think_content": "t"}},
        ]
    },
    "sharegpt": {
        "system": "s",
        "conversations": [
            {"from": "human", "value": "q"},
            {
                "from": "gpt",
                "value": "<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>a<|end_of_solution|>",
            },
        ],
    },
    "r1_distill": {"input": "q", "content": "a", "reasoning_content": "t", "score": 9, "repo_name": "r"},
    "openr1": {
        "problem": "p",
        "answer": "1",
        "generations": ["<think>t</think>a", "t</think>b"],
        "correctness_math_verify": [True, False],
        "finish_reasons": ["stop", "length"],
        "uuid": "u",
        "source": "s",
        "verify": [{"verdict": True, "score": 10}, {"verdict": False}],
    },
    "s1k": {"question": "q", "thinking_trajectories": ["t"], "attempt": "a", "solution": "s", "source_type": "x"},
    "medical_cot": {"Question": "q", "Complex_CoT": "t", "Response": "a"},
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["role", "content", "x"]), inner),
    max_leaves=6,
)


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [prefix, *(p for key, child in children for p in _paths(child, (*prefix, key)))]


@st.composite
def mutated_records(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A full record of one shape with 1-3 of its parts (a field, a turn, a list item) replaced or deleted."""
    name = draw(st.sampled_from(sorted(FULL_RECORDS)))
    record = copy.deepcopy(FULL_RECORDS[name])
    for _ in range(draw(st.integers(1, 3))):
        if not record:
            break
        path = draw(st.sampled_from(_paths(record)[1:]))
        *parents, last = path
        node: Any = record
        for key in parents:
            node = node[key]
        if isinstance(node, dict) and draw(st.booleans()):
            del node[last]
        else:
            node[last] = draw(JSON_VALUES)
    return name, record


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
@given(case=mutated_records())
def test_any_damage_to_a_known_shape_is_read_or_rejected_never_raised(case: tuple[str, dict[str, Any]]) -> None:
    """What a worker runs on each record (``process_chunk``): any field of any type, any part missing, gives a
    record written or rejected with a reason, never an exception (which would abort the whole run)."""
    name, record = case
    options = ConvertOptions(Inputs(("in.jsonl",)), "prop", Path("unused"), dedup="off")
    for outcome in process_chunk(options, [("in.jsonl:1", record, name)]):
        assert isinstance(outcome, Kept) or (isinstance(outcome, Rejected) and outcome.reason and outcome.detail)
