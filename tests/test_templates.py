"""Template choice: LLaMA-Factory's own model tables, local model files, name patterns and --template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.templates import (
    TemplateChoice,
    choose_template,
    is_reasoning_template,
    template_exists,
)

# Distinctive parts of real chat templates, as they read after JSON decoding ("\\n" is a Jinja escape).
CHATML_TURNS = (
    "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}"
)
QWEN3_HYBRID = CHATML_TURNS + (
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
THINK_PREFILL = CHATML_TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}"
PLAIN_CHATML = CHATML_TURNS + "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
R1_DISTILL = (
    "{{bos_token}}{% for m in messages %}{% if m['role'] == 'user' %}{{'<｜User｜>' + m['content']}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)
# DeepSeek-V3.1 style hybrid: `<think>` without the newline prefill, so not the R1 format.
V31_HYBRID = R1_DISTILL.replace("<think>\\n'}}", "<think>'}}{% else %}{{'<｜Assistant｜></think>'}}")


def model_dir(root: Path, name: str, model_type: str | None = None, chat_template: str | None = None) -> Path:
    """A model directory with just the files template choice reads."""
    path = root / name
    path.mkdir(parents=True)
    if model_type:
        (path / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    if chat_template is not None:
        tokenizer_config = {"tokenizer_class": "Qwen2Tokenizer", "chat_template": chat_template}
        (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("model", "template", "reasoning"),
    [
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseekr1", True),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseekr1", True),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "deepseekr1", True),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "deepseekr1", True),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseekr1", True),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseekr1", True),
        ("deepseek-ai/DeepSeek-R1-0528-Qwen3-8B", "deepseekr1", True),
        ("Qwen/Qwen3-0.6B", "qwen3", True),
        ("Qwen/Qwen3-8B", "qwen3", True),
        ("Qwen/Qwen3-32B", "qwen3", True),
        ("Qwen/Qwen3-30B-A3B", "qwen3", True),
        ("Qwen/Qwen3-4B-Thinking-2507", "qwen3", True),
        ("Qwen/Qwen3-30B-A3B-Thinking-2507", "qwen3", True),
        ("Qwen/Qwen3-235B-A22B-Thinking-2507", "qwen3", True),
        ("Qwen/Qwen3-4B-Instruct-2507", "qwen3_nothink", False),
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", "qwen3_nothink", False),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507", "qwen3_nothink", False),
        ("Qwen/QwQ-32B", "qwen", False),
        ("qwen/qwen3-8b", "qwen3", True),  # hub ids match case-insensitively
    ],
)
def test_listed_models_get_llamafactorys_template(model: str, template: str, reasoning: bool) -> None:
    choice = choose_template(model)
    assert (choice.template, choice.reasoning) == (template, reasoning)
    assert "LLaMA-Factory maps" in choice.reason


def test_qwq_warns_that_its_llamafactory_template_is_plain() -> None:
    (warning,) = choose_template("Qwen/QwQ-32B").warnings
    assert "plain template" in warning
    assert "You are Qwen, created by Alibaba Cloud" in warning  # the `qwen` template's default system prompt


def test_reasoning_models_with_reasoning_templates_have_no_warnings() -> None:
    assert choose_template("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").warnings == ()
    assert choose_template("Qwen/Qwen3-8B").warnings == ()


@pytest.mark.parametrize(
    ("model", "template"),
    [
        ("/nonexistent/models/DeepSeek-R1-Distill-Llama-8B", "deepseekr1"),  # path on the training machine
        ("/nonexistent/models/Qwen3-4B-Instruct-2507/", "qwen3_nothink"),
        ("unsloth/Qwen3-8B", "qwen3"),  # mirror under another organisation
        ("/hf/hub/models--Qwen--Qwen3-4B-Thinking-2507/snapshots/0123abc", "qwen3"),  # Hugging Face cache
    ],
)
def test_paths_and_mirrors_match_by_name(model: str, template: str) -> None:
    assert choose_template(model).template == template


def test_listed_name_wins_over_local_files(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "DeepSeek-R1-Distill-Qwen-7B", "qwen2", PLAIN_CHATML)
    assert choose_template(str(path)).template == "deepseekr1"


@pytest.mark.parametrize(
    ("model", "template"),
    [
        ("bartowski/DeepSeek-R1-Distill-Qwen-7B-GGUF", "deepseekr1"),
        ("someone/deepseek-r1-distill-qwen-1.5b-math-sft", "deepseekr1"),
        ("unsloth/Qwen3-4B-Thinking-2507-bnb-4bit", "qwen3"),
        ("someone/Qwen3-30B-A3B-Instruct-2507-FP8", "qwen3_nothink"),
        ("someone/QwQ-32B-AWQ", "qwen"),
    ],
)
def test_unlisted_hub_ids_use_name_patterns(model: str, template: str) -> None:
    choice = choose_template(model)
    assert choice.template == template
    assert "not in LLaMA-Factory's tables" in choice.reason


def test_name_patterns_agree_with_every_listed_model() -> None:
    """A renamed copy of any listed model that a name pattern catches gets the listed model's template."""
    from llamafactory.extras.constants import DEFAULT_TEMPLATE, SUPPORTED_MODELS

    checked = 0
    for name, sources in SUPPORTED_MODELS.items():
        template = DEFAULT_TEMPLATE.get(name)
        if not template:
            continue
        for hub_id in sources.values():
            try:
                choice = choose_template(f"mirror/{hub_id.rsplit('/', 1)[-1]}-q4")
            except UserError:
                continue
            assert choice.template == template, (hub_id, choice)
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("model_type", "chat_template", "template"),
    [
        ("qwen2", R1_DISTILL, "deepseekr1"),
        ("llama", R1_DISTILL, "deepseekr1"),
        ("qwen3", QWEN3_HYBRID, "qwen3"),
        ("qwen3_moe", QWEN3_HYBRID, "qwen3"),
        ("qwen3", THINK_PREFILL, "qwen3"),
    ],
)
def test_local_chat_template_decides(tmp_path: Path, model_type: str, chat_template: str, template: str) -> None:
    path = model_dir(tmp_path, "my-finetune", model_type, chat_template)
    choice = choose_template(str(path))
    assert choice.template == template
    assert choice.reasoning
    assert str(path / "tokenizer_config.json") in choice.reason


