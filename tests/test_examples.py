"""The committed dataset_info/ is exactly what `make demo` converts (examples/data and the news-title example's
datasets), and validates clean."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_news_example import load_example

from lf_reasoning.commands.convert import ConvertOptions, convert
from lf_reasoning.llamafactory.validate import validate_dataset_info
from lf_reasoning.record.inputs import Inputs

ROOT = Path(__file__).parents[1]


def test_dataset_info_dir_is_up_to_date(tmp_path: Path) -> None:
    for src in sorted((ROOT / "examples" / "data").iterdir()):
        convert(ConvertOptions(Inputs((str(src),)), src.name.split(".")[0], tmp_path))
    news = load_example("run")
    news.prepare_data(news.Stages(tmp_path / "work" / "logs"), tmp_path / "work", tmp_path)
    shutil.rmtree(tmp_path / "work")
    # rejects files (diagnostics naming source paths) are not committed
    fresh = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.endswith(".rejects.jsonl")}
    committed = {
        p.name: p.read_bytes() for p in (ROOT / "dataset_info").iterdir() if not p.name.endswith(".rejects.jsonl")
    }
    assert fresh.keys() == committed.keys(), "run `make demo` and commit dataset_info/"
    for name in fresh:
        assert fresh[name] == committed[name], f"dataset_info/{name} is stale: run `make demo`"


def test_dataset_info_dir_validates_clean() -> None:
    problems = validate_dataset_info(ROOT / "dataset_info")
    assert [p for p in problems if p.severity != "info"] == []
