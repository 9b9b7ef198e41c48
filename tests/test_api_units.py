"""The pure pieces of ``lf_reasoning.api`` one by one: backoff, Retry-After, the retry loop against a scripted
client, token accounting, the judge's reply parsing and the validation of the options objects."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lf_reasoning.api.client import Reply, RequestError, RetryableError, retry_after
from lf_reasoning.api.judge import json_objects, judge_options, parse_verdict
from lf_reasoning.api.limits import RequestGate, backoff_delay
from lf_reasoning.api.options import RequestOptions
from lf_reasoning.api.report import RequestCounts
from lf_reasoning.api.retry import Asker
from lf_reasoning.commands.distill import DistillOptions
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.inputs import Inputs

URL = "http://localhost:8000/v1"


@pytest.mark.parametrize(
    "retry,base,after,low,high",
    [
        (1, 1.0, None, 0.5, 1.0),
        (3, 1.0, None, 2.0, 4.0),  # doubled per retry
        (10, 1.0, None, 30.0, 60.0),  # capped at 60 s
        (4, 0.0, None, 0.0, 0.0),
        (1, 1.0, 5.0, 5.0, 5.5),  # Retry-After wins over the backoff, jittered by at most 10 %
        (6, 1.0, 0.0, 0.0, 0.0),
        (2, 1.0, 30.0, 30.0, 31.0),  # the jitter is at most 1 s
    ],
)
def test_backoff_delay(retry: int, base: float, after: float | None, low: float, high: float) -> None:
    for _ in range(20):
        assert low <= backoff_delay(retry, base, after) <= high


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({}, None),
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "x", "Retry-After": "4"}, 4.0),  # an unreadable ms value falls back to seconds
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers) == expected


def test_retry_after_as_a_future_http_date() -> None:
    value = retry_after({"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)})
    assert value is not None and 28 <= value <= 31


class ScriptedClient:
    """Answers each request with the next step of a script; its 'key' is redacted like the real client's."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)

    async def complete(self, body: dict[str, Any]) -> Reply:
        step = self.script.pop(0)
        if step == "429":
            raise RetryableError("http_429", "slow down, KEY", retry_after=0.0)
        if step == "500":
            raise RetryableError("http_500", "broken, KEY")
        if step == "400":
            raise RequestError("http_400", "refused KEY")
        return Reply(None, step, "stop", {"prompt_tokens": 3, "completion_tokens": 4})

    def redact(self, text: str) -> str:
        return text.replace("KEY", "***")


def check(reply: Reply) -> str | RecordError:
    return reply.content if reply.content == "ok" else RecordError("bad", f"unusable reply {reply.content} KEY")


@pytest.mark.parametrize(
    "script,value,failed,reason,detail,attempts,rejected,retried",
    [
        (["ok"], "ok", False, None, None, 1, 0, {}),
        (["429", "500", "ok"], "ok", False, None, None, 3, 0, {"http_429": 1, "http_500": 1}),
        (["500", "500", "500"], None, True, "http_500", "gave up after 3 tries: broken, ***", 3, 0, {"http_500": 2}),
        (["400"], None, True, "http_400", "refused ***", 1, 0, {}),
        (["junk", "ok"], "ok", False, None, None, 2, 0, {"bad": 1}),
        (["junk", "junk"], None, False, "bad", "unusable reply junk ***", 2, 2, {"bad": 1}),
        (["500", "junk", "400"], None, True, "http_400", "refused ***", 3, 0, {"http_500": 1, "bad": 1}),
    ],
)
def test_one_retry_loop(
    script: list[str],
    value: str | None,
    failed: bool,
    reason: str | None,
    detail: str | None,
    attempts: int,
    rejected: int,
    retried: dict[str, int],
) -> None:
    options = RequestOptions(URL, "m", max_retries=2, retry_bad=1, backoff=0.0)
    counts = RequestCounts()
    client = ScriptedClient(script)
    asker = Asker(client, RequestGate(), options, counts)  # type: ignore[arg-type]

    async def ask() -> Any:
        return await asker.ask(options.body([{"role": "user", "content": "q"}]), check)

    outcome = asyncio.run(ask())
    assert not client.script, "every step of the script was used"
    assert (outcome.value, outcome.failed, outcome.attempts, outcome.rejected) == (value, failed, attempts, rejected)
    error = (outcome.error.reason, outcome.error.detail) if outcome.error else (None, None)
    assert error == (reason, detail)
    assert counts.retried == Counter(retried)
    assert counts.prompt_tokens == 3 * sum(step not in ("429", "500", "400") for step in script)


