"""Serving what LLaMA-Factory trained elsewhere: the vLLM and SGLang reasoning parser that matches each template
family, and the chat-template argument that turns thinking on or off. One table, read by the export config's
header; the README's table is checked against it by a test.

Sources (looked up December 2026):
- vLLM: the registry ``_REASONING_PARSERS_TO_REGISTER`` in vllm/reasoning/__init__.py (github.com/vllm-project/vllm,
  commit 0064cc9c) and docs.vllm.ai/en/v0.11.2/features/reasoning_outputs/ ("The reasoning feature for the Qwen3
  series is enabled by default. To disable it, you must pass enable_thinking=False in your chat_template_kwargs").
- SGLang: ``ReasoningParser.DetectorMap`` in python/sglang/srt/parser/reasoning_parser.py (github.com/sgl-project/
  sglang, commit 002e9bfc: gpt-oss forces reasoning, glm45 and qwen3 read ``enable_thinking``, gemma4 thinks only
  when ``enable_thinking`` is true) and docs.sglang.io/docs/advanced_features/separate_reasoning ("Standard Qwen3
  … supports enable_thinking", "DeepSeek-R1 … Supports all variants (R1, R1-0528, R1-Distill)").
"""

from __future__ import annotations

from typing import NamedTuple


class Parsers(NamedTuple):
    vllm: str | None  # ``vllm serve --reasoning-parser``; None: vLLM has none for this family
    sglang: str | None  # ``python -m sglang.launch_server --reasoning-parser``
    thinking: str  # how a request turns thinking off (or on) with the hub chat template


_ENABLE = 'on by default; chat_template_kwargs {"enable_thinking": false} turns it off'
# LLaMA-Factory template names (and name prefixes, ending in "*") → parsers; first match wins.
PARSERS: dict[str, Parsers] = {
    "deepseekr1": Parsers("deepseek_r1", "deepseek-r1", "always on (no switch)"),
    "qwen3*": Parsers("qwen3", "qwen3", _ENABLE),
    "glm4_7": Parsers("glm47", "glm45", _ENABLE),
    "glm4_moe": Parsers("glm45", "glm45", _ENABLE),
    "glm4_5v": Parsers("glm45", "glm45", _ENABLE),
    "gpt_oss": Parsers("openai_gptoss", "gpt-oss", "always on (harmony analysis channel; no switch)"),
    "mimo*": Parsers("mimo", "mimo", "always on (no switch)"),
    "minimax2": Parsers("minimax_m2", "minimax", "always on (no switch)"),
    "seed_oss": Parsers("seed_oss", None, "see the model card"),
    "gemma4*": Parsers(
        "gemma4", "gemma4", 'off by default; chat_template_kwargs {"enable_thinking": true} turns it on'
    ),
    "kimi_vl": Parsers(None, "kimi", "always on (Thinking variants)"),
    "ernie_vl": Parsers("ernie45", None, "see the model card"),
}
# ``*_nothink`` templates are plain ones: a thought in the data is trained verbatim, no parser expects it.
_NOTHINK = Parsers(None, None, "a *_nothink template: serve without a reasoning parser")
# Any other template whose thought is written <think>…</think>: the DeepSeek-R1 parsers split exactly those tags.
_THINK_TAGS = Parsers("deepseek_r1", "deepseek-r1", "as the chat template renders it")


def parsers_for(template: str, thought_words: tuple[str, str] | None) -> Parsers | None:
    """The parsers for ``template`` (whose thought words are ``thought_words``); None when none is known."""
    if template.endswith("_nothink"):
        return _NOTHINK
    for name, parsers in PARSERS.items():
        if template == name or (name.endswith("*") and template.startswith(name[:-1])):
            return parsers
    if thought_words and [w.strip() for w in thought_words] == ["<think>", "</think>"]:
        return _THINK_TAGS
    return None


def serving_note(template: str, enable_thinking: bool | None, config: str, model_dir: str) -> list[str]:
    """Lines saying how to serve ``model_dir`` (trained with ``template``; exported by ``config``) so that its
    thought is split out."""
    from lf_reasoning.llamafactory.thought_words import template_words

    words = template_words(template)
    thought_words = (words.open, words.close)
    lines = [
        f"Serve it: lf-reasoning serve {config} (LLaMA-Factory's engine, thought in reasoning_content), or "
        "vLLM/SGLang on the exported folder:"
    ]
    parsers = parsers_for(template, thought_words)
    if parsers is None or not (parsers.vllm or parsers.sglang):
        why = parsers.thinking if parsers else "no known reasoning parser for this template"
        lines.append(f"Template {template}: {why}; the thought, if any, stays inline in content.")
        return lines
    vllm = f"vllm serve {model_dir} --reasoning-parser {parsers.vllm}" if parsers.vllm else "vLLM: no parser for it"
    sglang = (
        f"python -m sglang.launch_server --model-path {model_dir} --reasoning-parser {parsers.sglang}"
        if parsers.sglang
        else "SGLang: no parser for it"
    )
    lines.append(f"Template {template}: {vllm}; {sglang}.")
    lines.append(
        f"Thinking: {parsers.thinking} (with the hub chat template; the exported chat template renders as trained, "
        f"enable_thinking {_yaml(enable_thinking)})."
    )
    return lines


def _yaml(value: bool | None) -> str:
    return "null" if value is None else str(value).lower()
