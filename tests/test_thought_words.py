"""Thoughts in the training template's own words, for every reasoning template of the installed LLaMA-Factory.

One small distill dataset is converted with ``convert --template T`` for each template T, then loaded by
LLaMA-Factory's own SFT loader with T (tests/lf_harness.py): with ``enable_thinking: true`` each thought, history
thought and empty thought is trained in T's exact words; with ``false`` no thought text is left in the labels or
the prompt. The words expected are read from LLaMA-Factory (``thought_words``, ``add_thought``), not typed here.

Multimodal templates (their plugin refuses to load without an image/video/audio processor, which the tiny
text-only model has not): they are loaded by the same loader with their plugin replaced by LLaMA-Factory's base
plugin. For text-only messages a multimodal plugin only checks that a processor exists and replaces image/video/
audio placeholders, of which there are none, so everything this test asserts comes from the template itself.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run
from lf_harness import encode_with_llamafactory

from lf_reasoning.llamafactory.thought_words import (
    META_KEY,
    needs_processor,
    reasoning_templates,
    template_words,
)

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = reasoning_templates()
SOURCE = [
    {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "reasoning_content": "Two and two make four.", "content": "4"},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "reasoning_content": "Pick a warm one.", "content": "Red."},
            {"role": "user", "content": "Another one?"},
            {"role": "assistant", "reasoning_content": "Now a cold one.", "content": "Blue."},
        ]
    },
]
# (thought, answer) of every assistant turn of SOURCE, per record
TURNS = [[("Two and two make four.", "4")], [("Pick a warm one.", "Red."), ("Now a cold one.", "Blue.")]]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR with datasets ``T_keep`` and ``T_empty`` for every reasoning template T, converted by the CLI."""
    root = tmp_path_factory.mktemp("thought_words")
    src = _write_jsonl(root / "distill.jsonl", SOURCE)
    out = root / "data"
    for template in TEMPLATES:
        for think in ("keep", "empty"):
            args = ["--name", f"{template}_{think}", "--dataset-dir", str(out), "--template", template]
            code, output = run("convert", str(src), *args, "--think", think, "--workers", "1")
            assert code == 0, output
    return out