def test_chat_template_jinja_file_is_read(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "exported", "qwen3")
    (path / "chat_template.jinja").write_text(QWEN3_HYBRID.replace("\\n", "\n"), encoding="utf-8")
    choice = choose_template(str(path))
    assert choice.template == "qwen3"
    assert "chat_template.jinja" in choice.reason


@pytest.mark.parametrize(
    ("model_type", "chat_template"),
    [
        ("qwen3", PLAIN_CHATML),  # Instruct-2507, or a qwen3 run whose template LLaMA-Factory wrote: can't tell
        ("qwen2", THINK_PREFILL),  # QwQ-like, but LLaMA-Factory's mapping is not inferable from files
        ("deepseek_v3", V31_HYBRID),  # V3.1 hybrid thinking is not the R1 format
        ("qwen3", None),
    ],
)
def test_ambiguous_local_files_ask_for_template(tmp_path: Path, model_type: str, chat_template: str | None) -> None:
    path = model_dir(tmp_path, "my-finetune", model_type, chat_template)
    with pytest.raises(UserError, match="--template") as info:
        choose_template(str(path))
    assert f"model_type {model_type}" in info.value.message


def test_adapter_dir_follows_its_base_model(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "saves-lora")
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen3-8B"}))
    choice = choose_template(str(path))
    assert choice.template == "qwen3"
    assert "adapter_config.json" in choice.reason


