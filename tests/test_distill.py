"""`distill` against a real HTTP server (tests/openai_server.py on loopback): reply styles, streaming, faults,
resuming after kill -9, key hygiene, and the output feeding `convert`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai_server import STYLES, OpenAIServer, expected_reply

from lf_reasoning.api.options import RequestOptions
from lf_reasoning.cli import main
from lf_reasoning.commands.distill import DistillOptions, DistillReport, distill
from lf_reasoning.errors import EXIT_PARTIAL, UserError
from lf_reasoning.record.inputs import Inputs

KEY = "sk-test-DO-NOT-LEAK-7f3a9c2e1b"  # distinctive: searched for in every file and stream
KEY_ENV = "LF_TEST_API_KEY"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def prompts_file(path: Path, n: int, **extra: Any) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"question": f"What is {i} + {i}?", "answer": str(2 * i), **extra}) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


REQUEST_FIELDS = {f.name for f in fields(RequestOptions)}


def run_distill(
    server: OpenAIServer,
    src: Path,
    out: Path,
    *,
    mapping: tuple[str, ...] = (),
    log: Callable[[str], None] = lambda msg: None,
    **kwargs: Any,
) -> DistillReport:
    """``distill`` with the test server's request options; ``kwargs`` go to RequestOptions or DistillOptions."""
    request: dict[str, Any] = {
        "base_url": server.url,
        "model": "test-reasoner",
        "concurrency": 4,
        "backoff": 0.01,
        "api_key_env": KEY_ENV,
        "timeout": 5.0,
    }
    request.update({name: kwargs.pop(name) for name in list(kwargs) if name in REQUEST_FIELDS})
    options = DistillOptions(Inputs((str(src),), mapping=mapping, prompts=True), RequestOptions(**request), **kwargs)
    return distill(options, out, log=log)


