"""Shared pytest setup: offline Hugging Face libraries, a tiny local model and its memorising fine-tune, each built
once per session."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

# Read by huggingface_hub / datasets / LLaMA-Factory at import time: set before any test module imports them.
_SESSION_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DISABLE_VERSION_CHECK": "1",
}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(_SESSION_ENV)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random Qwen3 model + tokenizer (see ``lf_reasoning.tiny_model``), built once."""
    from lf_reasoning.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "model")


# What the memorising model says: question → (thought, answer). test_serve asks three greedily, test_rft_loop five
# sampled; "3 * 3?" is learnt wrong on purpose (grade must reject it).
MEMORISED = {
    "2 + 2?": ("Add two and two.", "4"),
    "3 * 3?": ("Three threes.", "6"),
    "Legs of a dog?": ("A dog has four legs.", "Four."),
    "Color of the sky?": ("The sky is blue.", "Blue."),
    "Say hi.": ("A greeting.", "Hi!"),
    "Name a color.": ("Any color.", "Blue."),
}
# Full fine-tuning, all records in one batch at a constant high rate: memorised in 60 steps (~1 min on 2 CPUs).
MEMORISE_OVERRIDES = [
    "max_steps=60",
    "per_device_train_batch_size=8",
    "gradient_accumulation_steps=1",
    "learning_rate=3e-3",
    "lr_scheduler_type=constant",
    "warmup_steps=0",
    "val_size=0",
    "logging_steps=20",
    "save_steps=1000",
]


@dataclass(frozen=True)
class Memorised:
    """``root/data`` (dataset ``mem``) and ``root/run`` (configs; the model in ``run/train``) reproducing ``replies``.

    Shared by the session: tests may add datasets to ``data/`` and folders next to ``run/``, never change ``run/train``.
    """

    root: Path
    replies: dict[str, tuple[str, str]]


@pytest.fixture(scope="session")
def memorised(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Memorised:
    """The tiny model fully fine-tuned once, with the CLI, until it reproduces MEMORISED."""
    from tests.cli_runner import run

    root = tmp_path_factory.mktemp("memorised")
    rows = [{"input": q, "reasoning_content": t, "content": a} for q, (t, a) in MEMORISED.items()]
    (root / "mem.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    data, run_dir = root / "data", root / "run"
    steps = [
        ("convert", str(root / "mem.jsonl"), "--name", "mem", "--dataset-dir", str(data)),
        (
            "config", "--model", str(tiny_model), "--template", "qwen3", "--dataset", "mem", "--dataset-dir",
            str(data), "--out", str(run_dir), "--hardware", "cpu", "--finetuning", "full",
        ),
        ("train", str(run_dir / "train.yaml"), *MEMORISE_OVERRIDES),
    ]  # fmt: skip
    for args in steps:
        code, output = run(*args)
        assert code == 0, output[-3000:]
    return Memorised(root, dict(MEMORISED))