def test_config_name_or_path_is_followed(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "merged")
    config = {"model_type": "qwen2", "_name_or_path": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"}
    (path / "config.json").write_text(json.dumps(config))
    assert choose_template(str(path)).template == "deepseekr1"


def test_corrupt_config_is_a_user_error(tmp_path: Path) -> None:
    path = model_dir(tmp_path, "broken")
    (path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match=r"config\.json"):
        choose_template(str(path))


def test_tiny_model_needs_an_explicit_template(tiny_model: Path) -> None:
    """The tiny Qwen3 has no chat template and both Qwen and DeepSeek tokens: nothing decides, so ask."""
    with pytest.raises(UserError, match="--template") as info:
        choose_template(str(tiny_model))
    assert "model_type qwen3 and no chat template" in info.value.message


def test_tiny_model_with_template_override(tiny_model: Path) -> None:
    choice = choose_template(str(tiny_model), override="qwen3")
    assert (choice.template, choice.reasoning, choice.warnings) == ("qwen3", True, ())
    assert isinstance(choice, TemplateChoice) and "--template" in choice.reason


def test_unknown_hub_id_asks_for_template() -> None:
    with pytest.raises(UserError, match="no local files") as info:
        choose_template("someone/totally-unknown-model-7b")
    assert "--template" in info.value.message


@pytest.mark.parametrize(
    ("model", "variants"),
    [("Qwen/Qwen3-8B-Base", "qwen3."), ("Qwen/Qwen3-4B-Base", "qwen3, qwen3_nothink.")],
)
def test_base_models_are_not_guessed(model: str, variants: str) -> None:
    with pytest.raises(UserError, match="base models") as info:
        choose_template(model)
    assert info.value.message.endswith(f"its chat variants use {variants}")


def test_base_model_accepts_any_override() -> None:
    assert choose_template("Qwen/Qwen3-8B-Base", override="qwen3").warnings == ()


def test_unknown_override_lists_close_matches() -> None:
    with pytest.raises(UserError, match="Close matches: qwen3") as info:
        choose_template("Qwen/Qwen3-8B", override="Qwen-3")
    assert "Unknown template 'Qwen-3'" in info.value.message


def test_override_matching_the_model_has_no_warning() -> None:
    choice = choose_template("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", override="deepseekr1")
    assert (choice.template, choice.reasoning, choice.warnings) == ("deepseekr1", True, ())


@pytest.mark.parametrize(
    ("model", "override", "reasoning", "risk"),
    [
        ("Qwen/Qwen3-8B", "qwen3_nothink", False, "thoughts are trained verbatim"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "qwen3", True, "breaks the thought format at inference"),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "llama3", False, "thoughts are trained verbatim"),
        ("Qwen/Qwen3-4B-Instruct-2507", "qwen3", True, "empty `<think>` block"),
        ("Qwen/Qwen3-4B-Instruct-2507", "qwen", False, "prompt format differs"),
    ],
)
def test_contradicting_override_is_kept_with_a_warning(model: str, override: str, reasoning: bool, risk: str) -> None:
    choice = choose_template(model, override=override)
    assert (choice.template, choice.reasoning) == (override, reasoning)
    (warning,) = choice.warnings
    assert risk in warning


def test_template_kinds() -> None:
    assert template_exists("qwen3") and template_exists("qwen3_nothink") and not template_exists("qwen-3")
    assert is_reasoning_template("qwen3") and is_reasoning_template("deepseekr1")
    assert not is_reasoning_template("qwen3_nothink") and not is_reasoning_template("qwen")
    assert not is_reasoning_template("no-such-template")


@pytest.fixture
def custom_template() -> Iterator[str]:
    """A reasoning template registered in-process, removed afterwards."""
    from llamafactory.data.formatter import StringFormatter
    from llamafactory.data.template import TEMPLATES, ReasoningTemplate, register_template

    name = "lf_reasoning_test_custom"
    register_template(
        name=name,
        format_user=StringFormatter(slots=["<user>{{content}}<bot>"]),
        template_class=ReasoningTemplate,
    )
    yield name
    del TEMPLATES[name]


def test_custom_registrations_count(custom_template: str) -> None:
    assert template_exists(custom_template)
    assert is_reasoning_template(custom_template)
    choice = choose_template("someone/unknown-model", override=custom_template)
    assert (choice.template, choice.reasoning, choice.warnings) == (custom_template, True, ())
