"""Custom chat templates defined in YAML and registered into LLaMA-Factory in the running process.

LLaMA-Factory 0.9.5 has no plugin entry point: a template exists only in a process that called
``llamafactory.data.template.register_template``, which raises on a name that already exists. So a custom
template is a YAML file that every training process registers before LLaMA-Factory parses its arguments
(see ``lf_reasoning.llamafactory.launch``). Registration here is idempotent within a process; a different
definition under a name already taken (one of LLaMA-Factory's own, or another file's) is refused.

YAML schema (``name`` and ``user`` are required; any other key is an error)::

    name: medical_o1               # the value of `template:` in the training config
    reasoning: true                # true: a ReasoningTemplate, `enable_thinking` applies (false strips
                                   #   thoughts and puts an empty block in the prompt); false: a plain
                                   #   Template, thoughts are trained verbatim (like LF's *_nothink)
    prefix: "{{bos_token}}"        # once at the start; default "" (nothing)
    system: "{{content}}\\n\\n"      # wraps the system prompt; default "{{content}}"
    default_system: "..."          # used when a record has no system prompt; default ""
    user: "### Question:\\n{{content}}\\n\\n### Response:\\n"
    assistant: "{{content}}{{eos_token}}"   # the default; the EOS is trained only if it is here
    stop_words: []                 # extra stop tokens, added to the tokenizer as special tokens
    replace_eos: false             # true: the first stop word becomes the tokenizer's EOS
    thought_words: ["<think>\\n", "\\n</think>\\n\\n"]   # the default: LF's, as `lf-reasoning convert` writes
    replace_jinja_template: true   # save this template as the tokenizer's chat template (so an exported
                                   #   model prompts as it was trained); false keeps the model's own

Formats are single strings. ``user``, ``assistant`` and ``system`` contain ``{{content}}`` exactly once.
``{{bos_token}}`` and ``{{eos_token}}`` may appear in any format and in ``prefix``: they become the
tokenizer's real BOS/EOS token ids (a tokenizer without a BOS gets nothing), whatever those tokens are
called. No other ``{{...}}`` placeholder is allowed (LLaMA-Factory would leave it in the text).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from lf_reasoning.errors import UserError
from lf_reasoning.record.markup import THOUGHT_CLOSE, THOUGHT_OPEN

DEFAULT_THOUGHT_WORDS = (THOUGHT_OPEN, THOUGHT_CLOSE)  # LLaMA-Factory's default, used by `convert`
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")  # any {{...}}; only a few exact spellings are allowed
_SPECIAL_SLOT = re.compile(r"(\{\{bos_token\}\}|\{\{eos_token\}\})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_FORMAT_KEYS = ("user", "assistant", "system")  # must hold {{content}} exactly once
_BOOL_KEYS = ("reasoning", "replace_eos", "replace_jinja_template")
_STR_KEYS = ("name", "user", "assistant", "system", "default_system", "prefix")


@dataclass(frozen=True)
class CustomTemplate:
    """A validated template definition; equality ignores the file it came from."""

    name: str
    user: str
    assistant: str = "{{content}}{{eos_token}}"
    system: str = "{{content}}"
    default_system: str = ""
    prefix: str = ""
    stop_words: tuple[str, ...] = ()
    replace_eos: bool = False
    thought_words: tuple[str, str] = DEFAULT_THOUGHT_WORDS
    reasoning: bool = True
    replace_jinja_template: bool = True
    source: Path | None = field(default=None, compare=False)


# Definitions this process registered, by name (LF's TEMPLATES entries get mutated by training runs).
_REGISTERED: dict[str, CustomTemplate] = {}
_KEYS = tuple(f.name for f in fields(CustomTemplate) if f.name != "source")
_REQUIRED = ("name", "user")


def load_custom_template(path: str | Path) -> CustomTemplate:
    """Read and strictly validate a template YAML; every problem is a ``UserError`` naming file and key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read custom template: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: a custom template is a YAML mapping with at least `name` and `user`")

    def fail(key: str, problem: str) -> UserError:
        return UserError(f"{path}: key '{key}': {problem}")

    for key in data:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(_KEYS)}"
            raise fail(str(key), f"unknown key ({hint})")
    for key in _REQUIRED:
        if key not in data:
            raise fail(key, "required")
    for key in _STR_KEYS:
        if key in data and not isinstance(data[key], str):
            raise fail(key, f"must be a string, got {type(data[key]).__name__} {data[key]!r}")
    for key in _BOOL_KEYS:
        if key in data and not isinstance(data[key], bool):
            raise fail(key, f"must be true or false, got {data[key]!r}")

    if not _NAME.fullmatch(data["name"]):
        raise fail("name", f"{data['name']!r} is not a template name (letters, digits, '_', '.', '-')")
    for key in _FORMAT_KEYS:
        if key in data:
            _check_placeholders(data[key], allow_content=True, fail=lambda p, k=key: fail(k, p))
    if "prefix" in data:
        _check_placeholders(data["prefix"], allow_content=False, fail=lambda p: fail("prefix", p))
    if "default_system" in data and _PLACEHOLDER.search(data["default_system"]):
        raise fail("default_system", "is plain text: {{...}} placeholders are not filled in here")

    stop_words = data.get("stop_words", [])
    if not isinstance(stop_words, list) or not all(isinstance(w, str) and w for w in stop_words):
        raise fail("stop_words", f"must be a list of non-empty strings, got {stop_words!r}")
    if data.get("replace_eos") and not stop_words:
        raise fail("replace_eos", "needs stop_words: the first stop word becomes the EOS token")
    thought_words = data.get("thought_words", list(DEFAULT_THOUGHT_WORDS))
    if (
        not isinstance(thought_words, list)
        or len(thought_words) != 2
        or not all(isinstance(w, str) and w.strip() for w in thought_words)
    ):
        raise fail("thought_words", f"must be a list of two non-blank strings [open, close], got {thought_words!r}")

    values = {**data, "stop_words": tuple(stop_words), "thought_words": tuple(thought_words)}
    return CustomTemplate(**values, source=path)


