"""Issue 10, items 4 and 7: what a user sees for broken input and the cases that went quietly wrong.

Each case runs the command a user runs and asserts the exit code, the message (file, line, what to do) and that
every file that existed before is byte-identical afterwards; no traceback reaches the user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run
from openai_server import OpenAIServer, ServerConfig

from lf_reasoning.commands.train import RunPlan, interrupted_message
from lf_reasoning.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from lf_reasoning.record.formats.fields import reference_text
from lf_reasoning.record.sources import looks_like_hub_name

R1 = Path(__file__).parents[1] / "examples" / "data" / "r1_distill.jsonl"
CLOSED_PORT_URL = "http://127.0.0.1:9/v1"  # discard port: nothing listens, the connection is refused


def snapshot(*roots: Path) -> dict[Path, bytes]:
    """Every file under ``roots`` with its bytes: compared after a failed command."""
    files = [p for root in roots for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()]
    return {p: p.read_bytes() for p in files}


def jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    """A dataset_dir holding one registered dataset: what every convert run must leave as it was on an error."""
    folder = tmp_path / "data"
    code, out = run("convert", str(R1), "--name", "r1", "--dataset-dir", str(folder))
    assert code == EXIT_OK, out
    return folder


# ------------------------------------------------------------------------------------------------ item 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"model_name_or_path: m\n  stage: [sft\n", "train.yaml:2:8: invalid YAML: mapping values are not allowed"),
        (b"stage: sft\n\tfinetuning_type: lora\n", "train.yaml:2:1: invalid YAML: found a tab character"),
        (
            b"- stage: sft\n- finetuning_type: lora\n",
            "train.yaml: a training config is a mapping of LLaMA-Factory keys",
        ),
        (b"42\n", "train.yaml: a training config is a mapping of LLaMA-Factory keys"),
        (b"output_dir: ${oops\n", "train.yaml: OmegaConf cannot read it"),
        (b"stage: sft\n# r\xe9sum\xe9\n", "not UTF-8 text: byte 0xe9 at offset 14 (line 2)"),
    ],
    ids=["scanner", "tabs", "list", "scalar", "interpolation", "latin1"],
)
def test_broken_yaml_to_train_names_file_and_line(tmp_path: Path, text: bytes, message: str) -> None:
    config = tmp_path / "train.yaml"
    config.write_bytes(text)
    code, out = run("train", str(config), "--dry-run")
    assert code == EXIT_ERROR, out
    assert message in out and "Traceback" not in out
    if "tab" in message:
        assert "indent with spaces, not tabs" in out
    assert config.read_bytes() == text


def test_an_override_that_is_not_yaml_is_named(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("stage: sft\n", encoding="utf-8")
    code, out = run("train", str(config), "max_steps=[", "--dry-run")
    assert code == EXIT_ERROR and "overrides max_steps=[: a value is not valid YAML" in out and "quote it" in out


def test_non_utf8_prompt_template_and_rubric_name_file_and_byte(tmp_path: Path, dataset_dir: Path) -> None:
    template = tmp_path / "template.txt"
    template.write_bytes("Question: {prompt}\nRéponse:".encode("latin-1"))
    before = snapshot(dataset_dir, template)
    code, out = run(
        "convert", str(R1), "--name", "wrapped", "--dataset-dir", str(dataset_dir), "--prompt-template", str(template)
    )
    assert code == EXIT_ERROR, out
    assert f"--prompt-template {template}: not UTF-8 text: byte 0xe9 at offset 20 (line 2)" in out
    assert "Save the file as UTF-8, e.g. `iconv -f GBK -t UTF-8" in out and "Traceback" not in out
    assert snapshot(dataset_dir, template) == before

    out_file = tmp_path / "out.jsonl"
    code, out = run(
        "distill", str(R1), "--out", str(out_file), "--base-url", CLOSED_PORT_URL, "--model", "m",
        "--prompt-template", str(template),
    )  # fmt: skip
    assert code == EXIT_ERROR and f"--prompt-template {template}: not UTF-8 text: byte 0xe9 at offset 20" in out
    assert not out_file.exists()
    code, out = run(
        "score", str(R1), "--out", str(out_file), "--judge-base-url", CLOSED_PORT_URL, "--judge-model", "j",
        "--rubric", str(template),
    )  # fmt: skip
    assert code == EXIT_ERROR and f"--rubric {template}: not UTF-8 text: byte 0xe9 at offset 20" in out
    assert not out_file.exists()


@pytest.mark.parametrize(
    ("tokenizer", "message"),
    [
        ("./typo", "--tokenizer ./typo: no such directory"),
        ("models/qwen/typo", "--tokenizer models/qwen/typo: no such directory"),
        ("~/no-such-tokenizer", "--tokenizer ~/no-such-tokenizer: no such directory"),
        ("FILE", "is a file; pass the folder that holds tokenizer.json"),
    ],
)
def test_a_mistyped_tokenizer_path_is_no_such_directory(
    tmp_path: Path, dataset_dir: Path, tokenizer: str, message: str
) -> None:
    if tokenizer == "FILE":
        tokenizer = str(dataset_dir / "r1.jsonl")
    before = snapshot(dataset_dir)
    code, out = run(
        "convert", str(R1), "--name", "short", "--dataset-dir", str(dataset_dir),
        "--max-tokens", "100", "--tokenizer", tokenizer, "--template", "qwen3",
    )  # fmt: skip
    assert code == EXIT_ERROR and message in out, out
    assert "Repo id must use" not in out and "Traceback" not in out
    code, out = run("stats", "r1", "--dataset-dir", str(dataset_dir), "--tokenizer", tokenizer, "--template", "qwen3")
    assert code == EXIT_ERROR and message in out
    assert snapshot(dataset_dir) == before


def test_a_mistyped_local_path_is_no_such_file_not_a_hub_dataset(
    tmp_path: Path, dataset_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "train.jsonl").write_bytes(R1.read_bytes())
    before = snapshot(dataset_dir)
    code, out = run("convert", "data/tarin.jsonl", "--name", "t", "--dataset-dir", str(dataset_dir))
    assert code == EXIT_ERROR, out
    assert "data/tarin.jsonl: no such file or directory; did you mean data/train.jsonl?" in out
    assert "Hugging Face" not in out
    code, out = run("distill", "data/tarin.jsonl", "--out", "d.jsonl", "--base-url", CLOSED_PORT_URL, "--model", "m")
    assert code == EXIT_ERROR and "data/tarin.jsonl: no such file or directory" in out and "Hugging Face" not in out
    assert snapshot(dataset_dir) == before and not (tmp_path / "d.jsonl").exists()


@pytest.mark.parametrize(
    ("name", "hub"),
    [
        ("owner/name", True),
        ("owner/name:config", True),
        ("data/tarin.jsonl", False),  # a data-file suffix
        ("owner/name.parquet", False),
        ("./owner/name", False),
        ("~/name", False),
        ("a/b/c", False),
        ("data/typo", False),  # `data` is a local folder here
    ],
)
def test_what_is_taken_for_a_hub_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, hub: bool) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert looks_like_hub_name(name) is hub


@pytest.mark.parametrize(
    ("good", "bad", "detail"),
    [
        (
            {"input": "q", "content": "a", "reasoning_content": "t", "repo_name": "x"},
            {"input": "q2", "content": {"text": "a"}, "reasoning_content": "t", "repo_name": "x"},
            "field 'content' is an object, expected a string",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q2"},
                          {"role": "assistant", "content": {"text": "a"}}]},
            "messages[2].content is an object; expected a string or a list of typed parts",
        ),
        (
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
            {"conversations": [{"from": "human", "value": "q2"}, {"from": "gpt", "value": 42}]},
            "conversations[1].value is a number, expected a string",
        ),
    ],
    ids=["r1_distill", "messages", "sharegpt"],
)  # fmt: skip
def test_wrong_type_messages_name_the_field_once(
    tmp_path: Path, dataset_dir: Path, good: dict[str, Any], bad: dict[str, Any], detail: str
) -> None:
    src = jsonl(tmp_path / "in.jsonl", [good, bad])
    code, out = run("convert", str(src), "--name", "typed", "--dataset-dir", str(dataset_dir))
    assert code == EXIT_PARTIAL, out
    assert f"{src}:2: {detail}" in out
    rejects = [json.loads(line) for line in (dataset_dir / "typed.rejects.jsonl").read_text().splitlines()]
    assert [(r["where"], r["reason"], r["detail"]) for r in rejects] == [(f"{src}:2", "wrong_type", detail)]


def test_the_judge_connection_error_names_the_judge_options(tmp_path: Path) -> None:
    # the judge of verify is asked only what the rules cannot decide: a reference that is no math
    src = jsonl(tmp_path / "in.jsonl", [{"input": "Sky colour?", "reasoning_content": "t", "content": "blue",
                                        "reference_answer": "the colour blue"}])  # fmt: skip
    before = snapshot(src)
    out_file = tmp_path / "out.jsonl"
    judge = ["--judge-model", "j", "--format", "r1_distill"]
    for command in ("score", "verify"):
        code, out = run(command, str(src), "--out", str(out_file), "--judge-base-url", CLOSED_PORT_URL, *judge)
        assert code == EXIT_ERROR, out
        assert "cannot connect to http://127.0.0.1:9/v1/chat/completions" in out
        assert "Check --judge-base-url and that the server is running." in out and "--base-url and" not in out
        assert not out_file.exists()
    with OpenAIServer(ServerConfig()) as server:  # a wrong path: the server answers 404
        code, out = run("score", str(src), "--out", str(out_file), "--judge-base-url", server.url + "/nope", *judge)
    assert code == EXIT_ERROR and "Check --judge-base-url (it usually ends in /v1) and --judge-model." in out
    code, out = run("distill", str(src), "--out", str(out_file), "--base-url", CLOSED_PORT_URL, "--model", "m")
    assert code == EXIT_ERROR and "Check --base-url and that the server is running." in out
    assert snapshot(src) == before and not out_file.exists()


def test_tiny_model_has_a_real_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lf_reasoning.tiny_model", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0 and "usage: python -m lf_reasoning.tiny_model [-h] OUT_DIR [CORPUS_FILE ...]" in (
        done.stdout
    )
    assert list(tmp_path.iterdir()) == []  # no model built into ./--help
    done = subprocess.run(
        [sys.executable, "-m", "lf_reasoning.tiny_model"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == EXIT_USAGE and "the following arguments are required: OUT_DIR\n" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_min_score_on_data_without_scores_says_so(tmp_path: Path, dataset_dir: Path) -> None:
    src = jsonl(tmp_path / "plain.jsonl", [{"prompt": "a", "answer": "b"}, {"prompt": "c", "answer": "d"}])
    before = snapshot(dataset_dir)
    args = ["convert", str(src), "--map", "prompt=prompt", "--map", "answer=answer", "--dataset-dir", str(dataset_dir)]
    code, out = run(*args, "--name", "plain", "--min-score", "8")
    assert code == EXIT_ERROR, out
    assert (
        "no records written: none of the 2 records has a score; --min-score needs scores (from `lf-reasoning score`, "
        "or --map score=COLUMN)" in out
    )
    code, out = run(*args, "--name", "plain", "--require-verified")
    assert code == EXIT_ERROR and "none of the 2 records has a positive verification verdict" in out
    assert snapshot(dataset_dir) == before  # exit 1: nothing written, not even a rejects file


# ------------------------------------------------------------------------------------------------ item 7


@pytest.mark.parametrize(
    ("value", "text"), [(42, "42"), (42.0, "42"), (2.5, "2.5"), ("42", "42"), (True, None), ([42], None)]
)
def test_reference_numbers_are_text(value: Any, text: str | None) -> None:
    assert reference_text(value) == text


NUMERIC_REFERENCES = [
    # OpenR1-Math: `answer`; R1 distill: `reference_answer`; AM-DeepSeek-R1: `info.reference_answer`; s1K: `solution`
    {"problem": "20+22?", "answer": 42, "uuid": "u", "generations": ["<think>\nadd\n</think>\n\n\\boxed{42}"],
     "correctness_math_verify": [None], "finish_reasons": ["stop"]},
    {"input": "5/2?", "reasoning_content": "divide", "content": "\\boxed{2.5}", "reference_answer": 2.5},
    {"messages": [{"role": "user", "content": "40+2?", "info": {"reference_answer": 42.0}},
                  {"role": "assistant", "content": "<think>\nadd\n</think>\n\n<answer>\\boxed{42}</answer>"}]},
    {"question": "6*7?", "solution": 42, "thinking_trajectories": ["multiply"], "attempt": "\\boxed{42}"},
]  # fmt: skip


@pytest.mark.parametrize("record", NUMERIC_REFERENCES, ids=["openr1", "r1_distill", "am_messages", "s1k"])
def test_numeric_references_are_verified_and_kept_by_require_verified(
    tmp_path: Path, dataset_dir: Path, record: dict[str, Any]
) -> None:
    src, verified = jsonl(tmp_path / "in.jsonl", [record]), tmp_path / "verified.jsonl"
    code, out = run("verify", str(src), "--out", str(verified))
    assert code == EXIT_OK, out
    result = json.loads(verified.read_text())["verify"]
    result = result[0] if isinstance(result, list) else result
    assert (result["method"], result["verdict"], result["gold"]) == ("math_verify", True, record_gold(record))
    code, out = run("convert", str(verified), "--name", "num", "--dataset-dir", str(dataset_dir), "--require-verified")
    assert code == EXIT_OK, out
    assert len((dataset_dir / "num.jsonl").read_text().splitlines()) == 1


def test_a_mapped_numeric_reference_column_is_verified(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "gsm.jsonl", [{"question": "20+22?", "response": "So \\boxed{42}.", "gold": 42}])
    out_file = tmp_path / "v.jsonl"
    code, out = run("verify", str(src), "--out", str(out_file), "--map", "prompt=question", "--map", "answer=response",
                    "--map", "reference=gold")  # fmt: skip
    assert code == EXIT_OK, out
    assert json.loads(out_file.read_text())["verify"]["verdict"] is True


def record_gold(record: dict[str, Any]) -> str:
    return "2.5" if "input" in record else "42"


@pytest.fixture(scope="module")
def run_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset and the configs `lf-reasoning config` wrote for it (cutoff_len measured: no record truncated)."""
    root = tmp_path_factory.mktemp("run")
    code, out = run("convert", str(R1), "--name", "r1", "--dataset-dir", str(root / "data"))
    assert code == EXIT_OK, out
    code, out = run(
        "config", "--model", str(tiny_model), "--template", "qwen3", "--dataset", "r1",
        "--dataset-dir", str(root / "data"), "--out", str(root / "run"), "--hardware", "cpu",
    )  # fmt: skip
    assert code == EXIT_OK, out
    return root / "run"


