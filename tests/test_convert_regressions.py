"""Regressions found by tests/test_convert_property.py: damaged compressed files, a JSON Lines file whose first
line is an array, a message role that is not a string. A file that cannot be read to its end is an error naming it
(nothing written, nothing lost unnoticed); one bad record rejects that record only."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import zstandard
from cli_runner import run

from lf_reasoning.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL

N = 3000  # records: a few hundred KB of text, so a cut lands inside the stream, past its first block


def records(n: int = N) -> bytes:
    return b"".join(
        json.dumps({"input": f"question {i} " * 20, "content": f"answer {i}", "reasoning_content": "t"}).encode()
        + b"\n"
        for i in range(n)
    )


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def convert(src: Path, out: Path, workers: str) -> tuple[int, str]:
    return run("convert", str(src), "--name", "d", "--dataset-dir", str(out), "--workers", workers, "--dedup", "off")


def _truncated_gzip() -> bytes:
    data = gzip.compress(records())
    return data[: len(data) // 2]


def _truncated_zstd() -> bytes:
    data = zstandard.ZstdCompressor().compress(records())
    return data[: len(data) // 2]  # zstandard's stream_reader used to end here quietly: half the records lost


def _zstd_cut_in_second_frame() -> bytes:
    c = zstandard.ZstdCompressor()
    second = c.compress(records()[: N // 2 * 50])
    return c.compress(records()) + second[: len(second) // 2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.jsonl.gz", _truncated_gzip, "Compressed file ended before the end-of-stream marker was reached"),
        ("in.jsonl.zst", _truncated_zstd, "compressed file ended before the end of its last Zstandard frame"),
        ("in.jsonl.zst", _zstd_cut_in_second_frame, "ended before the end of its last Zstandard frame"),
        ("in.jsonl.gz", lambda: b"not gzip at all\n", "Not a gzipped file"),  # was a BadGzipFile traceback
        ("in.jsonl.zst", lambda: b"not zstd at all\n", "not valid Zstandard data"),
        ("in.json.gz", _truncated_gzip, "Compressed file ended"),  # read whole, as a JSON array would be
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_damaged_compressed_file_is_an_error_naming_it(
    tmp_path: Path, name: str, content: object, message: str, workers: str
) -> None:
    src = tmp_path / name
    src.write_bytes(content())  # type: ignore[operator]
    out = tmp_path / "data"
    out.mkdir()
    (out / "dataset_info.json").write_text("{}\n")
    before = snapshot(out)
    code, output = convert(src, out, workers)
    assert code == EXIT_ERROR, output
    assert f"{src}: cannot read it: " in output and message in output, output
    assert "truncated or damaged: download or compress it again" in output
    assert "Traceback" not in output and "Aborted" not in output
    assert snapshot(out) == before  # nothing written, no temp file left


def test_zstd_file_of_several_frames_is_read_to_its_end(tmp_path: Path) -> None:
    data = records()
    cut = data.index(b"\n", len(data) // 2) - 10  # the second frame starts inside a line
    c = zstandard.ZstdCompressor()
    src = tmp_path / "in.jsonl.zst"
    src.write_bytes(c.compress(data[:cut]) + c.compress(data[cut:]))
    code, output = convert(src, tmp_path / "data", "2")
    assert code == EXIT_OK, output
    written = (tmp_path / "data" / "d.jsonl").read_bytes().count(b"\n")
    assert written == N


@pytest.mark.parametrize("first", [b"[1, 2]", b'[{"input": "q", "content": "a", "reasoning_content": "t"}]'])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_jsonl_whose_first_line_is_an_array_rejects_that_line_only(tmp_path: Path, first: bytes, workers: str) -> None:
    # a leading '[' used to make the whole file one JSON array: "invalid JSON at line 2", nothing converted
    src = tmp_path / "in.jsonl"
    src.write_bytes(first + b"\n" + records(300))
    code, output = convert(src, tmp_path / "data", workers)
    assert code == EXIT_PARTIAL, output
    assert (tmp_path / "data" / "d.jsonl").read_bytes().count(b"\n") == 300
    rejects = [json.loads(x) for x in (tmp_path / "data" / "d.rejects.jsonl").read_bytes().splitlines()]
    assert [(r["where"], r["reason"]) for r in rejects] == [(f"{src}:1", "not_an_object")]


def test_json_array_file_with_a_syntax_error_still_names_line_and_column(tmp_path: Path) -> None:
    src = tmp_path / "in.json"
    src.write_text('[\n  {"input": "q", "content": "a", "reasoning_content": "t"},\n]\n')
    code, output = convert(src, tmp_path / "data", "1")
    assert code == EXIT_ERROR
    assert f"{src}:2:59: invalid JSON: trailing comma" in output


@pytest.mark.parametrize("role", [{"name": "user"}, ["user"]])
def test_message_role_that_is_not_a_string_rejects_that_record(tmp_path: Path, role: object) -> None:
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    bad = {"messages": [{"role": role, "content": "q"}, {"role": "assistant", "content": "a"}]}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    code, output = convert(src, tmp_path / "data", "1")  # was: TypeError: unhashable type (a traceback)
    assert code == EXIT_PARTIAL, output
    rejects = [json.loads(x) for x in (tmp_path / "data" / "d.rejects.jsonl").read_bytes().splitlines()]
    assert [(r["where"], r["reason"]) for r in rejects] == [(f"{src}:2", "unsupported_role")]


OPENR1 = {"problem": "p", "answer": "1", "generations": ["<think>t</think>a", "<think>u</think>b"]}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"finish_reasons": 1}, "wrong_type"),  # was: TypeError: object of type 'int' has no len()
        ({"correctness_math_verify": {"0": True}}, "wrong_type"),  # was: KeyError: 0
    ],
)
def test_openr1_lists_of_the_wrong_type_reject_that_record(
    tmp_path: Path, fields: dict[str, object], reason: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(OPENR1) + "\n" + json.dumps({**OPENR1, "problem": "p2", **fields}) + "\n")
    code, output = convert(src, tmp_path / "data", "1")
    assert code == EXIT_PARTIAL, output
    assert (tmp_path / "data" / "d.jsonl").read_bytes().count(b"\n") == 2
    rejects = [json.loads(x) for x in (tmp_path / "data" / "d.rejects.jsonl").read_bytes().splitlines()]
    assert [(r["where"], r["reason"]) for r in rejects] == [(f"{src}:2", reason)]
    assert f"field '{next(iter(fields))}' is " in rejects[0]["detail"]


def test_openr1_with_fewer_verdicts_than_generations_is_read(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({**OPENR1, "verify": [{"verdict": True}]}) + "\n")
    code, output = convert(src, tmp_path / "data", "1")
    assert code == EXIT_OK, output  # the second generation has no verdict: kept, as without any
    assert (tmp_path / "data" / "d.jsonl").read_bytes().count(b"\n") == 2


def test_csv_row_is_located_by_the_line_it_starts_on(tmp_path: Path) -> None:
    # a quoted field may span lines; the row used to be located by its last line
    src = tmp_path / "in.csv"
    src.write_text(
        'Question,Complex_CoT,Response\n\nq1,"step 1\nstep 2\nstep 3",a1\nq2,"t2\nmore",a2,extra\nq3,"t3\n",a3\n'
    )
    code, output = convert(src, tmp_path / "data", "1")
    assert code == EXIT_PARTIAL, output
    rejects = [json.loads(x) for x in (tmp_path / "data" / "d.rejects.jsonl").read_bytes().splitlines()]
    assert [(r["where"], r["reason"]) for r in rejects] == [(f"{src}:6", "csv_columns")]
    assert "row has 4 fields, the header 3; quote a field that holds a comma" in rejects[0]["detail"]
    assert (tmp_path / "data" / "d.jsonl").read_bytes().count(b"\n") == 2
