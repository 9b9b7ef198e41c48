"""`grade` end to end against two loopback servers (tests/openai_server.py): a teacher that `distill` asks and a
judge that `grade` asks. Also `distill` keeping the source's answers as reference, resume, the failures file, the
route option, and `convert --min-score` on the output."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai_server import OpenAIServer, ServerConfig

from lf_reasoning.api.judge import judge_options
from lf_reasoning.cli import main
from lf_reasoning.commands.grade import GradeOptions, GradeReport, grade
from lf_reasoning.errors import EXIT_PARTIAL, UserError
from lf_reasoning.record.inputs import Inputs

KEY = "sk-grade-DO-NOT-LEAK-5b1e77"
KEY_ENV = "LF_TEST_GRADE_KEY"
ROOT = Path(__file__).resolve().parent.parent
PATHOLOGICAL = "\\boxed{(10^{10})!}"  # sympy would compute (10^10)!: only our timeout ends the check

# question → (Alpaca output = the gold answer, the teacher's answer). Empty output: a record without a reference.
ALPACA = {
    "What is 2+2?": ("4", "So \\boxed{4}."),
    "Write 1/2 as a decimal.": ("0.5", "\\boxed{\\frac{1}{2}}"),
    "What is 3*3?": ("9", "\\boxed{8}"),
    "How many legs does a spider have?": ("8", "Eight legs."),  # no rule extracts an answer
    "Which ocean is the largest?": ("The Pacific Ocean", "The Atlantic Ocean."),  # prose gold: the judge decides
    "Is (10^10)! greater than 5?": ("5", PATHOLOGICAL),  # Math-Verify times out: the judge decides
    "Write a haiku about autumn.": ("", "Leaves fall, cold wind."),
    "Tell me a joke.": ("", "Why did the chicken cross the road?"),
}
# what the judge says: correct/incorrect for math answers, a 0-10 rating for the others
VERDICTS = {
    "How many legs does a spider have?": True,
    "Which ocean is the largest?": False,
    "Is (10^10)! greater than 5?": True,
    "Exam: explain the proof.": True,
}
RATINGS = {"Write a haiku about autumn.": 9, "Tell me a joke.": 6, "Say hello.": 3, "Good question?": 9}
EXPECTED = {  # question → (route, method, verdict, score, rule_reason)
    "What is 2+2?": ("math", "math_verify", True, 10, None),
    "Write 1/2 as a decimal.": ("math", "math_verify", True, 10, None),
    "What is 3*3?": ("math", "math_verify", False, 0, None),
    "How many legs does a spider have?": ("math", "judge", True, 10, "no_prediction"),
    "Which ocean is the largest?": ("math", "judge", False, 0, "text_reference"),
    "Is (10^10)! greater than 5?": ("math", "judge", True, 10, "timeout"),
    "Write a haiku about autumn.": ("general", "rubric", None, 9, None),
    "Tell me a joke.": ("general", "rubric", None, 6, None),
}
_QUESTION = re.compile(r"\[(?:PROBLEM|PROMPT)\]\n(.*?)\n\[END")


def teacher(prompt: str, attempt: int) -> tuple[str, str]:
    return f"Let me think about: {prompt}", ALPACA[prompt][1]


def judge(prompt: str, attempt: int) -> str:
    """Answers like a judge, from the question inside the rendered rubric."""
    found = _QUESTION.search(prompt)
    assert found, prompt
    question = found.group(1)
    if '"correct": true or false' in prompt:
        return json.dumps({"correct": VERDICTS.get(question, False), "reason": "compared with the reference"})
    if question == "GARBAGE":
        return "A fine answer, I would say."
    value = RATINGS.get(question, 5)
    return json.dumps({"harmlessness": 10, "helpfulness": value, "correctness": value, "score": value, "reason": "ok"})


@pytest.fixture
def judge_server() -> Iterator[OpenAIServer]:
    with OpenAIServer(ServerConfig(reply=judge)) as srv:
        yield srv


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def judge_args(server: OpenAIServer) -> list[str]:
    return ["--judge-base-url", server.url, "--judge-model", "judge-m", "--api-key-env", KEY_ENV, "--backoff", "0.01"]


def run_grade(src: Path, out: Path, server: OpenAIServer, **options: Any) -> GradeReport:
    request = judge_options(server.url, "judge-m", api_key_env=KEY_ENV, backoff=0.01, concurrency=4)
    return grade(GradeOptions(Inputs((str(src),)), request, workers=2, math_timeout=1.5, **options), out)


def judge_prompts(server: OpenAIServer, start: int = 0) -> list[str]:
    return [_QUESTION.search(seen.prompt).group(1) for seen in server.requests[start:]]  # type: ignore[union-attr]


@pytest.fixture
def distilled(tmp_path: Path) -> Path:
    """`distill` of an Alpaca math file, without --map: the outputs become the reference answers."""
    alpaca = write_jsonl(
        tmp_path / "alpaca.jsonl", [{"instruction": q, "input": "", "output": gold} for q, (gold, _) in ALPACA.items()]
    )
    out = tmp_path / "distilled.jsonl"
    with OpenAIServer(ServerConfig(reply=teacher)) as srv:
        result = invoke(
            "distill", str(alpaca), "--out", str(out), "--base-url", srv.url, "--model", "teacher", "--api-key-env",
            KEY_ENV,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "format alpaca: has instruction/output (Alpaca); its prompts are sent; keeping the source's answers as "
        "reference (from `output`); --no-reference to drop" in result.stderr
    )
    rows = {row["input"]: row for row in read_jsonl(out)}
    assert {q: row.get("reference_answer") for q, row in rows.items()} == {
        q: gold or None for q, (gold, _) in ALPACA.items()
    }
    return out


def test_distill_then_grade_then_convert_min_score(distilled: Path, judge_server: OpenAIServer, tmp_path: Path) -> None:
    judge_server.config.api_key = KEY
    judge_server.config.latency = 0.2  # the judge requests overlap
    out = tmp_path / "graded.jsonl"
    plot = tmp_path / "scores.png"
    args = ["grade", str(distilled), "--out", str(out), *judge_args(judge_server), "--workers", "2"]
    result = invoke(*args, "--math-timeout", "1.5", "--plot", str(plot), env={KEY_ENV: KEY})
    assert result.exit_code == 0, result.output
    inputs = {row["input"]: row for row in read_jsonl(distilled)}
    rows = read_jsonl(out)
    assert len(rows) == len(ALPACA)
    for row in rows:
        grade_ = row.pop("grade")
        question = row["input"]
        assert (
            grade_["route"],
            grade_["method"],
            grade_["verdict"],
            grade_["score"],
            grade_.get("rule_reason"),
        ) == EXPECTED[question], question
        assert row.pop("score") == grade_["score"]
        assert row == inputs[question]  # the record as distill wrote it, plus grade and score
        if grade_["method"] == "math_verify":
            assert grade_["judge_model"] is None and grade_["gold"] and grade_["prediction"]
        else:
            assert grade_["judge_model"] == "judge-m" and grade_["attempts"] == 1
        if grade_["method"] == "rubric":
            assert (grade_["harmlessness"], grade_["helpfulness"], grade_["reason"]) == (10, grade_["score"], "ok")
    # the rule-decided answers never reach the judge; each of the others is asked once
    assert sorted(judge_prompts(judge_server)) == sorted(q for q, e in EXPECTED.items() if e[1] != "math_verify")
    assert all(seen.body["temperature"] == 0.0 for seen in judge_server.requests)
    assert judge_server.max_in_flight >= 2
    summary = result.stdout
    for line in (
        r"math / judge\s+3\s+2\s+1\s+6\.7",
        r"math / math_verify\s+3\s+2\s+1\s+6\.7",
        r"general / rubric\s+2\s+-\s+-\s+7\.5",
        r"no_prediction 1",
        r"timeout 1",
        r"scores in OUT\s+0: 2  6: 1  9: 1  10: 4",
    ):
        assert re.search(line, summary), (line, summary)
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert KEY not in result.output + result.stderr and KEY.encode() not in out.read_bytes()

    data = tmp_path / "data"
    result = invoke("convert", str(out), "--name", "graded", "--dataset-dir", str(data), "--min-score", "8")
    assert result.exit_code == 0, result.output
    kept = sorted(row["messages"][0]["content"] for row in read_jsonl(data / "graded.jsonl"))
    assert kept == sorted(q for q, e in EXPECTED.items() if e[3] >= 8)
    result = invoke("convert", str(out), "--name", "right", "--dataset-dir", str(data), "--require-verified")
    assert result.exit_code == 0, result.output
    kept = sorted(row["messages"][0]["content"] for row in read_jsonl(data / "right.jsonl"))
    assert kept == sorted(q for q, e in EXPECTED.items() if e[2] is True)


def test_resume_after_an_interrupted_run(distilled: Path, judge_server: OpenAIServer, tmp_path: Path) -> None:
    out = tmp_path / "graded.jsonl"
    first = run_grade(distilled, out, judge_server)
    assert (first.planned, first.done, first.checked, first.pending) == (8, 8, 6, 5)
    complete = {row["grade"]["key"]: row for row in read_jsonl(out)}
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:4]) + lines[4][:25])  # as a kill leaves it: four records and a partial line
    kept = [json.loads(line) for line in lines[:4]]
    lost = [json.loads(line) for line in lines[4:]]
    before = len(judge_server.requests)
    report = run_grade(distilled, out, judge_server)
    assert (report.already_done, report.done) == (4, 4)
    assert report.checked == sum(1 for row in lost if row["grade"]["route"] == "math" and row.get("reference_answer"))
    assert sorted(judge_prompts(judge_server, before)) == sorted(
        row["input"] for row in lost if row["grade"]["method"] != "math_verify"
    )
    again = read_jsonl(out)
    assert {row["grade"]["key"]: row for row in again} == complete and len(again) == 8
    assert again[:4] == kept
    assert report.tally.graded == 8  # the summary counts OUT, the earlier run's records too
    before = len(judge_server.requests)
    report = run_grade(distilled, out, judge_server)
    assert (report.done, report.checked, len(judge_server.requests)) == (0, 0, before)
    with pytest.raises(UserError, match="judge-model"):
        grade(
            GradeOptions(Inputs((str(distilled),)), judge_options(judge_server.url, "other", api_key_env=KEY_ENV)), out
        )
    # another rubric or routing would skip the records graded under the old one: refused, OUT unchanged
    before_bytes = out.read_bytes()
    for options, option in (
        ({"rubric": "Rate {prompt} {answer} 0-10."}, "--rubric"),
        ({"math_when": ("x=y",)}, "--math-when"),
    ):
        with pytest.raises(UserError, match=f"made with {option} "):
            run_grade(distilled, out, judge_server, **options)
    assert out.read_bytes() == before_bytes


def test_kill_9_half_way_then_resume(judge_server: OpenAIServer, tmp_path: Path) -> None:
    judge_server.config.latency = 0.1
    records = [r1(f"What is {i}+{i}?", f"\\boxed{{{2 * i}}}", "math", str(2 * i)) for i in range(4)]
    records += [r1(f"Tell me about topic {i}.", "Something.", "chat") for i in range(30)]
    src, out = write_jsonl(tmp_path / "in.jsonl", records), tmp_path / "graded.jsonl"
    args = [sys.executable, "-m", "lf_reasoning", "grade", str(src), "--out", str(out), *judge_args(judge_server)]
    args += ["--concurrency", "2", "--workers", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.read_bytes().count(b"\n") < 10) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    written = out.read_bytes().count(b"\n")
    assert 10 <= written < 34, "the run must be killed half-way"
    with open(out, "ab") as f:  # a write torn by the kill leaves a partial line
        f.write(b'{"input": "torn", "gra')
    judge_server.requests.clear()
    done = subprocess.run(args, capture_output=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert len(judge_server.requests) == 34 - written  # the four math records were written first, by Math-Verify
    rows = read_jsonl(out)
    assert sorted(row["input"] for row in rows) == sorted(r["input"] for r in records)
    assert [row["grade"]["method"] for row in rows[:4]] == ["math_verify"] * 4
    assert b"removed a partial last line" in done.stderr and b"records                       34  (" in done.stdout


def test_failed_judge_requests_are_listed_then_sent_again(
    distilled: Path, judge_server: OpenAIServer, tmp_path: Path
) -> None:
    judge_server.config.faults = ["500", "500", "500"]  # every question's first three requests
    out = tmp_path / "graded.jsonl"
    args = [
        "grade",
        str(distilled),
        "--out",
        str(out),
        *judge_args(judge_server),
        "--max-retries",
        "2",
        "--math-timeout",
        "1.5",
    ]
    result = invoke(*args)
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert [row["grade"]["method"] for row in read_jsonl(out)] == ["math_verify"] * 3
    failures = read_jsonl(tmp_path / "graded.failures.jsonl")
    assert len(failures) == 5 and {f["reason"] for f in failures} == {"http_500"}
    assert re.search(r"failed\s+5", result.stdout)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out)) == 8 and not (tmp_path / "graded.failures.jsonl").exists()


def r1(question: str, content: str, repo: str, reference: str | None = None) -> dict[str, Any]:
    record = {"input": question, "reasoning_content": "t", "content": content, "repo_name": repo}
    return {**record, "reference_answer": reference} if reference is not None else record


def test_route_option(judge_server: OpenAIServer, tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            r1("What is 1+1?", "\\boxed{2}", "math/gsm8k", "2"),
            r1("Capital of France? (A) Paris (B) Rome", "The answer is (A).", "exam/geo", "A"),
            r1("Say hello.", "Hello!", "chat/xhs", "Hi there"),  # a reference, but not a math/exam item
            r1("Exam: explain the proof.", "By induction.", "exam/logic"),  # exam, no reference: the judge decides
        ],
    )
    out = tmp_path / "routed.jsonl"
    result = invoke(
        "grade", str(src), "--out", str(out), *judge_args(judge_server), "--math-when", "repo_name=math|exam"
    )
    assert result.exit_code == 0, result.output
    got = [(r["grade"]["route"], r["grade"]["method"], r["score"]) for r in read_jsonl(out)]
    assert sorted(got) == sorted(
        [("math", "math_verify", 10), ("math", "math_verify", 10), ("general", "rubric", 3), ("math", "judge", 10)]
    )
    exam = next(r for r in read_jsonl(out) if r["input"].startswith("Exam"))
    assert exam["grade"]["rule_reason"] == "no_reference"

    out = tmp_path / "default.jsonl"  # without the option: a reference makes a record math
    result = invoke("grade", str(src), "--out", str(out), *judge_args(judge_server))
    assert result.exit_code == 0, result.output
    by_input = {r["input"]: r["grade"] for r in read_jsonl(out)}
    assert (by_input["Say hello."]["route"], by_input["Say hello."]["method"]) == ("math", "judge")
    assert by_input["Exam: explain the proof."]["route"] == "general"

    result = invoke(
        "grade", str(src), "--out", str(tmp_path / "x.jsonl"), *judge_args(judge_server), "--math-when", "repo"
    )
    assert result.exit_code == 1 and "expected COLUMN=REGEX" in result.output
    result = invoke(
        "grade", str(src), "--out", str(tmp_path / "x.jsonl"), *judge_args(judge_server), "--math-when", "subset=math"
    )
    assert result.exit_code == 1 and f"{src}:1: no column 'subset' for --math-when" in result.output
    result = invoke(
        "grade", str(src), "--out", str(tmp_path / "x.jsonl"), *judge_args(judge_server), "--math-when", "repo_name=("
    )
    assert result.exit_code == 1 and "not a regular expression" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_grade_output_of_any_shape_feeds_convert(judge_server: OpenAIServer, tmp_path: Path) -> None:
    """Chat records carry no top-level score of their own: convert reads the grade's."""
    chats = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "An answer."}]}
        for q in ("Good question?", "Bad question?", "GARBAGE")
    ]
    chats.append({"messages": [{"role": "user", "content": "no reply"}]})  # no answer: written ungraded
    src = write_jsonl(tmp_path / "chats.jsonl", chats)
    out = tmp_path / "graded.jsonl"
    result = invoke("grade", str(src), "--out", str(out), *judge_args(judge_server), "--retry-bad", "0")
    assert result.exit_code == EXIT_PARTIAL, result.output  # ungraded records
    rows = read_jsonl(out)
    by_prompt = {r["messages"][0]["content"]: r for r in rows}
    # no reference in these chats: every one is rated with the rubric
    assert {r["grade"]["route"] for r in rows} == {"general", None}
    assert by_prompt["GARBAGE"]["grade"]["error_reason"] == "unparseable" and by_prompt["GARBAGE"]["score"] is None
    assert by_prompt["no reply"]["grade"]["error_reason"] == "bad_turn_order"
    assert re.search(r"ungraded\s+2", result.stdout)
    data = tmp_path / "data"
    result = invoke("convert", str(out), "--name", "chats", "--dataset-dir", str(data), "--min-score", "8")
    assert result.exit_code == EXIT_PARTIAL, result.output  # the chat without a reply is invalid input
    assert re.search(r"score_below_min \(filtered\)\s+1", result.output)
    assert re.search(r"no_score \(filtered\)\s+1", result.output)  # the ungraded GARBAGE record
    kept = [row["messages"][0]["content"] for row in read_jsonl(data / "chats.jsonl")]
    assert kept == ["Good question?"]


