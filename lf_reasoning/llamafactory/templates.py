"""Choose the LLaMA-Factory chat template for a model, from LLaMA-Factory's own tables first.

Resolution order, first hit wins:

1. LLaMA-Factory's tables (``SUPPORTED_MODELS`` → ``DEFAULT_TEMPLATE``): the hub id (or the id a Hugging Face
   cache path encodes) against every source's id, else the last path component against the ids' repository
   names, case-insensitively. Base models are listed without a template; they are not guessed.
2. A local directory's files: the base model named in ``adapter_config.json`` / ``config.json``
   (``_name_or_path``), then the chat template, recognised only where it is unambiguous (DeepSeek-R1 prefill,
   Qwen3 hybrid thinking, Qwen3 thinking prefill).
3. A few name patterns (``_NAME_PATTERNS``) that a test checks against every model LLaMA-Factory lists.

Anything else is a :class:`UserError` asking for ``--template``.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_reasoning.errors import UserError

if TYPE_CHECKING:
    from llamafactory.data.template import Template

# Name patterns for models LLaMA-Factory does not list (fine-tunes, quantisations, mirrors), with the template
# LLaMA-Factory maps every listed model matching the pattern to (checked in tests/test_templates.py).
_NAME_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"deepseek-r1", re.IGNORECASE), "deepseekr1", "DeepSeek-R1"),
    (re.compile(r"qwen3-.*thinking-2507", re.IGNORECASE), "qwen3", "Qwen3 Thinking-2507"),
    (re.compile(r"qwen3-.*instruct-2507", re.IGNORECASE), "qwen3_nothink", "Qwen3 Instruct-2507"),
    (re.compile(r"qwq", re.IGNORECASE), "qwen", "QwQ"),
    # Qwen3.6 (Qwen/Qwen3.6-27B, Qwen/Qwen3.6-35B-A3B): 0.9.5 has the `qwen3_6` template but no table entry.
    (re.compile(r"qwen3\.6", re.IGNORECASE), "qwen3_6", "Qwen3.6"),
    (re.compile(r"qwen3\.5", re.IGNORECASE), "qwen3_5", "Qwen3.5"),
)
_REASONING_NAME = re.compile(r"qwq|think|reason|(?<![a-z0-9])r1(?![a-z0-9])", re.IGNORECASE)
_HF_CACHE_DIR = re.compile(r"models--([^/\\]+?)--([^/\\]+)")
_NL = r"(?:\n|\\n)"  # a newline, or the escaped one inside a Jinja string literal
_R1_PREFILL = re.compile(r"<｜Assistant｜><think>" + _NL)
_QWEN_THINK_PREFILL = re.compile(r"<\|im_start\|>assistant" + _NL + r"<think>" + _NL)
# config.json model_type → the template of its hybrid-thinking chat models. Qwen3.6 checkpoints keep Qwen3.5's
# model_type (transformers documents it), so a local Qwen3.6 is told apart by its name (see _from_local_files).
_QWEN3_MODEL_TYPES = {
    "qwen3": "qwen3",
    "qwen3_moe": "qwen3",
    "qwen3_next": "qwen3",
    "qwen3_5": "qwen3_5",
    "qwen3_5_moe": "qwen3_5",
}
_TEMPLATE_HINT = (
    "e.g. qwen3 for Qwen3 hybrid and Thinking models, qwen3_nothink for Qwen3 Instruct-2507, "
    "deepseekr1 for DeepSeek-R1 and its distills"
)


@dataclass(frozen=True)
class TemplateChoice:
    """The LLaMA-Factory template to train with, and why."""

    template: str  # LLaMA-Factory template name
    reason: str  # one sentence a user reads: why this template
    reasoning: bool  # True for a ReasoningTemplate: enable_thinking applies, thoughts trained or stripped
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Listed:
    """One hub id of one model in LLaMA-Factory's ``SUPPORTED_MODELS``."""

    name: str  # LLaMA-Factory's display name, e.g. "DeepSeek-R1-7B-Distill"
    hub_id: str
    default_source: bool  # listed under DownloadSource.DEFAULT (Hugging Face)
    template: str | None  # None for base models: DEFAULT_TEMPLATE only maps chat/instruct/thinking names


def template_exists(name: str) -> bool:
    """Whether LLaMA-Factory has a template of this name (in-process registrations included)."""
    return name in _templates()


def is_reasoning_template(name: str) -> bool:
    """Whether the template is a ``ReasoningTemplate`` (``enable_thinking`` applies, thoughts are handled)."""
    from llamafactory.data.template import ReasoningTemplate

    return isinstance(_templates().get(name), ReasoningTemplate)


