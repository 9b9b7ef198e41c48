"""Benchmark: `lf-reasoning verify` throughput with 1 and 2 worker processes, and against a plain Math-Verify loop.

Usage: python bench/bench_verify.py [--records 10000] [--openr1-records 1000] [--workdir bench/out] [--workers 1 2]

Generates distill-output records (R1 distill shape with ``reference_answer``) mixing what real data holds:
``\\boxed{}`` integers, fractions against decimals, sets, intervals, units, multiple-choice letters, plain
numbers in text, wrong answers, text references and records without a reference. Values vary per record so
Math-Verify's small parse caches do not flatter the numbers. Times include starting the worker processes;
CPU time per record (this process, and the worker processes) is printed too, as the machine may be shared.

Then OpenR1-Math-shaped records (4 generations sharing one gold answer; see ``generate_openr1``) are verified
with 2 workers and checked by a plain single-process Math-Verify loop measured in the same run (for every
generation: parse the gold, parse the answer, verify), and the ratio of the two times is printed.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from lf_reasoning.answer_check import _delimited, quiet_math_verify
from lf_reasoning.commands.verify import VerifyOptions, verify
from lf_reasoning.record.inputs import Inputs

FILLER = (
    "We first restate the problem, then compute each part step by step and check the result against the "
    "conditions given. "
)


def _integer(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(1, 10**6)
    return str(n), f"Adding everything up gives $\\boxed{{{n}}}$."


def _fraction(rng: random.Random) -> tuple[str, str]:
    q = rng.choice([2, 4, 5, 8, 10, 16, 20, 25])
    p = rng.randint(1, 999)
    return f"\\frac{{{p}}}{{{q}}}", f"So the value is $\\boxed{{{p / q:g}}}$."


def _wrong(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(1, 10**6)
    return str(n), f"Therefore the answer is $\\boxed{{{n + rng.randint(1, 9)}}}$."


def _set(rng: random.Random) -> tuple[str, str]:
    items = rng.sample(range(-50, 50), 3)
    shuffled = rng.sample(items, 3)
    gold = "\\{" + ",".join(map(str, items)) + "\\}"
    return gold, "The solutions are $\\boxed{" + ", ".join(map(str, shuffled)) + "}$."


def _interval(rng: random.Random) -> tuple[str, str]:
    a = rng.randint(-100, 0)
    b = rng.randint(1, 100)
    return f"({a},{b}]", f"Hence $x \\in \\boxed{{({a}, {b}]}}$."


def _unit(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(1, 10**4)
    return f"{n} cm", f"The side is $\\boxed{{{n}\\text{{ cm}}}}$."


def _choice(rng: random.Random) -> tuple[str, str]:
    letter = rng.choice("ABCDE")
    return letter, f"Comparing the options, the answer is $\\boxed{{{letter}}}$."


def _plain(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(1, 10**5)
    return str(n), f"So in total we get {n} apples."


def _text(rng: random.Random) -> tuple[str, str]:
    return "North America", "It lies in North America."


KINDS: list[tuple[Callable[[random.Random], tuple[str, str]] | None, int]] = [
    (_integer, 25),
    (_fraction, 12),
    (_wrong, 12),
    (_set, 8),
    (_interval, 8),
    (_unit, 5),
    (_choice, 10),
    (_plain, 5),
    (_text, 5),
    (None, 10),  # None: no reference answer
]


def generate(path: Path, n: int) -> None:
    rng = random.Random(0)
    makers = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS], k=n)
    with open(path, "wb") as f:
        for i, make in enumerate(makers):
            record = {"input": f"Problem {i}", "reasoning_content": FILLER * 20, "content": FILLER * 3}
            if make is not None:
                reference, answer = make(rng)
                record["content"] += answer
                record["reference_answer"] = reference
            else:
                record["content"] += f"The answer is $\\boxed{{{i}}}$."
            f.write(orjson.dumps(record) + b"\n")


# OpenR1-Math: each gold kind with the forms a correct generation writes it in. The first forms are the gold's own
# up to spacing, \left/\right and \dfrac; the other form is equivalent but written differently.
OpenR1Kind = Callable[[random.Random], tuple[str, list[str], str, str]]  # gold, same forms, other form, wrong


def _r1_integer(rng: random.Random) -> tuple[str, list[str], str, str]:
    n = rng.randint(2, 10**5)
    return str(n), [str(n)], f"{n}.0", str(n + rng.randint(1, 9))


def _r1_fraction(rng: random.Random) -> tuple[str, list[str], str, str]:
    p, q = rng.randint(1, 99), rng.choice([3, 7, 11, 13])
    gold = f"\\frac{{{p}}}{{{q}}}"
    return gold, [gold, f"\\dfrac{{{p}}}{{{q}}}"], f"{p}/{q}", f"\\frac{{{p + q}}}{{{q}}}"


def _r1_radical(rng: random.Random) -> tuple[str, list[str], str, str]:
    a, b = rng.randint(2, 9), rng.choice([2, 3, 5, 7])
    gold = f"{a}\\sqrt{{{b}}}"
    return gold, [gold, f"{a} \\sqrt{{{b}}}"], f"\\sqrt{{{a * a * b}}}", f"{a + 1}\\sqrt{{{b}}}"


def _r1_interval(rng: random.Random) -> tuple[str, list[str], str, str]:
    a, b = rng.randint(-50, 0), rng.randint(1, 50)
    gold = f"({a},{b}]"
    return gold, [gold, f"({a}, {b}]", f"\\left({a}, {b}\\right]"], f"\\{{x \\mid {a} < x \\leq {b}\\}}", f"[{a},{b}]"


def _r1_equation(rng: random.Random) -> tuple[str, list[str], str, str]:
    a = rng.randint(1, 99)
    return f"x={a}", [f"x={a}", f"x = {a}"], str(a), f"x={a + rng.randint(1, 9)}"


def _r1_degrees(rng: random.Random) -> tuple[str, list[str], str, str]:
    n = rng.randint(1, 179)
    return f"{n}^{{\\circ}}", [f"{n}^{{\\circ}}", f"{n}^\\circ"], str(n), f"{n + 1}^{{\\circ}}"


OPENR1_KINDS: list[OpenR1Kind] = [_r1_integer, _r1_fraction, _r1_radical, _r1_interval, _r1_equation, _r1_degrees]
GENERATIONS = 4


def generate_openr1(path: Path, n: int) -> None:
    """OpenR1-Math-shaped records: a gold ``answer`` and 4 generations (a thought, then a worked answer ending in
    ``\\boxed{}``). Each generation writes the gold's own form (70%: a generation that is right mostly boxes the
    answer as the reference writes it), an equivalent other form (10%) or a wrong value (20%)."""
    rng = random.Random(1)
    with open(path, "wb") as f:
        for i in range(n):
            gold, same, other, wrong = rng.choice(OPENR1_KINDS)(rng)
            generations = []
            for _ in range(GENERATIONS):
                roll = rng.random()
                boxed = rng.choice(same) if roll < 0.7 else other if roll < 0.8 else wrong
                steps = " ".join(f"Then ${rng.randint(1, 99)} + {rng.randint(1, 99)} = y_{k}$." for k in range(4))
                generations.append(
                    f"<think>\n{FILLER * 15}\n</think>\n\n{FILLER * 2}{steps} So the answer is $\\boxed{{{boxed}}}$."
                )
            record = {
                "problem": f"Problem {i}",
                "solution": FILLER * 3,
                "answer": gold,
                "generations": generations,
                "finish_reasons": ["stop"] * GENERATIONS,
            }
            f.write(orjson.dumps(record) + b"\n")


def plain_math_verify(path: Path) -> tuple[int, int]:
    """The baseline: one process, for every generation parse the gold, parse the answer (the text after the
    thought, as verify reads it) and verify. Returns (answers, verified true)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from math_verify import verify as math_verify

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    answers = true = 0
    with open(path, "rb") as f:
        for line in f:
            record = orjson.loads(line)
            for generation in record["generations"]:
                gold = parse(_delimited(record["answer"]), extraction_config=config, parsing_timeout=None)
                pred = parse(generation.split("</think>")[-1], extraction_config=config, parsing_timeout=None)
                answers += 1
                true += math_verify(gold, pred, timeout_seconds=None)
    return answers, true


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--openr1-records", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / "verify_mixed.jsonl"
    generate(src, args.records)
    print(f"input: {src} ({args.records} mixed records)")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the runs")
    for workers in args.workers:
        _run_verify(src, args.workdir / f"verified_{workers}.jsonl", workers, "records")

    src = args.workdir / "verify_openr1.jsonl"
    generate_openr1(src, args.openr1_records)
    print(f"input: {src} ({args.openr1_records} OpenR1 records, {GENERATIONS} generations each)")
    print(f"load average {os.getloadavg()[0]:.1f} before the runs")
    secs = _run_verify(src, args.workdir / "verified_openr1.jsonl", 2, "answers")
    quiet_math_verify()
    start, own = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    answers, true = plain_math_verify(src)
    base = time.perf_counter() - start
    own = _cpu(resource.RUSAGE_SELF) - own
    print(
        f"plain Math-Verify loop, 1 process: {base:6.1f} s  {answers / base:5.0f} answers/s  "
        f"CPU per answer {own / answers * 1e3:.1f} ms  (true {true})"
    )
    print(f"ratio plain loop / verify with 2 workers: {base / secs:.2f}  (target ≥ 2.5)")


def _run_verify(src: Path, out: Path, workers: int, unit: str) -> float:
    """One verify run: prints the time, the rate (records or answers) and the CPU per record; returns seconds."""
    start, own, children = time.perf_counter(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    report = verify(VerifyOptions(Inputs((str(src),)), out, workers=workers))
    secs = time.perf_counter() - start
    own, children = _cpu(resource.RUSAGE_SELF) - own, _cpu(resource.RUSAGE_CHILDREN) - children
    count = report.written if unit == "records" else report.answers
    print(
        f"verify, {workers} worker process{'es' if workers > 1 else ''}: {secs:6.1f} s  "
        f"{count / secs:5.0f} {unit}/s  CPU per record: main {own / report.written * 1e3:.2f} ms, "
        f"workers {children / report.written * 1e3:.1f} ms  (true {report.verdicts['true']}, "
        f"false {report.verdicts['false']}, unverifiable {report.verdicts['none']}, "
        f"timeouts {report.reasons['timeout']})"
    )
    return secs


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process or of its finished children (the joined workers)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
