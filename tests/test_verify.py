"""``verify``: Math-Verify verdicts, our own per-record timeouts in worker processes, the CLI and bad input."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lf_reasoning import answer_check
from lf_reasoning.answer_check import VerifyResult, check_answer, choice_letter, is_text_answer, last_boxed
from lf_reasoning.cli import main
from lf_reasoning.commands.verify import Judge, VerifyOptions, VerifyReport, verify
from lf_reasoning.errors import EXIT_PARTIAL, UserError
from lf_reasoning.record.inputs import Inputs
from lf_reasoning.record.sample import ReasoningSample


def verify_file(src: Path, out: Path, *, judge: Judge | None = None, **options: Any) -> VerifyReport:
    return verify(VerifyOptions(Inputs((str(src),)), out, **options), judge=judge)


# sympy tries to evaluate (10^10)! when comparing it with 5: a bare Math-Verify call was still busy
# after 150 s. The run must report it as a timeout and go on.
PATHOLOGICAL = "\\boxed{(10^{10})!}"


def r1(reference: str | None, content: str, **extra: Any) -> dict[str, Any]:
    """A record in the distill output's shape (R1 distill dump with an optional reference answer)."""
    record = {"input": "q", "reasoning_content": "thinking", "content": content, **extra}
    if reference is not None:
        record["reference_answer"] = reference
    return record


def write_jsonl(path: Path, records: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("reference", "answer"),
    [
        ("7", "Adding them up, the total is $\\boxed{7}$."),  # \boxed{}
        ("\\frac{1}{2}", "The probability is $\\boxed{0.5}$."),  # fraction vs decimal
        ("0.5", "So the answer is \\boxed{\\dfrac{1}{2}}"),
        ("3\\sqrt{2}", "$\\boxed{\\sqrt{18}}$"),  # bare LaTeX reference: read inside $…$, not as the number 3
        ("\\{1,2,3\\}", "The solutions form $\\boxed{\\{3, 2, 1\\}}$"),  # sets, in any order
        ("1,2,3", "$\\boxed{3,1,2}$"),  # a bare list is a set (Math-Verify alone reads "1,2,3" as 1.2)
        ("(0,1]", "Hence $x \\in \\boxed{(0, 1]}$"),  # intervals
        ("(-\\infty, 2) \\cup (3, \\infty)", "\\boxed{(-\\infty,2)\\cup(3,+\\infty)}"),
        ("5 cm", "The side is $\\boxed{5\\text{ cm}}$"),  # units
        ("12 \\text{ m}^2", "\\boxed{12\\,\\mathrm{m}^2}"),
        ("5厘米", "所以边长是 $\\boxed{5}$ 厘米。"),
        ("50\\%", "\\boxed{0.5}"),
        ("1,000", "\\boxed{1000}"),
        ("x^2+2x+1", "$\\boxed{(x+1)^2}$"),
        ("10", "First 3 apples, then 7 more: we get 10 apples."),  # plain number in text
        ("10", "The answer is 10"),
        ("$\\frac12$", "\\boxed{1/2}"),  # a reference that carries its own delimiters
    ],
)
def test_correct_answers_are_verified(reference: str, answer: str) -> None:
    result = check_answer(reference, answer)
    assert (result.method, result.verdict, result.score) == ("math_verify", True, 10), result


@pytest.mark.parametrize(
    ("reference", "answer"),
    [
        ("8", "Adding them up, the total is $\\boxed{7}$."),
        ("(0,1]", "Hence $x \\in \\boxed{(0, 1)}$"),  # open vs half-open interval
        ("\\{1,2,3\\}", "$\\boxed{\\{1,2\\}}$"),
        ("10", "The answer is 12"),
        ("10", "\\boxed{10.0000001}"),
    ],
)
def test_wrong_answers_are_false(reference: str, answer: str) -> None:
    result = check_answer(reference, answer)
    assert (result.method, result.verdict, result.score) == ("math_verify", False, 0), result
    assert result.gold and result.prediction


@pytest.mark.parametrize(
    ("reference", "answer", "verdict"),
    [
        ("B", "The answer is \\boxed{B}", True),
        ("(B)", "Therefore the answer is (B).", True),
        ("\\boxed{C}", "**Answer:** C", True),
        ("$\\text{D}$", "Final: $\\boxed{\\text{(D)}\\ 12}$", True),
        ("E", "答案：E", True),
        ("B", "The answer is \\boxed{C}", False),
        ("A", "Answer: D. Option A fails because 3 > 2.", False),
    ],
)
def test_multiple_choice_letters(reference: str, answer: str, verdict: bool) -> None:
    result = check_answer(reference, answer)
    assert (result.method, result.verdict) == ("math_verify", verdict), result
    assert result.gold == choice_letter(reference)