def choose_template(model: str, override: str | None = None) -> TemplateChoice:
    """The template for ``model`` (hub id or local path); ``override`` (``--template``) wins, with a warning
    when it contradicts the model's own template. Raises :class:`UserError` when neither decides."""
    if override is not None and not template_exists(override):
        raise UserError(_unknown_template_message(override))
    resolved = _resolve(model)
    if override is None:
        if resolved is None:
            raise UserError(_unresolved_message(model))
        return resolved
    reasoning = is_reasoning_template(override)
    if resolved is None:
        reason = f"`{override}` was chosen with --template; nothing known about {model} contradicts it."
        return TemplateChoice(override, reason, reasoning)
    if resolved.template == override:
        return TemplateChoice(
            override, f"`{override}` was chosen with --template and agrees: {resolved.reason}", reasoning
        )
    reason = f"`{override}` was chosen with --template; the model's own template is `{resolved.template}`."
    return TemplateChoice(override, reason, reasoning, (_override_risk(resolved, override, reasoning),))


def _templates() -> dict[str, Template]:
    from llamafactory.data.template import TEMPLATES

    return TEMPLATES


@functools.cache
def _listed_models() -> tuple[_Listed, ...]:
    """LLaMA-Factory's model table, flattened once (it is filled at import time)."""
    from llamafactory.extras.constants import DEFAULT_TEMPLATE, SUPPORTED_MODELS, DownloadSource

    return tuple(
        _Listed(name, hub_id, source == DownloadSource.DEFAULT, DEFAULT_TEMPLATE.get(name) or None)
        for name, sources in SUPPORTED_MODELS.items()
        for source, hub_id in sources.items()
    )


def _choice(template: str, reason: str, *names: str) -> TemplateChoice:
    """A resolved choice; warns when a model whose name marks it as a reasoning model gets a plain template."""
    reasoning = is_reasoning_template(template)
    warnings: tuple[str, ...] = ()
    if not reasoning and any(_REASONING_NAME.search(name) for name in names):
        default_system = _templates()[template].default_system
        warnings = (
            f"`{template}` is a plain template although {names[0]} is a reasoning model: thoughts in the data are "
            "trained verbatim, enable_thinking has no effect and answers without a thought get no empty "
            "`<think>` block."
            + (f" Samples without a system prompt get its default one ({default_system!r})." if default_system else ""),
        )
    return TemplateChoice(template, reason, reasoning, warnings)


def _resolve(model: str, follow_references: bool = True) -> TemplateChoice | None:
    return _from_tables(model) or _from_local_files(model, follow_references) or _from_name(model)


def _last_component(model: str) -> str:
    return model.strip().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _table_matches(model: str) -> tuple[list[_Listed], bool]:
    """Listed entries for ``model`` and whether they matched a full hub id (else only the repository name)."""
    listed = _listed_models()
    cache = _HF_CACHE_DIR.search(model)
    keys = {model.strip().rstrip("/").lower()} | ({f"{cache[1]}/{cache[2]}".lower()} if cache else set())
    exact = [entry for entry in listed if entry.hub_id.lower() in keys]
    if exact:
        return exact, True
    repo = _last_component(model).lower()
    by_name = [entry for entry in listed if entry.hub_id.lower().rsplit("/", 1)[-1] == repo]
    # Prefer Hugging Face ids: a few ModelScope ids in LLaMA-Factory's tables point at another model.
    return [entry for entry in by_name if entry.default_source] or by_name, False


def _from_tables(model: str) -> TemplateChoice | None:
    matches, exact = _table_matches(model)
    templates = {entry.template for entry in matches if entry.template}
    if len(templates) != 1:
        return None  # not listed, listed as a base model, or listed with conflicting templates
    entry = sorted((m for m in matches if m.template), key=lambda m: not m.default_source)[0]
    template = templates.pop()
    if exact:
        reason = f"LLaMA-Factory maps {entry.hub_id} ({entry.name}) to `{template}`."
    else:
        name = _last_component(model)
        reason = f"`{name}` is the name of {entry.hub_id} ({entry.name}), which LLaMA-Factory maps to `{template}`."
    return _choice(template, reason, entry.hub_id, entry.name)


def _from_name(model: str) -> TemplateChoice | None:
    name = _last_component(model)
    for pattern, template, family in _NAME_PATTERNS:
        if pattern.search(name):
            reason = (
                f"{name} is not in LLaMA-Factory's tables, but its name marks a {family} model, "
                f"which LLaMA-Factory maps to `{template}`."
            )
            return _choice(template, reason, name)
    return None


