"""Multi-turn shapes: ShareGPT ``conversations`` and OpenAI-style ``messages`` (with reasoning fields,
AM-DeepSeek-R1 ``info`` blocks, or LLaMA-Factory v1 typed content parts), with their tool calls and replies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import fields
from lf_reasoning.record.formats.tools import check_names, openai_calls, parse_calls, read_tools
from lf_reasoning.record.sample import ReasoningSample, ToolStep, Turn
from lf_reasoning.record.thoughts import merge_thought

# Names a turn's thought is stored under: vLLM and OpenRouter (`reasoning`; vLLM's older name first was
# `reasoning_content`, still the DeepSeek API's), and `thinking` (read by transformers' chat templates, e.g. GPT-OSS,
# and used by Ollama and many community sets).
THOUGHT_FIELDS = ("reasoning", "reasoning_content", "thinking")
# Roles of a tool's reply: OpenAI and v1 `tool` (OpenAI's older `function`), ShareGPT `observation`, Llama `ipython`.
REPLY_ROLES = frozenset({"tool", "function", "observation", "ipython", "tool_response"})
CALL = "call"  # the role of a turn that calls tools (ShareGPT `function_call`, an assistant message with calls)

_ROLES = {
    "system": "system",
    "developer": "system",  # OpenAI's name for the system prompt of its reasoning models
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
    **{role: "observation" for role in REPLY_ROLES},
}


class _Msg(NamedTuple):
    """One turn as read: ``extra`` is a call turn's ``[(call, id)]`` or a reply's ``tool_call_id``."""

    role: Any
    content: str
    thought: str | None = None
    extra: Any = None


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
            raise RecordError("wrong_type", f"conversations[{i}] is {fields.kind(msg)}, expected an object")
        role = msg.get("from", msg.get("role"))
        content = fields.text(msg, "value" if "value" in msg else "content", within=f"conversations[{i}]")
        assert content is not None  # required
        if role == "function_call":
            turns.append(_call_turn(content, None, f"conversations[{i}]"))
        else:
            turns.append(_Msg(role, content))
    return [_sample_from_turns(turns, fields.text(record, "system", required=False), record)]


def _call_turn(content: str, field_thought: str | None, where: str) -> _Msg:
    """A ``function_call`` turn: the call JSON, after a thought in markup (as LLaMA-Factory's own templates write
    it) or in a reasoning field."""
    thought, text = merge_thought(field_thought, content)
    return _Msg(CALL, "", thought, [(call, None) for call in parse_calls(text, where)])


def read_messages(record: dict[str, Any]) -> list[ReasoningSample]:
    turns = []
    reference = source = None
    for i, msg in enumerate(fields.items(record, "messages")):
        if not isinstance(msg, dict):
            raise RecordError("wrong_type", f"messages[{i}] is {fields.kind(msg)}, expected an object")
        turns.append(_message(msg, i))
        info = msg.get("info")
        if isinstance(info, dict):  # AM-DeepSeek-R1-Distilled keeps the reference answer on the user turn
            reference = info.get("reference_answer") or reference
            source = info.get("source") or source
    if turns:
        turns[-1] = turns[-1]._replace(thought=_last_thought(record, turns[-1].thought))
    # a top-level system column (LLaMA-Factory ShareGPT as convert writes it) unless a system turn leads
    sample = _sample_from_turns(turns, fields.text(record, "system", required=False), record)
    sample.reference = fields.reference_text(reference)
    sample.source = source if isinstance(source, str) else None
    return [sample]


def _last_thought(record: dict[str, Any], own: str | None) -> str | None:
    """The final answer's thought: its own field, or one beside ``messages`` (a string, or ``{"content": str}`` as
    DeepFabric writes its ``reasoning``); two different ones are refused."""
    for key in THOUGHT_FIELDS:
        value = record.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if value is None:
            continue
        if not isinstance(value, str):
            raise RecordError("wrong_type", f"field '{key}' is {fields.kind(value)}, expected a string")
        if own and own.strip() and value.strip() and own.strip() != value.strip():
            raise RecordError("two_thoughts", f"field '{key}' and the last assistant turn hold different thoughts")
        return own if own and own.strip() else value
    return own


def _message(msg: dict[str, Any], i: int) -> _Msg:
    """One ``messages`` turn: its text and thought, its tool calls (OpenAI ``tool_calls``, v1 ``tool_call`` parts, a
    ``function_call`` role as convert writes it) or the ``tool_call_id`` of a tool's reply."""
    role = msg.get("role")
    content = msg.get("content")
    if isinstance(content, list):  # LLaMA-Factory v1: [{"type": "text"|"reasoning"|"tool_call", "value": str}, …]
        texts, thoughts, calls = [], [], []
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("value"), str):
                raise RecordError("wrong_type", f"messages[{i}].content holds a part without a string 'value'")
            kind = part.get("type")
            if kind == "text":
                texts.append(part["value"])
            elif kind == "reasoning":
                thoughts.append(part["value"])
            elif kind == "tool_call":
                calls += parse_calls(part["value"], f"messages[{i}].content's tool_call part")
            else:
                raise RecordError(
                    "unsupported_content",
                    f"messages[{i}] has a '{kind}' part; only text, reasoning and tool_call parts can be converted",
                )
        thought = "\n\n".join(thoughts) if thoughts else None
        if calls:
            _no_text_beside_calls("".join(texts), i)
            return _Msg(CALL, "", thought, [(call, None) for call in calls])
        return _Msg(role, "".join(texts), thought)
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise RecordError(
            "wrong_type", f"messages[{i}].content is {fields.kind(content)}; expected a string or a list of typed parts"
        )
    thought = _field_thought(msg, i)
    if role == "function_call":
        return _call_turn(content, thought, f"messages[{i}].content")
    if msg.get("tool_calls") or msg.get("function_call"):
        thought, text = merge_thought(thought, content)
        _no_text_beside_calls(text, i)
        return _Msg(CALL, "", thought, openai_calls(msg, i))
    return _Msg(role, content, thought, msg.get("tool_call_id"))


