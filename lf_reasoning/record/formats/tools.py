"""Tools and tool calls of the three source shapes, read into one form: the ``tools`` list as a JSON string, each
call as ``{"name", "arguments"}`` (what LLaMA-Factory's ``FunctionFormatter`` parses from a ``function_call`` turn).

ShareGPT: a ``function_call`` turn holds the call JSON (one object, or a list for parallel calls), an
``observation`` turn the reply, ``tools`` a JSON string. OpenAI: ``tool_calls: [{"id", "type": "function",
"function": {"name", "arguments": JSON string}}]`` on an assistant message, then one ``role: tool`` message per
call (``tool_call_id``), ``tools`` a list or a JSON string. LLaMA-Factory v1: ``{"type": "tool_call", "value":
JSON string}`` parts of an assistant message, then a ``tool`` turn.
"""

from __future__ import annotations

import json
from typing import Any

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import fields

CALL_SHAPE = 'a call is {"name": "...", "arguments": {...}}'


def read_tools(record: dict[str, Any]) -> tuple[str | None, frozenset[str]]:
    """The record's ``tools`` as the JSON string LLaMA-Factory reads (None: no tools) and the tool names declared.

    A schema is ``{"name", "description", "parameters"}`` or OpenAI's ``{"type": "function", "function": {…}}``;
    LLaMA-Factory's tool formatters accept both, so the list is kept as given."""
    value = record.get("tools")
    if isinstance(value, str):
        if not value.strip():
            return None, frozenset()
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise RecordError("bad_tools", f"field 'tools' is not valid JSON ({err.msg}); expected a list") from None
    if value is None or value == []:
        return None, frozenset()
    if not isinstance(value, list):
        raise RecordError("bad_tools", f"field 'tools' is {fields.kind(value)}, expected a list of tool schemas")
    names = []
    for i, tool in enumerate(value):
        schema = tool.get("function", tool) if isinstance(tool, dict) and tool.get("type") == "function" else tool
        name = schema.get("name") if isinstance(schema, dict) else None
        if not isinstance(name, str) or not name:
            raise RecordError("bad_tools", f"tools[{i}] has no 'name'; expected {{name, description, parameters}}")
        names.append(name)
    return json.dumps(value, ensure_ascii=False), frozenset(names)


def parse_calls(text: str, where: str) -> list[dict[str, Any]]:
    """The calls in a call JSON text: one object, or a list of them (parallel calls)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError("bad_tool_call", f"{where} is not valid JSON ({err.msg}); {CALL_SHAPE}") from None
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise RecordError("bad_tool_call", f"{where} is an empty list of calls")
    return [call_of(call, where) for call in calls]


def call_of(value: Any, where: str, *, arguments_json: bool = False) -> dict[str, Any]:
    """``{"name", "arguments"}`` from one call object; ``arguments_json``: the arguments are a JSON string (OpenAI).
    A string is accepted for them either way, as long as it holds a JSON object."""
    if not isinstance(value, dict):
        raise RecordError("bad_tool_call", f"{where} holds {fields.kind(value)}; {CALL_SHAPE}")
    name, arguments = value.get("name"), value.get("arguments", value.get("parameters"))
    if not isinstance(name, str) or not name:
        raise RecordError("bad_tool_call", f"{where} has no function 'name'; {CALL_SHAPE}")
    if isinstance(arguments, str) or (arguments_json and arguments is None):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as err:
            raise RecordError("bad_tool_call", f"{where}: the arguments of {name!r} are not JSON ({err.msg})") from None
    if not isinstance(arguments, dict):
        raise RecordError(
            "bad_tool_call", f"{where}: the arguments of {name!r} are {fields.kind(arguments)}, expected an object"
        )
    return {"name": name, "arguments": arguments}


def openai_calls(msg: dict[str, Any], i: int) -> list[tuple[dict[str, Any], Any]]:
    """``(call, id)`` for each of an OpenAI message's ``tool_calls`` (or its legacy single ``function_call``)."""
    if msg.get("function_call"):
        return [(call_of(msg["function_call"], f"messages[{i}].function_call", arguments_json=True), None)]
    tool_calls = msg["tool_calls"]
    if not isinstance(tool_calls, list):
        raise RecordError("bad_tool_call", f"messages[{i}].tool_calls is {fields.kind(tool_calls)}, expected a list")
    calls = []
    for j, item in enumerate(tool_calls):
        where = f"messages[{i}].tool_calls[{j}]"
        function = item.get("function") if isinstance(item, dict) else None
        if function is None:
            raise RecordError("bad_tool_call", f"{where} has no 'function'; expected {{id, type, function}}")
        calls.append((call_of(function, f"{where}.function", arguments_json=True), item.get("id")))
    return calls


def check_names(calls: list[dict[str, Any]], names: frozenset[str], where: str) -> None:
    """Every call must name a tool the prompt shows the model."""
    for call in calls:
        if call["name"] not in names:
            declared = f"the tools are {', '.join(sorted(names))}" if names else "the record has no 'tools' list"
            raise RecordError(
                "unknown_tool", f"{where} calls {call['name']!r}, which is not in the record's tools ({declared})"
            )


def calls_text(calls: list[dict[str, Any]]) -> str:
    """The call JSON of a ``function_call`` turn: one object, or a list for parallel calls."""
    return json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)


def replies_text(calls: list[dict[str, Any]], replies: list[str]) -> str:
    """The observation turn: the reply, or for several replies a JSON list naming the call each answers (one turn
    holds them in LLaMA-Factory's ShareGPT; the same list as LLaMA-Factory's v1 tool-use demo data)."""
    if len(replies) == 1:
        return replies[0]
    return json.dumps(
        [{"name": c["name"], "content": r} for c, r in zip(calls, replies, strict=True)], ensure_ascii=False
    )
