"""Pacing shared by every request of a run: requests and tokens per minute, server-asked pauses, backoff."""

from __future__ import annotations

import asyncio
import random


class RequestGate:
    """Every request waits here before it is sent.

    - ``rpm``: requests start at least ``60 / rpm`` seconds apart, so no minute ever holds more than ``rpm``.
    - ``tpm``: a token bucket refilled at ``tpm / 60`` per second holding at most one second's worth (so no
      minute holds much more than ``tpm``). A request takes its estimated prompt tokens before it is sent;
      :meth:`charge` settles the difference when the reply's usage is known, so long replies push the bucket
      below zero and hold back the next requests.
    - :meth:`pause`: a 429's ``Retry-After`` holds every request, not only the one that got it (the limit is
      the key's, not the connection's).
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None) -> None:
        self._interval = 60.0 / rpm if rpm else 0.0
        self._next_start = 0.0
        self._tokens_per_s = tpm / 60.0 if tpm else 0.0
        self._capacity = self._tokens_per_s
        self._level = self._capacity
        self._refilled_at: float | None = None
        self._paused_until = 0.0

    @property
    def limited(self) -> bool:
        """Whether :meth:`wait` can hold a request at all (a limit is set, or a pause was asked for): when not,
        callers skip it and save a coroutine per request."""
        return bool(self._interval or self._tokens_per_s or self._paused_until)

    async def wait(self, tokens: int) -> None:
        loop = asyncio.get_running_loop()
        while (delay := self._paused_until - loop.time()) > 0:
            await asyncio.sleep(delay)
        if self._tokens_per_s:
            need = min(float(tokens), self._capacity)
            while True:
                self._refill(loop.time())
                if self._level >= need:
                    self._level -= tokens
                    break
                await asyncio.sleep((need - self._level) / self._tokens_per_s)
        if self._interval:
            now = loop.time()
            start = max(now, self._next_start)
            self._next_start = start + self._interval  # reserved before sleeping: the next caller queues behind
            if start > now:
                await asyncio.sleep(start - now)

    def charge(self, tokens: int) -> None:
        """Settle a request's real token count against its estimate (``tokens`` may be negative)."""
        if self._tokens_per_s:
            self._level -= tokens

    def pause(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)

    def _refill(self, now: float) -> None:
        if self._refilled_at is not None:
            self._level = min(self._capacity, self._level + (now - self._refilled_at) * self._tokens_per_s)
        self._refilled_at = now


def backoff_delay(retry: int, base: float, retry_after: float | None = None, cap: float = 60.0) -> float:
    """Seconds to wait before retry number ``retry`` (1-based): the server's ``Retry-After`` when given, else
    ``base · 2^(retry-1)`` capped at ``cap``; jittered so that many clients do not come back at the same moment."""
    if retry_after is not None:
        return retry_after + random.uniform(0, min(1.0, 0.1 * retry_after))
    return min(cap, base * 2 ** (retry - 1)) * random.uniform(0.5, 1.0)


def estimate_tokens(text: str) -> int:
    """A rough prompt-token count for the TPM budget (about 3 UTF-8 bytes per token across scripts)."""
    return len(text.encode("utf-8")) // 3 + 1
