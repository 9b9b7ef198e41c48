"""Render canonical samples into the records LLaMA-Factory reads (ShareGPT with role/content, or Alpaca)."""

from __future__ import annotations

from typing import Any, Literal

from lf_reasoning.record.sample import ReasoningSample
from lf_reasoning.record.thoughts import render_response

ThinkMode = Literal["keep", "drop", "empty"]
Style = Literal["sharegpt", "alpaca"]


def response_text(thought: str | None, answer: str, think: ThinkMode) -> str:
    """keep: the thought as given (none if the source had none); drop: answer only; empty: an empty block."""
    if think == "drop":
        return answer
    if think == "empty":
        return render_response("", answer)
    return render_response(thought, answer)


def lf_messages(sample: ReasoningSample, think: ThinkMode) -> list[dict[str, str]]:
    """The conversation as LLaMA-Factory's templates see it: alternating user/assistant messages."""
    messages = []
    for turn in (*sample.history, sample):
        messages.append({"role": "user", "content": turn.prompt})
        messages.append({"role": "assistant", "content": response_text(turn.thought, turn.answer, think)})
    return messages


def to_record(sample: ReasoningSample, think: ThinkMode, style: Style) -> dict[str, Any]:
    messages = lf_messages(sample, think)
    if style == "sharegpt":
        return {"messages": messages, "system": sample.system or ""}
    return {
        "instruction": sample.prompt,
        "input": "",
        "output": messages[-1]["content"],
        "system": sample.system or "",
        "history": [[messages[i]["content"], messages[i + 1]["content"]] for i in range(0, len(messages) - 2, 2)],
    }
