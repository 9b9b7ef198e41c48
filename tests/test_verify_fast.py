"""verify's fast paths: the gold parsed once, the cheap exit when the answer is the gold after Math-Verify's own
normalisation, batches of answers per worker message. None may change a result Math-Verify would give."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest

from lf_reasoning import answer_check
from lf_reasoning.answer_check import VerifyResult, Workers, _delimited, check_answer, quiet_math_verify

# (reference, boxed answer): equal strings, what Math-Verify's normalisation equates (\dfrac, \left/\right, $),
# and look-alikes it reads differently (spaces that change a number, a set or a parse), sets, intervals,
# equations, units, percentages, degrees, wrong values.
CASES = [
    ("42", "42"),
    ("42", "42.0"),
    ("42", "43"),
    ("5.", "5"),
    ("\\frac{1}{2}", "\\frac{1}{2}"),
    ("\\frac{1}{2}", "\\dfrac{1}{2}"),
    ("\\frac{1}{2}", "0.5"),
    ("\\frac{1}{2}", "\\frac{1}{3}"),
    ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt{3}}{2}"),
    ("2\\sqrt{3}", "2 \\sqrt{3}"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("(0,1]", "(0,1]"),
    ("(0,1]", "(0, 1]"),
    ("(0,1]", "\\left(0, 1\\right]"),
    ("(0,1]", "[0,1]"),
    ("\\{1,2\\}", "\\{2, 1\\}"),
    ("1,2", "1, 2"),
    ("1,000", "1, 000"),  # 1000 against the set {0, 1}
    ("1,000", "1000"),
    ("23", "2 3"),  # Math-Verify reads "2 3" as 5
    ("5^{\\circ}", "5^ {\\circ}"),  # which it cannot parse
    ("5^{\\circ}", "5^{\\circ}"),
    ("x=5", "x = 5"),
    ("x=5", "5"),
    ("x=5", "x=6"),
    ("10\\%", "10\\%"),
    ("10\\%", "0.1"),
    ("5 cm", "5\\text{ cm}"),
    ("\\pi", "\\pi"),
    ("3\\pi", "3 \\pi"),
    ("\\$5", "5"),
    ("-3", "-3"),
    ("-3", "- 3"),
    ("a+b", "b+a"),
]


def _answer(boxed: str) -> str:
    return f"We add the parts: $1 + 2 = 3$ and then check. So the answer is $\\boxed{{{boxed}}}$."


def _full(reference: str, answer: str) -> tuple[bool, str | None, str | None]:
    """What a plain Math-Verify call gives: parse the gold, parse the answer, verify (verdict and shown texts)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold = parse(_delimited(reference), extraction_config=config, parsing_timeout=None)
    pred = parse(answer, extraction_config=config, parsing_timeout=None)
    return verify(gold, pred, timeout_seconds=None), answer_check._shown(gold), answer_check._shown(pred)


@pytest.fixture(scope="module", autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")
    quiet_math_verify()


def test_fast_path_gives_what_math_verify_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify

    expected = {case: _full(case[0], _answer(case[1])) for case in CASES}
    calls = 0
    real_verify = math_verify.verify

    def counting_verify(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(math_verify, "verify", counting_verify)
    answer_check._gold.cache_clear()
    for (reference, boxed), (verdict, gold, prediction) in expected.items():
        result = check_answer(reference, _answer(boxed))
        if result.method == "math_verify":
            assert (result.verdict, result.gold, result.prediction) == (verdict, gold, prediction), (reference, boxed)
        else:  # no verdict (a unit or text Math-Verify extracts as a string only): never a False it did not give
            assert result.verdict is None and verdict is False, (reference, boxed)  # never hides a True
    # the cheap exit did skip verify for the answers that are the gold after normalisation (\dfrac, \left, …)
    assert calls < len(CASES) - 8, f"verify was called {calls} times for {len(CASES)} answers"
    references = {reference for reference, _ in CASES}  # each parsed once, however many answers it has
    assert answer_check._gold.cache_info()[:2] == (len(CASES) - len(references), len(references))


PATHOLOGICAL = "\\boxed{(10^{10})!}"  # sympy tries to evaluate (10^10)! when comparing it with 5


def test_a_timeout_inside_a_batch_costs_one_timeout_and_the_rest_is_checked() -> None:
    pool = Workers(1, timeout=1.5)
    try:
        while not pool.idle:  # started
            assert pool.collect() == []
        pool.submit_batch(
            [
                ("a", "5", "\\boxed{5}"),
                ("b", "5", PATHOLOGICAL),
                ("c", "5", "\\boxed{6}"),
                ("d", "\\frac{1}{2}", "\\boxed{0.5}"),
            ]
        )
        results: dict[str, VerifyResult] = {}
        started = time.monotonic()
        while pool.busy:
            results.update(pool.collect())
        elapsed = time.monotonic() - started
    finally:
        pool.close()
    assert [(k, results[k].verdict, results[k].reason) for k in "abcd"] == [
        ("a", True, None),
        ("b", None, "timeout"),
        ("c", False, None),
        ("d", True, None),
    ]
    assert elapsed < 12, f"took {elapsed:.1f} s with a 1.5 s timeout"
    assert pool.idle == [] and not pool.busy


def test_batched_workers_match_one_by_one() -> None:
    # the workers keep their LaTeX parses by token stream: also answers spaced otherwise than the gold
    respaced = [(reference, boxed.replace(",", " , ").replace("{", " { ")) for reference, boxed in CASES]
    tasks = [(i, reference, _answer(boxed)) for i, (reference, boxed) in enumerate(CASES + respaced)]
    expected = [check_answer(reference, answer) for _, reference, answer in tasks]
    pool = Workers(2, timeout=30)
    results: dict[int, VerifyResult] = {}
    try:
        batches = [tasks[i : i + 8] for i in range(0, len(tasks), 8)]
        while batches or pool.busy:
            while batches and pool.idle:
                pool.submit_batch(batches.pop(0))
            results.update(pool.collect())
    finally:
        pool.close()
    assert [results[i] for i in range(len(tasks))] == expected
