"""What a run of API requests counts: planned and done records, failures and retries by reason, tokens."""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_reasoning.api.client import Reply
from lf_reasoning.api.limits import estimate_tokens


@dataclass
class RequestCounts:
    """Repeated attempts by reason, and tokens over every reply received (including the ones asked again)."""

    retried: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    def count_usage(self, reply: Reply, estimate: int) -> int:
        """Add the reply's token counts; returns the tokens it used (for the TPM budget), estimated from the
        request's ``estimate`` and the reply's text when the server sent no usage."""
        usage = reply.usage if isinstance(reply.usage, dict) else {}
        prompt_tokens = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion
        details = usage.get("completion_tokens_details")
        self.reasoning_tokens += _int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
        cached = usage.get("prompt_tokens_details")  # OpenAI/vLLM; DeepSeek reports prompt_cache_hit_tokens
        self.cached_tokens += (
            _int(cached.get("cached_tokens"))
            if isinstance(cached, dict)
            else _int(usage.get("prompt_cache_hit_tokens"))
        )
        if usage:
            return prompt_tokens + completion
        return estimate + estimate_tokens((reply.reasoning or "") + reply.content)


@dataclass(kw_only=True)
class RunReport(RequestCounts):
    """One resumable run: what OUT holds, what this run sent, and how it went."""

    out: Path
    failures_file: Path
    planned: int = 0  # records the inputs ask for
    already_done: int = 0  # found in OUT at the start
    pending: int = 0  # sent in this run
    done: int = 0  # written to OUT in this run
    failed: Counter[str] = field(default_factory=Counter)  # failed for good (in the failures file), by reason
    invalid: int = 0  # input records that could not be read
    seconds: float = 0.0

    def plan(self, keys: Iterable[Hashable], done: Container[Hashable]) -> None:
        """The planning pass: count the records ``keys`` ask for, and which of them OUT already holds."""
        for key in keys:
            self.planned += 1
            if key in done:
                self.already_done += 1
            else:
                self.pending += 1


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def reason_lines(counts: Counter[str], indent: int) -> list[str]:
    """One summary line per reason, most frequent first, the counts aligned with the header lines'."""
    return [f"{' ' * indent}{reason:<{22 - indent}}{count:>10}" for reason, count in counts.most_common()]


def retried_line(report: RequestCounts) -> str:
    retried = sum(report.retried.values())
    by_reason = ", ".join(f"{reason} {count}" for reason, count in report.retried.most_common())
    return f"{'retried attempts':<22}{retried:>10}" + (f"  ({by_reason})" if retried else "")
