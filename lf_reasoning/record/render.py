"""Render canonical samples into the records LLaMA-Factory reads (ShareGPT with role/content, or Alpaca), every
thought in one template's :class:`~lf_reasoning.record.markup.ThoughtWords`.

A tool step is a ``function_call`` turn (the thought in those words, then the call JSON: what LLaMA-Factory's
``FunctionFormatter`` splits, formats in the template's tool syntax and trains) and an ``observation`` turn (the
tools' reply, on the prompt side: masked); the tool list goes in the ``tools`` column, shown in the system prompt.
"""

from __future__ import annotations

from typing import Any, Literal

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats.tools import calls_text, replies_text
from lf_reasoning.record.markup import DEFAULT_WORDS, ThoughtWords
from lf_reasoning.record.sample import ReasoningSample

ThinkMode = Literal["keep", "drop", "empty"]
Style = Literal["sharegpt", "alpaca"]


def response_text(thought: str | None, answer: str, think: ThinkMode, words: ThoughtWords = DEFAULT_WORDS) -> str:
    """keep: the thought as given (none if the source had none); drop: answer only; empty: an empty block.

    With a template's own words, a thought or answer that holds those words is refused (RecordError): the template
    would take it for a thought boundary. (The default words are ``<think>`` markup, which the filters refuse.)
    """
    if think == "drop":
        return answer
    if words != DEFAULT_WORDS:
        for part, text in (("thought", thought if think == "keep" else None), ("answer", answer)):
            found = next((m for m in words.markers() if m and text and m in text), None)
            if found:
                raise RecordError("stray_markup", f"the {part} holds {found!r}, a thought word of the template")
    return words.render("" if think == "empty" else thought, answer)


def lf_messages(sample: ReasoningSample, think: ThinkMode, words: ThoughtWords = DEFAULT_WORDS) -> list[dict[str, str]]:
    """The conversation as LLaMA-Factory's templates see it: user (or observation) and assistant (or function_call)
    messages in turn."""
    messages = []
    for turn in (*sample.history, sample):
        messages.append({"role": "user", "content": turn.prompt})
        for step in turn.steps:
            call = response_text(step.thought, calls_text(step.calls), think, words)
            messages.append({"role": "function_call", "content": call})
            if step.replies:  # none: the conversation ends on this call
                messages.append({"role": "observation", "content": replies_text(step.calls, step.replies)})
        if not turn.steps or turn.steps[-1].replies:
            messages.append({"role": "assistant", "content": response_text(turn.thought, turn.answer, think, words)})
    return messages


def to_record(
    sample: ReasoningSample, think: ThinkMode, style: Style, words: ThoughtWords = DEFAULT_WORDS
) -> dict[str, Any]:
    messages = lf_messages(sample, think, words)
    if style == "sharegpt":
        record = {"messages": messages, "system": sample.system or ""}
        if sample.tools is not None:  # registered as the `tools` column (a record without it reads as none)
            record["tools"] = sample.tools
        return record
    if sample.tools is not None or any(turn.steps for turn in (*sample.history, sample)):
        raise RecordError(
            "tools_need_sharegpt",
            "the record has tools or tool calls, which Alpaca style cannot hold; convert with --style sharegpt",
        )
    return {
        "instruction": sample.prompt,
        "input": "",
        "output": messages[-1]["content"],
        "system": sample.system or "",
        "history": [[messages[i]["content"], messages[i + 1]["content"]] for i in range(0, len(messages) - 2, 2)],
    }