def test_distill_reference_options(tmp_path: Path) -> None:
    chats = write_jsonl(
        tmp_path / "chats.jsonl",
        [{"messages": [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}], "gold": 5}],
    )
    with OpenAIServer() as srv:
        base = ["--base-url", srv.url, "--model", "teacher", "--api-key-env", KEY_ENV]
        out = tmp_path / "a.jsonl"
        result = invoke("distill", str(chats), "--out", str(out), *base)
        assert result.exit_code == 0, result.output
        assert "keeping the source's answers as reference (from AM `info.reference_answer`, else the last" in (
            result.stderr
        )
        assert read_jsonl(out)[0]["reference_answer"] == "5"
        out = tmp_path / "b.jsonl"
        result = invoke("distill", str(chats), "--out", str(out), *base, "--no-reference")
        assert result.exit_code == 0 and "the source's answers are dropped (--no-reference)" in result.stderr
        assert "reference_answer" not in read_jsonl(out)[0]
        out = tmp_path / "c.jsonl"
        result = invoke("distill", str(chats), "--out", str(out), *base, "--map", "reference=gold")
        assert result.exit_code == 0, result.output
        assert "format messages" in result.stderr and "reference answers from `gold` (--map)" in result.stderr
        assert read_jsonl(out)[0]["reference_answer"] == "5" and read_jsonl(out)[0]["input"] == "2+3?"
        result = invoke("distill", str(chats), "--out", str(tmp_path / "d.jsonl"), *base, "--map", "reference=glod")
        assert result.exit_code == 1 and f"{chats}:1: no column 'glod' for --map reference=glod" in result.output
        result = invoke(
            "distill",
            str(chats),
            "--out",
            str(tmp_path / "d.jsonl"),
            *base,
            "--map",
            "reference=gold",
            "--no-reference",
        )
        assert result.exit_code == 1 and "--no-reference" in result.output
        assert not (tmp_path / "d.jsonl").exists()
