"""An OpenAI-compatible chat-completions client: one attempt per call, the reply's reasoning read from every field
servers use for it.

Retrying is the caller's business (:mod:`lf_reasoning.api.retry`); this module only classifies a failure:
:class:`RetryableError` (429, 5xx, timeouts, resets, empty bodies, keep-alive-only streams), :class:`RequestError`
(the server refuses this request: recorded as a failure) or :class:`UserError` (the run cannot go on: a bad key,
URL or model). The API key is sent in a header and redacted from every message this module builds.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from lf_reasoning.errors import UserError
from lf_reasoning.record.thoughts import merge_thought

_RETRY_STATUS = {408, 409, 425, 429}  # and every 5xx
_MAX_DETAIL = 500  # characters of a server's error message kept in a failure record
_SECRET_PARAM = re.compile(r"key|token|secret|passw|sig|auth", re.IGNORECASE)  # query parameters masked when shown
_USERINFO = re.compile(r"//[^/@]*@")


class RetryableError(Exception):
    """A failure of this attempt only; ``retry_after`` is the wait the server asked for, in seconds."""

    def __init__(self, reason: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after


class RequestError(Exception):
    """The server refused this request (a 4xx other than auth/not-found): retrying will not help."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Reply:
    """One chat completion: the reasoning field (when the server sent one) and the raw content."""

    reasoning: str | None
    content: str
    finish_reason: str | None
    usage: dict[str, Any] | None

    def thought_and_answer(self) -> tuple[str | None, str]:
        """Thought and answer, with inline ``<think>`` markup (even without its opening tag) split out.

        Raises :class:`~lf_reasoning.errors.RecordError` for broken markup (several blocks, an unclosed block, …).
        """
        return merge_thought(self.reasoning, self.content)


