"""Multi-turn shapes: ShareGPT ``conversations`` and OpenAI-style ``messages`` (with reasoning fields,
AM-DeepSeek-R1 ``info`` blocks, or LLaMA-Factory v1 typed content parts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import fields
from lf_reasoning.record.sample import ReasoningSample, Turn
from lf_reasoning.record.thoughts import merge_thought

_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
}


def _first_dict(record: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = record.get(key)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return None


def detect_sharegpt(record: dict[str, Any]) -> str | None:
    first = _first_dict(record, "conversations")
    if first is not None and "from" in first and "value" in first:
        return "has 'conversations' with from/value turns"
    return None


def detect_messages(record: dict[str, Any]) -> str | None:
    first = _first_dict(record, "messages")
    if first is None or "role" not in first:
        return None
    if isinstance(first.get("content"), list):
        return "has 'messages' with typed content parts (LLaMA-Factory v1)"
    if "info" in first:
        return "has 'messages' with 'info' blocks (AM-DeepSeek-R1-Distilled)"
    return "has 'messages' with role/content turns (OpenAI style)"


def read_sharegpt(record: dict[str, Any]) -> list[ReasoningSample]:
    turns = []
    for i, msg in enumerate(fields.items(record, "conversations")):
        if not isinstance(msg, dict):
            raise RecordError("wrong_type", f"conversations[{i}] is {type(msg).__name__}, expected an object")
        role = msg.get("from", msg.get("role"))
        content = fields.text(msg, "value" if "value" in msg else "content")
        turns.append((role, content, None))
    sample = _sample_from_turns(turns, fields.text(record, "system", required=False))
    return [sample]


def read_messages(record: dict[str, Any]) -> list[ReasoningSample]:
    turns = []
    reference = source = None
    for i, msg in enumerate(fields.items(record, "messages")):
        if not isinstance(msg, dict):
            raise RecordError("wrong_type", f"messages[{i}] is {type(msg).__name__}, expected an object")
        content, thought = _content_and_thought(msg, i)
        turns.append((msg.get("role"), content, thought))
        info = msg.get("info")
        if isinstance(info, dict):  # AM-DeepSeek-R1-Distilled keeps the reference answer on the user turn
            reference = info.get("reference_answer") or reference
            source = info.get("source") or source
    sample = _sample_from_turns(turns, None)
    sample.reference = reference if isinstance(reference, str) else None
    sample.source = source if isinstance(source, str) else None
    return [sample]


def _content_and_thought(msg: dict[str, Any], i: int) -> tuple[str, str | None]:
    content = msg.get("content")
    if isinstance(content, list):  # LLaMA-Factory v1: [{"type": "text"|"reasoning", "value": str}, …]
        texts, thoughts = [], []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("value"), str):
                raise RecordError("wrong_type", f"messages[{i}].content holds a part without a string 'value'")
            kind = part.get("type")
            if kind == "text":
                texts.append(part["value"])
            elif kind == "reasoning":
                thoughts.append(part["value"])
            else:
                raise RecordError(
                    "unsupported_content",
                    f"messages[{i}] has a '{kind}' part; only text and reasoning parts can be converted",
                )
        return "".join(texts), ("\n\n".join(thoughts) if thoughts else None)
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise RecordError("wrong_type", f"messages[{i}].content is {type(content).__name__}, expected a string")
    # vLLM renamed reasoning_content → reasoning; read the new name first.
    thought = msg.get("reasoning", msg.get("reasoning_content"))
    if thought is not None and not isinstance(thought, str):
        raise RecordError("wrong_type", f"messages[{i}] reasoning is {type(thought).__name__}, expected a string")
    return content, thought


def _sample_from_turns(turns: list[tuple[Any, str, str | None]], system: str | None) -> ReasoningSample:
    """Fold role-tagged turns into one sample: leading system, alternating user/assistant, ending on assistant."""
    pairs: list[Turn] = []
    pending: str | None = None
    for i, (raw_role, content, field_thought) in enumerate(turns):
        role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise RecordError(
                "unsupported_role",
                f"turn {i} has role {raw_role!r}; supported: user, assistant, "
                "system (tool calls cannot be converted yet)",
            )
        if role == "system":
            if i != 0:
                raise RecordError("bad_turn_order", f"turn {i} is a system message after the first turn")
            system = content
        elif role == "user":
            if pending is not None:
                raise RecordError("bad_turn_order", f"turn {i} is a second user message in a row")
            pending = content
        else:
            if pending is None:
                raise RecordError("bad_turn_order", f"turn {i} is an assistant message without a user message")
            thought, answer = merge_thought(field_thought, content)
            pairs.append(Turn(prompt=pending, answer=answer, thought=thought))
            pending = None
    if pending is not None or not pairs:
        raise RecordError("bad_turn_order", "the conversation does not end with an assistant message")
    last = pairs.pop()
    return ReasoningSample(
        prompt=last.prompt, answer=last.answer, thought=last.thought, system=system or None, history=pairs
    )


def _prompt_reader(
    read: Callable[[dict[str, Any]], list[ReasoningSample]], key: str, role: str, text: str
) -> Callable[[dict[str, Any]], ReasoningSample]:
    """Chat records given to ``distill`` may end on the user turn to be answered; the conversation reader wants a
    final assistant turn, so an empty one is added before reading."""

    def read_prompt(record: dict[str, Any]) -> ReasoningSample:
        turns = record.get(key)
        if (
            isinstance(turns, list)
            and turns
            and isinstance(turns[-1], dict)
            and turns[-1].get(role) in ("user", "human")
        ):
            record = {**record, key: [*turns, {role: "assistant", text: ""}]}
        return read(record)[0]

    return read_prompt


read_messages_prompt = _prompt_reader(read_messages, "messages", "role", "content")
read_sharegpt_prompt = _prompt_reader(read_sharegpt, "conversations", "from", "value")