def _no_text_beside_calls(text: str, i: int) -> None:
    # LLaMA-Factory's function turn holds a thought and the call JSON only: other text would break its parser
    if text.strip():
        raise RecordError(
            "text_beside_tool_call",
            f"messages[{i}] has text beside its tool calls ({text.strip()[:60]!r}); a function_call turn holds only "
            "a thought and the calls: move the text into the reasoning field or remove it",
        )


def _field_thought(msg: dict[str, Any], i: int) -> str | None:
    """The turn's thought from whichever of :data:`THOUGHT_FIELDS` it uses; two different ones are refused."""
    found: dict[str, str] = {}
    for key in THOUGHT_FIELDS:
        value = msg.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise RecordError("wrong_type", f"messages[{i}].{key} is {fields.kind(value)}, expected a string")
        found[key] = value
    distinct = {v.strip() for v in found.values() if v.strip()}
    if len(distinct) > 1:
        raise RecordError(
            "two_thoughts", f"messages[{i}] has different thoughts in {' and '.join(found)}; keep one of them"
        )
    return next((v for v in found.values() if v.strip()), next(iter(found.values()), None))


def _sample_from_turns(turns: list[_Msg], system: str | None, record: dict[str, Any]) -> ReasoningSample:
    """Fold role-tagged turns into one sample: leading system, then user turns each followed by its tool steps (a
    call, then the tools' replies) and an assistant answer. The conversation ends on an answer, or on a tool call (a
    sample that teaches the call: its answer is empty; LLaMA-Factory trains the call as the last response)."""
    tools, names = read_tools(record)
    pairs: list[Turn] = []
    pending: str | None = None
    steps: list[ToolStep] = []
    call_ids: list[Any] = []  # the id of each call of the last step (OpenAI), and of each reply to it
    reply_ids: list[Any] = []
    for i, msg in enumerate(turns):
        if msg.role == CALL and isinstance(msg.extra, list):  # read as a call by _call_turn/_message
            role: str | None = CALL
        else:
            role = _ROLES.get(msg.role) if isinstance(msg.role, str) else None
        if role is None:
            raise RecordError(
                "unsupported_role",
                f"turn {i} has role {msg.role!r}; supported: user, assistant, system, function_call, observation, tool",
            )
        if role != "observation" and reply_ids:  # the replies to the last step are complete
            _order_replies(steps[-1], call_ids, reply_ids, i)
            reply_ids = []
        if role == "system":
            if i != 0:
                raise RecordError("bad_turn_order", f"turn {i} is a system message after the first turn")
            system = msg.content
        elif role == "user":
            if pending is not None:
                _replied(steps, i)
                what = "a user message after a tool reply, without the answer" if steps else "a second user message"
                raise RecordError("bad_turn_order", f"turn {i} is {what}")
            pending = msg.content
        elif role == CALL:
            if pending is None:
                raise RecordError("bad_turn_order", f"turn {i} is a tool call without a user message before it")
            _replied(steps, i)
            calls = [call for call, _ in msg.extra]
            check_names(calls, names, f"turn {i}")
            steps.append(ToolStep(calls=calls, replies=[], thought=msg.thought))
            call_ids = [call_id for _, call_id in msg.extra]
        elif role == "observation":
            if not steps:
                raise RecordError(
                    "bad_turn_order", f"turn {i} is a tool reply ({msg.role}) without a tool call before it"
                )
            steps[-1].replies.append(msg.content)
            reply_ids.append(msg.extra)
        else:
            if pending is None:
                raise RecordError("bad_turn_order", f"turn {i} is an assistant message without a user message")
            _replied(steps, i)
            thought, answer = merge_thought(msg.thought, msg.content)
            pairs.append(Turn(prompt=pending, answer=answer, thought=thought, steps=steps))
            pending, steps = None, []
    if steps and steps[-1].replies:
        raise RecordError("bad_turn_order", "the conversation ends on a tool reply, without the final answer")
    if steps:  # it ends on a call
        assert pending is not None
        pairs.append(Turn(prompt=pending, answer="", steps=steps))
        pending = None
    if pending is not None or not pairs:
        raise RecordError("bad_turn_order", "the conversation does not end with an assistant message")
    last = pairs.pop()
    return ReasoningSample(
        prompt=last.prompt,
        answer=last.answer,
        thought=last.thought,
        system=system or None,
        history=pairs,
        tools=tools,
        steps=last.steps,
    )


