"""Benchmark: `measure_lengths` (what `lf-reasoning stats` runs) vs a bare batched tokenizer call.

Usage: python bench/bench_stats.py [--records 100000] [--workdir bench/out] [--repeat 1]

Generates sharegpt records shaped like `lf-reasoning convert` output (about 6 KB each: prompt, thought, answer)
and measures them with the tiny model's tokenizer and the qwen3 template. The baseline tokenizes the same
texts (every message content) with ``tokenizer(texts)`` in batches of the same size, timing only those calls;
`measure_lengths` is timed end to end (reading, parsing, template, tokenizing). Prints tokens/s of both and
their ratio (target ≥ 0.8), measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import time
from itertools import islice
from pathlib import Path

import orjson
from bench_convert import paragraph  # same generated text as the convert benchmark (bench/ is on sys.path)

from lf_reasoning.llamafactory.dataset_info import sharegpt_entry, write_dataset_info
from lf_reasoning.llamafactory.lengths import BATCH_SIZE, measure_lengths
from lf_reasoning.llamafactory.tokens import TokenCounter
from lf_reasoning.record.thoughts import render_response
from lf_reasoning.tiny_model import build_tiny_model

NAME = "bench_stats"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "DISABLE_VERSION_CHECK")


def generate(path: Path, n: int) -> None:
    """Records as convert writes them: sharegpt messages with role/content, thought in LLaMA-Factory's form."""
    rng = random.Random(0)
    thoughts = [paragraph(rng, 4200) for _ in range(64)]
    answers = [paragraph(rng, 1400) for _ in range(64)]
    with open(path, "wb") as f:
        for i in range(n):
            prompt = f"问题 {i}: " + paragraph(rng, 300) + "请一步步推理，并把最终答案放到 \\boxed{}。"
            response = render_response(thoughts[(i * 7) % 64], answers[i % 64] + f" \\boxed{{{i}}}")
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            f.write(orjson.dumps({"messages": messages, "system": ""}) + b"\n")


def baseline(path: Path, tokenizer_path: Path) -> tuple[int, float, float]:
    """Tokens, wall and CPU seconds of ``tokenizer(texts)`` over every message content, BATCH_SIZE records per
    call; only the tokenizer calls are timed."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    tokens, seconds, cpu = 0, 0.0, 0.0
    with open(path, "rb") as f:
        while lines := list(islice(f, BATCH_SIZE)):
            texts = [m["content"] for line in lines for m in orjson.loads(line)["messages"]]
            start, start_cpu = time.perf_counter(), cpu_seconds()
            ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
            tokens += sum(map(len, ids))
            del ids  # freeing the batch's encodings is part of its cost
            seconds, cpu = seconds + time.perf_counter() - start, cpu + cpu_seconds() - start_cpu
    return tokens, seconds, cpu


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def main() -> None:
    for key in OFFLINE_ENV:
        os.environ.setdefault(key, "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out"))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    data_dir = args.workdir / "stats_data"
    data_dir.mkdir(parents=True, exist_ok=True)
    model = build_tiny_model(args.workdir / "tiny_model")
    src = data_dir / f"{NAME}.jsonl"
    if not src.exists() or count_lines(src) != args.records:
        print(f"generating {args.records} records …", flush=True)
        generate(src, args.records)
        write_dataset_info(data_dir, {NAME: sharegpt_entry(src.name)})
    mb = src.stat().st_size / 1e6
    print(f"input: {src} ({args.records} records, {mb:.0f} MB, {mb * 1e3 / args.records:.1f} KB/record)")
    TokenCounter(str(model), "qwen3")  # warm-up: imports LLaMA-Factory outside the timings
    runs: dict[str, list[tuple[int, float, float]]] = {"tokenizer(texts) baseline": [], "measure_lengths": []}
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits both alike
        start, cpu = time.perf_counter(), cpu_seconds()
        stats = measure_lengths(data_dir, NAME, str(model), "qwen3")
        runs["measure_lengths"].append((int(stats.total.sum()), time.perf_counter() - start, cpu_seconds() - cpu))
        runs["tokenizer(texts) baseline"].append(baseline(src, model))
    rates: dict[str, tuple[float, float]] = {}
    for label, results in runs.items():
        tokens = results[0][0]
        secs, cpu = statistics.median(r[1] for r in results), statistics.median(r[2] for r in results)
        rates[label] = tokens / secs, tokens / cpu
        print(
            f"{label:<26} {tokens:>12,} tokens  {secs:7.1f} s  {tokens / secs:10,.0f} tokens/s  "
            f"{args.records / secs:6,.0f} records/s  {tokens / cpu:10,.0f} tokens/CPU-s  (median of {args.repeat})"
        )
    print(
        f"p50/p99/max total tokens: {stats.percentile(50)}/{stats.percentile(99)}/{stats.percentile(100)}; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    (wall, cpu), (base_wall, base_cpu) = rates["measure_lengths"], rates["tokenizer(texts) baseline"]
    print(
        f"ratio measure_lengths/baseline: {wall / base_wall:.2f} tokens/s, {cpu / base_cpu:.2f} tokens/CPU-s "
        "(target ≥ 0.8)"
    )


if __name__ == "__main__":
    main()