def cli(*args: str, env: dict[str, str | None] | None = None) -> Any:
    result = CliRunner().invoke(main, ["distill", *args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def distill_to(server: OpenAIServer, src: Path, out: Path, *args: str, env: dict[str, str | None] | None = None) -> Any:
    """``lf-reasoning distill SRC --out OUT`` against the test server (model ``m``), plus ``args``."""
    return cli(str(src), "--out", str(out), "--base-url", server.url, "--model", "m", *args, env=env)


def assert_complete(out: Path, prompts: int, n: int = 1) -> list[dict[str, Any]]:
    """OUT holds exactly one well-formed record per (prompt, sample), each with the server's reply."""
    data = out.read_bytes()
    assert data.endswith(b"\n")
    records = read_jsonl(out)
    assert Counter((r["key"], r["sample"]) for r in records).most_common(1)[0][1] == 1, "duplicate record"
    assert len(records) == prompts * n
    assert {r["input"] for r in records} == {f"What is {i} + {i}?" for i in range(prompts)}
    for r in records:
        assert (r["reasoning_content"], r["content"]) == expected_reply(r["input"])
        assert r["id"] == f"{r['key']}-{r['sample']}" and r["finish_reason"] == "stop"
    return records


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("style", [s for s in STYLES if s != "none"])
def test_every_reply_style_is_parsed(server: OpenAIServer, tmp_path: Path, style: str, stream: bool) -> None:
    server.config.style = style
    src, out = prompts_file(tmp_path / "p.jsonl", 6), tmp_path / "out.jsonl"
    report = run_distill(server, src, out, stream=stream)
    assert (report.done, report.failed) == (6, Counter())
    records = assert_complete(out, 6)
    assert all(r["usage"]["completion_tokens"] > 0 for r in records)  # streamed usage comes in the last chunk
    assert report.prompt_tokens == sum(r["usage"]["prompt_tokens"] for r in records)
    assert all(seen.body.get("stream", False) == stream for seen in server.requests)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    "fault",
    ["429", "500", "503", "slow", "reset", "empty", "keepalive", "error_body", "length", "empty_answer", "no_thought"],
)
def test_every_fault_is_recovered(server: OpenAIServer, tmp_path: Path, fault: str, stream: bool) -> None:
    server.config.faults = [fault, fault]  # the first two requests of every prompt fail
    server.config.retry_after = "0"
    server.config.slow_s = 3.0
    src, out = prompts_file(tmp_path / "p.jsonl", 4), tmp_path / "out.jsonl"
    timeout = 0.5 if fault == "slow" else 5.0  # "slow" answers after 3 s
    report = run_distill(server, src, out, stream=stream, timeout=timeout, max_retries=3, retry_bad=2)
    assert report.failed == Counter() and report.done == 4
    assert sum(report.retried.values()) == 8
    assert_complete(out, 4)
    assert set(server.prompts_seen().values()) == {3}
    assert not report.failures_file.exists()


def test_retry_after_is_honoured_by_every_request(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.faults = ["429"]
    server.config.retry_after = "1"
    src, out = prompts_file(tmp_path / "p.jsonl", 4), tmp_path / "out.jsonl"
    report = run_distill(server, src, out, backoff=0.01)
    assert report.retried == Counter({"http_429": 4})
    assert_complete(out, 4)
    first_429 = min(s.at for s in server.requests if s.fault == "429")
    retries = [s.at for s in server.requests if s.fault is None]
    assert min(retries) - first_429 >= 0.95  # Retry-After: 1, not the 0.01 s backoff


def test_retries_are_bounded_and_failures_reported(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.faults = ["500"] * 10
    src, out = prompts_file(tmp_path / "p.jsonl", 2), tmp_path / "out.jsonl"
    report = run_distill(server, src, out, max_retries=2)
    assert report.failed == Counter({"http_500": 2}) and report.done == 0
    assert set(server.prompts_seen().values()) == {3}
    failures = read_jsonl(report.failures_file)
    assert {f["reason"] for f in failures} == {"http_500"} and all(f["attempts"] == 3 for f in failures)
    assert not out.exists()  # nothing to write: no empty OUT is left behind


def test_cut_off_replies_are_retried_then_recorded_as_failures(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.faults = ["length"] * 3
    src, out = prompts_file(tmp_path / "p.jsonl", 3), tmp_path / "out.jsonl"
    result = distill_to(
        server,
        src,
        out,
        "--retry-bad",
        "2",
        "--api-key-env",
        KEY_ENV,
    )
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "length" in result.stdout and "out.failures.jsonl" in result.stdout
    assert set(server.prompts_seen().values()) == {3}
    failures = read_jsonl(tmp_path / "out.failures.jsonl")
    assert [f["finish_reason"] for f in failures] == ["length"] * 3 and all(f["usage"] for f in failures)
    assert not out.exists() or out.read_bytes() == b""
    # the next run retries what failed (the server now answers in full) and the failures file goes away
    result = distill_to(server, src, out, "--api-key-env", KEY_ENV)
    assert result.exit_code == 0, result.output
    assert_complete(out, 3)
    assert not (tmp_path / "out.failures.jsonl").exists()


def test_a_server_without_reasoning_stops_the_run_early(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.style = "none"
    src = prompts_file(tmp_path / "p.jsonl", 30)
    with pytest.raises(UserError, match="--reasoning-parser"):
        run_distill(server, src, tmp_path / "out.jsonl", concurrency=1)
    assert len(server.requests) == 10
    report = run_distill(server, src, tmp_path / "plain.jsonl", allow_no_thought=True)
    assert report.done == 30
    assert {r["reasoning_content"] for r in read_jsonl(tmp_path / "plain.jsonl")} == {None}


def test_n_samples_and_request_parameters(server: OpenAIServer, tmp_path: Path) -> None:
    src, out = prompts_file(tmp_path / "p.jsonl", 4), tmp_path / "out.jsonl"
    result = cli(
        str(src),
        "--out",
        str(out),
        "--base-url",
        server.url,
        "--model",
        "r1",
        "--n",
        "3",
        "--temperature",
        "0.6",
        "--max-tokens",
        "4096",
        "--system",
        "Be brief.",
        "--prompt-suffix",
        "请一步步推理，并把最终答案放到 \\boxed{}。",
        "--extra-body",
        '{"top_p": 0.95}',
        "--api-key-env",
        KEY_ENV,
    )
    assert result.exit_code == 0, result.output
    records = read_jsonl(out)
    assert Counter(r["key"] for r in records) == Counter({k: 3 for k in {r["key"] for r in records}})
    assert sorted({r["sample"] for r in records}) == [0, 1, 2] and len(records) == 12
    body = server.requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"].endswith("?\n请一步步推理，并把最终答案放到 \\boxed{}。")
    assert (body["model"], body["temperature"], body["max_tokens"], body["top_p"]) == ("r1", 0.6, 4096, 0.95)
    assert "n" not in body  # one request per sample: each is resumed on its own
    r = records[0]
    assert r["system"] == "Be brief." and r["reference_answer"] == str(2 * int(r["input"].split()[2]))
    assert r["params"] == {
        "temperature": 0.6,
        "max_tokens": 4096,
        "stream": False,
        "system": "Be brief.",
        "prompt_suffix": "请一步步推理，并把最终答案放到 \\boxed{}。",
        "extra_body": {"top_p": 0.95},
    }
    assert r["model"] == "r1" and r["usage"]["prompt_tokens"] > 0


def test_concurrency_and_rpm_limits(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.latency = 0.05
    src = prompts_file(tmp_path / "p.jsonl", 24)
    run_distill(server, src, tmp_path / "a.jsonl", concurrency=3)
    assert server.max_in_flight == 3
    server.requests.clear()
    run_distill(server, src, tmp_path / "b.jsonl", concurrency=8, rpm=1200)  # one request per 50 ms
    starts = sorted(s.at for s in server.requests)
    assert starts[-1] - starts[0] >= 23 * 0.05 * 0.95
    # spaced at the client, so no half second holds more than 10 (+ slack: arrival times jitter)
    assert max(sum(1 for t in starts if t0 <= t < t0 + 0.5) for t0 in starts) <= 12


def test_tpm_limit_paces_tokens(server: OpenAIServer, tmp_path: Path) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"{i} " + "x" * 400}) + "\n" for i in range(8)))
    report = run_distill(server, src, tmp_path / "out.jsonl", concurrency=8, tpm=30000)  # 500 tokens/s
    assert report.done == 8
    per_request = [(s.at, len(s.prompt) // 4) for s in server.requests]
    used = report.prompt_tokens + report.completion_tokens
    span = max(at for at, _ in per_request) - min(at for at, _ in per_request)
    # all but the last request's tokens were spent before it started; one second's budget may go at once
    assert span >= (used - max(n for _, n in per_request) - 500) / 500 * 0.9


def test_prompts_from_other_shapes(server: OpenAIServer, tmp_path: Path) -> None:
    chats = tmp_path / "chats.jsonl"
    chats.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "<think>\nold\n</think>\n\nreply"},
                    {"role": "user", "content": "second"},
                ]
            }
        )
        + "\n"
        + json.dumps({"instruction": "x", "output": "y"})
        + "\n"
    )
    report = run_distill(server, chats, tmp_path / "chats_out.jsonl")
    assert report.done == 1 and report.invalid == 1  # the second line is not a chat: reported, skipped
    assert server.requests[0].body["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]
    record = read_jsonl(tmp_path / "chats_out.jsonl")[0]
    assert record["history"] == [["first", "reply"]] and record["system"] == "S"

    r1 = tmp_path / "r1.jsonl"
    r1.write_text(
        json.dumps(
            {
                "input": "q1",
                "content": "a",
                "reasoning_content": "t",
                "reference_answer": "42",
                "repo_name": "gsm8k",
                "id": 7,
            }
        )
        + "\n"
    )
    run_distill(server, r1, tmp_path / "r1_out.jsonl")
    record = read_jsonl(tmp_path / "r1_out.jsonl")[0]
    assert (record["input"], record["reference_answer"], record["repo_name"], record["source_id"]) == (
        "q1",
        "42",
        "gsm8k",
        "7",
    )

    alpaca = tmp_path / "alpaca.jsonl"  # instructions without outputs yet
    alpaca.write_text(json.dumps({"instruction": "Translate.", "input": "bonjour", "system": "S"}) + "\n")
    run_distill(server, alpaca, tmp_path / "alpaca_out.jsonl")
    record = read_jsonl(tmp_path / "alpaca_out.jsonl")[0]
    assert (record["input"], record["system"]) == ("Translate.\nbonjour", "S")

    table = tmp_path / "table.jsonl"
    table.write_text(json.dumps({"Q": "what?", "gold": 3}) + "\n")
    with pytest.raises(UserError, match="--map prompt=COLUMN"):
        run_distill(server, table, tmp_path / "t_out.jsonl")
    run_distill(server, table, tmp_path / "t_out.jsonl", mapping=("prompt=Q", "reference=gold"))
    assert read_jsonl(tmp_path / "t_out.jsonl")[0]["reference_answer"] == "3"


def test_format_option(server: OpenAIServer, tmp_path: Path) -> None:
    src = tmp_path / "r1.jsonl"
    src.write_text(json.dumps({"input": "q1", "content": "a", "reasoning_content": "t"}) + "\n")
    out = tmp_path / "out.jsonl"
    base = ["--out", str(out), "--base-url", server.url, "--model", "m", "--api-key-env", KEY_ENV]
    result = cli(str(src), "--format", "r1_distill", *base)
    assert result.exit_code == 0, result.output
    assert "format r1_distill: --format" in result.stderr and read_jsonl(out)[0]["input"] == "q1"
    result = cli(str(src), "--format", "columns", *base)
    assert result.exit_code == 1 and "--format columns needs --map" in result.output


def test_duplicate_prompts_are_sent_once(server: OpenAIServer, tmp_path: Path) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["a", "b", "a"]))
    report = run_distill(server, src, tmp_path / "out.jsonl")
    assert (report.done, report.duplicates, len(server.requests)) == (2, 1, 2)