def _replied(steps: list[ToolStep], i: int) -> None:
    """The last tool call must have been answered by a tool reply before turn ``i``."""
    if steps and not steps[-1].replies:
        names = ", ".join(call["name"] for call in steps[-1].calls)
        raise RecordError(
            "tool_call_without_reply",
            f"the call of {names} before turn {i} has no tool reply (observation/tool turn) after it",
        )


def _order_replies(step: ToolStep, call_ids: list[Any], reply_ids: list[Any], i: int) -> None:
    """Several replies answer the step's calls one each, matched by id where both carry one (OpenAI)."""
    if len(step.replies) == 1:
        return
    if len(step.replies) != len(step.calls):
        raise RecordError(
            "tool_reply_count",
            f"the {len(step.calls)} tool call(s) before turn {i} have {len(step.replies)} replies; expected one reply "
            "per call, or one for all",
        )
    if all(call_ids) and all(reply_ids):
        by_id = dict(zip(reply_ids, step.replies, strict=True))
        missing = [call_id for call_id in call_ids if call_id not in by_id]
        if missing or len(by_id) != len(call_ids):
            raise RecordError(
                "tool_reply_id",
                f"the tool replies before turn {i} do not answer the calls {', '.join(map(str, missing))}",
            )
        step.replies[:] = [by_id[call_id] for call_id in call_ids]


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
