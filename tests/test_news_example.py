"""examples/news_title_classifier: the data set, the thought rules, and the committed GPU configs.

The whole flow (train and predict on the tiny model) runs in CI as `make demo`, which fails unless both trained
models beat the untrained one and chance; here are the parts that must hold for it and for a GPU user.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "news_title_classifier"


def load_example(name: str) -> ModuleType:
    """An example script as a module."""
    spec = importlib.util.spec_from_file_location(f"news_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load_example("run")


def read(split: str) -> list[dict[str, str]]:
    with (EXAMPLE / "data" / f"{split}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_data_set_has_ten_balanced_classes_and_a_clean_split() -> None:
    labels = (EXAMPLE / "labels.txt").read_text(encoding="utf-8").split()
    assert len(labels) == len(set(labels)) == 10
    train, test = read("train"), read("test")
    assert len(train) + len(test) >= 1000
    for rows, per_class in ((train, 100), (test, 25)):
        assert Counter(r["label"] for r in rows) == dict.fromkeys(labels, per_class)
    titles = [r["title"] for r in train + test]
    assert (len(train), len(test)) == (1000, 250)  # as the README says
    assert len(titles) == len(set(titles)), "a title is repeated (or in both splits)"
    assert all(8 <= len(t) <= 40 and t == t.strip() for t in titles)


def test_rule_thoughts_quote_cue_words_of_the_title_and_end_with_the_label(tmp_path: Path) -> None:
    out = tmp_path / "with_thoughts.csv"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "thoughts.py"), str(EXAMPLE / "data" / "train.csv"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "with a cue word" in done.stdout
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["title"], r["label"]) for r in rows] == [(r["title"], r["label"]) for r in read("train")]
    with_cue = 0
    for row in rows:
        thought = row["thought"]
        assert thought.endswith(f"所以类别是{row['label']}。") and len(thought) <= 60, row
        quoted = thought.split("“")[1:]
        with_cue += bool(quoted)
        for part in quoted:
            assert part.split("”")[0] in row["title"], row  # a cue word is quoted only if the title has it
    assert with_cue >= 0.8 * len(rows)


def test_thoughts_refuse_an_unknown_label_naming_the_line(tmp_path: Path) -> None:
    src = tmp_path / "titles.csv"
    src.write_text("title,label\n国足主场取胜,体育\n某地举办灯会,民俗\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "thoughts.py"), str(src), str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and f"{src}:3: unknown label '民俗'" in done.stderr
    assert not (tmp_path / "out.csv").exists()
    src.write_text("headline,label\n国足主场取胜,体育\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "thoughts.py"), str(src), str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and f"{src}:2: no title (the file needs the columns title,label)" in done.stderr
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "thoughts.py"), str(tmp_path / "none.csv"), str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "none.csv: cannot read: No such file or directory" in done.stderr


def test_committed_news_datasets_train_the_thought_format() -> None:
    """dataset_info/news_* (kept up to date by test_examples.py): the prompt template and the thought markup."""
    first = (ROOT / "dataset_info" / "news_with_thought.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert "\\n标题：" in first and '"<think>\\n' in first and "\\n</think>\\n\\n" in first
    first = (ROOT / "dataset_info" / "news_answer_only.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert "<think>" not in first  # LLaMA-Factory adds the empty block itself (enable_thinking: true)


def test_committed_gpu_configs_are_what_config_writes_now(tmp_path: Path) -> None:
    """`python run.py --gpu-configs` from a copy of the repository layout writes the committed YAMLs byte for byte."""
    shutil.copytree(ROOT / "dataset_info", tmp_path / "dataset_info")
    run.gpu_configs(run.Stages(tmp_path / "logs", cwd=tmp_path))
    for variant in run.VARIANTS:
        for kind in ("train", "predict", "export"):
            fresh = tmp_path / run.EXAMPLE / "gpu" / variant / f"{kind}.yaml"
            committed = EXAMPLE / "gpu" / variant / f"{kind}.yaml"
            assert fresh.read_text() == committed.read_text(), f"{committed} is stale: run run.py --gpu-configs"
        train = yaml.safe_load((EXAMPLE / "gpu" / variant / "train.yaml").read_text())
        assert train["model_name_or_path"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
        assert (train["template"], train["enable_thinking"], train["bf16"]) == ("deepseekr1", True, True)
        assert train["dataset_dir"] == "dataset_info" and not Path(train["output_dir"]).is_absolute()


TEACHER = {  # title → (gold label, the teacher's thought, the teacher's answer)
    "国足客场绝杀对手，晋级世预赛下一阶段": ("体育", "客场、绝杀、世预赛：足球比赛。", "体育"),
    "央行宣布降准0.5个百分点": ("财经", "降准是货币政策。", "类别：财经"),
    "元宵灯会吸引十万游客": ("民俗", "灯会是传统民俗。", "民俗"),  # a category of your own: no cue words needed
    "某地暴雨致道路积水，消防转移群众": ("社会", "暴雨和救援是民生事件。", "时政"),  # the teacher is wrong
    "新款手机游戏发布会": ("游戏", "可能是科技也可能是游戏。", "科技或游戏"),  # names two labels: ambiguous
}


def test_distilled_thoughts_keep_only_replies_that_name_the_gold_label(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from openai_server import OpenAIServer, ServerConfig

    from lf_reasoning.cli import main

    src = tmp_path / "titles.csv"
    src.write_text("title,label\n" + "".join(f"{t},{gold}\n" for t, (gold, _, _) in TEACHER.items()), encoding="utf-8")
    distilled = tmp_path / "distilled.jsonl"
    with OpenAIServer(ServerConfig(reply=lambda prompt, _: TEACHER[prompt][1:])) as server:
        result = CliRunner().invoke(
            main,
            [
                "distill",
                str(src),
                "--map",
                "prompt=title",
                "--map",
                "reference=label",
                "--system",
                "判断新闻标题的类别。",
                "--base-url",
                server.url,
                "--model",
                "teacher",
                "--out",
                str(distilled),
            ],
        )
    assert result.exit_code == 0, result.output
    out = tmp_path / "with_thoughts.csv"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "thoughts.py"), "--distilled", str(distilled), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "3 titles with a distilled thought" in done.stdout
    assert "teacher disagrees: 1" in done.stdout and "ambiguous: 1" in done.stdout
    with out.open(encoding="utf-8", newline="") as f:
        rows = sorted((r["title"], r["label"], r["thought"]) for r in csv.DictReader(f))
    assert rows == sorted((t, gold, thought) for t, (gold, thought, _) in list(TEACHER.items())[:3])
    distilled.write_text('{"input": "x", "reference_answer": "体育", "content": null}\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "thoughts.py"), "--distilled", str(distilled), str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "no reply names its reference label; nothing written" in done.stderr


def test_the_flow_takes_its_thoughts_from_a_teacher_when_given_one(tmp_path: Path) -> None:
    """run.py --teacher: distil → keep replies naming the gold label → the with-thought dataset trains them."""
    from openai_server import OpenAIServer, ServerConfig

    gold = {r["title"]: r["label"] for r in read("train")}
    wrong = sorted(gold)[:10]  # the teacher gets these wrong

    def teach(title: str, _: int) -> tuple[str, str]:
        label = "社会" if title in wrong and gold[title] != "社会" else gold[title]
        return f"标题「{title[:4]}」说的是{label}方面的事。", f"类别：{label}"

    with OpenAIServer(ServerConfig(reply=teach)) as server:
        run.prepare_data(run.Stages(tmp_path / "logs"), tmp_path, tmp_path / "data", teacher=(server.url, "r1"))
        systems = {seen.body["messages"][0]["content"] for seen in server.requests}
    assert systems == {(EXAMPLE / "prompt.txt").read_text(encoding="utf-8").splitlines()[0]}
    kept = [json.loads(line) for line in (tmp_path / "data" / "news_with_thought.jsonl").read_text().splitlines()]
    wrong_kept = sum(gold[w] == "社会" for w in wrong)
    assert len(kept) == len(gold) - len(wrong) + wrong_kept
    first = kept[0]["messages"]
    title = first[0]["content"].split("标题：")[1]
    thought = f"标题「{title[:4]}」说的是{gold[title]}方面的事。"
    assert first[1]["content"] == f"<think>\n{thought}\n</think>\n\n{gold[title]}"