def test_resume_sends_only_what_is_missing(server: OpenAIServer, tmp_path: Path) -> None:
    src, out = prompts_file(tmp_path / "p.jsonl", 10), tmp_path / "out.jsonl"
    run_distill(server, src, out, n=2)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:7]) + lines[7][:25])  # as if killed in the middle of the 8th line
    server.requests.clear()
    logs: list[str] = []
    report = run_distill(server, src, out, n=2, log=logs.append)
    assert (report.already_done, report.pending, len(server.requests)) == (7, 13, 13)
    assert any("removed a partial last line" in m for m in logs)
    assert_complete(out, 10, n=2)
    server.requests.clear()
    assert run_distill(server, src, out, n=2).pending == 0 and not server.requests
    with pytest.raises(UserError, match="--model"):
        run_distill(server, src, out, model="another-model")
    with pytest.raises(UserError, match=r"made with --temperature None, not 0\.6"):  # sampled now: another OUT
        run_distill(server, src, out, n=2, temperature=0.6)
    with pytest.raises(UserError, match="--max-tokens"):
        run_distill(server, src, out, n=2, max_tokens=64)


def test_kill_9_half_way_then_resume(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.latency = 0.1
    src, out = prompts_file(tmp_path / "p.jsonl", 40), tmp_path / "out.jsonl"
    args = [
        sys.executable,
        "-m",
        "lf_reasoning",
        "distill",
        str(src),
        "--out",
        str(out),
        "--base-url",
        server.url,
        "--model",
        "m",
        "--n",
        "2",
        "--concurrency",
        "4",
        "--api-key-env",
        KEY_ENV,
    ]
    env = {**os.environ, KEY_ENV: KEY}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.monotonic() + 30
    while (not out.exists() or out.read_bytes().count(b"\n") < 20) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    written = out.read_bytes().count(b"\n")
    assert 20 <= written < 80, "the run must be killed half-way"
    with open(out, "ab") as f:  # a write torn by the kill (or a crash of the machine) leaves a partial line
        f.write(b'{"id": "torn", "key": "x", "inp')
    server.requests.clear()
    done = subprocess.run(args, env=env, capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert len(server.requests) == 80 - written  # only what was missing was sent
    assert_complete(out, 40, n=2)
    assert KEY.encode() not in done.stdout + done.stderr


def test_api_key_never_leaks(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.api_key = KEY
    server.config.faults = ["400"]  # its error message echoes the Authorization header
    src, out = prompts_file(tmp_path / "p.jsonl", 3), tmp_path / "out" / "out.jsonl"
    result = distill_to(
        server,
        src,
        out,
        "--api-key-env",
        KEY_ENV,
        env={KEY_ENV: KEY},
    )
    assert result.exit_code == EXIT_PARTIAL, result.output  # a 400 is not retried: recorded as a failure
    assert all(s.authorization == f"Bearer {KEY}" for s in server.requests)
    failures = read_jsonl(out.parent / "out.failures.jsonl")
    assert [f["reason"] for f in failures] == ["http_400"] * 3 and "Bearer ***" in failures[0]["detail"]
    assert KEY not in result.output + result.stderr
    result = distill_to(
        server,
        src,
        out,
        "--api-key-env",
        KEY_ENV,
        env={KEY_ENV: KEY},
    )
    assert result.exit_code == 0 and KEY not in result.output + result.stderr
    for path in out.parent.rglob("*"):
        assert KEY.encode() not in path.read_bytes(), path

    # a wrong key and no key: a clear message, never the key presented (the server echoes it)
    result = distill_to(
        server,
        src,
        tmp_path / "o2.jsonl",
        "--api-key-env",
        KEY_ENV,
        env={KEY_ENV: KEY + "-wrong"},
    )
    assert result.exit_code == 1 and f"API key in ${KEY_ENV} was rejected" in result.output
    assert KEY not in result.output
    result = distill_to(
        server,
        src,
        tmp_path / "o3.jsonl",
        "--api-key-env",
        KEY_ENV,
        env={KEY_ENV: None},
    )
    assert result.exit_code == 1 and f"demands an API key; set ${KEY_ENV}" in result.output
    assert not (tmp_path / "o2.jsonl").exists() and not (tmp_path / "o3.jsonl").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_user_errors(server: OpenAIServer, tmp_path: Path) -> None:
    src, out = prompts_file(tmp_path / "p.jsonl", 2), tmp_path / "out.jsonl"
    base = ["--out", str(out), "--model", "m", "--api-key-env", KEY_ENV]
    cases = [
        ([str(tmp_path / "missing.jsonl"), "--base-url", server.url], "no such file"),
        ([str(src), "--base-url", "localhost:8000"], "expected an http(s) URL"),
        ([str(src), "--base-url", f"http://127.0.0.1:{closed_port()}/v1"], "cannot connect to"),
        ([str(src), "--base-url", server.url.removesuffix("/v1") + "/wrong"], "Check --base-url"),
        ([str(src), "--base-url", server.url, "--extra-body", "[1]"], "expected a JSON object"),
    ]
    for args, message in cases:
        started = time.monotonic()
        result = cli(*args, *base)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert time.monotonic() - started < 5
        assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = distill_to(server, src, blocker / "out.jsonl")
    assert result.exit_code == 1 and "cannot write it" in result.output
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"a": 1}\n')
    result = distill_to(server, src, foreign)
    assert result.exit_code == 1 and "not a record written by distill" in result.output
    assert foreign.read_text() == '{"a": 1}\n'


def test_summary_shows_tokens_and_cost(server: OpenAIServer, tmp_path: Path) -> None:
    src, out = prompts_file(tmp_path / "p.jsonl", 3), tmp_path / "out.jsonl"
    result = distill_to(
        server,
        src,
        out,
        "--price-in",
        "0.55",
        "--price-out",
        "2.19",
        "--api-key-env",
        KEY_ENV,
    )
    assert result.exit_code == 0, result.output
    records = read_jsonl(out)
    prompt = sum(r["usage"]["prompt_tokens"] for r in records)
    completion = sum(r["usage"]["completion_tokens"] for r in records)
    assert f"prompt {prompt:,}" in result.stdout and f"completion {completion:,}" in result.stdout
    assert f"${(prompt * 0.55 + completion * 2.19) / 1e6:,.4f}" in result.stdout


def test_convert_reads_the_distill_output(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.style = "inline_open"  # the trace arrives without its opening tag: split before writing
    src, out = prompts_file(tmp_path / "p.jsonl", 5), tmp_path / "out.jsonl"
    run_distill(server, src, out, stream=True)
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["convert", str(out), "--name", "distilled", "--dataset-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "r1_distill" in result.output
    rows = read_jsonl(data / "distilled.jsonl")
    assert len(rows) == 5
    for row in rows:
        user, assistant = row["messages"]
        thought, answer = expected_reply(user["content"])
        assert assistant["content"] == f"<think>\n{thought}\n</think>\n\n{answer}"
    assert "distilled" in json.loads((data / "dataset_info.json").read_text())
