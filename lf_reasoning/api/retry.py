"""The one retry loop of every request: transport failures retried with backoff, unusable replies asked again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lf_reasoning.api.client import ChatClient, Reply, RequestError, RetryableError
from lf_reasoning.api.limits import RequestGate, backoff_delay, estimate_tokens
from lf_reasoning.api.options import RequestOptions
from lf_reasoning.api.report import RequestCounts
from lf_reasoning.errors import RecordError

T = TypeVar("T")
# What the caller makes of a reply: its value, or why the reply cannot be used (then it is asked again).
Check = Callable[[Reply], T | RecordError]


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What asking came to: the checked ``value``, or the ``error`` (its detail free of the API key).

    ``failed``: the request itself failed for good (the server refused it, or the retries ran out): it belongs in
    the failures file and the next run sends it again. Otherwise every reply was rejected by the check (``rejected``
    of them). ``reply`` is the last reply received: the accepted one, or the last one rejected.
    """

    value: T | None
    error: RecordError | None = None
    failed: bool = False
    attempts: int = 1
    rejected: int = 0
    reply: Reply | None = None


class Asker:
    """Sends requests through the gate with ``options``' retries; every retry and reply is counted in ``counts``."""

    def __init__(self, client: ChatClient, gate: RequestGate, options: RequestOptions, counts: RequestCounts) -> None:
        self.client = client
        self.gate = gate
        self.options = options
        self.counts = counts

    async def ask(self, body: dict[str, Any], check: Check[T]) -> Outcome[T]:
        """Send ``body`` until ``check`` accepts a reply. A 429's ``Retry-After`` pauses every request of the run
        (the limit is the key's), and a retried request gives its estimated tokens back to the TPM budget."""
        estimate = estimate_tokens("".join(m["content"] for m in body["messages"]))
        retries = bad = 0
        while True:
            if self.gate.limited:  # skipped without limits: saves a coroutine per request
                await self.gate.wait(estimate)
            try:
                reply = await self.client.complete(body)
            except RetryableError as err:
                self.gate.charge(-estimate)
                retries += 1
                if retries > self.options.max_retries:
                    return self._failed(err.reason, f"gave up after {retries} tries: {err.detail}", retries + bad)
                self.counts.retried[err.reason] += 1
                if err.retry_after is not None:
                    self.gate.pause(err.retry_after)
                await asyncio.sleep(backoff_delay(retries, self.options.backoff, err.retry_after))
                continue
            except RequestError as err:
                return self._failed(err.reason, err.detail, retries + bad + 1)
            self.gate.charge(self.counts.count_usage(reply, estimate) - estimate)
            result = check(reply)
            if not isinstance(result, RecordError):
                return Outcome(result, attempts=retries + bad + 1, reply=reply)
            bad += 1
            if bad > self.options.retry_bad:
                error = RecordError(result.reason, self.client.redact(result.detail))
                return Outcome(None, error, attempts=retries + bad, rejected=bad, reply=reply)
            self.counts.retried[result.reason] += 1

    def _failed(self, reason: str, detail: str, attempts: int) -> Outcome[Any]:
        return Outcome(None, RecordError(reason, self.client.redact(detail)), failed=True, attempts=attempts)
