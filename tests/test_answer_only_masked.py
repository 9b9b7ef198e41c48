"""``config --method answer-only-masked``: answer-only data trained without teaching the model to stop thinking. The
written configs set ``enable_thinking: false`` in train, predict and export; LLaMA-Factory then puts the empty
block in the prompt, masked, and trains the answer alone (checked with its own loader on the tiny model)."""

from __future__ import annotations

from pathlib import Path

import yaml
from lf_harness import encode_with_llamafactory

from lf_reasoning.errors import EXIT_ERROR
from tests.cli_runner import run

R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"
EMPTY_BLOCK = "<think>\n\n</think>\n\n"


def config(tiny_model: Path, data: Path, out: Path, dataset: str, method: str) -> tuple[int, str]:
    return run(
        "config", "--model", str(tiny_model), "--dataset", dataset, "--dataset-dir", str(data), "--out", str(out),
        "--template", "qwen3", "--hardware", "cpu", "--method", method,
    )  # fmt: skip


def test_the_empty_block_is_masked_and_only_the_answer_trained(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, out = run("convert", str(R1), "--name", "plain", "--dataset-dir", str(data), "--think", "drop")
    assert code == 0, out
    code, out = config(tiny_model, data, tmp_path / "run", "plain", "answer-only-masked")
    assert code == 0, out
    values = {name: yaml.safe_load((tmp_path / "run" / name).read_text()) for name in ("train.yaml", "predict.yaml")}
    assert values["train.yaml"]["enable_thinking"] is False and values["predict.yaml"]["enable_thinking"] is False
    masked = encode_with_llamafactory(tiny_model, data, "plain", "qwen3", enable_thinking=False)
    trained = encode_with_llamafactory(tiny_model, data, "plain", "qwen3", enable_thinking=True)  # answer-only
    for m, t in zip(masked, trained, strict=True):
        assert m.prompt_text.endswith(EMPTY_BLOCK) and "<think>" not in m.label_text  # nothing about thinking trained
        assert t.label_text.startswith(EMPTY_BLOCK)  # what --method answer-only teaches instead
        assert m.label_text == t.label_text.removeprefix(EMPTY_BLOCK)


def test_data_with_thoughts_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("convert", str(R1), "--name", "r1", "--dataset-dir", str(data))[0] == 0
    code, out = config(tiny_model, data, tmp_path / "run", "r1", "answer-only-masked")
    assert code == EXIT_ERROR and "--method answer-only-masked: 4 record(s) of r1 have a thought" in out, out
    assert "--think drop" in out and not (tmp_path / "run" / "train.yaml").exists()