def _from_local_files(model: str, follow_references: bool) -> TemplateChoice | None:
    path = Path(model).expanduser()
    if not path.is_dir():
        return None
    if follow_references:
        for file, key in (("adapter_config.json", "base_model_name_or_path"), ("config.json", "_name_or_path")):
            ref = _read_json(path / file).get(key)
            if isinstance(ref, str) and ref.strip() and Path(ref).expanduser().resolve() != path.resolve():
                found = _resolve(ref, follow_references=False)
                if found is not None:
                    reason = f"{path / file} names {ref} as its model; {found.reason}"
                    return TemplateChoice(found.template, reason, found.reasoning, found.warnings)
    chat = _chat_template(path)
    if chat is None:
        return None
    text, source = chat
    model_type = _read_json(path / "config.json").get("model_type")
    if _R1_PREFILL.search(text):
        template, evidence = "deepseekr1", "prefills `<think>\\n` after `<｜Assistant｜>` as DeepSeek-R1 models do"
    elif (
        model_type in _QWEN3_MODEL_TYPES and "<|im_start|>" in text and "enable_thinking" in text and "<think>" in text
    ):
        template = _qwen_template(model_type, path)
        evidence = f"is Qwen3's hybrid-thinking template (`enable_thinking`) on a {model_type} model"
    elif model_type in _QWEN3_MODEL_TYPES and _QWEN_THINK_PREFILL.search(text):
        template = _qwen_template(model_type, path)
        evidence = f"prefills `<think>\\n` on a {model_type} model as Qwen3 Thinking models do"
    else:
        return None
    return _choice(template, f"Inferred from {path / source}: its chat template {evidence}.")


def _qwen_template(model_type: str, path: Path) -> str:
    template = _QWEN3_MODEL_TYPES[model_type]
    return "qwen3_6" if template == "qwen3_5" and re.search(r"qwen3\.6", path.name, re.IGNORECASE) else template


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read it as JSON ({exc}); fix or remove the file.") from exc
    return data if isinstance(data, dict) else {}


def _chat_template(path: Path) -> tuple[str, str] | None:
    """The chat template saved in a model directory and the file it came from."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8"), jinja.name
    for file in ("tokenizer_config.json", "chat_template.json"):
        value = _read_json(path / file).get("chat_template")
        if isinstance(value, list):  # named templates: [{"name": "default", "template": "..."}, ...]
            value = next((t.get("template") for t in value if isinstance(t, dict) and t.get("name") == "default"), None)
        if isinstance(value, str):
            return value, file
    return None


def _unresolved_message(model: str) -> str:
    matches, _ = _table_matches(model)
    if matches:  # listed, but as a base model (or with conflicting templates)
        entry = sorted(matches, key=lambda m: not m.default_source)[0]
        stem = entry.name.removesuffix("-Base") + "-"
        variants = sorted({m.template for m in _listed_models() if m.template and m.name.startswith(stem)})
        hint = f"its chat variants use {', '.join(variants)}" if variants else _TEMPLATE_HINT
        return (
            f"LLaMA-Factory lists {entry.hub_id} ({entry.name}) without a template, as it does base models, so the "
            f"chat format to teach it is your choice: pass --template NAME; {hint}."
        )
    path = Path(model).expanduser()
    if not path.is_dir():
        return (
            f"Unknown model {model}: LLaMA-Factory's tables do not list it and there are no local files to inspect. "
            f"Pass --template NAME, {_TEMPLATE_HINT}."
        )
    model_type = _read_json(path / "config.json").get("model_type")
    chat = _chat_template(path)
    found = [
        f"model_type {model_type}" if model_type else "no model_type in config.json",
        f"an unrecognised chat template in {chat[1]}" if chat else "no chat template",
    ]
    return (
        f"Cannot tell which template {path} needs: LLaMA-Factory's tables do not list it and its files show only "
        f"{' and '.join(found)}. Pass --template NAME, {_TEMPLATE_HINT}."
    )


def _unknown_template_message(name: str) -> str:
    names = sorted(_templates())
    close = difflib.get_close_matches(name, names, n=5) or difflib.get_close_matches(name.lower(), names, n=5)
    known = f"Close matches: {', '.join(close)}." if close else f"Known templates: {', '.join(names)}."
    return f"Unknown template {name!r}: LLaMA-Factory has no template of that name. {known}"


def _override_risk(resolved: TemplateChoice, override: str, reasoning: bool) -> str:
    """Why training with ``override`` instead of the model's own template is risky."""
    risks = []
    if resolved.template == "deepseekr1":
        risks.append(
            "DeepSeek-R1 models expect deepseekr1's `<｜User｜>…<｜Assistant｜>` format and thought handling, so "
            "another template breaks the thought format at inference."
        )
    if resolved.reasoning and not reasoning:
        risks.append(
            f"`{override}` is a plain template: thoughts are trained verbatim, answers without a thought never get "
            "the empty `<think>` block and enable_thinking has no effect."
        )
    elif reasoning and not resolved.reasoning:
        risks.append(
            f"`{override}` is a reasoning template: with enable_thinking on (the default) answers without a thought "
            "are trained to open with an empty `<think>` block, a format this model does not use."
        )
    if not risks:
        risks.append("The prompt format differs from the one the model was trained with; infer with the same template.")
    return f"--template {override} overrides `{resolved.template}` ({resolved.reason.rstrip('.')}). " + " ".join(risks)