@pytest.mark.parametrize(
    "usage,counted,used",
    [
        ({"prompt_tokens": 10, "completion_tokens": 5}, (10, 5, 0, 0), 15),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "completion_tokens_details": {"reasoning_tokens": 4},
                "prompt_tokens_details": {"cached_tokens": 8},
            },
            (10, 5, 4, 8),
            15,
        ),
        ({"prompt_tokens": 10, "completion_tokens": 5, "prompt_cache_hit_tokens": 6}, (10, 5, 0, 6), 15),  # DeepSeek
        ({"prompt_tokens": "10", "completion_tokens": None}, (0, 0, 0, 0), 0),  # not numbers: not counted
        (None, (0, 0, 0, 0), 7 + 12 // 3 + 1),  # no usage: the estimate plus the reply's text
    ],
)
def test_usage_accounting(usage: dict[str, Any] | None, counted: tuple[int, ...], used: int) -> None:
    counts = RequestCounts()
    assert counts.count_usage(Reply("thought", "answer", "stop", usage), estimate=7) == used
    assert (counts.prompt_tokens, counts.completion_tokens, counts.reasoning_tokens, counts.cached_tokens) == counted


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"a": 1}', [{"a": 1}]),
        ('prose {"a": 1} more {"b": 2}', [{"a": 1}, {"b": 2}]),
        ('```json\n{"a": 1}\n```', [{"a": 1}, {"a": 1}]),  # the fenced block first, then found again in the text
        ('\\boxed{2} {"a": {"b": 1}}', [{"a": {"b": 1}}]),  # nested objects come whole, once
        ("[1, 2] {broken", []),
        ("", []),
    ],
)
def test_json_objects(text: str, expected: list[dict[str, Any]]) -> None:
    assert list(json_objects(text)) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"correct": true, "reason": "same"}', {"correct": True, "reason": "same"}),
        ('{"correct": "Incorrect "}', {"correct": False, "reason": ""}),
        ('{"correct": "yes", "reason": 42}', {"correct": True, "reason": "42"}),
        ('{"verdict": true} {"correct": false}', {"correct": False, "reason": ""}),
        ('{"correct": 1}', None),  # a number is not a verdict
        ('{"correct": "maybe"}', None),
        ("It is correct.", None),
    ],
)
def test_parse_verdict(text: str, expected: dict[str, Any] | None) -> None:
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    "options,message",
    [
        ({"concurrency": 0}, "--concurrency must be at least 1"),
        ({"max_retries": -1}, "--max-retries and --retry-bad at least 0"),
        ({"retry_bad": -1}, "--max-retries and --retry-bad at least 0"),
        ({"base_url": "localhost:8000"}, "expected an http(s) URL"),
        ({"base_url": "ftp://example.com/v1"}, "expected an http(s) URL"),
    ],
)
def test_request_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RequestOptions(**{"base_url": URL, "model": "m", **options})


@pytest.mark.parametrize(
    "base_url,endpoint",
    [
        ("http://localhost:8000/v1", "http://localhost:8000/v1/chat/completions"),
        ("https://api.example.com/v1/", "https://api.example.com/v1/chat/completions"),
        ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
    ],
)
def test_request_url(base_url: str, endpoint: str) -> None:
    assert str(RequestOptions(base_url, "m").url) == endpoint


@pytest.mark.parametrize(
    "out,failures,expected",
    [
        ("d/out.jsonl", None, "d/out.failures.jsonl"),
        ("d/out.txt", None, "d/out.txt.failures.jsonl"),
        ("d/out.jsonl", "elsewhere.jsonl", "elsewhere.jsonl"),
    ],
)
def test_failures_file(out: str, failures: str | None, expected: str) -> None:
    options = RequestOptions(URL, "m", failures=Path(failures) if failures else None)
    assert options.failures_file(Path(out)) == Path(expected)


def test_the_api_key_is_read_never_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    logs: list[str] = []
    options = RequestOptions(URL, "m", api_key_env="LF_UNIT_KEY")
    monkeypatch.setenv("LF_UNIT_KEY", "sk-unit-secret")
    assert options.api_key(logs.append) == "sk-unit-secret" and not logs
    assert "sk-unit-secret" not in repr(options)
    monkeypatch.delenv("LF_UNIT_KEY")
    assert options.api_key(logs.append, "judge requests") is None
    assert logs == ["$LF_UNIT_KEY is not set: judge requests go without an API key (fine for a local server)"]


def test_judge_defaults() -> None:
    options = judge_options(URL, "j", max_retries=3)
    assert (options.temperature, options.timeout, options.max_retries) == (0.0, 300.0, 3)
    assert options.body([{"role": "user", "content": "q"}]) == {
        "model": "j",
        "messages": [{"role": "user", "content": "q"}],
        "temperature": 0.0,
    }


@pytest.mark.parametrize(
    "extra_body,message",
    [
        ("{broken", "--extra-body: not JSON"),
        ("[1]", "--extra-body: expected a JSON object"),
        ('"text"', "--extra-body: expected a JSON object"),
        ('{"top_p": 1, "stream": true}', "--extra-body must not set stream"),
        ({"messages": [], "model": "x"}, "--extra-body must not set messages, model"),
    ],
)
def test_bad_extra_body(extra_body: Any, message: str) -> None:
    with pytest.raises(UserError, match=message):
        DistillOptions(Inputs(("p.jsonl",)), RequestOptions(URL, "m"), extra_body=extra_body)


@pytest.mark.parametrize(
    "extra_body,stream,body",
    [
        (None, False, {"model": "m", "messages": [], "max_tokens": 9}),
        ('{"top_p": 0.9}', False, {"top_p": 0.9, "model": "m", "messages": [], "max_tokens": 9}),
        (
            {"top_p": 0.9},
            True,
            {
                "top_p": 0.9,
                "model": "m",
                "messages": [],
                "max_tokens": 9,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ),
    ],
)
def test_distill_request_body(extra_body: Any, stream: bool, body: dict[str, Any]) -> None:
    options = DistillOptions(
        Inputs(("p.jsonl",)), RequestOptions(URL, "m", max_tokens=9), stream=stream, extra_body=extra_body
    )
    assert options.body([]) == body
    assert options.inputs.prompts, "distill reads prompts: a prompt-only table is a valid SRC"
    assert options.params() == {
        "max_tokens": 9,
        "stream": stream,
        **({"extra_body": {"top_p": 0.9}} if extra_body else {}),
    }


def test_distill_n_is_checked() -> None:
    with pytest.raises(UserError, match="--n and --concurrency must be at least 1"):
        DistillOptions(Inputs(("p.jsonl",)), RequestOptions(URL, "m"), n=0)
