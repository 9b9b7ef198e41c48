"""What makes a saved ``tokenized_path`` stale (``lf_reasoning.llamafactory.tokenized``), on real files: a data file
with other bytes or a rebuilt tokenizer is refused; a data file rewritten with the same bytes is not. (The whole
train → reuse → refuse flow with LLaMA-Factory is in tests/test_scale.py.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.tokenized import check_tokenized_path, record_tokenization_inputs

R1 = Path(__file__).resolve().parents[1] / "examples" / "data" / "r1_distill.jsonl"


@pytest.fixture
def setup(tmp_path: Path, tiny_model: Path) -> tuple[dict[str, Any], Path, Path]:
    """A converted dataset, a copy of the tiny model's folder, a config naming both, and the saved tokens."""
    data = tmp_path / "data"
    code, output = run("convert", str(R1), "--name", "r1", "--dataset-dir", str(data))
    assert code == 0, output
    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    tokenized = tmp_path / "run" / "tokenized"
    config = {"model_name_or_path": str(model), "dataset": "r1", "dataset_dir": str(data)}
    config |= {"template": "qwen3", "cutoff_len": 1024, "tokenized_path": str(tokenized)}
    record_tokenization_inputs(config, tmp_path / "run")
    tokenized.mkdir(parents=True)
    (tokenized / "dataset_dict.json").write_text("{}")  # what LLaMA-Factory's save_to_disk leaves
    return config, next(data.glob("r1*.jsonl")), model


def check(config: dict[str, Any], tmp_path: Path) -> str | None:
    """None when the tokens are reused, else the refusal."""
    try:
        assert check_tokenized_path(config, tmp_path / "run", "train.yaml") == []
    except UserError as err:
        return str(err)
    return None


def bump(path: Path, seconds: int) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def test_the_same_inputs_reuse_the_tokens(setup: tuple[dict[str, Any], Path, Path], tmp_path: Path) -> None:
    config, data, _ = setup
    assert check(config, tmp_path) is None
    data.write_bytes(data.read_bytes())  # convert run again: rewritten, the same bytes
    bump(data, 5)
    assert check(config, tmp_path) is None


def test_a_data_file_with_other_bytes_is_refused(setup: tuple[dict[str, Any], Path, Path], tmp_path: Path) -> None:
    config, data, _ = setup
    text = data.read_bytes()
    assert b"2" in text
    data.write_bytes(text.replace(b"2", b"3"))  # the same size
    bump(data, 5)
    refusal = check(config, tmp_path)
    assert refusal is not None and f"(data file {data} changed since" in refusal
    assert f"rm -r {config['tokenized_path']}" in refusal


def test_a_rebuilt_tokenizer_is_refused(setup: tuple[dict[str, Any], Path, Path], tmp_path: Path) -> None:
    config, _, model = setup
    tokenizer_config = model / "tokenizer_config.json"
    tokenizer_config.write_text(tokenizer_config.read_text().replace("}", ', "model_max_length": 7}', 1))
    refusal = check(config, tmp_path)
    assert refusal is not None and "(tokenizer files changed since" in refusal


def test_a_changed_key_is_refused(setup: tuple[dict[str, Any], Path, Path], tmp_path: Path) -> None:
    config, _, _ = setup
    refusal = check({**config, "cutoff_len": 2048}, tmp_path)
    assert refusal is not None and "(cutoff_len changed since" in refusal