def chat_url(base_url: str, option: str = "--base-url") -> URL:
    """``…/v1`` → ``…/v1/chat/completions`` (a full endpoint URL is taken as is; a query string such as Azure's
    ``?api-version=…`` is kept)."""
    try:
        url = URL(base_url.strip())
    except ValueError as err:
        raise UserError(f"{option} {_USERINFO.sub('//***@', base_url)!r}: not a URL ({err})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UserError(f"{option} {shown_url(url)!r}: expected an http(s) URL such as http://localhost:8000/v1")
    if url.path.rstrip("/").endswith("/chat/completions"):
        return url
    return url.with_path(url.path.rstrip("/") + "/chat/completions").with_query(url.query)


def _url_secrets(url: URL) -> list[str]:
    secrets = [url.raw_user, url.raw_password, url.user, url.password]
    secrets += [v for k, v in url.query.items() if _SECRET_PARAM.search(k)]
    return [s for s in secrets if s and len(s) >= 4]  # a short user name like "u" would mask every letter u


def shown_url(url: URL) -> str:
    """``url`` as it may be printed or logged: user, password and secret-looking query values masked."""
    if url.user is not None or url.password is not None:
        url = url.with_password(None).with_user("***")
    if any(_SECRET_PARAM.search(name) for name in url.query):
        url = url.with_query([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in url.query.items()])
    return str(url)


class ChatClient:
    """Sends chat-completion requests over one pooled ``aiohttp`` session (use as an async context manager)."""

    def __init__(
        self,
        url: URL,
        api_key: str | None,
        api_key_env: str,
        *,
        timeout: float,
        connections: int,
        option_prefix: str = "--",
    ) -> None:
        self.url = url
        self._options = option_prefix  # errors name {prefix}base-url and {prefix}model: --judge- for the judge
        self.shown = shown_url(url)  # what messages name: never a key inside the URL
        self._key = api_key
        self._key_env = api_key_env
        self._timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self.reached = False  # set on the first HTTP status received: connect errors before it stop the run

    async def __aenter__(self) -> ChatClient:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def redact(self, text: str) -> str:
        """``text`` with the API key and the URL's secrets masked (servers echo them back in error messages)."""
        for secret in (self._key, *_url_secrets(self.url)):
            if secret:
                text = text.replace(secret, "***")
        return text

    async def complete(self, body: dict[str, Any]) -> Reply:
        """One attempt at ``body`` (streamed when ``body["stream"]``)."""
        assert self._session is not None, "use ChatClient as an async context manager"
        try:
            async with self._session.post(self.url, data=orjson.dumps(body)) as resp:
                self.reached = True
                if resp.status != 200:
                    raise self._status_error(resp.status, resp.headers, await resp.read())
                if body.get("stream"):
                    return await _read_stream(resp)
                return _parse_completion(await resp.read())
        except asyncio.TimeoutError:
            raise RetryableError("timeout", f"no complete reply within --timeout {self._timeout:g} s") from None
        except aiohttp.ClientConnectorError as err:
            if not self.reached:  # never reached the server: a wrong URL or a server that is not running
                raise UserError(
                    f"cannot connect to {self.shown}: {self.redact(str(err.os_error))}. "
                    f"Check {self._options}base-url and that the server is running."
                ) from None
            raise RetryableError("connect_error", self.redact(str(err))) from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as err:
            raise RetryableError("connection_reset", self.redact(f"{type(err).__name__}: {err}")) from None
        except aiohttp.ClientError as err:
            raise RetryableError("http_error", self.redact(f"{type(err).__name__}: {err}")) from None

    def _status_error(self, status: int, headers: Any, body: bytes) -> Exception:
        message = self.redact(_error_message(body))
        where = f"{self.shown} answered {status}"
        if status == 401:  # the body is left out: servers echo (part of) the key presented
            if self._key:
                return UserError(f"{where}: the API key in ${self._key_env} was rejected; check it")
            return UserError(
                f"{where}: the server demands an API key; set ${self._key_env} "
                "(or name another variable with --api-key-env)"
            )
        if status in (402, 403):
            return UserError(f"{where}: access refused (payment or permission)" + (f": {message}" if message else ""))
        if status == 404:
            return UserError(
                f"{where} (Not Found){': ' + message if message else ''}. Check {self._options}base-url "
                f"(it usually ends in /v1) and {self._options}model."
            )
        if status in _RETRY_STATUS or status >= 500:
            return RetryableError(f"http_{status}", message or f"HTTP {status}", retry_after(headers))
        return RequestError(f"http_{status}", message or f"HTTP {status}")


def retry_after(headers: Any) -> float | None:
    """The wait a 429/503 asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _error_message(body: bytes) -> str:
    """The ``error.message`` of an error body, or its text; shortened."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
    else:
        error = obj.get("error") if isinstance(obj, dict) else None
        text = str(error.get("message") or error) if isinstance(error, dict) else str(error or obj)
    return text[:_MAX_DETAIL]


def _error_in_body(obj: dict[str, Any]) -> Exception:
    """An error sent with status 200 (OpenRouter does so for upstream failures, also inside streams)."""
    error = obj["error"]
    message = str(error.get("message") or error) if isinstance(error, dict) else str(error)
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and 400 <= code < 500 and code not in _RETRY_STATUS:
        return RequestError(f"http_{code}", message[:_MAX_DETAIL])
    return RetryableError("error_in_reply", message[:_MAX_DETAIL])


def _parse_completion(data: bytes) -> Reply:
    """A non-streamed reply; DeepSeek sends blank lines before the JSON while it works, or nothing at all."""
    if not data.strip():
        raise RetryableError("empty_body", "HTTP 200 with an empty body")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise RetryableError("invalid_json", f"reply is not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise RetryableError("invalid_json", "reply is not a JSON object")
    if obj.get("error"):
        raise _error_in_body(obj)
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RetryableError("no_choices", "reply holds no choices")
    message = choices[0].get("message") or {}
    content = message.get("content")
    return Reply(
        reasoning_of(message),
        content if isinstance(content, str) else "",
        choices[0].get("finish_reason"),
        obj.get("usage"),
    )


async def _read_stream(resp: aiohttp.ClientResponse) -> Reply:
    """A server-sent-event stream of chunks: reasoning deltas, then content deltas, then ``data: [DONE]``.

    Read in blocks and split here: awaiting each line separately costs more than parsing it.
    """
    stream = _Stream()
    tail = b""
    async for block in resp.content.iter_any():
        *lines, tail = (tail + block).split(b"\n")
        for line in lines:
            if stream.feed(line):
                return stream.reply()
    stream.feed(tail)
    return stream.reply()


class _Stream:
    """What the lines of a stream have said so far."""

    def __init__(self) -> None:
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.got_data = self.done = False

    def feed(self, line: bytes) -> bool:
        """Take one line; True once ``data: [DONE]`` arrived."""
        line = line.strip()
        if not line.startswith(b"data:"):  # blank separators, ": keep-alive" comments, event:/id: fields
            return False
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return True
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise RetryableError("invalid_stream", f"stream chunk is not JSON: {err}") from None
        if not isinstance(chunk, dict):
            raise RetryableError("invalid_stream", "stream chunk is not a JSON object")
        if chunk.get("error"):
            raise _error_in_body(chunk)
        self.got_data = True
        self.usage = chunk.get("usage") or self.usage
        choices = chunk.get("choices")
        if not choices or not isinstance(choices[0], dict):  # the closing usage chunk has no choices
            return False
        delta = choices[0].get("delta") or {}
        piece = reasoning_of(delta)
        if piece:
            self.reasoning.append(piece)
        text = delta.get("content")
        if isinstance(text, str) and text:
            self.content.append(text)
        self.finish = choices[0].get("finish_reason") or self.finish
        return False

    def reply(self) -> Reply:
        if not self.got_data:
            raise RetryableError("keepalive_only", "the stream ended without any data (keep-alive lines only)")
        if not self.done and self.finish is None:
            raise RetryableError("stream_cut", "the stream ended before its last chunk")
        return Reply("".join(self.reasoning) or None, "".join(self.content), self.finish, self.usage)


def reasoning_of(message: dict[str, Any]) -> str | None:
    """The reasoning of a message or delta: ``reasoning`` (vLLM, OpenRouter), ``reasoning_content`` (DeepSeek,
    older vLLM), else the text of OpenRouter's ``reasoning_details`` items. One field only: servers in transition
    send the same text under several names."""
    for key in ("reasoning", "reasoning_content"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    details = message.get("reasoning_details")
    if not isinstance(details, list):
        return None
    items = [d for d in details if isinstance(d, dict)]
    texts = [d["text"] for d in items if d.get("type") == "reasoning.text" and isinstance(d.get("text"), str)]
    if not texts:  # a summary stands in when the provider sends no raw text; encrypted items are skipped
        texts = [
            d["summary"] for d in items if d.get("type") == "reasoning.summary" and isinstance(d.get("summary"), str)
        ]
    return "".join(texts) or None
