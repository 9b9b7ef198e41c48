"""`lf-reasoning config`'s keys for big data: parallel tokenisation, tokenized_path, data-loader workers, streaming.

Every file is built by `build_configs`, which runs LLaMA-Factory's own parser on it, and read back as
llamafactory-cli reads it. "Big" is a size threshold; it is lowered here so that the 4-record example crosses it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from cli_runner import run

from lf_reasoning.llamafactory import config_data
from lf_reasoning.llamafactory.config_build import ConfigRequest, build_configs
from lf_reasoning.llamafactory.config_write import write_configs
from lf_reasoning.llamafactory.launch import read_config

R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("config_data") / "data"
    for name in ("r1", "r1_eval"):
        code, out = run("convert", str(R1), "--name", name, "--dataset-dir", str(d))
        assert code == 0, out
    return d


def build(dataset_dir: Path, out: Path, tiny_model: Path, **kwargs: object) -> dict[str, object]:
    fields = {"model": str(tiny_model), "template": "qwen3", "datasets": ("r1",), "dataset_dir": dataset_dir}
    configs = build_configs(ConfigRequest(**{**fields, "out": out, **kwargs}))  # type: ignore[arg-type]
    write_configs(configs, out)
    train = configs["train"]
    assert read_config(out / "train.yaml") == train.values  # what llamafactory-cli reads is what was parsed
    header = (out / "train.yaml").read_text(encoding="utf-8")
    for key in ("preprocessing_num_workers", "tokenized_path", "dataloader_num_workers", "streaming", "max_steps"):
        if key in train.values:
            assert f"#   {key}: " in header, key  # each key explained like the others
    return train.values


@pytest.mark.parametrize("hardware", ["cpu", "gpu", "multi-node"])
def test_small_data_tokenises_in_one_process_and_saves_the_tokens(
    dataset_dir: Path, tiny_model: Path, tmp_path: Path, hardware: str
) -> None:
    train = build(dataset_dir, tmp_path / "run", tiny_model, hardware=hardware)
    assert train["preprocessing_num_workers"] == 1  # 4 records: starting workers costs more than they save
    assert train["tokenized_path"] == str(tmp_path / "run" / "tokenized")
    assert train["dataloader_num_workers"] == (0 if hardware == "cpu" else 2)
    assert "streaming" not in train and "max_steps" not in train


def test_larger_data_tokenises_in_one_process_per_cpu_at_most_16(
    dataset_dir: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_data, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(config_data, "cpu_count", lambda: 6)
    assert build(dataset_dir, tmp_path / "six", tiny_model, hardware="cpu")["preprocessing_num_workers"] == 6
    monkeypatch.setattr(config_data, "cpu_count", lambda: 64)
    assert build(dataset_dir, tmp_path / "many", tiny_model, hardware="gpu")["preprocessing_num_workers"] == 16


def test_data_above_the_threshold_streams_with_max_steps(
    dataset_dir: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_data, "STREAMING_BYTES", 1)
    train = build(dataset_dir, tmp_path / "run", tiny_model, hardware="gpu", eval_dataset="r1_eval")
    records = sum(1 for line in R1.read_text(encoding="utf-8").splitlines() if line.strip())
    assert train["streaming"] is True
    assert train["max_steps"] == math.ceil(3 * records / 8)  # LLaMA-Factory requires it when streaming
    # LLaMA-Factory refuses these with streaming: no tokens saved, nothing split off, no map workers
    for key in ("tokenized_path", "val_size", "preprocessing_num_workers"):
        assert key not in train, key


def test_data_above_the_threshold_without_eval_dataset_is_tokenised_and_says_why(
    dataset_dir: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_data, "STREAMING_BYTES", 1)
    train = build(dataset_dir, tmp_path / "run", tiny_model, hardware="gpu")
    assert "streaming" not in train and train["val_size"] == 0.05 and "tokenized_path" in train
    header = " ".join((tmp_path / "run" / "train.yaml").read_text(encoding="utf-8").split())
    assert "with --eval-dataset the data would be streamed" in header.replace("# ", "")


def test_count_records_counts_non_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\n   \n{"a": 3}')  # blank lines skipped, no final newline
    assert config_data.count_records([path]) == 3
