"""Qwen3.5 and Qwen3.6 resolve to their LLaMA-Factory templates: hub ids, renamed copies and local model files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_reasoning.llamafactory.templates import choose_template, is_reasoning_template, template_exists
from tests.test_templates import PLAIN_CHATML, QWEN3_HYBRID, THINK_PREFILL, model_dir


def test_the_templates_exist_in_the_installed_llamafactory() -> None:
    for name in ("qwen3_5", "qwen3_6"):
        assert template_exists(name) and is_reasoning_template(name), name


@pytest.mark.parametrize(
    ("model", "template", "why"),
    [
        ("Qwen/Qwen3.5-9B", "qwen3_5", "LLaMA-Factory maps Qwen/Qwen3.5-9B"),  # listed in 0.9.5's table
        ("Qwen/Qwen3.5-35B-A3B", "qwen3_5", "LLaMA-Factory maps"),
        ("Qwen/Qwen3.5-27B-FP8", "qwen3_5", "its name marks a Qwen3.5 model"),  # not listed: name pattern
        ("Qwen/Qwen3.6-27B", "qwen3_6", "its name marks a Qwen3.6 model"),  # 0.9.5 lists no Qwen3.6 at all
        ("Qwen/Qwen3.6-35B-A3B", "qwen3_6", "its name marks a Qwen3.6 model"),
        ("Qwen/Qwen3.6-35B-A3B-FP8", "qwen3_6", "its name marks a Qwen3.6 model"),
        ("unsloth/Qwen3.6-27B-GGUF", "qwen3_6", "its name marks a Qwen3.6 model"),
    ],
)
def test_hub_ids(model: str, template: str, why: str) -> None:
    choice = choose_template(model)
    assert choice.template == template and choice.reasoning
    assert why in choice.reason


@pytest.mark.parametrize(
    ("name", "model_type", "chat_template", "template"),
    [
        ("my-finetune", "qwen3_5", QWEN3_HYBRID, "qwen3_5"),
        ("my-finetune", "qwen3_5_moe", QWEN3_HYBRID, "qwen3_5"),
        ("my-finetune", "qwen3_5", THINK_PREFILL, "qwen3_5"),
        # Qwen3.6 keeps Qwen3.5's model_type: the folder's name tells them apart
        ("qwen3.6-sft-merged", "qwen3_5_moe", QWEN3_HYBRID, "qwen3_6"),
        ("qwen3-sft", "qwen3", QWEN3_HYBRID, "qwen3"),  # unchanged
    ],
)
def test_local_model_types(tmp_path: Path, name: str, model_type: str, chat_template: str, template: str) -> None:
    path = model_dir(tmp_path, name, model_type, chat_template)
    choice = choose_template(str(path))
    assert choice.template == template
    assert f"on a {model_type} model" in choice.reason


def test_a_plain_chat_template_still_asks(tmp_path: Path) -> None:
    """A qwen3_5 folder whose chat template shows no thinking is not guessed."""
    from lf_reasoning.errors import UserError

    with pytest.raises(UserError, match="model_type qwen3_5"):
        choose_template(str(model_dir(tmp_path, "my-finetune", "qwen3_5", PLAIN_CHATML)))