@pytest.fixture
def lf_template(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """The template name; a multimodal one gets LLaMA-Factory's base plugin (see the module docstring)."""
    name: str = request.param
    if needs_processor(name):
        from llamafactory.data.mm_plugin import get_mm_plugin
        from llamafactory.data.template import TEMPLATES as LF_TEMPLATES

        text_only = copy.deepcopy(LF_TEMPLATES[name])
        text_only.mm_plugin = get_mm_plugin(name="base")
        monkeypatch.setitem(LF_TEMPLATES, name, text_only)
    return name


@pytest.mark.parametrize("lf_template", TEMPLATES, indirect=True)
def test_thoughts_trained_in_template_words(converted: Path, tiny_model: Path, lf_template: str) -> None:
    from llamafactory.data.template import TEMPLATES as LF_TEMPLATES

    template = LF_TEMPLATES[lf_template]
    open_, close = template.thought_words
    empty = template.add_thought("")  # the class's own empty thought (Glm47: the closing word alone)
    words = template_words(lf_template)
    assert (words.open, words.close, words.empty) == (open_, close, empty)

    info = json.loads((converted / "dataset_info.json").read_text())
    assert info[f"{lf_template}_keep"][META_KEY]["thought_words"] == {"open": open_, "close": close, "empty": empty}
    rows = [json.loads(line) for line in (converted / f"{lf_template}_keep.jsonl").read_text().splitlines()]
    assert rows[1]["messages"][1]["content"] == open_ + "Pick a warm one." + close + "Red."  # history thought

    datasets = f"{lf_template}_keep,{lf_template}_empty"
    thinking = encode_with_llamafactory(tiny_model, converted, datasets, lf_template, enable_thinking=True)
    assert len(thinking) == 4
    for example, turns in zip(thinking[:2], TURNS, strict=True):
        for thought, answer in turns:  # every turn (history ones too) trained in the template's exact words
            assert open_ + thought + close + answer in example.label_text, example.label_text
    for example, turns in zip(thinking[2:], TURNS, strict=True):  # --think empty: the template's empty block
        for thought, answer in turns:
            assert empty + answer in example.label_text and thought not in example.label_text

    plain = encode_with_llamafactory(tiny_model, converted, f"{lf_template}_keep", lf_template, enable_thinking=False)
    assert len(plain) == 2
    for example, turns in zip(plain, TURNS, strict=True):
        assert example.prompt_text.endswith(empty)  # the empty block, masked, before the last answer
        for thought, answer in turns:
            assert thought not in example.label_text and thought not in example.prompt_text
            assert answer in example.label_text
        assert open_.strip() not in example.label_text and close.strip() not in example.label_text


@pytest.fixture(scope="module")
def think_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset converted without --template (LLaMA-Factory's default `<think>` words, no record)."""
    root = tmp_path_factory.mktemp("think_dataset")
    src = _write_jsonl(root / "distill.jsonl", SOURCE)
    code, output = run("convert", str(src), "--name", "r1", "--dataset-dir", str(root / "data"), "--workers", "1")
    assert code == 0, output
    info = json.loads((root / "data" / "dataset_info.json").read_text())
    assert META_KEY not in info["r1"]  # the default stays: no record, detected from the data
    return root / "data"


def _fix_command(output: str) -> list[str]:
    match = re.search(r"Fix: `lf-reasoning (convert [^`]+)`", output)
    assert match, output
    return match.group(1).split()


@pytest.mark.parametrize("template", ["gpt_oss", "seed_oss"])
def test_config_refuses_think_dataset_and_names_the_fix(
    think_dataset: Path, tiny_model: Path, tmp_path: Path, template: str
) -> None:
    config = ["config", "--model", str(tiny_model), "--dataset", "r1", "--dataset-dir", str(think_dataset)]
    config += ["--out", str(tmp_path / "run"), "--hardware", "cpu", "--template", template]
    code, output = run(*config)
    assert code == 1
    assert "dataset 'r1' has thoughts written in '<think>\\n…\\n</think>\\n\\n'" in output
    words = template_words(template)
    assert f"template `{template}` recognises only {words.open + '…' + words.close!r}" in output
    assert not (tmp_path / "run" / "train.yaml").exists()
    fix = _fix_command(output)
    assert fix == [
        "convert",
        str(think_dataset / "r1.jsonl"),
        "--name",
        f"r1_{template}",
        "--dataset-dir",
        str(think_dataset),
        "--template",
        template,
        "--dedup",
        "off",
    ]
    code, output = run(*fix, "--workers", "1")  # the command it names works, and config then accepts the data
    assert code == 0, output
    first = json.loads((think_dataset / f"r1_{template}.jsonl").read_text().splitlines()[0])
    assert first["messages"][1]["content"] == words.open + "Two and two make four." + words.close + "4"
    code, output = run(*[f"r1_{template}" if a == "r1" else a for a in config])
    assert code == 0, output


def test_recorded_words_refused_for_another_template(converted: Path, tiny_model: Path, tmp_path: Path) -> None:
    """A dataset recorded in gpt_oss's words is refused for qwen3 by config, train --dry-run, validate --template;
    stats flags it."""
    config = ["config", "--model", str(tiny_model), "--dataset", "gpt_oss_keep", "--dataset-dir", str(converted)]
    code, output = run(*config, "--out", str(tmp_path / "run"), "--hardware", "cpu", "--template", "qwen3")
    assert code == 1
    assert "dataset 'gpt_oss_keep' has thoughts written in `gpt_oss`'s words" in output
    assert "(recorded by `lf-reasoning convert`)" in output and "template `qwen3` recognises only" in output
    assert "`lf-reasoning convert SRC... --name gpt_oss_keep" in output and "--template qwen3 --force`" in output

    code, output = run(*config, "--out", str(tmp_path / "run"), "--hardware", "cpu", "--template", "gpt_oss")
    assert code == 0, output
    train_yaml = tmp_path / "run" / "train.yaml"
    text = train_yaml.read_text()
    train_yaml.write_text(text.replace("template: gpt_oss", "template: qwen3"))
    code, output = run("train", str(train_yaml), "--dry-run")
    assert code == 1
    assert f"{train_yaml}: key 'dataset': dataset 'gpt_oss_keep' has thoughts written in `gpt_oss`'s words" in output

    code, output = run("validate", "--dataset-dir", str(converted), "gpt_oss_keep", "glm4_7_empty")
    assert code == 0, output  # our record is accepted: no unknown-key error, data in the recorded words
    assert "thoughts are in `gpt_oss`'s words" in output and "thoughts are in `glm4_7`'s words" in output
    assert "unknown key" not in output and "will not recognise" not in output
    code, output = run("validate", "--dataset-dir", str(converted), "--template", "qwen3", "gpt_oss_keep", "qwen3_keep")
    assert code == 1
    assert "error: dataset 'gpt_oss_keep' has thoughts written in `gpt_oss`'s words" in output
    assert "dataset 'qwen3_keep'" not in output

    code, output = run(
        "stats", "gpt_oss_keep", "--dataset-dir", str(converted), "--tokenizer", str(tiny_model), "--template", "qwen3"
    )
    assert code == 0, output
    assert "warning: dataset 'gpt_oss_keep' has thoughts written in `gpt_oss`'s words" in output
    assert "thought tokens are counted as answer tokens" in output


def test_words_shared_by_templates_are_accepted(converted: Path) -> None:
    """A dataset for hy3 (`<think>T</think>A`) suits mimo_v2 (the same words), not deepseekr1 nor glm4_7 (whose empty
    thought differs); an empty-thought one for glm4_7 (`</think>A`) suits aeva, not hy3."""
    code, output = run("validate", "--dataset-dir", str(converted), "--template", "mimo_v2", "hy3_keep")
    assert code == 0, output
    code, output = run("validate", "--dataset-dir", str(converted), "--template", "glm4_7", "hy3_keep")
    assert code == 1 and "empty thought '</think>'" in output
    code, output = run("validate", "--dataset-dir", str(converted), "--template", "deepseekr1", "hy3_keep")
    assert code == 1 and "dataset 'hy3_keep' has thoughts written in `hy3`'s words" in output
    code, output = run("validate", "--dataset-dir", str(converted), "--template", "aeva", "glm4_7_empty")
    assert code == 0, output
    code, output = run("validate", "--dataset-dir", str(converted), "--template", "hy3", "glm4_7_empty")
    assert code == 1 and "empty thought '<think></think>'" in output


def test_convert_model_resolves_template_as_config_does(tmp_path: Path) -> None:
    src = _write_jsonl(tmp_path / "distill.jsonl", SOURCE[:1])
    args = ["convert", str(src), "--dataset-dir", str(tmp_path / "data"), "--workers", "1"]
    code, output = run(*args, "--name", "oss", "--model", "openai/gpt-oss-20b")
    assert code == 0, output
    assert "template gpt_oss: LLaMA-Factory maps openai/gpt-oss-20b" in output
    info = json.loads((tmp_path / "data" / "dataset_info.json").read_text())
    assert info["oss"][META_KEY]["template"] == "gpt_oss"
    line = json.loads((tmp_path / "data" / "oss.jsonl").read_text())
    words = template_words("gpt_oss")
    assert line["messages"][1]["content"] == words.open + "Two and two make four." + words.close + "4"

    code, output = run(*args, "--name", "oss2", "--model", "openai/gpt-oss-20b", "--template", "qwen3")
    assert code == 0 and "--template qwen3 overrides `gpt_oss`" in output  # as config warns
    code, output = run(*args, "--name", "bad", "--template", "gpt-oss")
    assert code == 1 and "Unknown template 'gpt-oss'" in output and "gpt_oss" in output


def test_template_words_inside_a_thought_are_rejected(tmp_path: Path) -> None:
    words = template_words("gpt_oss")
    record = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a" + words.close}]}
    src = _write_jsonl(tmp_path / "d.jsonl", [SOURCE[0], record])
    args = ["--name", "d", "--dataset-dir", str(tmp_path / "data"), "--template", "gpt_oss", "--workers", "1"]
    code, output = run("convert", str(src), *args)
    assert code == 0 and "stray_markup" in output
    reject = json.loads((tmp_path / "data" / "d.rejects.jsonl").read_text())
    assert reject["reason"] == "stray_markup" and "a thought word of the template" in reject["detail"]


def test_readme_table_is_generated_from_llamafactory() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- thought-words:start -->\n(.*?)\n<!-- thought-words:end -->", readme, re.DOTALL)
    assert match, "README.md lacks the thought-words markers"
    # the command the README names, in a fresh interpreter: tests in this process register custom templates
    generated = subprocess.run(
        [sys.executable, "-m", "lf_reasoning.llamafactory.thought_words", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert match.group(1) == generated.rstrip("\n"), (
        "regenerate: python -m lf_reasoning.llamafactory.thought_words --markdown"
    )
    for template in TEMPLATES:
        assert f"`{template}`" in match.group(1)


@pytest.mark.parametrize(
    ("responses", "refused"),
    [
        (["<think>\nT\n</think>\n\nA", "B"], None),  # default words, and an answer without a thought
        (["Use <think> tags in HTML? No: A"], None),  # markup no template's words fit: validate's warning, no refusal
        (["<think>T</think>A"], "written in '<think>…</think>' (the words of `hy3`, `mimo_v2`, `glm4_7`, `aeva`;"),
        (["<think>\nT\n</think>\n\nA", "<seed:think>T</seed:think>A"], "in the words of several templates, mixed"),
    ],
)
def test_words_detected_from_data_without_record(tmp_path: Path, responses: list[str], refused: str | None) -> None:
    from lf_reasoning.llamafactory.dataset_info import sharegpt_entry

    records = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": text}], "system": ""}
        for text in responses
    ]
    _write_jsonl(tmp_path / "d.jsonl", records)
    (tmp_path / "dataset_info.json").write_text(json.dumps({"d": sharegpt_entry("d.jsonl")}))
    code, output = run("validate", "--dataset-dir", str(tmp_path), "--template", "qwen3")
    if refused is None:
        assert code == 0 and "has thoughts written" not in output, output
        return
    assert code == 1 and refused in output, output
    assert f"first at {tmp_path / 'd.jsonl'}:1" in output
    if "mixed" in refused:  # not one set of words the readers parse: the sources are converted again
        assert "run the `lf-reasoning convert` that made it again with `--template qwen3`" in output
        return
    fix = _fix_command(output)  # <think> markup with other spacing: re-read from the file, written in qwen3's words
    assert fix[:2] == ["convert", str(tmp_path / "d.jsonl")] and fix[-4:] == ["--template", "qwen3", "--dedup", "off"]


def test_fix_keeps_system_prompts(tmp_path: Path) -> None:
    """The fix re-reads the dataset's own file: the system column of both layouts survives it."""
    src = _write_jsonl(tmp_path / "distill.jsonl", SOURCE[:1])
    words = template_words("gpt_oss")
    for style in ("sharegpt", "alpaca"):
        args = ["--name", style, "--dataset-dir", str(tmp_path / "data"), "--style", style, "--workers", "1"]
        code, output = run("convert", str(src), *args, "--system", "Be brief.")
        assert code == 0, output
        code, output = run("validate", "--dataset-dir", str(tmp_path / "data"), "--template", "gpt_oss", style)
        fix = _fix_command(output)
        assert code == 1 and "--template gpt_oss --dedup off" in " ".join(fix), output
        code, output = run(*fix, "--workers", "1")
        assert code == 0, output
        record = json.loads((tmp_path / "data" / f"{style}_gpt_oss.jsonl").read_text())
        answer = record["output"] if style == "alpaca" else record["messages"][-1]["content"]
        assert record["system"] == "Be brief.", record
        assert answer == words.open + SOURCE[0]["messages"][1]["reasoning_content"] + words.close + "4"
