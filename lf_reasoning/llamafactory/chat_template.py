"""The exported model's chat template must render conversations exactly as training did.

LLaMA-Factory's export saves the base tokenizer's chat template unchanged (``Template.fix_jinja_template``
writes one only when the tokenizer has none or the template was registered with ``replace_jinja_template``,
which no reasoning template is, and the Jinja it writes ignores ``enable_thinking`` and thought stripping).
``align_chat_template`` compares the saved template with LLaMA-Factory's own rendering and, when they differ,
replaces it by one that renders exactly as training did.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.compat import require

# Conversations rendered both ways to compare a chat template with LLaMA-Factory's own rendering.
_PROBES: tuple[tuple[str | None, tuple[tuple[str, str], ...]], ...] = (
    ("You are a careful assistant.", (("user", "What is 2 + 3?"),)),
    (None, (("user", "What is 2 + 3?"), ("assistant", "<think>\nAdd them.\n</think>\n\n5"), ("user", "And 2 + 4?"))),
    (None, (("user", "What is 2 + 3?"), ("assistant", "<think>\nAdd them.\n</think>\n\n5"))),
    (None, (("user", "What is 2 + 3?"), ("assistant", "5"))),
)


@dataclass(frozen=True)
class ChatTemplateCheck:
    """The outcome of ``align_chat_template``."""

    replaced: bool  # the saved chat template was replaced by one rendering as training did
    message: str


def lf_render(
    tokenizer: Any,
    template_name: str,
    enable_thinking: bool | None,
    system: str | None,
    messages: Sequence[Mapping[str, str]],
    *,
    preserve_thinking: bool = False,
) -> str:
    """The text LLaMA-Factory feeds the model for ``messages`` at inference (``encode_oneturn``): the generation
    prompt when the last message is the user's, else the prompt followed by the final assistant turn."""
    from llamafactory.data.template import TEMPLATES, ReasoningTemplate

    template = copy.deepcopy(TEMPLATES[template_name])  # get_template_and_fix_tokenizer would mutate the global one
    if isinstance(template, ReasoningTemplate):
        if preserve_thinking:  # setting it on a template without the field would be silently ignored
            require(
                template, "preserve_thinking", "the template field preserve_thinking", "a config with preserve_thinking"
            )
        template.enable_thinking = enable_thinking
        template.preserve_thinking = preserve_thinking
    turns = [dict(m) for m in messages]
    generate = turns[-1]["role"] == "user"
    prompt, response = template.encode_oneturn(
        tokenizer, [*turns, {"role": "assistant", "content": ""}] if generate else turns, system
    )
    ids = prompt if generate else prompt + response
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def hf_render(tokenizer: Any, system: str | None, messages: Sequence[Mapping[str, str]]) -> str:
    """The text the tokenizer's own chat template renders for the same conversation."""
    conversation = ([{"role": "system", "content": system}] if system else []) + [dict(m) for m in messages]
    return tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=conversation[-1]["role"] == "user"
    )


def training_chat_template(
    tokenizer: Any, template_name: str, enable_thinking: bool | None, preserve_thinking: bool = False
) -> str:
    """A Jinja chat template that renders as LLaMA-Factory's ``template_name`` does at inference.

    Built on LLaMA-Factory's own ``_get_jinja_template`` (turn formats, system, prefix); for a reasoning template
    it adds what that Jinja lacks: history thoughts stripped (unless ``preserve_thinking``), the final turn's
    thought stripped when ``enable_thinking`` is false, and the empty thought block before an answer without one
    and, unless ``enable_thinking`` is true, after the generation prompt.
    """
    from llamafactory.data.template import TEMPLATES, ReasoningTemplate

    template = TEMPLATES[template_name]
    jinja = template._get_jinja_template(tokenizer)
    if not isinstance(template, ReasoningTemplate):
        return jinja
    open_word, close_word = (template._jinja_escape(w) for w in template.thought_words)
    empty = f"'{open_word}{close_word}'"
    strip = "content.split('" + close_word + "')[-1].lstrip('\\n')"
    strip_when = (
        "false"
        if enable_thinking is not False and preserve_thinking
        else ("true" if enable_thinking is False else "not loop.last")
    )
    marker = "{% set content = message['content'] %}"
    thought = (
        "{% if message['role'] == 'assistant' %}"
        f"{{% if ({strip_when}) and '{close_word.strip()}' in content %}}{{% set content = {strip} %}}{{% endif %}}"
        f"{{% if loop.last and '{open_word.strip()}' not in content and '{close_word.strip()}' not in content %}}"
        f"{{% set content = {empty} + content %}}{{% endif %}}"
        "{% endif %}"
    )
    if marker not in jinja:
        raise ValueError(f"LLaMA-Factory's Jinja for {template_name} has an unexpected shape")
    jinja = jinja.replace(marker, marker + thought, 1)
    if enable_thinking is not True:
        jinja += f"{{% if messages[-1]['role'] == 'user' %}}{{{{ {empty} }}}}{{% endif %}}"
    return jinja


def chat_template_mismatches(
    tokenizer: Any, template_name: str, enable_thinking: bool | None, preserve_thinking: bool = False
) -> list[str]:
    """The probe conversations the tokenizer's chat template renders differently from LLaMA-Factory."""
    if tokenizer.chat_template is None:
        return ["the tokenizer has no chat template"]
    mismatches = []
    for system, turns in _PROBES:
        messages = [{"role": role, "content": content} for role, content in turns]
        ours = lf_render(
            tokenizer, template_name, enable_thinking, system, messages, preserve_thinking=preserve_thinking
        )
        try:
            theirs = hf_render(tokenizer, system, messages)
        except Exception as err:  # any Jinja failure means the template does not fit
            theirs = f"<error: {err}>"
        if theirs != ours:
            mismatches.append(
                f"{turns[-1][0]}-last conversation: chat template gives {theirs!r}, training gives {ours!r}"
            )
    return mismatches


def align_chat_template(
    export_dir: Path, template_name: str, enable_thinking: bool | None, preserve_thinking: bool = False
) -> ChatTemplateCheck:
    """Make the exported tokenizer's chat template render as training did; say whether it had to be replaced."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    mismatches = chat_template_mismatches(tokenizer, template_name, enable_thinking, preserve_thinking)
    if not mismatches:
        return ChatTemplateCheck(
            False,
            f"{export_dir}: the saved chat template renders exactly as training "
            f"(template {template_name}, enable_thinking {enable_thinking}): kept",
        )
    tokenizer.chat_template = training_chat_template(tokenizer, template_name, enable_thinking, preserve_thinking)
    still = chat_template_mismatches(tokenizer, template_name, enable_thinking, preserve_thinking)
    if still:
        raise UserError(f"{export_dir}: cannot build a chat template matching template {template_name}: {still[0]}")
    tokenizer.save_pretrained(export_dir)
    return ChatTemplateCheck(
        True,
        f"{export_dir}: the saved chat template differed from training ({mismatches[0]}); "
        f"replaced by one rendering as template {template_name} with enable_thinking "
        f"{enable_thinking}",
    )
