"""Benchmark: `lf-reasoning convert` on a generated 110k-distill-shaped file vs a bare JSONL pass.

Usage: python bench/bench_convert.py [--records 100000] [--workdir bench/out]

Prints records/s, MB/s, CPU seconds (user + system, workers included) and peak RSS of each run, and the ratios
convert / baseline measured in the same run: by wall clock, and by CPU time (which other load on a shared machine
does not change).
The baseline reads, parses (orjson), serialises and writes every line, which is the least any converter
must do. Both run as child processes so their peak RSS (``wait4``) is their own.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

BASELINE = """
import sys, orjson
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    for line in src:
        dst.write(orjson.dumps(orjson.loads(line)) + b"\\n")
"""
WORDS = [
    *"因为 所以 我们 需要 计算 首先 然后 答案 是 的 这个 问题 可以 分解 为 两个 部分 考虑".split(),
    *"the answer is therefore we need to compute first then check each case step value sum".split(),
]


def paragraph(rng: random.Random, n_chars: int) -> str:
    out, size = [], 0
    while size < n_chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word.encode()) + 1
    return " ".join(out)


def generate(path: Path, n: int) -> None:
    """Records shaped like Chinese-DeepSeek-R1-Distill-data-110k, about 6 KB each."""
    rng = random.Random(0)
    chunks = [paragraph(rng, 4200) for _ in range(64)]
    answers = [paragraph(rng, 1400) for _ in range(64)]
    with open(path, "wb") as f:
        for i in range(n):
            record = {
                "input": f"问题 {i}: " + paragraph(rng, 120) + "请一步步推理，并把最终答案放到 \\boxed{}。",
                "content": "\n" + answers[i % 64] + f" \\boxed{{{i}}}",
                "reasoning_content": chunks[(i * 7) % 64],
                "repo_name": rng.choice(["xhs/xhs", "meta-math/GSM8K_zh", "exam/coig_exam", "zhihu/zhihu"]),
                "prompt_tokens_len": 40,
                "reasoning_content_tokens_len": 900,
                "content_tokens_len": 300,
                "score": rng.randint(0, 10),
            }
            f.write(orjson.dumps(record) + b"\n")


def count_lines(path: Path) -> int:
    # streamed: a child's peak RSS starts from this process's, so this process must stay small
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (its own and its joined workers') of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / "distill_110k_shaped.jsonl"
    if not src.exists() or count_lines(src) != args.records:
        print(f"generating {args.records} records …", flush=True)
        generate(src, args.records)
    mb = src.stat().st_size / 1e6
    print(f"input: {src} ({args.records} records, {mb:.0f} MB, {mb * 1e3 / args.records:.1f} KB/record)")

    runs: dict[str, list[tuple[float, float, float]]] = {
        "baseline (read-parse-serialise-write)": [],
        "lf-reasoning convert": [],
    }
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits both alike
        runs["baseline (read-parse-serialise-write)"].append(
            timed([sys.executable, "-c", BASELINE, str(src), str(args.workdir / "baseline.jsonl")])
        )
        runs["lf-reasoning convert"].append(
            timed(
                [
                    sys.executable,
                    "-m",
                    "lf_reasoning",
                    "convert",
                    str(src),
                    "--name",
                    "bench",
                    "--dataset-dir",
                    str(args.workdir / "data"),
                    "--force",
                ]
            )
        )
    medians, cpus = {}, {}
    for label, results in runs.items():
        secs = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[2] for r in results)
        rss = max(r[1] for r in results)
        medians[label], cpus[label] = secs, cpu
        print(
            f"{label:<40} {secs:6.2f} s  {args.records / secs:9.0f} records/s  {mb / secs:6.1f} MB/s  "
            f"CPU {cpu:6.2f} s  peak RSS {rss:5.0f} MB  (median of {args.repeat})"
        )
    conv, base = "lf-reasoning convert", "baseline (read-parse-serialise-write)"
    print(
        f"ratio convert/baseline: {medians[conv] / medians[base]:.2f}  (target ≤ 1.2; peak RSS target < 300 MB); "
        f"by CPU time {cpus[conv] / cpus[base]:.2f} (the workers' time included: 2 cores make 2.0 a 1.0 wall clock)"
    )


if __name__ == "__main__":
    main()