def test_train_overrides_get_the_truncation_check_config_runs(run_dir: Path, tiny_model: Path) -> None:
    config = run_dir / "train.yaml"
    before = snapshot(run_dir)
    code, out = run(
        "config", "--model", str(tiny_model), "--template", "qwen3", "--dataset", "r1", "--hardware", "cpu",
        "--dataset-dir", str(run_dir.parent / "data"), "--out", str(run_dir.parent / "other"), "--cutoff-len", "50",
    )  # fmt: skip
    assert code == EXIT_ERROR and "cutoff_len 50 would truncate 4 of 4 records" in out  # what config refuses...
    code, out = run("train", str(config), "cutoff_len=50", "--dry-run")
    assert code == EXIT_ERROR, out  # ...train refuses too
    assert f"{config} with cutoff_len=50: cutoff_len 50 would truncate 4 of 4 records (100.0%)" in out
    assert "or set cutoff_len=256 (covers every record), or pass --allow-truncation" in out
    code, out = run("train", str(config), "cutoff_len=50", "--dry-run", "--allow-truncation")
    assert code == EXIT_OK and "warning:" in out and "(allowed with --allow-truncation)" in out
    assert "cutoff_len: 50" in out
    code, out = run("train", str(config), "cutoff_len=4096", "max_steps=3", "--dry-run")
    assert code == EXIT_OK and "would truncate" not in out
    assert snapshot(run_dir) == before


