"""A small OpenAI-compatible chat-completions server for tests and benchmarks (loopback only).

Replies are derived from the prompt (:func:`expected_reply`), so tests can assert them. ``ServerConfig`` picks
where the reasoning goes (``reasoning_content``, ``reasoning``, ``reasoning_details``, inline ``<think>``, inline
without the opening tag, none), the latency, the API key demanded, and faults: ``faults[k]`` is what the k-th
request for a given prompt gets (later requests are answered normally), one of

    429 (with Retry-After) · 500 · 503 · slow (longer than the client's timeout) · reset (connection reset; in a
    stream, after a few chunks) · empty (200, empty body) · keepalive (200, only blank/keep-alive lines) ·
    error_body (200 with an error object) · length (finish_reason length) · empty_answer · no_thought ·
    400 (echoes the Authorization header, as some servers do) · 401

``ServerConfig.reply`` (optional) makes it answer like a judge or a given teacher: ``reply(prompt, attempt)`` gives
the content (no thought), or a (thought, content) pair, of the reply to the ``attempt``-th request (0-based) for
``prompt``; faults still apply first.

In a test: ``with OpenAIServer(ServerConfig(...)) as server: … server.url …`` (a thread with its own loop).
From a shell: ``python tests/openai_server.py --latency 0.1`` prints the base URL and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from aiohttp import web

STYLES = ("reasoning_content", "reasoning", "reasoning_details", "inline", "inline_open", "none")


@dataclass
class ServerConfig:
    style: str = "reasoning_content"
    latency: float = 0.0  # seconds before every reply
    faults: list[str] = field(default_factory=list)
    api_key: str | None = None  # demanded as "Authorization: Bearer KEY" when set
    retry_after: str = "1"  # the 429's Retry-After header
    slow_s: float = 5.0
    chunk_chars: int = 7  # characters per streamed delta
    keepalive: bool = True  # blank lines before JSON bodies and ": keep-alive" comments in streams (DeepSeek)
    record: bool = True  # keep every request in OpenAIServer.requests
    # the reply to (prompt, attempt): its content without a thought, or (thought, content)
    reply: Callable[[str, int], str | tuple[str, str]] | None = None


@dataclass
class Seen:
    """One request as the server saw it."""

    at: float
    prompt: str
    body: dict[str, Any]
    fault: str | None
    authorization: str | None
    query: str = ""  # the request's query string (e.g. Azure's api-version)


class Expected(NamedTuple):
    thought: str
    answer: str


def expected_reply(prompt: str) -> Expected:
    """The thought and answer the server gives for ``prompt`` (the last user message)."""
    digest = hashlib.sha1(prompt.encode()).hexdigest()[:8]
    return Expected(f"The question is: {prompt}\nIts digest is {digest}.", f"The answer is \\boxed{{{digest}}}.")


class OpenAIServer:
    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.requests: list[Seen] = []
        self._attempts: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        return app

    async def start_async(self, port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> OpenAIServer:
        """Serve from a background thread with its own event loop."""
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            assert self._loop is not None and self._runner is None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start_async())
            ready.set()
            self._loop.run_forever()
            assert self._runner is not None
            self._loop.run_until_complete(self._runner.cleanup())
            pending = asyncio.all_tasks(self._loop)  # handlers still sleeping in a slow reply
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="openai-test-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def prompts_seen(self) -> Counter[str]:
        """How many requests each prompt got."""
        return Counter(seen.prompt for seen in self.requests)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._reply(request)
        finally:
            self.in_flight -= 1

    async def _reply(self, request: web.Request) -> web.StreamResponse:
        cfg = self.config
        body = orjson.loads(await request.read())
        prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        attempt = self._attempts[prompt]
        self._attempts[prompt] += 1
        fault = cfg.faults[attempt] if attempt < len(cfg.faults) else None
        authorization = request.headers.get("Authorization")
        if cfg.record:
            self.requests.append(Seen(time.monotonic(), prompt, body, fault, authorization, request.query_string))
        if cfg.api_key is not None and authorization != f"Bearer {cfg.api_key}":
            fault = "401"
        if cfg.latency:
            await asyncio.sleep(cfg.latency)
        if fault in ("429", "500", "503", "400", "401"):
            return _error(int(fault), cfg, authorization)
        if fault == "slow":
            await asyncio.sleep(cfg.slow_s)
        if fault == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if fault == "error_body":
            return web.json_response(
                {"error": {"message": "upstream overloaded", "code": 502}}, dumps=lambda o: orjson.dumps(o).decode()
            )
        if fault == "reset" and not body.get("stream"):
            return _reset(request)
        if cfg.reply is None:
            thought, answer = expected_reply(prompt)
        else:
            content = cfg.reply(prompt, attempt)
            thought, answer = content if isinstance(content, tuple) else ("", content)
        finish = "stop"
        if fault == "length":
            thought, answer, finish = thought[: len(thought) // 2], "", "length"
        elif fault == "empty_answer":
            answer = ""
        elif fault == "no_thought":
            thought = ""
        usage = _usage(body["messages"], thought, answer)
        if body.get("stream"):
            return await self._stream(request, body, thought, answer, finish, usage, fault)
        if fault == "keepalive":
            return web.Response(status=200, body=b"\n\n\n", content_type="application/json")
        message = {"role": "assistant", **_fields(cfg.style, thought, answer, closed=finish == "stop")}
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        return web.Response(
            body=(b"\n\n" if cfg.keepalive else b"") + orjson.dumps(reply), content_type="application/json"
        )

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        thought: str,
        answer: str,
        finish: str,
        usage: dict[str, Any],
        fault: str | None,
    ) -> web.StreamResponse:
        cfg = self.config
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        if fault == "keepalive":
            await resp.write(b": keep-alive\n\n\n: keep-alive\n\n")
            await resp.write_eof()
            return resp
        events = [_chunk(body, {"role": "assistant", "content": ""})]
        if cfg.style in ("inline", "inline_open"):
            text = _fields(cfg.style, thought, answer, closed=finish == "stop")["content"]
            events += [_chunk(body, {"content": piece}) for piece in _pieces(text, cfg.chunk_chars)]
        else:
            events += [_chunk(body, _fields(cfg.style, piece, "")) for piece in _pieces(thought, cfg.chunk_chars)]
            events += [_chunk(body, {"content": piece}) for piece in _pieces(answer, cfg.chunk_chars)]
        events.append(_chunk(body, {}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                b"data: "
                + orjson.dumps(
                    {"id": "chatcmpl-test", "object": "chat.completion.chunk", "choices": [], "usage": usage}
                )
                + b"\n\n"
            )
        events.append(b"data: [DONE]\n\n")
        if fault == "reset":
            await resp.write(b"".join(events[:3]))
            return _reset(request)
        if cfg.keepalive:
            events.insert(1, b": keep-alive\n\n\n")
        await resp.write(b"".join(events))
        await resp.write_eof()
        return resp


def _fields(style: str, thought: str, answer: str, *, closed: bool = True) -> dict[str, Any]:
    """Message (or delta) fields carrying ``thought`` and ``answer`` in the given style."""
    if not thought or style == "none":
        return {"content": answer}
    if style == "reasoning_details":
        return {
            "content": answer,
            "reasoning_details": [
                {"type": "reasoning.text", "text": thought, "index": 0},
                {"type": "reasoning.encrypted", "data": "c2VjcmV0"},
            ],
        }
    if style in ("inline", "inline_open"):
        opening = "<think>\n" if style == "inline" else ""
        return {"content": opening + thought + ("\n</think>\n\n" + answer if closed else "")}
    return {"content": answer, style: thought}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "model": body.get("model"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _usage(messages: list[dict[str, str]], thought: str, answer: str) -> dict[str, Any]:
    prompt_tokens = sum(len(m["content"]) for m in messages) // 4 + 1
    reasoning = len(thought) // 4 + 1 if thought else 0
    completion = reasoning + len(answer) // 4 + 1
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def _error(status: int, cfg: ServerConfig, authorization: str | None) -> web.Response:
    messages = {
        429: "Rate limit reached",
        500: "internal error",
        503: "overloaded",
        # some servers echo what they were sent; clients must not repeat it
        400: f"bad request (Authorization: {authorization})",
        401: f"Incorrect API key provided: {authorization}",
    }
    headers = {"Retry-After": cfg.retry_after} if status == 429 else {}
    return web.Response(
        status=status,
        headers=headers,
        content_type="application/json",
        body=orjson.dumps({"error": {"message": messages[status], "code": status}}),
    )


def _reset(request: web.Request) -> web.Response:
    """Abort the connection with a TCP reset (SO_LINGER 0), as a crashing proxy does."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return web.Response()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--style", choices=STYLES, default="reasoning_content")
    args = parser.parse_args()
    server = OpenAIServer(ServerConfig(style=args.style, latency=args.latency, record=False))

    async def serve() -> None:
        await server.start_async(args.port)
        print(server.url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
