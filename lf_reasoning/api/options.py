"""How the commands that call an API (distill, score, verify's judge) send their requests: one options object."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from yarl import URL

from lf_reasoning.api.client import ChatClient, chat_url
from lf_reasoning.errors import UserError

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RequestOptions:
    """Where requests go, how fast, and how often a failure is retried. Invalid values raise
    :class:`~lf_reasoning.errors.UserError` when it is built. Only the *name* of the variable holding the API key
    is kept: the key itself is read when a run starts and never stored, logged or written."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    temperature: float | None = None  # None: the server's default
    max_tokens: int | None = None
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 8  # transport failures: 429, 5xx, timeouts, resets, empty bodies
    retry_bad: int = 2  # re-asks of a reply the caller cannot use
    backoff: float = 1.0  # first retry delay in seconds, doubled per retry
    timeout: float = 900.0  # seconds per request
    failures: Path | None = None  # default: OUT without .jsonl + .failures.jsonl
    option_prefix: str = "--"  # errors name the options {prefix}base-url and {prefix}model (the judge's: --judge-)

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_retries < 0 or self.retry_bad < 0:
            raise UserError("--concurrency must be at least 1; --max-retries and --retry-bad at least 0")
        self.url  # noqa: B018 — validates --base-url now, before any file is touched

    @cached_property
    def url(self) -> URL:
        return chat_url(self.base_url, f"{self.option_prefix}base-url")

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """A chat-completion request body for ``messages``."""
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body

    def api_key(self, log: Callable[[str], None], requests: str = "requests") -> str | None:
        """The key from ``$api_key_env``; its absence is logged (fine for a local server), the key never is."""
        if not _ENV_NAME.fullmatch(self.api_key_env):  # a key pasted where its variable's name goes: never shown
            raise UserError(
                f"{self.option_prefix}api-key-env takes the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "not the key itself: export the key in a variable and name that variable"
            )
        key = (os.environ.get(self.api_key_env) or "").strip() or None  # a .env file with CRLF line ends
        if key is None:
            log(f"${self.api_key_env} is not set: {requests} go without an API key (fine for a local server)")
        return key

    def client(self, api_key: str | None, connections: int | None = None) -> ChatClient:
        return ChatClient(
            self.url,
            api_key,
            self.api_key_env,
            timeout=self.timeout,
            connections=connections or self.concurrency,
            option_prefix=self.option_prefix,
        )

    def failures_file(self, out: Path) -> Path:
        return (
            Path(self.failures) if self.failures else out.with_name(out.name.removesuffix(".jsonl") + ".failures.jsonl")
        )
