"""Benchmark: `lf-reasoning verify` throughput (records/s) with 1 and 2 worker processes.

Usage: python bench/bench_verify.py [--records 10000] [--workdir bench/out] [--workers 1 2]

Generates distill-output records (R1 distill shape with ``reference_answer``) mixing what real data holds:
``\\boxed{}`` integers, fractions against decimals, sets, intervals, units, multiple-choice letters, plain
numbers in text, wrong answers, text references and records without a reference. Values vary per record so
Math-Verify's small parse caches do not flatter the numbers. Times include starting the worker processes;
CPU time per record (this process, and the worker processes) is printed too, as the machine may be shared.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / "verify_mixed.jsonl"
    generate(src, args.records)
    print(f"input: {src} ({args.records} mixed records)")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before the runs")
    for workers in args.workers:
        start, own, children = time.perf_counter(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        report = verify(VerifyOptions(Inputs((str(src),)), args.workdir / f"verified_{workers}.jsonl", workers=workers))
        secs = time.perf_counter() - start
        own, children = _cpu(resource.RUSAGE_SELF) - own, _cpu(resource.RUSAGE_CHILDREN) - children
        print(
            f"verify, {workers} worker process{'es' if workers > 1 else ''}: {secs:6.1f} s  "
            f"{report.written / secs:5.0f} records/s  CPU per record: main {own / report.written * 1e3:.2f} ms, "
            f"workers {children / report.written * 1e3:.1f} ms  (true {report.verdicts['true']}, "
            f"false {report.verdicts['false']}, unverifiable {report.verdicts['none']}, "
            f"timeouts {report.reasons['timeout']})"
        )


def _cpu(who: int) -> float:
    """User + system CPU seconds of this process or of its finished children (the joined workers)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