def test_score_refuses_to_resume_with_another_rubric(tmp_path: Path) -> None:
    def judge(prompt: str, attempt: int) -> str:
        return json.dumps({"harmlessness": 10, "helpfulness": 8, "correctness": 8, "score": 8, "reason": "ok"})

    src = jsonl(tmp_path / "in.jsonl", [{"input": f"q{i}", "reasoning_content": "t", "content": "a"} for i in range(3)])
    rubric = tmp_path / "strict.txt"
    rubric.write_text("Rate strictly.\nQ: {prompt}\nA: {answer}\nReply in JSON.", encoding="utf-8")
    out_file = tmp_path / "scored.jsonl"
    with OpenAIServer(ServerConfig(reply=judge)) as server:
        args = ["score", str(src), "--out", str(out_file), "--judge-base-url", server.url, "--judge-model", "j"]
        code, out = run(*args)
        assert code == EXIT_OK, out
        assert {json.loads(line)["judge"]["rubric"] for line in out_file.read_text().splitlines()} == {"built-in"}
        before, requests = snapshot(out_file), len(server.requests)
        code, out = run(*args, "--rubric", str(rubric))
        assert code == EXIT_ERROR, out
        assert f"{out_file}:1 was made with --rubric 'built-in', this run has 'sha1:" in out
        assert "resuming would skip its records instead of redoing them" in out and "another --out" in out
        code, out = run(*args[:-1], "other-judge")
        assert code == EXIT_ERROR and "was made with --judge-model 'j', this run has 'other-judge'" in out
        assert snapshot(out_file) == before and len(server.requests) == requests  # nothing sent, nothing written
        code, out = run(*args)  # the same rubric resumes: nothing left to send
        assert code == EXIT_OK and len(server.requests) == requests


