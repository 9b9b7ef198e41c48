"""Shared pytest setup: offline Hugging Face libraries and a tiny local model built once per session."""

from __future__ import annotations

import os
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
