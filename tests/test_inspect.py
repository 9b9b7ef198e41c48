"""`lf-reasoning inspect`: the segments shown are the labels LLaMA-Factory's own loader produces, token for token."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_runner import run
from click.testing import CliRunner
from lf_harness import IGNORE_INDEX, encode_with_llamafactory

from lf_reasoning.cli import main
from lf_reasoning.llamafactory.dataset_info import sharegpt_entry
from lf_reasoning.record.thoughts import render_response

CUTOFF = 96
R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"
KEPT, DROPPED, EMPTY, MULTI, LONG, INVALID = range(6)  # record numbers in the fixture's file
RECORDS = [
    {  # thought kept
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "What is <b>2+2</b> & why?"},  # markup the web page must escape
            {"role": "assistant", "content": render_response("Two and two make four.", "4")},
        ],
        "score": 9,
    },
    {  # thought dropped (convert --think drop)
        "system": "",
        "messages": [{"role": "user", "content": "What is 3+3?"}, {"role": "assistant", "content": "6"}],
        "score": 7,
    },
    {  # explicit empty thought (convert --think empty)
        "system": "",
        "messages": [
            {"role": "user", "content": "What is 1+1?"},
            {"role": "assistant", "content": render_response("", "2")},
        ],
        "score": 9,
    },
    {  # multi-turn, a thought in each turn
        "system": "",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": render_response("Greet back.", "Hello")},
            {"role": "user", "content": "Sum 1 2?"},
            {"role": "assistant", "content": render_response("One plus two.", "3")},
        ],
    },
    {  # longer than CUTOFF: the answer is cut
        "system": "",
        "messages": [
            {"role": "user", "content": "Count."},
            {"role": "assistant", "content": render_response("one two three four " * 30, "Done counting.")},
        ],
    },
    {"system": "", "messages": [{"role": "assistant", "content": "starts with the assistant"}]},  # LF drops it
]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inspect") / "data"
    d.mkdir()
    (d / "toy.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS))
    (d / "dataset_info.json").write_text(json.dumps({"toy": sharegpt_entry("toy.jsonl")}))
    return d


def inspect_json(tiny_model: Path, dataset_dir: Path, *args: str) -> dict[int, dict]:
    code, out = run(
        "inspect", "toy", "--dataset-dir", str(dataset_dir), "--model", str(tiny_model), "--template", "qwen3",
        "--cutoff-len", str(CUTOFF), "-n", str(len(RECORDS)), "--json", *args,
    )  # fmt: skip
    assert code == 0, out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["index"] for r in lines] == list(range(len(RECORDS)))
    return {r["index"]: r for r in lines}


def segments(record: dict, role: str, trained: bool | None = None) -> list[dict]:
    return [s for s in record["segments"] if s["role"] == role and (trained is None or s["trained"] == trained)]


@pytest.mark.parametrize("mask_history", [False, True])
@pytest.mark.parametrize("thinking", [True, False])
def test_segments_agree_with_the_loaders_labels(
    tiny_model: Path, dataset_dir: Path, thinking: bool, mask_history: bool
) -> None:
    args = ["--enable-thinking", str(thinking).lower()] + ["--mask-history"] * mask_history
    shown = inspect_json(tiny_model, dataset_dir, *args)
    loaded = encode_with_llamafactory(
        tiny_model, dataset_dir, "toy", "qwen3", enable_thinking=thinking, cutoff_len=CUTOFF, mask_history=mask_history
    )
    assert shown[INVALID] == {"index": INVALID, "dropped": shown[INVALID]["dropped"]}
    assert "LLaMA-Factory drops it" in shown[INVALID]["dropped"]
    kept = [shown[i] for i in range(len(RECORDS)) if i != INVALID]
    assert len(kept) == len(loaded)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for record, example in zip(kept, loaded, strict=True):
        assert record["tokens"] == len(example.input_ids) == sum(s["tokens"] for s in record["segments"])
        start = 0
        for segment in record["segments"]:
            end = start + segment["tokens"]
            assert {label != IGNORE_INDEX for label in example.labels[start:end]} == {segment["trained"]}, segment
            assert tokenizer.decode(example.input_ids[start:end], skip_special_tokens=False) == segment["text"]
            start = end

    kept_thought, dropped, empty, multi, long = (shown[i] for i in (KEPT, DROPPED, EMPTY, MULTI, LONG))
    if thinking:
        assert [s["text"] for s in segments(kept_thought, "thought")] == [
            "<think>\nTwo and two make four.\n</think>\n\n"
        ]
        assert segments(kept_thought, "thought", True) and kept_thought["removed_thoughts"] == 0
        assert segments(dropped, "empty_thought", True)[0]["text"] == "<think>\n\n</think>\n\n"  # added, trained
        assert segments(empty, "thought", True)[0]["text"] == "<think>\n\n</think>\n\n"  # the data's own block
    else:
        assert not segments(kept_thought, "thought") and kept_thought["removed_thoughts"] == 1  # gone
        for record in (kept_thought, dropped, empty):
            assert [s["text"] for s in segments(record, "empty_thought")] == ["<think>\n\n</think>\n\n"]
            assert not segments(record, "empty_thought", True)  # in the prompt, masked
    assert segments(kept_thought, "answer", True)[0]["text"] == "4"
    assert [s["text"] for s in segments(kept_thought, "user", False)] == ["What is <b>2+2</b> & why?"]
    assert [s["text"] for s in segments(kept_thought, "system", False)] == ["Be brief."]

    history_answer = [s for s in segments(multi, "answer") if s["text"] == "Hello"]
    if mask_history:  # only the last turn is trained; the history thought is removed
        assert [s["trained"] for s in history_answer] == [False]
        assert "Greet back." not in "".join(s["text"] for s in multi["segments"])
        assert multi["removed_thoughts"] == (2 if not thinking else 1)
    else:
        assert [s["trained"] for s in history_answer] == [True]
        if thinking:
            assert any("Greet back." in s["text"] for s in segments(multi, "thought", True))

    if thinking:
        assert long["tokens"] == CUTOFF and long["cut_at"] is not None and long["cut_tokens"] > 0
        assert "Done counting." not in "".join(s["text"] for s in long["segments"])  # the answer is cut
    else:  # the long thought is stripped: the record fits and its answer is trained
        assert long["tokens"] < CUTOFF and long["cut_at"] is None
        assert [s["text"] for s in segments(long, "answer", True)] == ["Done counting."]
    for record in (kept_thought, dropped, empty):
        assert record["cut_at"] is None and record["cut_tokens"] == 0


def test_train_on_prompt_and_a_cutoff_that_fits(tiny_model: Path, dataset_dir: Path) -> None:
    shown = inspect_json(tiny_model, dataset_dir, "--train-on-prompt", "--cutoff-len", "4096")
    loaded = encode_with_llamafactory(tiny_model, dataset_dir, "toy", "qwen3", cutoff_len=4096, train_on_prompt=True)
    long = shown[LONG]
    assert long["cut_at"] is None and long["tokens"] == len(loaded[LONG].input_ids)
    assert all(s["trained"] for s in long["segments"])  # the prompt is trained too
    assert "Done counting." in "".join(s["text"] for s in segments(long, "answer", True))


def test_terminal_shows_roles_legend_and_the_cut(tiny_model: Path, dataset_dir: Path) -> None:
    args = ["inspect", "toy", "--dataset-dir", str(dataset_dir), "--model", str(tiny_model), "--template", "qwen3"]
    args += ["--cutoff-len", str(CUTOFF), "--records", f"{KEPT},{LONG}"]
    code, out = run(*args)
    assert code == 0, out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert "legend:" in out and "empty thought block added by the template" in out
    assert "── record 0 · " in out and f"── record 4 · {CUTOFF} tokens" in out and "── record 1 " not in out
    assert "\n   trained: thought 21, answer 1, template 2 · masked: system 7, user 20, template 20\n" in out
    assert f"✂ cutoff_len {CUTOFF} removes" in out and "the model never sees them" in out

    coloured = CliRunner().invoke(main, args, color=True)
    assert coloured.exit_code == 0, coloured.output
    assert "\x1b[46m" in coloured.output  # the trained thought on a cyan background
    assert "\x1b[2m" in coloured.output  # masked text dimmed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--template", "qwen3"], "no dataset 'nope'"),
        (["toy", "--template", "qwen3", "--records", "99"], "has 6 records: there is no record 99"),
        (["toy", "--template", "qwen3", "--records", "1", "-n", "2"], "-n and --records: choose one"),
        (["toy", "--template", "qwen3", "--records", "a,b"], "give record numbers"),
        (["toy", "--template", "no_such_template"], "Unknown template 'no_such_template'"),
        (["toy", "--template", "qwen3", "--mask-history", "--train-on-prompt"], "LLaMA-Factory refuses"),
    ],
)
def test_bad_input_is_a_message(tiny_model: Path, dataset_dir: Path, args: list[str], message: str) -> None:
    code, out = run("inspect", "--dataset-dir", str(dataset_dir), "--model", str(tiny_model), *args)
    assert code != 0 and message in out, out


def test_model_or_tokenizer(dataset_dir: Path, tiny_model: Path) -> None:
    code, out = run("inspect", "toy", "--dataset-dir", str(dataset_dir), "--template", "qwen3")
    assert code == 1 and "pass --model M" in out
    code, out = run(
        "inspect", "toy", "--dataset-dir", str(dataset_dir), "--tokenizer", str(tiny_model), "--template", "qwen3",
        "--records", "1", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out.splitlines()[-1])["index"] == 1, out


@pytest.fixture(scope="module")
def page(tiny_model: Path, dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    html = tmp_path_factory.mktemp("page") / "toy.html"
    code, out = run(
        "inspect", "toy", "--dataset-dir", str(dataset_dir), "--model", str(tiny_model), "--template", "qwen3",
        "--cutoff-len", str(CUTOFF), "-n", "5", "--html", str(html),
    )  # fmt: skip
    assert code == 0 and f"wrote {html}" in out, out
    return html


def test_page_is_self_contained_escaped_and_complete(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and " src=" not in text  # no network assets
    assert "What is &lt;b&gt;2+2&lt;/b&gt; &amp; why?" in text and "<b>2+2</b>" not in text
    assert text.count("enable_thinking: true") == 5 and text.count("enable_thinking: false") == 5  # both encoded
    assert "<svg" in text and "score distribution" in text and "score 9: 2" in text  # two records score 9
    assert "<div class='big'>5</div>records<div class='note'>+ 1 LLaMA-Factory drops" in text
    assert "thought words in use" in text and "&#x27;&lt;think&gt;\\n&#x27;" in text
    assert f"over cutoff_len {CUTOFF}" in text and f"✂ cutoff_len {CUTOFF} removes" in text
    assert not list(page.parent.glob(".*.tmp"))  # written atomically: no temp file left


def test_page_renders_in_a_headless_browser(page: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not found: `make test` installs it (apt-get install -y chromium); cannot render the page")
    from PIL import Image

    shot = tmp_path / "page.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
         "--window-size=1200,1400", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.is_file(), result.stderr
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1400)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, boxes, the histogram: not blank
    count = dict((rgb, n) for n, rgb in colours)
    # the records are drawn with their trained highlight: the trained-thought and trained-answer backgrounds
    assert count.get((0xA8, 0xEC, 0xE8), 0) > 100 and count.get((0xB9, 0xF0, 0xB1), 0) > 100


def test_convert_ends_with_the_inspect_command(tmp_path: Path, tiny_model: Path) -> None:
    code, out = run("convert", str(R1), "--name", "r1", "--dataset-dir", str(tmp_path / "d"))
    assert code == 0, out
    line = out.strip().splitlines()[-1]
    assert line == f"see what is trained: lf-reasoning inspect r1 --dataset-dir {tmp_path / 'd'} --model MODEL"
    command = line.split(": ", 1)[1].split()[2:]  # the printed command, with the tiny model for MODEL
    code, out = run(*["inspect", *(str(tiny_model) if a == "MODEL" else a for a in command), "--template", "qwen3"])
    assert code == 0 and "── record 0 · " in out, out
    # converted for a template: the printed command names it, and runs as printed
    args = ["convert", str(R1), "--name", "r2", "--dataset-dir", str(tmp_path / "d")]
    code, out = run(*args, "--tokenizer", str(tiny_model), "--template", "qwen3")
    assert code == 0, out
    line = out.strip().splitlines()[-1]
    assert line.endswith(f"--tokenizer {tiny_model} --template qwen3"), line
    code, out = run("inspect", *line.split(": ", 1)[1].split()[2:])
    assert code == 0 and "── record 0 · " in out, out


def test_readme_example_is_what_the_command_prints(tiny_model: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("--records 1 --mask-history\n", 1)[1].split("```", 1)[0]
    dataset_dir = Path(__file__).parents[1] / "dataset_info"
    code, out = run(
        "inspect", "messages_reasoning", "--dataset-dir", str(dataset_dir), "--model", str(tiny_model),
        "--template", "qwen3", "--records", "1", "--mask-history",
    )  # fmt: skip
    assert code == 0, out
    printed = out[out.index("messages_reasoning: template qwen3") :].splitlines()
    shown = example.splitlines()
    assert len(printed) == len(shown)
    for line, readme_line in zip(printed, shown, strict=True):  # the README shortens the roles line with "…"
        assert line == readme_line or (readme_line.endswith("…") and line.startswith(readme_line[:-1])), line


def test_tool_calls_are_shown_as_trained_calls_and_masked_results(tiny_model: Path, tmp_path: Path) -> None:
    schema = {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}}
    record = {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": render_response("It is 21.", "It is 21 °C.")},
        ],
        "tools": json.dumps([schema]),
    }
    (tmp_path / "tools.jsonl").write_text(json.dumps(record) + "\n")
    entry = {
        "file_name": "tools.jsonl",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools"},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps({"tools": entry}))
    html = tmp_path / "tools.html"
    code, out = run(
        "inspect", "tools", "--dataset-dir", str(tmp_path), "--model", str(tiny_model), "--template", "qwen3",
        "--json", "--html", str(html),
    )  # fmt: skip
    assert code == 0, out
    shown = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    (loaded,) = encode_with_llamafactory(tiny_model, tmp_path, "tools", "qwen3")
    trained = [flag for s in shown["segments"] for flag in [s["trained"]] * s["tokens"]]
    assert trained == [label != IGNORE_INDEX for label in loaded.labels]
    tool = [(s["trained"], s["text"]) for s in segments(shown, "tool")]
    assert tool[0][0] and '"get_weather"' in tool[0][1] and tool[1] == (False, '{"temp": 21}')
    assert "get_weather" in "".join(s["text"] for s in segments(shown, "system", False))  # the tool schemas
    assert "<div class='big'>1</div>records" in html.read_text(encoding="utf-8")  # the summary measures it too
