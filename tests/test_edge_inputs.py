"""Inputs a new user hits by accident: files saved by Windows editors (a BOM, CRLF), an output that is a device or a
pipe, an API key pasted where its variable's name goes, a key read from a CRLF ``.env`` file."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import run
from openai_server import OpenAIServer, ServerConfig

from lf_reasoning.errors import EXIT_ERROR

BOM = "\ufeff"


def test_eval_reads_a_predictions_file_and_labels_saved_with_a_bom(tmp_path: Path) -> None:
    rows = [{"prompt": "标题：x\n", "predict": predict, "label": "体育"} for predict in ("体育", "财经", "体育")]
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(BOM + "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_text(BOM + "体育\r\n财经\r\n科技\r\n", encoding="utf-8")
    code, out = run("eval", str(predictions), "--task", "classify", "--labels", str(labels), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert (report["records"], report["scored"], report["invalid_lines"]) == (3, 3, []), report
    assert report["accuracy"] == pytest.approx(2 / 3)


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
def test_an_output_that_is_a_pipe_is_refused_and_left_alone(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"input": "1+1?", "content": "\\boxed{2}", "reference_answer": "2"}) + "\n")
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    code, out = run("verify", str(src), "--out", str(fifo))
    assert code == EXIT_ERROR and f"--out {fifo}: is not a regular file" in out, out
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # not replaced by a regular file


@pytest.fixture
def keyed_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(ServerConfig(api_key="sk-test-123")) as server:
        yield server


def test_a_key_given_as_the_variable_name_is_refused_and_never_shown(
    tmp_path: Path, keyed_server: OpenAIServer
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "What is 1 + 1?"}) + "\n")
    args = ["distill", str(src), "--out", str(tmp_path / "out.jsonl"), "--base-url", keyed_server.url, "--model", "m"]
    code, out = run(*args, "--api-key-env", "sk-proj-MISTAKE-abcdef123456")
    assert code == EXIT_ERROR and "--api-key-env takes the NAME of an environment variable" in out, out
    assert "MISTAKE" not in out and not keyed_server.requests


def test_a_key_with_a_crlf_line_end_is_sent_without_it(
    tmp_path: Path, keyed_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "What is 1 + 1?"}) + "\n")
    monkeypatch.setenv("MY_KEY", "sk-test-123\r\n")  # `export $(cat .env)` of a file saved on Windows
    out_file = tmp_path / "out.jsonl"
    args = ["distill", str(src), "--out", str(out_file), "--base-url", keyed_server.url, "--model", "m"]
    code, out = run(*args, "--api-key-env", "MY_KEY")
    assert code == 0, out
    assert len(out_file.read_text().splitlines()) == 1 and "sk-test-123" not in out
