"""Custom YAML templates registered into LLaMA-Factory, and training with them in-process and under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from lf_harness import OFFLINE_ENV, encode_with_llamafactory

from lf_reasoning.cli import main as cli_main
from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.custom_template import load_custom_template, register_custom_template
from lf_reasoning.llamafactory.launch import MODULE, launcher_command, needs_launcher, read_config, run_training
from lf_reasoning.llamafactory.launch import main as launch_main
from lf_reasoning.tiny_model import BOS_TOKEN, EOS_TOKEN

ROOT = Path(__file__).parents[1]
MEDICAL_YAML = ROOT / "examples" / "templates" / "medical_o1.yaml"
MEDICAL_SOURCE = ROOT / "examples" / "data" / "medical_o1_sft.json"
SYSTEM = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. Before answering, think carefully about the "
    "question and create a step-by-step chain of thoughts to ensure a logical and accurate response.\n\n"
    "### Instruction:\nYou are a medical expert with advanced knowledge in clinical reasoning, diagnostics, and "
    "treatment planning. Please answer the following medical question."
)
EMPTY_THOUGHT = "<think>\n\n</think>\n\n"


@pytest.fixture(scope="module")
def medical_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The medical-o1 example converted by `lf-reasoning convert` into a dataset dir (dataset `medical`)."""
    out = tmp_path_factory.mktemp("medical")
    result = CliRunner().invoke(
        cli_main, ["convert", str(MEDICAL_SOURCE), "--name", "medical", "--dataset-dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def medical_records() -> list[dict[str, str]]:
    return json.loads(MEDICAL_SOURCE.read_text(encoding="utf-8"))


def write_template(path: Path, **fields: Any) -> Path:
    path.write_text(yaml.safe_dump(fields, allow_unicode=True), encoding="utf-8")
    return path


def prompt_text(question: str) -> str:
    return f"{BOS_TOKEN}{SYSTEM}\n\n### Question:\n{question}\n\n### Response:\n"


def trained_thought(record: dict[str, str]) -> str:
    return f"<think>\n{record['Complex_CoT']}\n</think>\n\n{record['Response']}{EOS_TOKEN}"


@pytest.mark.parametrize("enable_thinking", [True, False])
def test_medical_template_encodes_exactly(
    tiny_model: Path, medical_dir: Path, medical_records: list[dict[str, str]], enable_thinking: bool
) -> None:
    name = register_custom_template(MEDICAL_YAML)
    assert name == "medical_o1"
    examples = encode_with_llamafactory(tiny_model, medical_dir, "medical", name, enable_thinking=enable_thinking)
    assert len(examples) == len(medical_records)
    for example, record in zip(examples, medical_records, strict=True):
        if enable_thinking:  # the thought is trained, wrapped in LLaMA-Factory's exact thought words
            assert example.prompt_text == prompt_text(record["Question"])
            assert example.label_text == trained_thought(record)
        else:  # reasoning: true -> the thought is stripped and an empty block goes to the (masked) prompt
            assert example.prompt_text == prompt_text(record["Question"]) + EMPTY_THOUGHT
            assert example.label_text == f"{record['Response']}{EOS_TOKEN}"


def test_plain_template_trains_thought_verbatim(
    tmp_path: Path, tiny_model: Path, medical_dir: Path, medical_records: list[dict[str, str]]
) -> None:
    """reasoning: false is a plain template (like LF's *_nothink): enable_thinking does not touch thoughts."""
    definition = yaml.safe_load(MEDICAL_YAML.read_text(encoding="utf-8"))
    path = write_template(tmp_path / "plain.yaml", **{**definition, "name": "medical_o1_plain", "reasoning": False})
    name = register_custom_template(path)
    examples = encode_with_llamafactory(tiny_model, medical_dir, "medical", name, enable_thinking=False)
    record = medical_records[0]
    assert examples[0].prompt_text == prompt_text(record["Question"])
    assert examples[0].label_text == trained_thought(record)


def test_registration_is_idempotent(tmp_path: Path) -> None:
    from llamafactory.data.template import TEMPLATES

    name = register_custom_template(MEDICAL_YAML)
    registered = TEMPLATES[name]
    copy = shutil.copy(MEDICAL_YAML, tmp_path / "same_definition.yaml")
    assert register_custom_template(MEDICAL_YAML) == name
    assert register_custom_template(copy) == name  # same definition from another file: also a no-op
    assert TEMPLATES[name] is registered


def test_conflicting_definition_is_refused(tmp_path: Path) -> None:
    register_custom_template(MEDICAL_YAML)
    other = write_template(tmp_path / "other.yaml", name="medical_o1", user="Q: {{content}}\nA: ")
    with pytest.raises(UserError) as info:
        register_custom_template(other)
    assert str(other) in info.value.message and str(MEDICAL_YAML) in info.value.message
    assert "different definition" in info.value.message


def test_builtin_name_is_refused(tmp_path: Path) -> None:
    from llamafactory.data.template import TEMPLATES

    builtin = TEMPLATES["qwen3"]
    path = write_template(tmp_path / "qwen3.yaml", name="qwen3", user="{{content}}")
    with pytest.raises(UserError, match=r"key 'name': 'qwen3' is a template built into LLaMA-Factory"):
        register_custom_template(path)
    assert TEMPLATES["qwen3"] is builtin


@pytest.mark.parametrize(
    ("fields", "key", "message"),
    [
        ({"name": "t", "user": "{{content}}", "asistant": "{{content}}"}, "asistant", "did you mean 'assistant'"),
        ({"name": "t"}, "user", "required"),
        ({"name": "t", "user": "### Question:\n"}, "user", "exactly once, found 0"),
        ({"name": "t", "user": "{{content}} {{content}}"}, "user", "exactly once, found 2"),
        (
            {"name": "t", "user": "{{content}}", "assistant": "{{contnet}}{{eos_token}}"},
            "assistant",
            "unsupported placeholder {{contnet}}",
        ),
        ({"name": "t", "user": "{{ content }}"}, "user", "unsupported placeholder {{ content }}"),
        (
            {"name": "t", "user": "{{content}}", "prefix": "{{content}}"},
            "prefix",
            "unsupported placeholder {{content}}",
        ),
        ({"name": "t", "user": "{{content}}", "default_system": "Hi {{name}}"}, "default_system", "plain text"),
        ({"name": "t", "user": "{{content}}", "reasoning": "yes"}, "reasoning", "must be true or false"),
        ({"name": "t", "user": 42}, "user", "must be a string, got int"),
        ({"name": ["t"], "user": "{{content}}"}, "name", "must be a string, got list"),
        ({"name": "my template", "user": "{{content}}"}, "name", "is not a template name"),
        ({"name": "t", "user": "{{content}}", "stop_words": "<|im_end|>"}, "stop_words", "list of non-empty strings"),
        ({"name": "t", "user": "{{content}}", "replace_eos": True}, "replace_eos", "needs stop_words"),
        ({"name": "t", "user": "{{content}}", "thought_words": ["<think>"]}, "thought_words", "two non-blank strings"),
    ],
)
def test_bad_template_fields_are_refused(tmp_path: Path, fields: dict[str, Any], key: str, message: str) -> None:
    path = write_template(tmp_path / "bad.yaml", **fields)
    with pytest.raises(UserError) as info:
        register_custom_template(path)
    assert info.value.message.startswith(f"{path}: key '{key}': ")
    assert message in info.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: t\nuser: [unclosed\n", "not valid YAML"),
        ("- name: t\n", "a custom template is a YAML mapping"),
        (None, "cannot read custom template"),
    ],
)
def test_bad_yaml_is_refused(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=f"^{path}: {message}"):
        load_custom_template(path)


def test_needs_launcher() -> None:
    assert not needs_launcher({"template": "qwen3"})
    assert not needs_launcher({})
    assert needs_launcher({"template": "qwen3", "custom_templates": ["t.yaml"]})
    assert needs_launcher({"template": "no_such_template"})


def train_config(model: Path, dataset_dir: Path, out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "lora",
        "lora_target": "all", "dataset": "medical", "dataset_dir": str(dataset_dir), "template": "medical_o1",
        "cutoff_len": 256, "output_dir": str(out), "cache_dir": str(out / "cache"), "overwrite_cache": True,
        "per_device_train_batch_size": 2, "max_steps": 12, "logging_steps": 1, "learning_rate": 1.0e-3,
        "save_strategy": "no", "bf16": False, "report_to": "none", "dataloader_pin_memory": False, **extra,
    }  # fmt: skip


def logged_losses(output_dir: Path) -> list[float]:
    lines = (output_dir / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def test_run_training_in_process_with_custom_template(tmp_path: Path, tiny_model: Path, medical_dir: Path) -> None:
    from llamafactory.data.template import TEMPLATES

    shutil.copy(MEDICAL_YAML, tmp_path / "medical_o1.yaml")
    out = tmp_path / "out"
    config = train_config(
        tiny_model, medical_dir, out, custom_templates=["medical_o1.yaml"], default_system="Answer tersely."
    )
    run_training(config, config_dir=tmp_path)

    assert config["custom_templates"] == ["medical_o1.yaml"]  # the caller's dict is left as it was
    # LF writes the run's default_system into the template it trains with: a later run must not inherit it
    assert TEMPLATES["medical_o1"].default_system == SYSTEM
    assert (out / "adapter_model.safetensors").is_file()
    losses = logged_losses(out)
    assert len(losses) == 12 and losses[-1] < losses[0]
    # replace_jinja_template (default true): the saved tokenizer prompts the way training did
    assert "### Question:" in (out / "chat_template.jinja").read_text(encoding="utf-8")


def test_run_training_refuses_unknown_template(tmp_path: Path, tiny_model: Path, medical_dir: Path) -> None:
    config = train_config(tiny_model, medical_dir, tmp_path / "out", template="medical_o2")
    with pytest.raises(UserError, match="key 'template': 'medical_o2' is neither built into LLaMA-Factory"):
        run_training(config)
    with pytest.raises(UserError, match="key 'custom_templates': must be a list"):
        run_training({**config, "custom_templates": 3})
    assert not (tmp_path / "out").exists()


def test_read_config_applies_overrides_like_llamafactory_cli(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("max_steps: 10\nlearning_rate: 1.0e-4\ncustom_templates: [t.yaml]\n", encoding="utf-8")
    config = read_config(path, ["max_steps=2", "lora_rank=4", "enable_thinking=null"])
    assert config == {
        "max_steps": 2,
        "learning_rate": 1.0e-4,
        "custom_templates": ["t.yaml"],
        "lora_rank": 4,
        "enable_thinking": None,
    }
    with pytest.raises(UserError, match="'max_steps' is not KEY=VALUE"):
        read_config(path, ["max_steps"])


def test_launch_main_reports_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert launch_main([str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml: cannot read it" in capsys.readouterr().err


def test_launcher_command() -> None:
    env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_PORT": "29555"}
    assert launcher_command("cfg.yaml", ["max_steps=2"], env=env) == [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--node_rank", "0", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", "29555", "-m", MODULE, "cfg.yaml", "max_steps=2",
    ]  # fmt: skip
    assert launcher_command("cfg.yaml", env={}) == [sys.executable, "-m", MODULE, "cfg.yaml"]  # CPU: one process


def write_train_yaml(tmp_path: Path, model: Path, dataset_dir: Path) -> Path:
    shutil.copy(MEDICAL_YAML, tmp_path / "medical_o1.yaml")
    config = train_config(model, dataset_dir, tmp_path / "out", custom_templates=["medical_o1.yaml"])
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_launcher(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env={**os.environ, **OFFLINE_ENV, **env}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_launch_module_as_subprocess(tmp_path: Path, tiny_model: Path, medical_dir: Path) -> None:
    """`python -m lf_reasoning.llamafactory.launch cfg.yaml key=value`: what each torchrun rank runs."""
    config = write_train_yaml(tmp_path, tiny_model, medical_dir)
    run_launcher([sys.executable, "-m", MODULE, str(config), "max_steps=2"], cwd=ROOT)
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    assert len(logged_losses(tmp_path / "out")) == 2


def test_torchrun_two_ranks_register_the_template(tmp_path: Path, tiny_model: Path, medical_dir: Path) -> None:
    """Two CPU ranks (gloo) each register the custom template; LF's own torchrun re-exec would fail here."""
    config = write_train_yaml(tmp_path, tiny_model, medical_dir)
    env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"}
    command = launcher_command(config, ["max_steps=2"], env=env)
    result = run_launcher(command, cwd=tmp_path, **env)  # cwd elsewhere: template path resolved from the config
    assert "world size: 2" in result.stdout + result.stderr
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
