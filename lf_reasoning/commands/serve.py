"""``serve``: the model a train or export config produced, as an OpenAI-compatible chat API with the thought split out.

Generation runs in LLaMA-Factory's own engine with the training template and ``enable_thinking`` (see
:mod:`lf_reasoning.llamafactory.inference`); this module is the HTTP side (aiohttp): ``POST /v1/chat/completions``
(streamed as server-sent events or not), ``GET /v1/models`` and ``GET /health``. The reply's thought goes to
``reasoning_content`` and the answer to ``content``, as DeepSeek's API and vLLM's reasoning parsers return them: the
text is split at the template's exact thought words, the words the model was trained to write (LLaMA-Factory's own
``llamafactory-cli api`` leaves them inline in ``content``). A stream sends the reasoning deltas, then the content
deltas, then the finish reason and, when ``stream_options.include_usage`` asks, the token counts.

It binds to loopback unless told otherwise. When ``$api_key_env`` is set, every ``/v1`` request must present that
key as ``Authorization: Bearer KEY`` (401 otherwise); the key is never printed or logged.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.inference import Backend, Engine, served_model

Log = Callable[[str], None]
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServeOptions:
    """What ``serve`` is asked to do."""

    config: Path  # a train, predict or export config written by ``lf-reasoning config``
    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (the start-up line says which)
    api_key_env: str = "LF_REASONING_API_KEY"
    backend: Backend = "auto"
    model_name: str | None = None  # the name clients send as "model" [default: the config's folder name]

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port}: expected 0 to 65535")

    @property
    def name(self) -> str:
        return self.model_name or Path(self.config).resolve().parent.name


class ThoughtSplitter:
    """Splits generated text into thought and answer as it arrives, at the template's exact thought words.

    A reply is a thought only when it opens with the opening word (the model writes it: the prompt ends at the
    assistant header). Text that could still become a word is held back until the next piece decides, so no marker
    ever leaks into a delta. ``stops`` (stop tokens left in the text when special tokens are kept) end the reply.
    """

    def __init__(self, thought_words: tuple[str, str], stops: tuple[str, ...] = ()) -> None:
        self.open, self.close = thought_words
        self.stops = stops
        self.state = "start"  # start → thought → answer → done; or start → answer → done
        self.buffer = ""
        self.thought_seen = False

    def feed(self, text: str) -> tuple[str, str]:
        """``(thought piece, answer piece)`` that ``text`` makes certain."""
        if self.state == "done":
            return "", ""
        self.buffer += text
        thought = answer = ""
        if self.state == "start":
            if self.buffer.startswith(self.open):
                self.buffer, self.state = self.buffer[len(self.open) :], "thought"
                self.thought_seen = True
            elif self.open.startswith(self.buffer):
                return "", ""
            else:
                self.state = "answer"
        if self.state == "thought":
            thought, ended = self._take((self.close, *self.stops))
            if ended == self.close:
                self.state = "answer"
            elif ended:
                self.state = "done"
        if self.state == "answer":
            answer, ended = self._take(self.stops)
            if ended:
                self.state = "done"
        return thought, answer

    def finish(self) -> tuple[str, str]:
        """What was held back, once the reply is complete."""
        rest, self.buffer = self.buffer, ""
        state, self.state = self.state, "done"
        if state == "thought":
            return rest, ""
        return ("", rest) if state in ("start", "answer") else ("", "")

    def split(self, text: str) -> tuple[str | None, str]:
        """A whole reply: ``(thought or None, answer)``."""
        thought, answer = self.feed(text)
        more_thought, more_answer = self.finish()
        return (thought + more_thought if self.thought_seen else None), answer + more_answer

    def _take(self, markers: tuple[str, ...]) -> tuple[str, str | None]:
        """Text before the first of ``markers`` (consumed) and which one; without one, what no marker can start."""
        found = [(i, m) for m in markers if m and (i := self.buffer.find(m)) >= 0]
        if found:
            at, marker = min(found)
            piece, self.buffer = self.buffer[:at], self.buffer[at + len(marker) :]
            return piece, marker
        hold = max((_partial(self.buffer, m) for m in markers if m), default=0)
        piece, self.buffer = self.buffer[: len(self.buffer) - hold], self.buffer[len(self.buffer) - hold :]
        return piece, None


def _partial(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that begins ``marker``."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _error(status: int, message: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": code, "code": status}}
    return web.json_response(body, status=status, dumps=lambda obj: orjson.dumps(obj).decode())


@dataclass(frozen=True)
class _Request:
    messages: list[dict[str, str]]
    system: str | None
    params: dict[str, Any]  # LLaMA-Factory's generation keywords
    stream: bool
    include_usage: bool
    n: int


def _text(content: Any, where: str) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise _BadRequest(400, f"{where}: content must be a string or a list of text parts (no images here)")


def _parse(body: Any, name: str) -> _Request:
    """The request, checked as the engine needs it: roles user/assistant alternating, ending with the user."""
    if not isinstance(body, dict):
        raise _BadRequest(400, "the body must be a JSON object")
    if body.get("model") != name:
        raise _BadRequest(
            404, f"The model {body.get('model')!r} does not exist; this server serves {name!r}", "not_found"
        )
    if body.get("tools"):
        raise _BadRequest(400, "tools are not supported by lf-reasoning serve")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise _BadRequest(400, "messages: expected a non-empty list of {role, content} objects")
    system = None
    if messages[0].get("role") in ("system", "developer"):
        system = _text(messages[0].get("content"), "messages[0]")
        messages = messages[1:]
    turns = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise _BadRequest(
                400, f"messages: expected user and assistant turns alternating, ending with the user; got {role!r}"
            )
        turns.append({"role": role, "content": _text(message.get("content"), f"messages[{i}]")})
    if len(turns) % 2 == 0:
        raise _BadRequest(400, "messages: the last turn must be the user's")
    n = body.get("n") or 1
    stream = bool(body.get("stream"))
    if not isinstance(n, int) or n < 1 or (stream and n > 1):
        raise _BadRequest(400, "n: expected a positive integer (1 when streaming)")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    params = {
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_new_tokens": max_tokens,
        "num_return_sequences": n if n > 1 else None,
    }
    for key in ("temperature", "top_p", "max_new_tokens"):
        value = params[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise _BadRequest(400, f"{key if key != 'max_new_tokens' else 'max_tokens'}: expected a number ≥ 0")
    if params["top_p"] is not None and not 0 < params["top_p"] <= 1:
        raise _BadRequest(400, "top_p: expected a number in (0, 1]")
    options = body.get("stream_options") or {}
    return _Request(turns, system, params, stream, bool(isinstance(options, dict) and options.get("include_usage")), n)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def build_app(engine: Engine, name: str, api_key: str | None) -> web.Application:
    """The aiohttp application serving ``engine`` as ``name``; ``api_key``: demanded on ``/v1`` when set."""

    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if api_key and request.path.startswith("/v1"):
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error(401, "missing or wrong API key (send Authorization: Bearer KEY)", "authentication_error")
        return await handler(request)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def models(request: web.Request) -> web.Response:
        model = {"id": name, "object": "model", "created": created, "owned_by": "lf-reasoning"}
        return web.json_response({"object": "list", "data": [model]})

    async def chat(request: web.Request) -> web.StreamResponse:
        try:
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError as err:
                raise _BadRequest(400, f"the body is not JSON: {err}") from None
            parsed = _parse(body, name)
        except _BadRequest as err:
            return _error(err.status, err.message, err.code)
        if parsed.stream:
            return await _stream(request, engine, name, parsed)
        return await _complete(engine, name, parsed)

    created = int(time.time())
    app = web.Application(middlewares=[auth])
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _complete(engine: Engine, name: str, request: _Request) -> web.Response:
    replies = await engine.complete(request.messages, request.system, request.params)
    choices = []
    for i, reply in enumerate(replies):
        thought, answer = ThoughtSplitter(engine.thought_words, engine.stop_words).split(reply.text)
        message = {"role": "assistant", "content": answer, "reasoning_content": thought}
        choices.append({"index": i, "message": message, "finish_reason": reply.finish_reason})
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": choices,
        "usage": _usage(replies[0].prompt_tokens, sum(r.completion_tokens for r in replies)),
    }
    return web.json_response(body, dumps=lambda obj: orjson.dumps(obj).decode())


async def _stream(request: web.Request, engine: Engine, name: str, parsed: _Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    async def send(
        delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None
    ) -> None:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        chunk: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

    async def pieces(thought: str, answer: str) -> None:
        if thought:
            await send({"reasoning_content": thought})
        if answer:
            await send({"content": answer})

    splitter = ThoughtSplitter(engine.thought_words, engine.stop_words)
    text = []
    await send({"role": "assistant", "content": ""})
    async for piece in engine.stream(parsed.messages, parsed.system, parsed.params):
        text.append(piece)
        await pieces(*splitter.feed(piece))
    await pieces(*splitter.finish())
    # The engine's stream reports no token counts: count the text and infer the finish from the limit.
    completion = engine.text_tokens("".join(text))
    limit = parsed.params["max_new_tokens"] or engine.max_new_tokens
    finish = "length" if completion >= limit else "stop"
    await send({}, finish)
    if parsed.include_usage:
        prompt = engine.prompt_tokens(parsed.messages, parsed.system)
        await send(None, usage=_usage(prompt, completion + (finish == "stop")))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def serve(options: ServeOptions, log: Log) -> None:
    """Load the model ``options.config`` produced and serve it until interrupted (Ctrl-C, SIGTERM)."""
    served = served_model(Path(options.config), options.backend)
    api_key = os.environ.get(options.api_key_env) or None
    if options.host not in _LOOPBACK and not api_key:
        log(
            f"warning: serving on {options.host} without an API key: anyone who can reach it can use it; "
            f"set ${options.api_key_env}"
        )
    log(
        f"loading {served.description} (template {served.template}, enable_thinking {served.enable_thinking}, "
        f"backend {served.args['infer_backend']})"
    )
    try:
        engine = Engine(served)
    except (OSError, ValueError) as err:  # a base model not available offline, an unsupported backend setting, …
        raise UserError(f"{served.description}: LLaMA-Factory cannot load it: {err}") from None
    asyncio.run(_run(build_app(engine, options.name, api_key), options, api_key is not None, log))


async def _run(app: web.Application, options: ServeOptions, keyed: bool, log: Log) -> None:
    runner = web.AppRunner(app, access_log=None)  # request lines are not logged: nothing of a request leaks
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        raise UserError(f"cannot listen on {options.host}:{options.port}: {err.strerror or err}") from None
    port = runner.addresses[0][1]
    host = f"[{options.host}]" if ":" in options.host else options.host
    key = f"API key required (${options.api_key_env})" if keyed else f"no API key (${options.api_key_env} is unset)"
    log(f"serving {options.name!r} at http://{host}:{port}/v1 ({key}); Ctrl-C stops")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
