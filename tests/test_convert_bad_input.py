"""Bad input: a clear message with file and line, the right exit code, and nothing existing changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import run as run_cli

from lf_reasoning.errors import EXIT_INTERRUPTED, EXIT_PARTIAL

GOOD = {"input": "q", "content": "a", "reasoning_content": "t", "score": 9, "repo_name": "s"}
OTHER_ENTRY = {"mine": {"file_name": "mine.json", "columns": {"prompt": "q", "response": "r"}, "ranking": False}}


def run(*args: str) -> tuple[int, str]:
    return run_cli("convert", *args)


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A dataset_dir that already holds a user's registry and data file."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "dataset_info.json").write_text(json.dumps(OTHER_ENTRY, indent=4) + "\n")
    (d / "mine.json").write_text('[{"q": "x", "r": "y"}]')
    return d


def jsonl(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


def test_one_malformed_line_is_rejected_not_fatal(tmp_path: Path, data_dir: Path) -> None:
    lines = [json.dumps(GOOD), '{"input": "q2", "content": ', json.dumps({**GOOD, "input": "q3"})]
    src = jsonl(tmp_path / "in.jsonl", lines)
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == EXIT_PARTIAL, out
    assert f"{src}:2" in out and "invalid JSON" in out
    assert len((data_dir / "r1.jsonl").read_text().splitlines()) == 2
    rejects = [json.loads(x) for x in (data_dir / "r1.rejects.jsonl").read_text().splitlines()]
    assert [(r["where"], r["reason"]) for r in rejects] == [(f"{src}:2", "invalid_json")]
    info = json.loads((data_dir / "dataset_info.json").read_text())
    assert info["mine"] == OTHER_ENTRY["mine"] and "r1" in info


def test_strict_stops_and_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    before = snapshot(data_dir)
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD), "not json"])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir), "--strict")
    assert code == 1
    assert f"{src}:2" in out and "--strict" in out
    assert snapshot(data_dir) == before  # no data file, no temp file, registry untouched


@pytest.mark.parametrize(
    ("record", "reason", "field"),
    [
        ({**GOOD, "input": 123}, "wrong_type", "input"),
        ({**GOOD, "score": "high"}, "wrong_type", "score"),
        ({k: v for k, v in GOOD.items() if k != "content"}, "missing_field", "content"),
        (
            {**GOOD, "content": "<think>a</think><think>b</think>c", "reasoning_content": None},
            "multiple_thoughts",
            "content",
        ),
    ],
)
def test_bad_field_rejects_that_record(tmp_path: Path, data_dir: Path, record: dict, reason: str, field: str) -> None:
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD), json.dumps(record)])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir), "--format", "r1_distill")
    assert code == EXIT_PARTIAL
    assert f"{src}:2" in out and f"'{field}'" in out
    rejects = [json.loads(x) for x in (data_dir / "r1.rejects.jsonl").read_text().splitlines()]
    assert rejects[0]["reason"] == reason and rejects[0]["record"] == record


def test_invalid_utf8_line(tmp_path: Path, data_dir: Path) -> None:
    bad = b'{"input": "\xff\xfe", "content": "a", "reasoning_content": "t"}'
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD), bad])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == EXIT_PARTIAL
    assert f"{src}:2" in out and "UTF-8" in out
    assert "invalid_utf8" in (data_dir / "r1.rejects.jsonl").read_text()


def test_bom_and_crlf_are_read_transparently(tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [json.dumps(GOOD).encode(), json.dumps({**GOOD, "input": "q2"}).encode()]
    src.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 0, out
    rows = [json.loads(x) for x in (data_dir / "r1.jsonl").read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in rows] == ["q", "q2"]
    assert "\r" not in (data_dir / "r1.jsonl").read_text()


def test_bom_csv(tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"\xef\xbb\xbfQuestion,Complex_CoT,Response\r\nq,t,a\r\n")
    code, out = run(str(src), "--name", "cot", "--dataset-dir", str(data_dir))
    assert code == 0, out
    assert "medical_cot" in out
    assert json.loads((data_dir / "cot.jsonl").read_text())["messages"][1]["content"] == "<think>\nt\n</think>\n\na"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"\n\r\n  \n", "file is empty"),
        (b"[]", "empty JSON array"),
    ],
)
def test_empty_file(tmp_path: Path, data_dir: Path, content: bytes, message: str) -> None:
    before = snapshot(data_dir)
    src = tmp_path / "in.json"
    src.write_bytes(content)
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 1
    assert str(src) in out and message in out
    assert snapshot(data_dir) == before


def test_broken_json_array_names_line_and_column(tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "in.json"
    src.write_text('[\n  {"Question": "q", "Complex_CoT": "t", "Response": "a"},\n  {"Question": oops}\n]')
    code, out = run(str(src), "--name", "cot", "--dataset-dir", str(data_dir))
    assert code == 1
    assert f"{src}:3:" in out and "invalid JSON" in out


def test_missing_required_column_everywhere(tmp_path: Path, data_dir: Path) -> None:
    before = snapshot(data_dir)
    src = jsonl(tmp_path / "in.jsonl", [json.dumps({"question_text": "q", "answer_text": "a"})])
    code, out = run(str(src), "--name", "x", "--dataset-dir", str(data_dir))
    assert code == 1
    assert "cannot tell the format" in out and "question_text" in out and "--map" in out
    assert snapshot(data_dir) == before
    code, out = run(
        str(src),
        "--name",
        "x",
        "--dataset-dir",
        str(data_dir),
        "--map",
        "prompt=question_text",
        "--map",
        "answer=missing_col",
    )
    assert code == 1  # refused on the first record, before anything is written
    assert "--map cannot read this file: field 'missing_col' is missing" in out
    assert "its columns are [answer_text, question_text]" in out
    assert "--map prompt=question_text --map answer=answer_text" in out
    assert json.loads((data_dir / "dataset_info.json").read_text()) == OTHER_ENTRY
    assert not (data_dir / "x.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "nope"], "unknown format 'nope'"),
        (["--map", "prompt"], "expected FIELD=COLUMN"),
        (["--map", "question=Q", "--map", "answer=A"], "unknown field 'question'"),
        (["--format", "alpaca", "--map", "prompt=Q", "--map", "answer=A"], "cannot be combined"),
        (["--max-tokens", "100"], "--max-tokens needs --tokenizer"),
        (["--name", "a/b"], "--name 'a/b'"),
    ],
)
def test_bad_options(tmp_path: Path, data_dir: Path, args: list[str], message: str) -> None:
    before = snapshot(data_dir)
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir), *args)
    assert code != 0
    assert message in out
    assert snapshot(data_dir) == before


def test_missing_source(tmp_path: Path, data_dir: Path) -> None:
    code, out = run(str(tmp_path / "nope.jsonl"), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 1 and "no such file or directory" in out


def test_hub_name_offline_fails_clearly(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # so "someone/dataset" is not a local path
    before = snapshot(data_dir)
    code, out = run("someone/dataset", "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 1
    assert "someone/dataset" in out and "Hugging Face Hub" in out
    assert snapshot(data_dir) == before


def test_unwritable_output_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(blocker / "data"))
    assert code == 1
    assert "cannot create" in out and str(blocker / "data") in out
    assert blocker.read_text() == "x"


def test_unreadable_registry_is_never_overwritten(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "dataset_info.json").write_text('{"mine": {"file_name": "mine.json",}}')
    before = snapshot(data_dir)
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 1
    assert "dataset_info.json:1:" in out and "invalid JSON" in out
    assert snapshot(data_dir) == before


def test_existing_entry_is_refused_unless_force(tmp_path: Path, data_dir: Path) -> None:
    before = snapshot(data_dir)
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    code, out = run(str(src), "--name", "mine", "--dataset-dir", str(data_dir))
    assert code == 1 and "already has a different entry 'mine'" in out and "--force" in out
    assert snapshot(data_dir) == before
    code, out = run(str(src), "--name", "mine", "--dataset-dir", str(data_dir), "--force")
    assert code == 0, out
    assert json.loads((data_dir / "dataset_info.json").read_text())["mine"]["file_name"] == "mine.jsonl"


def test_unregistered_data_file_is_not_overwritten(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "r1.jsonl").write_text("precious\n")
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 1 and "not registered" in out
    assert (data_dir / "r1.jsonl").read_text() == "precious\n"


def test_rerun_same_name_keeps_other_entries_meaning_equal(tmp_path: Path, data_dir: Path) -> None:
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    for _ in range(2):
        code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
        assert code == 0, out
    info = json.loads((data_dir / "dataset_info.json").read_text())
    assert list(info) == ["mine", "r1"] and info["mine"] == OTHER_ENTRY["mine"]


def test_ctrl_c_mid_run_leaves_previous_state(tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "big.jsonl"
    line = json.dumps({**GOOD, "reasoning_content": "x" * 3000}).encode()
    with open(src, "wb") as f:
        for i in range(60_000):
            f.write(line.replace(b'"q"', b'"q%d"' % i) + b"\n")
    before = snapshot(data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lf_reasoning", "convert", str(src), "--name", "big", "--dataset-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # a shell running us in the background may have set SIGINT to "ignore"
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".big.jsonl.") for p in data_dir.iterdir()):
        time.sleep(0.05)
    time.sleep(0.3)  # let it write for a while
    assert proc.poll() is None, "finished before it could be interrupted; make the input bigger"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, out.decode()
    assert b"interrupted: no file was replaced" in out and b"Traceback" not in out
    assert snapshot(data_dir) == before  # no partial data file, no temp file, same registry


def test_written_files_get_normal_permissions(tmp_path: Path, data_dir: Path) -> None:
    """Temp files are created 0600; what is renamed into place must be readable like any file the user writes."""
    (data_dir / "dataset_info.json").chmod(0o640)
    src = jsonl(tmp_path / "in.jsonl", [json.dumps(GOOD)])
    code, out = run(str(src), "--name", "r1", "--dataset-dir", str(data_dir))
    assert code == 0, out
    assert (data_dir / "dataset_info.json").stat().st_mode & 0o777 == 0o640  # kept
    umask = os.umask(0)
    os.umask(umask)
    assert (data_dir / "r1.jsonl").stat().st_mode & 0o777 == 0o666 & ~umask


# Inputs of several chunks leave the in-process path: the bad record is read in this process and travels to a
# worker process (RecordError must survive pickling), as with the default one worker per CPU.
BIG = 300


def _big_json_array(path: Path) -> Path:
    items: list[object] = [{**GOOD, "input": f"q{i}"} for i in range(BIG)]
    items[150] = ["not", "an", "object"]
    path.write_text(json.dumps(items))
    return path


def _big_csv(path: Path) -> Path:
    rows = ["question,thought,answer", *(f"q{i},t{i},a{i}" for i in range(BIG))]
    rows[151] = "q150,t150,a150,extra"
    path.write_text("\n".join(rows) + "\n")
    return path


def _big_jsonl_bad_first_line(path: Path) -> Path:
    return jsonl(path, ["{broken", *(json.dumps({**GOOD, "input": f"q{i}"}) for i in range(BIG))])


@pytest.mark.parametrize(
    "make,suffix,extra,where,reason",
    [
        (_big_json_array, ".json", [], "#150", "not_an_object"),
        (
            _big_csv,
            ".csv",
            ["--map", "prompt=question", "--map", "thought=thought", "--map", "answer=answer"],
            ":152",
            "csv_columns",
        ),
        (_big_jsonl_bad_first_line, ".jsonl", [], ":1", "invalid_json"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_one_bad_record_in_a_big_file_is_rejected_on_the_worker_path(
    tmp_path: Path, make: object, suffix: str, extra: list[str], where: str, reason: str, workers: str
) -> None:
    src = make(tmp_path / f"in{suffix}")  # type: ignore[operator]
    out_dir = tmp_path / "data"
    code, out = run(str(src), "--name", "big", "--dataset-dir", str(out_dir), "--workers", workers, *extra)
    assert code == EXIT_PARTIAL, out
    assert len((out_dir / "big.jsonl").read_text().splitlines()) == BIG - (0 if suffix == ".jsonl" else 1)
    rejects = [json.loads(x) for x in (out_dir / "big.rejects.jsonl").read_text().splitlines()]
    assert [(r["where"], r["reason"]) for r in rejects] == [(f"{src}{where}", reason)]