@pytest.mark.parametrize(
    ("reference", "answer", "reason"),
    [
        ("Paris", "The capital is \\boxed{Sirap}", "text_reference"),  # Math-Verify: both are a*i*p*r*s
        ("yes", "\\boxed{yes}", "text_reference"),  # Math-Verify: E*s*y
        ("North America", "It is in North America.", "text_reference"),
        ("北京", "答案是北京", "text_reference"),
        ("x=2或x=3", "\\boxed{3}", "text_reference"),  # Math-Verify keeps only x=3 and would say true
        ("72", "答案是72。", "no_prediction"),  # Math-Verify needs a space or `=` before a bare number
        ("B", "I cannot decide.", "no_prediction"),
    ],
)
def test_what_rules_cannot_decide_is_unverifiable_not_false(reference: str, answer: str, reason: str) -> None:
    result = check_answer(reference, answer)
    assert (result.method, result.verdict, result.score, result.reason) == ("unverifiable", None, None, reason)


def test_helpers() -> None:
    assert [choice_letter(x) for x in ("B", " (C). ", "\\boxed{\\textbf{A}}", "F", "AB", "2")] == [
        "B",
        "C",
        "A",
        None,
        None,
        None,
    ]
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{1}{2}} end") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{\\frac{1}{2}") is None
    assert not any(is_text_answer(x) for x in ("72 apples", "6 \\text{ meters}", "\\sin x", "x = 3 or x = -1", "ab"))


def test_records_are_written_unchanged_with_verify(tmp_path: Path) -> None:
    records = [
        r1("\\frac{1}{2}", "The answer is $\\boxed{0.5}$", score=9, extra={"keep": [1, 2]}),
        r1("8", "\\boxed{7}"),
        r1(None, "\\boxed{7}"),  # no reference: unverifiable
        r1("C", "So \\boxed{C}."),
    ]
    out = tmp_path / "out.jsonl"
    report = verify_file(write_jsonl(tmp_path / "in.jsonl", records), out, workers=2)
    written = read_jsonl(out)
    assert [{k: v for k, v in w.items() if k != "verify"} for w in written] == records
    assert written[0]["verify"] == {
        "method": "math_verify",
        "verdict": True,
        "score": 10,
        "gold": "\\frac{1}{2}",
        "prediction": "\\frac{1}{2}",
        "reason": None,
        "detail": None,
    }
    assert [(w["verify"]["verdict"], w["verify"]["score"]) for w in written] == [
        (True, 10),
        (False, 0),
        (None, None),
        (True, 10),
    ]
    assert written[2]["verify"]["reason"] == "no_reference"
    assert (report.read, report.written, report.answers, report.invalid) == (4, 4, 4, 0)
    assert report.verdicts == {"true": 2, "false": 1, "none": 1}


def test_pathological_expression_times_out_and_the_run_goes_on(tmp_path: Path) -> None:
    records = [r1(str(i), f"\\boxed{{{i}}}") for i in range(6)]
    records[2] = r1("5", PATHOLOGICAL)
    records[4] = r1("5", "\\boxed{9^{9^{9^{9}}}}")
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    report = verify_file(write_jsonl(tmp_path / "in.jsonl", records), out, workers=2, timeout=1.5)
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"took {elapsed:.1f} s with a 1.5 s timeout"
    results = [w["verify"] for w in read_jsonl(out)]
    assert [r["reason"] for r in results] == [None, None, "timeout", None, "timeout", None]
    assert [r["verdict"] for r in results] == [True, True, None, True, None, True]
    assert "1.5 s" in results[2]["detail"]
    assert report.reasons["timeout"] == 2


def test_openr1_gets_one_result_per_generation(tmp_path: Path) -> None:
    record = {
        "problem": "p",
        "answer": "\\frac{1}{3}",
        "generations": ["<think>t</think>\\boxed{\\frac{2}{6}}", "<think>t</think>\\boxed{0.3}", "<think>cut off"],
        "finish_reasons": ["stop", "stop", "length"],
        "correctness_math_verify": [True, False, False],
    }
    out = tmp_path / "out.jsonl"
    verify_file(write_jsonl(tmp_path / "in.jsonl", [record]), out, workers=1)
    results = read_jsonl(out)[0]["verify"]
    assert [(r["verdict"], r["reason"]) for r in results] == [(True, None), (False, None), (None, "unfinished")]


def test_am_messages_reference_is_used(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "user", "content": "1+1?", "info": {"source": "math", "reference_answer": "2"}},
            {"role": "assistant", "content": "<think>t</think><answer>It is $\\boxed{2}$</answer>", "info": {}},
        ]
    }
    out = tmp_path / "out.jsonl"
    verify_file(write_jsonl(tmp_path / "in.jsonl", [record]), out, workers=1)
    assert read_jsonl(out)[0]["verify"]["verdict"] is True


