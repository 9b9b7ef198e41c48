"""Every input container gives the same converted dataset: JSON Lines, JSON array, gzip, zstd, Parquet, CSV,
and a directory of them."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from lf_reasoning.commands.convert import ConvertOptions, convert
from lf_reasoning.record.inputs import Inputs

ROWS = [{"Question": f"question {i}", "Complex_CoT": f"thought {i}", "Response": f"answer {i}"} for i in range(600)]
JSONL = "".join(json.dumps(r) + "\n" for r in ROWS).encode()


def write(path: Path) -> Path:
    name = path.name
    if name.endswith(".jsonl"):
        path.write_bytes(JSONL)
    elif name.endswith(".json"):
        path.write_text(json.dumps(ROWS, indent=2))
    elif name.endswith(".gz"):
        path.write_bytes(gzip.compress(JSONL))
    elif name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(JSONL))
    elif name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(ROWS), path, row_group_size=100)
    elif name.endswith(".csv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
            writer.writeheader()
            writer.writerows(ROWS)
    return path


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("ref")
    convert(ConvertOptions(Inputs((str(write(out / "in.jsonl")),)), "d", out / "data", workers=1))
    return (out / "data" / "d.jsonl").read_bytes()


@pytest.mark.parametrize("name", ["in.json", "in.jsonl.gz", "in.jsonl.zst", "in.parquet", "in.csv"])
@pytest.mark.parametrize("workers", [1, 2])
def test_container(tmp_path: Path, expected: bytes, name: str, workers: int) -> None:
    report = convert(ConvertOptions(Inputs((str(write(tmp_path / name)),)), "d", tmp_path / "data", workers=workers))
    assert report.read == report.written == len(ROWS)
    assert (tmp_path / "data" / "d.jsonl").read_bytes() == expected


def test_directory_is_read_in_name_order(tmp_path: Path, expected: bytes) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    half = len(ROWS) // 2
    (src / "a.jsonl").write_bytes(b"".join(JSONL.splitlines(keepends=True)[:half]))
    (src / "sub" / "b.jsonl").write_bytes(b"".join(JSONL.splitlines(keepends=True)[half:]))
    (src / ".hidden.jsonl").write_text("not json")
    (src / "notes.txt").write_text("ignored")
    report = convert(ConvertOptions(Inputs((str(src),)), "d", tmp_path / "data"))
    assert report.written == len(ROWS) and not report.invalid
    assert (tmp_path / "data" / "d.jsonl").read_bytes() == expected