def _check_placeholders(text: str, *, allow_content: bool, fail: Callable[[str], UserError]) -> None:
    allowed = (*(("{{content}}",) if allow_content else ()), "{{bos_token}}", "{{eos_token}}")
    unknown = [p for p in _PLACEHOLDER.findall(text) if p not in allowed]
    if unknown:
        raise fail(f"unsupported placeholder {unknown[0]} in {text!r} (allowed, exactly: {', '.join(allowed)})")
    count = text.count("{{content}}")
    if allow_content and count != 1:
        raise fail(f"must contain {{{{content}}}} exactly once, found {count} in {text!r}")


def _slots(text: str) -> list[str | set[str]]:
    """LLaMA-Factory slots: text pieces, with {{bos_token}}/{{eos_token}} as the token-id markers."""
    slots: list[str | set[str]] = []
    for piece in _SPECIAL_SLOT.split(text):
        if piece in ("{{bos_token}}", "{{eos_token}}"):
            slots.append({piece[2:-2]})
        elif piece:
            slots.append(piece)
    return slots


def builtin_template_names() -> set[str]:
    """Names of the templates LLaMA-Factory itself defines (those registered by this module excluded)."""
    from llamafactory.data.template import TEMPLATES

    return set(TEMPLATES) - set(_REGISTERED)


def register(template: CustomTemplate) -> str:
    """Register ``template`` into LLaMA-Factory in this process and return its name (no-op if already there)."""
    from llamafactory.data.formatter import EmptyFormatter, StringFormatter
    from llamafactory.data.template import TEMPLATES, ReasoningTemplate, Template, register_template

    known = _REGISTERED.get(template.name)
    if known is not None:
        if known == template:
            return template.name
        raise UserError(
            f"{template.source}: template '{template.name}' is already registered from {known.source} with a "
            "different definition; rename one of them"
        )
    if template.name in TEMPLATES:
        raise UserError(
            f"{template.source}: key 'name': '{template.name}' is a template built into LLaMA-Factory; "
            f"choose another name (e.g. '{template.name}_custom')"
        )
    register_template(
        name=template.name,
        format_user=StringFormatter(slots=_slots(template.user)),
        format_assistant=StringFormatter(slots=_slots(template.assistant)),
        format_system=StringFormatter(slots=_slots(template.system)),
        format_prefix=EmptyFormatter(slots=_slots(template.prefix)),
        default_system=template.default_system,
        stop_words=list(template.stop_words),
        replace_eos=template.replace_eos,
        thought_words=template.thought_words,
        replace_jinja_template=template.replace_jinja_template,
        template_class=ReasoningTemplate if template.reasoning else Template,
    )
    _REGISTERED[template.name] = template
    return template.name


def register_custom_template(path: str | Path) -> str:
    """Load the template YAML at ``path``, register it into LLaMA-Factory (idempotent) and return its name."""
    return register(load_custom_template(path))