def test_judge_gets_only_what_rules_could_not_decide(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []

    def judge(sample: ReasoningSample, rule: VerifyResult) -> VerifyResult:
        seen.append((sample.answer, rule.reason))
        return VerifyResult("judge", True, rule.gold, rule.prediction)

    out = tmp_path / "out.jsonl"
    records = [r1("2", "\\boxed{2}"), r1("Paris", "Paris"), r1(None, "x")]
    report = verify_file(write_jsonl(tmp_path / "in.jsonl", records), out, workers=1, judge=judge)
    assert seen == [("Paris", "text_reference"), ("x", "no_reference")]
    assert [(w["verify"]["method"], w["verify"]["score"]) for w in read_jsonl(out)] == [
        ("math_verify", 10),
        ("judge", 10),
        ("judge", 10),
    ]
    assert report.methods == {"math_verify": 1, "judge": 2}


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="patches the worker through fork")
def test_a_crashing_worker_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = answer_check.check_answer

    def crash_on_marker(reference: str, answer: str) -> VerifyResult:
        if answer == "crash":
            os._exit(3)
        return real(reference, answer)

    monkeypatch.setattr(answer_check, "check_answer", crash_on_marker)
    out = tmp_path / "out.jsonl"
    verify_file(write_jsonl(tmp_path / "in.jsonl", [r1("1", "crash"), r1("1", "\\boxed{1}")]), out, workers=1)
    results = [w["verify"] for w in read_jsonl(out)]
    assert (results[0]["reason"], results[1]["verdict"]) == ("crashed", True)
    assert "exit code 3" in results[0]["detail"]


def test_cli(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [r1("\\frac{1}{2}", "\\boxed{0.5}"), r1("3", "\\boxed{4}"), r1("5", PATHOLOGICAL), r1(None, "a")],
    )
    out = tmp_path / "sub" / "out.jsonl"
    code, output = run(str(src), "--out", str(out), "--workers", "2", "--timeout", "1")
    assert code == 0, output
    assert [w["verify"]["score"] for w in read_jsonl(out)] == [10, 0, None, None]
    for label, n in (("verified true", 1), ("verified false", 1), ("unverifiable", 2), ("timeouts", 1)):
        assert any(line.strip().startswith(label) and line.split()[-1] == str(n) for line in output.splitlines()), (
            label,
            output,
        )


def test_cli_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    previous = '{"answer": "1", "verify": {"verdict": true}}\n'  # an earlier run's output: may be replaced
    out.write_text(previous)
    code, output = run(str(tmp_path / "missing.jsonl"), "--out", str(out))
    assert code == 1 and "no such file or directory" in output

    broken = tmp_path / "broken.json"
    broken.write_text('[{"input": "q", ')
    code, output = run(str(broken), "--out", str(out))
    assert code == 1 and "invalid JSON" in output

    not_json = write_jsonl(tmp_path / "text.jsonl", ["hello", "world"])
    code, output = run(str(not_json), "--out", str(out))
    assert code == 1 and "no records written" in output and f"{not_json}:1" in output
    assert out.read_text() == previous  # nothing written on an error

    unknown = write_jsonl(tmp_path / "unknown.jsonl", [{"foo": 1}])
    code, output = run(str(unknown), "--out", str(out))
    assert code == 1 and "cannot tell the format" in output

    code, output = run(str(not_json), "--out", str(out), "--timeout", "0")
    assert code == 2 and "--timeout" in output  # click usage error

    mixed = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            r1("1", "\\boxed{1}"),
            '{"input": ',
            r1("2", "\\boxed{2}"),
            {"input": "q", "reasoning_content": "t", "content": 5},
        ],
    )
    code, output = run(str(mixed), "--out", str(out))
    assert code == EXIT_PARTIAL, output
    assert f"{mixed}:2" in output and "invalid JSON" in output
    written = read_jsonl(out)
    assert [w["verify"]["reason"] for w in written] == [None, None, "invalid_record"]
    assert written[2]["verify"]["detail"] == "field 'content' is a number, expected a string"


def test_out_must_be_a_new_file(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [r1("1", "\\boxed{1}")])
    with pytest.raises(UserError, match="is a directory"):
        verify_file(src, tmp_path, workers=1)
    with pytest.raises(UserError, match="is also an input"):
        verify_file(tmp_path, src, workers=1)


def test_check_answers_keeps_order_and_times_out() -> None:
    """The batch API `eval --task math` uses: a pathological answer times out, the others are still checked."""
    from lf_reasoning.answer_check import check_answers

    results = check_answers(
        [("5", "\\boxed{9^{9^{9^{9}}}}"), ("\\frac{1}{2}", "\\boxed{0.5}"), ("4", "\\boxed{5}")], workers=2, timeout=1.5
    )
    assert [(r.reason, r.verdict) for r in results] == [("timeout", None), (None, True), (None, False)]
