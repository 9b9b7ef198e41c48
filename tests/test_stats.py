"""`lf-reasoning stats`: token lengths equal what LLaMA-Factory itself produces for the same records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run
from click.testing import CliRunner
from lf_harness import IGNORE_INDEX, encode_with_llamafactory

from lf_reasoning.cli import main
from lf_reasoning.llamafactory.dataset_info import sharegpt_entry
from lf_reasoning.llamafactory.lengths import LengthStats, measure_lengths, suggest_cutoff_len
from lf_reasoning.record.markup import THOUGHT_CLOSE, THOUGHT_OPEN
from lf_reasoning.record.thoughts import render_response

R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """r1 (sharegpt) and r1_alpaca from convert, plus a hand-written multi-turn sharegpt file ``multi``."""
    d = tmp_path_factory.mktemp("stats") / "data"
    for name, style in (("r1", "sharegpt"), ("r1_alpaca", "alpaca")):
        code, out = run("convert", str(R1), "--name", name, "--dataset-dir", str(d), "--style", style)
        assert code == 0, out
    user, assistant = "user", "assistant"
    records = [
        {
            "system": "You are terse.",
            "messages": [
                {"role": user, "content": "What is 3 + 4?"},
                {"role": assistant, "content": render_response("3 + 4 = 7.", "7")},
                {"role": user, "content": "And times 2?"},
                {"role": assistant, "content": render_response("7 × 2 = 14, 我们 check it.", "14")},
            ],
        },
        {"system": "", "messages": [{"role": assistant, "content": "starts with the assistant"}]},  # LF drops it
        {"system": "", "messages": [{"role": user, "content": "Say hi."}, {"role": assistant, "content": "Hi!"}]},
        {
            "system": "",
            "messages": [
                {"role": user, "content": "Long one. " * 20},
                {"role": assistant, "content": render_response("step " * 300, "done")},
            ],
        },
    ]
    (d / "multi.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    info = json.loads((d / "dataset_info.json").read_text())
    (d / "dataset_info.json").write_text(json.dumps({**info, "multi": sharegpt_entry("multi.jsonl")}))
    return d


@pytest.mark.parametrize(
    ("name", "template", "thinking"),
    [
        ("r1", "qwen3", True),
        ("r1", "qwen3", False),
        ("r1_alpaca", "deepseekr1", True),
        ("multi", "qwen3", True),
        ("multi", "deepseekr1", None),
    ],
)
def test_lengths_equal_llamafactory_encoding(
    tiny_model: Path, dataset_dir: Path, name: str, template: str, thinking: bool | None
) -> None:
    stats = measure_lengths(dataset_dir, name, str(tiny_model), template, enable_thinking=thinking)
    examples = encode_with_llamafactory(
        tiny_model, dataset_dir, name, template, enable_thinking=thinking, cutoff_len=100_000
    )
    assert stats.n == len(examples) and stats.dropped == (1 if name == "multi" else 0)
    assert stats.total.tolist() == [len(e.input_ids) for e in examples]
    assert stats.prompt.tolist() == [sum(label == IGNORE_INDEX for label in e.labels) for e in examples]
    assert (stats.thought + stats.answer).tolist() == [
        sum(label != IGNORE_INDEX for label in e.labels) for e in examples
    ]


def test_thought_tokens_are_the_tokenizers_count_of_the_thought(tiny_model: Path, dataset_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    expected = []
    for line in (dataset_dir / "multi.jsonl").read_text().splitlines():
        messages = json.loads(line)["messages"]
        if messages[0]["role"] == "user":
            thoughts = [
                m["content"][len(THOUGHT_OPEN) : m["content"].find(THOUGHT_CLOSE)]
                for m in messages
                if m["role"] == "assistant" and m["content"].startswith(THOUGHT_OPEN)
            ]
            expected.append(sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in thoughts))
    stats = measure_lengths(dataset_dir, "multi", str(tiny_model), "qwen3")
    assert stats.thought.tolist() == expected
    assert expected[0] > 0 and expected[1] == 0 and expected[2] > 300
    assert measure_lengths(dataset_dir, "multi", str(tiny_model), "qwen3", enable_thinking=False).thought.sum() == 0


def test_truncated_share_matches_what_llamafactory_cuts(tiny_model: Path, dataset_dir: Path) -> None:
    stats = measure_lengths(dataset_dir, "r1", str(tiny_model), "qwen3")
    totals = sorted(stats.total.tolist())
    assert len(set(totals)) == 4, totals
    cutoff = (totals[1] + totals[2]) // 2  # two records fit, two are longer
    assert stats.truncated_share(cutoff) == 0.5
    assert stats.truncated_share(totals[-1]) == 0.0 and stats.truncated_share(totals[0] - 1) == 1.0
    cut = encode_with_llamafactory(tiny_model, dataset_dir, "r1", "qwen3", cutoff_len=cutoff)
    assert [len(e.input_ids) for e in cut] == [min(t, cutoff) for t in stats.total.tolist()]
    assert stats.percentile(50) == totals[1] and stats.percentile(100) == totals[-1]
    assert suggest_cutoff_len(stats) == 256 and suggest_cutoff_len(stats, multiple=64) == 64 * -(-totals[-1] // 64)


def test_suggest_cutoff_len_covers_the_percentile() -> None:
    lengths = LengthStats(*(np.arange(1, 1001) for _ in range(3)))  # totals 3, 6, …, 3000
    assert lengths.n == 1000 and lengths.percentile(99) == 2970 and lengths.percentile(100, "thought") == 1000
    assert suggest_cutoff_len(lengths) == 3072 and suggest_cutoff_len(lengths, 50) == 1536
    assert lengths.truncated_share(2048) == pytest.approx(1 - 682 / 1000)


def test_cli_table_json_and_plot(tiny_model: Path, dataset_dir: Path, tmp_path: Path) -> None:
    stats = measure_lengths(dataset_dir, "r1", str(tiny_model), "qwen3")
    png = tmp_path / "lengths.png"
    code, out = run(
        "stats",
        "r1",
        "--dataset-dir",
        str(dataset_dir),
        "--tokenizer",
        str(tiny_model),
        "--template",
        "qwen3",
        "--cutoff-len",
        "100",
        "--plot",
        str(png),
    )
    assert code == 0, out
    total_row = next(line.split() for line in out.splitlines() if line.startswith("total"))
    assert total_row[1:6] == [str(stats.percentile(p)) for p in (50, 90, 95, 99, 100)]
    share = stats.truncated_share(100)
    assert 0 < share < 1 and f"{round(share * 4)} ({share:.1%})  <- --cutoff-len" in out
    assert all(f"{cut:>10}" in out for cut in (1024, 2048, 4096, 8192))
    assert "answer and EOS" in out and "--max-tokens" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") > 100  # signature, IHDR width

    result = CliRunner().invoke(
        main,
        [
            "stats",
            "r1",
            "--dataset-dir",
            str(dataset_dir),
            "--tokenizer",
            str(tiny_model),
            "--template",
            "qwen3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # LLaMA-Factory's log lines go to stderr
    assert report["records"] == 4 and report["parts"]["total"]["max"] == stats.percentile(100)
    assert report["parts"]["thought"]["p50"] == stats.percentile(50, "thought")
    assert report["truncated_share"]["2048"] == 0.0 and report["suggested_cutoff_len"] == 256


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["r2"], "no dataset 'r2'; did you mean r1"),
        (["r1", "--template", "qwen33"], "--template qwen33: LLaMA-Factory has no such template; did you mean qwen3"),
        (
            ["r1", "--tokenizer", "/nonexistent/tokenizer"],
            "--tokenizer /nonexistent/tokenizer: no such directory",
        ),
    ],
)
def test_bad_input_exits_1_with_a_message(tiny_model: Path, dataset_dir: Path, args: list[str], message: str) -> None:
    opts = {"--tokenizer": str(tiny_model), "--template": "qwen3"}
    for key, value in zip(args[1::2], args[2::2], strict=True):
        opts[key] = value
    code, out = run("stats", args[0], "--dataset-dir", str(dataset_dir), *(x for kv in opts.items() for x in kv))
    assert code == 1 and message in out, out


def test_missing_data_file_and_missing_template(tiny_model: Path, dataset_dir: Path, tmp_path: Path) -> None:
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    (tmp_path / "dataset_info.json").write_text(json.dumps({"r1": info["r1"]}))
    code, out = run(
        "stats", "r1", "--dataset-dir", str(tmp_path), "--tokenizer", str(tiny_model), "--template", "qwen3"
    )
    assert code == 1 and f"{tmp_path / 'r1.jsonl'}: data file of dataset 'r1' is missing" in out, out
    code, out = run("stats", "r1", "--dataset-dir", str(dataset_dir), "--tokenizer", str(tiny_model))
    assert code == 1 and "Pass --template" in out, out  # the tiny model says nothing about its template
