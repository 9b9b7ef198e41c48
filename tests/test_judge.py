"""The LLM judge: reply parsing, `score` end to end against the loopback test server (resume, unparseable replies,
key hygiene, `convert --min-score` on its output) and `verify --judge-base-url` for what the rules cannot decide."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai_server import OpenAIServer, ServerConfig

from lf_reasoning.answer_check import VerifyResult
from lf_reasoning.api.judge import (
    SCORE_RUBRIC,
    VERIFY_RUBRIC,
    CorrectnessJudge,
    judge_options,
    load_rubric,
    parse_score,
    parse_verdict,
    render,
)
from lf_reasoning.cli import main
from lf_reasoning.commands.score import ScoreOptions, ScoreReport, score
from lf_reasoning.errors import EXIT_PARTIAL, UserError
from lf_reasoning.record.inputs import Inputs
from lf_reasoning.record.sample import ReasoningSample

KEY = "sk-judge-DO-NOT-LEAK-42c9e0d1"
KEY_ENV = "LF_TEST_JUDGE_KEY"
_MARK = re.compile(r"SCORE=(\d+)")


def judge_reply(prompt: str, attempt: int) -> str:
    """Answers like a judge, from markers in the judged response: SCORE=n, GARBAGE (never JSON), FLAKY (prose
    first, then fenced JSON), VERDICT=yes/no (verify)."""
    if "GARBAGE" in prompt:
        return "I would rate this response quite highly overall."
    if "VERDICT=" in prompt:
        return json.dumps({"correct": "VERDICT=yes" in prompt, "reason": "compared with the reference"})
    if "FLAKY" in prompt and attempt == 0:
        return "Let me think about {this} response."
    found = _MARK.search(prompt)
    value = int(found.group(1)) if found else 5
    obj = json.dumps({"harmlessness": 10, "helpfulness": value, "correctness": value, "score": value, "reason": "ok"})
    return f"Here is my rating:\n```json\n{obj}\n```\nDone." if "FLAKY" in prompt else obj


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(ServerConfig(reply=judge_reply)) as srv:
        yield srv


def record(i: int, content: str, **extra: Any) -> dict[str, Any]:
    return {"input": f"question {i}", "reasoning_content": "thinking", "content": content, **extra}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_score(src: Path, out: Path, **request: Any) -> ScoreReport:
    """``score`` of one input file; ``request``: judge_options (base_url, model, …)."""
    return score(ScoreOptions(Inputs((str(src),)), judge_options(**request)), out)


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# ------------------------------------------------------------------------------------------------- parsing

GOOD = {"harmlessness": 10, "helpfulness": 8, "correctness": 7, "score": 7.5, "reason": "fine"}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD) + "\n```",
        "```\n" + json.dumps(GOOD, indent=2) + "\n```",
        "Sure. The answer uses \\boxed{2} {not json}. My verdict:\n" + json.dumps(GOOD) + "\nHope this helps {x}.",
        json.dumps({**GOOD, "harmlessness": "10", "score": " 7.5 "}),
        '{"note": "draft"} then ' + json.dumps(GOOD),
    ],
    ids=["plain", "fenced", "fence-no-lang", "prose", "numeric-strings", "second-object"],
)
def test_score_replies_are_parsed(text: str) -> None:
    assert parse_score(text) == {"harmlessness": 10, "helpfulness": 8, "correctness": 7, "score": 7.5, "reason": "fine"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I give it 9/10.",
        "{broken json",
        json.dumps({**GOOD, "score": 11}),
        json.dumps({**GOOD, "score": None}),
        json.dumps({"harmlessness": 10, "helpfulness": 8, "score": 8}),
        "[9, 9, 9, 9]",
        json.dumps({**GOOD, "correctness": True}),
    ],
    ids=["empty", "prose", "broken", "out-of-range", "null", "missing", "array", "bool"],
)
def test_unparseable_score_replies_are_none_never_guessed(text: str) -> None:
    assert parse_score(text) is None


def test_verdicts_are_parsed() -> None:
    assert parse_verdict('```json\n{"correct": true, "reason": "same"}\n```') == {"correct": True, "reason": "same"}
    assert parse_verdict('It is wrong. {"correct": "false"}') == {"correct": False, "reason": ""}
    for text in ("correct", '{"correct": "maybe"}', '{"score": 10}', ""):
        assert parse_verdict(text) is None


def test_rubrics_render_in_one_pass(tmp_path: Path) -> None:
    text = render(SCORE_RUBRIC, "What is {answer}?", "x {prompt}", None)
    assert "What is {answer}?" in text and "x {prompt}" in text and "(none given)" in text
    assert '{"harmlessness": <0-10>' in text
    assert "{reference}" not in render(VERIFY_RUBRIC, "p", "a", "42") and "42" in render(VERIFY_RUBRIC, "p", "a", "42")
    good = tmp_path / "r.txt"
    good.write_text("Q: {prompt}\nA: {answer}\nJSON please", encoding="utf-8")
    assert load_rubric(good).startswith("Q: {prompt}")
    bad = tmp_path / "bad.txt"
    bad.write_text("Q: {prompt}", encoding="utf-8")
    with pytest.raises(UserError, match=r"\{answer\}"):
        load_rubric(bad)


# ------------------------------------------------------------------------------------------------- score


def test_score_end_to_end_and_resume(server: OpenAIServer, tmp_path: Path) -> None:
    records = [record(i, f"answer SCORE={i}") for i in range(6)]
    records[2]["score"] = 3.5  # a score of its own is kept at the top level
    records.append(record(6, "GARBAGE answer"))
    records.append(record(7, "FLAKY answer SCORE=9"))
    src, out = write_jsonl(tmp_path / "in.jsonl", records), tmp_path / "scored.jsonl"
    report = run_score(
        src, out, base_url=server.url, model="judge-m", concurrency=4, backoff=0.01, retry_bad=2, api_key_env=KEY_ENV
    )
    assert (report.done, report.pending, sum(report.failed.values())) == (8, 8, 0)
    assert report.unscored == {"unparseable": 1}
    rows = read_jsonl(out)
    assert sorted(r["input"] for r in rows) == sorted(r["input"] for r in records)
    by_input = {r["input"]: r for r in rows}
    for i in range(6):
        row = by_input[f"question {i}"]
        judge = row.pop("judge")
        assert judge["score"] == i and judge["harmlessness"] == 10 and judge["model"] == "judge-m"
        assert judge["reason"] == "ok" and judge["attempts"] == 1
        expected = {**records[i], "score": records[i].get("score", i)}
        assert row == expected  # the input record unchanged, plus score when it had none
    garbage = by_input["question 6"]
    assert garbage["judge"]["score"] is None and "unparseable" in garbage["judge"]["error"]
    assert "score" not in garbage
    assert server.prompts_seen()[server.requests[0].prompt] == 1
    garbage_prompts = [s for s in server.requests if "GARBAGE" in s.prompt]
    assert len(garbage_prompts) == 3  # asked, then re-asked retry_bad times
    flaky = by_input["question 7"]
    assert (flaky["judge"]["score"], flaky["judge"]["attempts"], flaky["score"]) == (9, 2, 9)
    assert all(s.body["temperature"] == 0.0 for s in server.requests)

    # resume: a lost last record and a partial line; only the missing record is sent again
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][:10])
    lost = json.loads(lines[-1])["input"]
    before = len(server.requests)
    report = run_score(src, out, base_url=server.url, model="judge-m", backoff=0.01, api_key_env=KEY_ENV)
    assert (report.already_done, report.pending, report.done) == (7, 1, 1)
    assert server.requests[before:] and all(lost in s.prompt for s in server.requests[before:])
    again = read_jsonl(out)
    assert sorted(r["input"] for r in again) == sorted(r["input"] for r in records)
    before = len(server.requests)
    report = run_score(src, out, base_url=server.url, model="judge-m", api_key_env=KEY_ENV)
    assert report.pending == 0 and len(server.requests) == before
    with pytest.raises(UserError, match="judge-model"):
        run_score(src, out, base_url=server.url, model="other-judge", api_key_env=KEY_ENV)


def test_score_reads_what_convert_reads(server: OpenAIServer, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [record(1, "SCORE=7")])
    write_jsonl(folder / "b.jsonl", [record(2, "SCORE=4"), record(3, "SCORE=6")])
    judge = ["--judge-base-url", server.url, "--judge-model", "m", "--api-key-env", KEY_ENV]
    out = tmp_path / "folder.jsonl"
    result = invoke("score", str(folder), "--out", str(out), *judge)  # a folder: every file in it
    assert result.exit_code == 0, result.output
    assert sorted((r["input"], r["score"]) for r in read_jsonl(out)) == [
        ("question 1", 7),
        ("question 2", 4),
        ("question 3", 6),
    ]
    out = tmp_path / "forced.jsonl"  # several IN, the format forced
    result = invoke(
        "score", str(folder / "a.jsonl"), str(folder / "b.jsonl"), "--out", str(out), "--format", "r1_distill", *judge
    )
    assert result.exit_code == 0, result.output
    assert "format r1_distill: --format" in result.stderr and len(read_jsonl(out)) == 3

    table = tmp_path / "table.csv"
    table.write_text("Q,A\nwhat?,SCORE=9\nwhy?,SCORE=2\n", encoding="utf-8")
    out = tmp_path / "table_out.jsonl"
    result = invoke("score", str(table), "--out", str(out), "--map", "prompt=Q", "--map", "answer=A", *judge)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [(r["Q"], r["A"], r["score"]) for r in rows] == [("what?", "SCORE=9", 9), ("why?", "SCORE=2", 2)]
    assert server.requests[-1].prompt.count("why?") == 1
    result = invoke("score", str(table), "--out", str(tmp_path / "x.jsonl"), "--format", "nonsense", *judge)
    assert result.exit_code == 1 and "unknown format" in result.output
    result = invoke("score", str(folder), str(table), "--out", str(table), *judge)
    assert result.exit_code == 1 and "is also an input" in result.output


def test_identical_records_are_each_scored(server: OpenAIServer, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [record(1, "SCORE=4"), record(1, "SCORE=4"), record(2, "SCORE=6")])
    out = tmp_path / "out.jsonl"
    run_score(src, out, base_url=server.url, model="m", api_key_env=KEY_ENV)
    rows = read_jsonl(out)
    assert len(rows) == 3 and len({r["judge"]["key"] for r in rows}) == 3


def test_transport_failures_go_to_the_failures_file_and_are_retried_next_run(
    server: OpenAIServer, tmp_path: Path
) -> None:
    server.config.faults = ["429", "500", "500", "500"]
    server.config.retry_after = "0"
    src, out = write_jsonl(tmp_path / "in.jsonl", [record(1, "SCORE=8")]), tmp_path / "out.jsonl"
    report = run_score(src, out, base_url=server.url, model="m", max_retries=2, backoff=0.01, api_key_env=KEY_ENV)
    assert report.failed == {"http_500": 1} and report.retried["http_429"] == 1 and not out.exists()
    assert read_jsonl(tmp_path / "out.failures.jsonl")[0]["reason"] == "http_500"
    report = run_score(src, out, base_url=server.url, model="m", max_retries=2, backoff=0.01, api_key_env=KEY_ENV)
    assert report.done == 1 and read_jsonl(out)[0]["judge"]["score"] == 8
    assert not (tmp_path / "out.failures.jsonl").exists()


def test_score_cli_key_hygiene_rubric_and_convert_min_score(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.api_key = KEY
    server.config.faults = ["400"]  # echoes the Authorization header in its error message
    src = write_jsonl(tmp_path / "in.jsonl", [record(i, f"SCORE={s}") for i, s in enumerate([9, 3, 8, 10])])
    out = tmp_path / "out" / "scored.jsonl"
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("MY RUBRIC\n{prompt}\n---\n{answer}\n---\n{reference}\nJSON only.", encoding="utf-8")
    args = [
        "score",
        str(src),
        "--out",
        str(out),
        "--judge-base-url",
        server.url,
        "--judge-model",
        "judge-m",
        "--api-key-env",
        KEY_ENV,
        "--rubric",
        str(rubric),
        "--backoff",
        "0.01",
    ]
    result = invoke(*args, env={KEY_ENV: KEY})
    assert result.exit_code == EXIT_PARTIAL, result.output  # the 400s are failures, listed for the next run
    assert KEY not in result.output + result.stderr
    assert "Bearer ***" in read_jsonl(out.parent / "scored.failures.jsonl")[0]["detail"]
    result = invoke(*args, env={KEY_ENV: KEY})
    assert result.exit_code == 0, result.output
    assert "score distribution" in result.stdout and KEY not in result.output + result.stderr
    assert all(s.prompt.startswith("MY RUBRIC") for s in server.requests)
    assert all(s.authorization == f"Bearer {KEY}" for s in server.requests)
    for path in out.parent.rglob("*"):
        assert KEY.encode() not in path.read_bytes(), path

    data = tmp_path / "data"
    result = invoke("convert", str(out), "--name", "good", "--dataset-dir", str(data), "--min-score", "8")
    assert result.exit_code == 0, result.output
    rows = read_jsonl(data / "good.jsonl")
    assert sorted(row["messages"][0]["content"] for row in rows) == ["question 0", "question 2", "question 3"]

    result = invoke(
        "score",
        str(src),
        "--out",
        str(tmp_path / "x.jsonl"),
        "--judge-base-url",
        server.url,
        "--judge-model",
        "m",
        "--api-key-env",
        KEY_ENV,
        env={KEY_ENV: KEY + "-wrong"},
    )
    assert result.exit_code == 1 and "was rejected" in result.output and KEY not in result.output


# ------------------------------------------------------------------------------------------------- verify


def test_verify_with_a_judge(server: OpenAIServer, tmp_path: Path) -> None:
    server.config.api_key = KEY
    records = [
        {"input": "1+1?", "reasoning_content": "t", "content": "\\boxed{2}", "reference_answer": "2"},
        {"input": "Capital?", "reasoning_content": "t", "content": "Paris VERDICT=yes", "reference_answer": "Paris"},
        {"input": "Colour?", "reasoning_content": "t", "content": "Red VERDICT=no", "reference_answer": "Blue"},
        {"input": "Poem?", "reasoning_content": "t", "content": "GARBAGE", "reference_answer": "a sonnet"},
    ]
    src, out = write_jsonl(tmp_path / "in.jsonl", records), tmp_path / "v" / "verified.jsonl"
    result = invoke(
        "verify",
        str(src),
        "--out",
        str(out),
        "--workers",
        "1",
        "--judge-base-url",
        server.url,
        "--judge-model",
        "judge-m",
        "--api-key-env",
        KEY_ENV,
        env={KEY_ENV: KEY},
    )
    assert result.exit_code == 0, result.output
    verdicts = [r["verify"] for r in read_jsonl(out)]
    assert [(v["method"], v["verdict"], v["score"]) for v in verdicts] == [
        ("math_verify", True, 10),
        ("judge", True, 10),
        ("judge", False, 0),
        ("unverifiable", None, None),
    ]
    assert verdicts[3]["reason"] == "judge_unparsed"
    assert len(server.requests) == 2 + 3  # the rule-decided record never reaches the judge
    assert KEY not in result.output + result.stderr and KEY.encode() not in out.read_bytes()
    result = invoke("verify", str(src), "--out", str(out), "--judge-base-url", server.url)
    assert result.exit_code == 1 and "go together" in result.output


def test_correctness_judge_api_also_inside_a_running_loop(server: OpenAIServer) -> None:
    rule = VerifyResult("unverifiable", None, "x", None, "unparsed", "not math")
    with CorrectnessJudge(judge_options(server.url, "judge-m", api_key_env=KEY_ENV)) as judge:
        result = judge(ReasoningSample(prompt="p", answer="x VERDICT=yes", reference="x"), rule)
    assert (result.method, result.verdict, result.score, result.gold) == ("judge", True, 10, "x")

    async def in_a_notebook_cell() -> VerifyResult:
        with CorrectnessJudge(judge_options(server.url, "judge-m", api_key_env=KEY_ENV)) as judge:
            return judge(ReasoningSample(prompt="p", answer="y VERDICT=no", reference="x"), rule)

    assert asyncio.run(in_a_notebook_cell()).score == 0
