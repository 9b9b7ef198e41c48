"""A local folder named by split (a downloaded Hugging Face dataset) gives only ``--split``'s files, never its test
rows mixed into the training data; hidden folders and dataset metadata under a SRC folder are not read."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from cli_runner import run

from lf_reasoning.errors import EXIT_ERROR


def rows(tag: str, n: int = 2) -> list[dict[str, str]]:
    return [{"Question": f"{tag} q{i}", "Complex_CoT": f"{tag} t{i}", "Response": f"{tag} a{i}"} for i in range(n)]


def write_parquet(path: Path, tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows(tag)), path)


def write_jsonl(path: Path, tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(tag)), encoding="utf-8")


def convert(src: Path, tmp_path: Path, *args: str) -> tuple[int, str, list[str]]:
    """Exit code, output and the tags (which file each came from) of the converted records."""
    data = tmp_path / "data"
    code, out = run("convert", str(src), "--name", "n", "--dataset-dir", str(data), *args)
    written = data / "n.jsonl"
    lines = written.read_text(encoding="utf-8").splitlines() if written.exists() else []
    return code, out, sorted({json.loads(line)["messages"][0]["content"].split()[0] for line in lines})


def hub_snapshot(tmp_path: Path) -> Path:
    ds = tmp_path / "ds"
    write_parquet(ds / "data" / "train-00000-of-00002.parquet", "train0")
    write_parquet(ds / "data" / "train-00001-of-00002.parquet", "train1")
    write_parquet(ds / "data" / "test-00000-of-00001.parquet", "test0")
    return ds


def test_a_sharded_hub_folder_gives_only_the_train_split_by_default(tmp_path: Path) -> None:
    code, out, tags = convert(hub_snapshot(tmp_path), tmp_path)
    assert code == 0, out
    assert tags == ["train0", "train1"]


def test_split_test_picks_the_test_files(tmp_path: Path) -> None:
    code, out, tags = convert(hub_snapshot(tmp_path), tmp_path, "--split", "test")
    assert code == 0, out
    assert tags == ["test0"]


def test_a_split_not_there_names_the_splits_found(tmp_path: Path) -> None:
    code, out, tags = convert(hub_snapshot(tmp_path), tmp_path, "--split", "dev")
    assert code == EXIT_ERROR
    assert "no 'dev' split" in out and "train, test" in out and "--split" in out
    assert tags == []


def test_split_named_jsonl_files_and_a_synonym(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    for name in ("train", "test", "dev"):
        write_jsonl(ds / f"{name}.jsonl", name)
    code, out, tags = convert(ds, tmp_path, "--split", "validation")
    assert code == 0, out
    assert tags == ["dev"]  # datasets reads dev.jsonl as the validation split


def test_split_folders(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    write_jsonl(ds / "train" / "part0.jsonl", "train")
    write_jsonl(ds / "validation" / "part0.jsonl", "validation")
    code, out, tags = convert(ds, tmp_path, "--split", "validation")
    assert code == 0, out
    assert tags == ["validation"]


def test_a_folder_not_named_by_split_is_read_whole(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    write_jsonl(ds / "math.jsonl", "math")
    write_parquet(ds / "code" / "trainer.parquet", "trainer")  # "trainer" is no split name
    write_jsonl(ds / "test.jsonl", "test")  # one split alone: nothing to choose between
    code, out, tags = convert(ds, tmp_path)
    assert code == 0, out
    assert tags == ["math", "test", "trainer"]


def test_hidden_folders_and_dataset_metadata_are_skipped(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    write_jsonl(ds / "records.jsonl", "records")
    write_jsonl(ds / ".cache" / "x.jsonl", "cache")
    (ds / ".cache" / "x.json").write_text("not json", encoding="utf-8")
    (ds / ".git").mkdir()
    (ds / ".git" / "HEAD.json").write_text("{}", encoding="utf-8")
    (ds / "dataset_infos.json").write_text(json.dumps({"default": {"splits": {}}}), encoding="utf-8")
    (ds / "dataset_info.json").write_text(json.dumps({"n": {"file_name": "n.jsonl"}}), encoding="utf-8")
    code, out, tags = convert(ds, tmp_path)
    assert code == 0, out
    assert tags == ["records"]