def test_interrupted_message_names_the_last_checkpoint(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    output_dir = tmp_path / "train"
    plan = RunPlan(config, {"output_dir": str(output_dir), "save_steps": 500}, "train", ["x"], overrides=("a=1",))
    assert interrupted_message(plan) == (
        f"interrupted before the first checkpoint (save_steps: 500) was saved under {output_dir}; nothing to resume "
        f"from: run `lf-reasoning train {config}` again to start over"
    )
    for step in (2, 10, 4):
        (output_dir / f"checkpoint-{step}").mkdir(parents=True)
    resumed = RunPlan(config, plan.config, "train", ["x"], overrides=("a=1", "resume_from_checkpoint=old"))
    assert interrupted_message(resumed) == (
        f"interrupted; resume with `lf-reasoning train {config} a=1 resume_from_checkpoint={output_dir}/checkpoint-10`"
    )
    predict = RunPlan(config, {"output_dir": str(output_dir)}, "predict", ["x"])
    assert interrupted_message(predict) == f"interrupted; nothing to resume: run `lf-reasoning train {config}` again"


def test_ctrl_c_during_training_exits_130_and_says_how_to_resume(run_dir: Path) -> None:
    """A terminal's Ctrl-C: SIGINT to the whole process group (lf-reasoning and LLaMA-Factory under it)."""
    output_dir = run_dir / "train"
    configs = snapshot(*run_dir.glob("*.yaml"))
    overrides = ["max_steps=100000", "save_steps=1", "gradient_accumulation_steps=1", "logging_steps=1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "lf_reasoning", "train", str(run_dir / "train.yaml"), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not list(output_dir.glob("checkpoint-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, err[-3000:]
    last = max(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    expected = f"interrupted; resume with `lf-reasoning train {run_dir / 'train.yaml'} {' '.join(overrides)} "
    assert expected + f"resume_from_checkpoint={last}`" in err
    assert "exit status -2" not in err and "failed" not in err.splitlines()[-1]
    assert snapshot(*run_dir.glob("*.yaml")) == configs
