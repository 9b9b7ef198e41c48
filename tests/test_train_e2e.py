"""End to end on the CPU: convert → config → train (LLaMA-Factory for real) → predict → export, all via the CLI.

The tiny random model cannot learn to write a thought in a few dozen LoRA steps (its frozen, tied embeddings keep
the logits near uniform), so the LoRA run asserts the thought format where LLaMA-Factory puts it: the prompt it
generates from and the label it compares with. The generated text itself is asserted by a second run: full
fine-tuning on four short records until they are memorised, then greedy predictions on those same records must be
well-formed thoughts followed by the answer (this tests the pipeline and the format, not generalisation).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lf_reasoning.cli import main
from lf_reasoning.llamafactory.chat_template import hf_render, lf_render
from lf_reasoning.llamafactory.launch import read_config

R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"
# A short, fast run: the config's defaults are for real data (batch 8 by accumulation, 3 epochs).
TRAIN_OVERRIDES = [
    "max_steps=30",
    "gradient_accumulation_steps=1",
    "learning_rate=5e-3",
    "warmup_steps=0",
    "logging_steps=3",
    "save_steps=1000",
]
PREDICT_OVERRIDES = ["max_new_tokens=32", "do_sample=false"]


def run(*args: str) -> str:
    started = time.monotonic()
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output[-3000:]
    print(f"{args[0]} {Path(args[1]).name}: {time.monotonic() - started:.1f}s")  # timings, shown with -s
    return result.output


@pytest.fixture(scope="module")
def run_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """convert, config --hardware cpu, train, predict and export; returns the config folder."""
    root = tmp_path_factory.mktemp("e2e")
    run("convert", str(R1), "--name", "r1", "--dataset-dir", str(root / "data"))
    out = root / "run"
    run(
        "config",
        "--model",
        str(tiny_model),
        "--template",
        "qwen3",
        "--dataset",
        "r1",
        "--dataset-dir",
        str(root / "data"),
        "--out",
        str(out),
        "--hardware",
        "cpu",
    )
    output = run("train", str(out / "train.yaml"), *TRAIN_OVERRIDES)
    assert f"adapter: {out / 'train'}" in output and "training log:" in output and "loss plot:" in output
    assert "predictions:" in run("train", str(out / "predict.yaml"), *PREDICT_OVERRIDES)
    assert "merged model:" in run("train", str(out / "export.yaml"))
    return out


def test_training_wrote_an_adapter_and_the_loss_fell(run_dir: Path) -> None:
    train = run_dir / "train"
    assert (train / "adapter_model.safetensors").is_file() and (train / "adapter_config.json").is_file()
    assert (train / "training_loss.png").is_file()
    losses = [e["loss"] for e in map(json.loads, (train / "trainer_log.jsonl").read_text().splitlines()) if "loss" in e]
    assert len(losses) >= 5
    assert losses[-1] < losses[0] - 0.2, losses


def test_predictions_use_the_trained_thought_format(run_dir: Path) -> None:
    rows = [json.loads(line) for line in (run_dir / "predict" / "generated_predictions.jsonl").read_text().splitlines()]
    assert rows  # the 5% held-out split of 4 records: one record
    for row in rows:
        # enable_thinking true: the prompt ends at the assistant header, no empty thought prefilled;
        assert row["prompt"].endswith("<|im_end|>\n<|im_start|>assistant\n") and "<think>" not in row["prompt"]
        # the label is the record's response in LLaMA-Factory's exact thought form
        assert row["label"].startswith("<think>\n") and row["label"].count("\n</think>\n\n") == 1
        assert isinstance(row["predict"], str)


def test_exported_model_loads_and_prompts_as_in_training(run_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    export = run_dir / "export"
    model = AutoModelForCausalLM.from_pretrained(export)
    assert model.config.model_type == "qwen3"
    tokenizer = AutoTokenizer.from_pretrained(export)
    config = read_config(run_dir / "train.yaml")
    for messages in (
        [{"role": "user", "content": "What is 12 × 15?"}],
        [
            {"role": "user", "content": "2 + 2?"},
            {"role": "assistant", "content": "<think>\nAdd.\n</think>\n\n4"},
            {"role": "user", "content": "And 2 + 3?"},
        ],
        [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "<think>\nAdd.\n</think>\n\n4"}],
    ):
        expected = lf_render(tokenizer, config["template"], config["enable_thinking"], None, messages)
        assert hf_render(tokenizer, None, messages) == expected


CUSTOM_TEMPLATE = """\
name: qa_think_e2e
reasoning: true
user: "### Question:\\n{{content}}\\n\\n### Response:\\n"
assistant: "{{content}}{{eos_token}}"
"""


def test_custom_template_trains_through_our_launcher_and_exports_its_chat_template(
    tiny_model: Path, tmp_path: Path
) -> None:
    template = tmp_path / "qa_think.yaml"
    template.write_text(CUSTOM_TEMPLATE, encoding="utf-8")
    run("convert", str(R1), "--name", "r1", "--dataset-dir", str(tmp_path / "data"))
    out = tmp_path / "run"
    run(
        "config",
        "--model",
        str(tiny_model),
        "--template-file",
        str(template),
        "--dataset",
        "r1",
        "--dataset-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--hardware",
        "cpu",
    )
    overrides = ["max_steps=6", "gradient_accumulation_steps=1", "logging_steps=2"]
    command = run("train", str(out / "train.yaml"), *overrides, "--dry-run").splitlines()[0]
    assert "-m lf_reasoning.llamafactory.launch" in command  # llamafactory-cli would not know the template
    run("train", str(out / "train.yaml"), *overrides)
    assert (out / "train" / "adapter_model.safetensors").is_file()
    run("train", str(out / "export.yaml"))

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out / "export")
    messages = [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "<think>\nAdd.\n</think>\n\n4"}]
    rendered = hf_render(tokenizer, None, messages)
    assert rendered == lf_render(tokenizer, "qa_think_e2e", True, None, messages)
    assert rendered.startswith("### Question:\n2 + 2?\n\n### Response:\n<think>\nAdd.\n</think>\n\n4")


# Four short records in the R1 distill dump's shape, for a run that memorises them.
MEMORISE = [
    {"input": "2 + 2?", "reasoning_content": "Add two and two.", "content": "4"},
    {"input": "3 + 5?", "reasoning_content": "Add three and five.", "content": "8"},
    {"input": "Color of the sky?", "reasoning_content": "The sky is blue.", "content": "Blue."},
    {"input": "Legs of a dog?", "reasoning_content": "A dog has four legs.", "content": "Four."},
]
# Full fine-tuning, the four records in one batch, a constant high rate: the loss goes from ~8 to ~0.05 in 60 steps.
MEMORISE_OVERRIDES = [
    "max_steps=80",
    "per_device_train_batch_size=4",
    "gradient_accumulation_steps=1",
    "learning_rate=3e-3",
    "lr_scheduler_type=constant",
    "warmup_steps=0",
    "logging_steps=10",
    "save_steps=1000",
]


def test_full_finetune_memorises_and_generates_the_thought_format(tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "memorise.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in MEMORISE), encoding="utf-8")
    run("convert", str(src), "--name", "mem", "--dataset-dir", str(tmp_path / "data"))
    out = tmp_path / "run"
    run(
        "config",
        "--model",
        str(tiny_model),
        "--template",
        "qwen3",
        "--dataset",
        "mem",
        "--eval-dataset",
        "mem",
        "--dataset-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--hardware",
        "cpu",
        "--finetuning",
        "full",
    )
    assert f"model: {out / 'train'}" in run("train", str(out / "train.yaml"), *MEMORISE_OVERRIDES)
    log = (out / "train" / "trainer_log.jsonl").read_text().splitlines()
    losses = [e["loss"] for e in map(json.loads, log) if "loss" in e]
    assert losses[-1] < 0.3, losses  # memorised
    assert "predictions:" in run("train", str(out / "predict.yaml"), "max_new_tokens=32", "do_sample=false")

    rows = [json.loads(line) for line in (out / "predict" / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == len(MEMORISE)
    expected = {
        f"<|im_start|>user\n{r['input']}<|im_end|>\n<|im_start|>assistant\n": (
            f"<think>\n{r['reasoning_content']}\n</think>\n\n{r['content']}"
        )
        for r in MEMORISE
    }
    for row in rows:
        predict = row["predict"]
        # a generated thought in LLaMA-Factory's exact form, then a non-empty answer
        assert predict.startswith("<think>\n") and predict.count("\n</think>\n\n") == 1, row
        assert predict.split("\n</think>\n\n")[1].strip(), row
        # greedy decoding reproduces the memorised record (the label also keeps the newline after <|im_end|>)
        assert predict == expected[row["prompt"]] == row["label"].rstrip("\n"), row
