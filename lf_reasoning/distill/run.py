"""``distill``: ask an OpenAI-compatible server for a thought and an answer per (prompt, sample), resumably.

OUT is JSON Lines in the R1-distill shape ``convert`` reads (``input``, ``reasoning_content``, ``content``, plus
``id``, ``key``, ``sample``, ``usage``, ``finish_reason``, ``params``…). Every record is appended with one
``write()`` the moment it completes, so a kill leaves at most one partial last line; the next run cuts that line
away, skips every (key, sample) already in OUT and sends only what is missing. An exclusive lock on OUT keeps two
runs from writing it at once. Requests that fail for good go to the failures file, never to OUT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from lf_reasoning.distill.client import ChatClient, Reply, RequestError, RetryableError, chat_url
from lf_reasoning.distill.limits import RequestGate, backoff_delay, estimate_tokens
from lf_reasoning.distill.prompts import Prompt, iter_prompts, parse_prompt_mapping
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.sources import resolve_sources

_OK_FINISH = (None, "stop", "eos")
# Workers start spread over this many seconds, not at once: a burst of simultaneous requests is what rate limiters
# punish, and with similar latencies its replies keep coming back in bursts that queue behind each other.
RAMP_S = 0.25
_NO_THOUGHT_PROBE = 10  # replies without any thought, none with one, before the run stops (a misconfigured server)
_T = TypeVar("_T")


@dataclass
class DistillReport:
    out: Path
    failures_file: Path
    planned: int = 0  # (prompt, sample) pairs in SRC
    already_done: int = 0  # found in OUT at the start
    pending: int = 0  # sent in this run
    done: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # by reason
    retried: Counter[str] = field(default_factory=Counter)  # repeated attempts, by reason
    invalid: int = 0  # SRC records that could not be read
    duplicates: int = 0  # repeated prompts in SRC (each is distilled once)
    prompt_tokens: int = 0  # over every reply received, including the ones retried
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    price_in: float | None = None  # per million tokens
    price_out: float | None = None
    seconds: float = 0.0

    @property
    def cost(self) -> float | None:
        if self.price_in is None and self.price_out is None:
            return None
        return (self.prompt_tokens * (self.price_in or 0) + self.completion_tokens * (self.price_out or 0)) / 1e6


@dataclass(frozen=True)
class _Settings:
    """What is asked for: sent with every request and recorded with every reply."""

    model: str
    temperature: float | None
    max_tokens: int | None
    stream: bool
    system: str | None
    prompt_suffix: str | None
    extra_body: dict[str, Any]

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {**self.extra_body, "model": self.model, "messages": messages}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # the closing chunk then carries the token counts
        return body

    def params(self) -> dict[str, Any]:
        params = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": self.stream,
            "system": self.system,
            "prompt_suffix": self.prompt_suffix,
            "extra_body": self.extra_body or None,
        }
        return {k: v for k, v in params.items() if v is not None}


def distill(
    sources: Sequence[str],
    out: Path,
    *,
    base_url: str,
    model: str,
    n: int = 1,
    concurrency: int = 8,
    stream: bool = False,
    api_key_env: str = "OPENAI_API_KEY",
    temperature: float | None = None,
    max_tokens: int | None = None,
    system: str | None = None,
    prompt_suffix: str | None = None,
    extra_body: dict[str, Any] | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    max_retries: int = 8,
    retry_bad: int = 2,
    backoff: float = 1.0,
    timeout: float = 900.0,
    allow_no_thought: bool = False,
    price_in: float | None = None,
    price_out: float | None = None,
    failures: Path | None = None,
    mapping: Sequence[str] = (),
    hub_split: str = "train",
    log: Callable[[str], None] = lambda msg: None,
    progress: bool = False,
) -> DistillReport:
    """Distill every prompt of ``sources`` ``n`` times into ``out`` (see the module docstring).

    Transport failures (429, 5xx, timeouts, resets, empty bodies, keep-alive-only streams) are retried up to
    ``max_retries`` times with exponential backoff from ``backoff`` seconds (a ``Retry-After`` is honoured);
    replies cut off (``finish_reason: length``), with an empty answer, without a thought (unless
    ``allow_no_thought``) or with broken markup are re-requested up to ``retry_bad`` times. The API key is read
    from ``$api_key_env`` and never written anywhere.
    """
    if n < 1 or concurrency < 1 or max_retries < 0 or retry_bad < 0:
        raise UserError("--n and --concurrency must be at least 1; --max-retries and --retry-bad at least 0")
    url = chat_url(base_url)
    api_key = os.environ.get(api_key_env) or None
    if api_key is None:
        log(f"${api_key_env} is not set: requests go without an API key (fine for a local server)")
    prompt_mapping = parse_prompt_mapping(mapping)
    extra_body = dict(extra_body or {})
    clash = sorted({"model", "messages", "stream", "stream_options"} & extra_body.keys())
    if clash:
        raise UserError(f"--extra-body must not set {', '.join(clash)}: use the matching options")
    settings = _Settings(model, temperature, max_tokens, stream, system, prompt_suffix, extra_body)
    inputs = resolve_sources(sources)
    out = Path(out)
    failures_file = Path(failures) if failures else out.with_name(out.name.removesuffix(".jsonl") + ".failures.jsonl")
    report = DistillReport(out=out, failures_file=failures_file, price_in=price_in, price_out=price_out)

    def prompts(on_invalid: Callable[[str, RecordError], None], note: Callable[[str], None]) -> Iterator[Prompt]:
        return iter_prompts(
            inputs,
            mapping=prompt_mapping,
            system=system,
            prompt_suffix=prompt_suffix,
            hub_split=hub_split,
            on_invalid=on_invalid,
            log=note,
        )

    with Output(out, log) as output:
        _check_resumable(output, settings)
        # First pass: count what is planned and missing (for the progress bar and the report).
        seen: set[str] = set()
        for prompt in prompts(lambda where, err: None, log):
            if prompt.key in seen:
                report.duplicates += 1
                continue
            seen.add(prompt.key)
            for sample in range(n):
                report.planned += 1
                if (prompt.key, sample) in output.done:
                    report.already_done += 1
                else:
                    report.pending += 1
        del seen
        if report.already_done:
            log(
                f"{out}: {report.already_done} of {report.planned} records already there; "
                f"sending the {report.pending} missing"
            )
        failures_file.unlink(missing_ok=True)  # it described the previous run; those requests are retried now

        def on_invalid(where: str, err: RecordError) -> None:
            report.invalid += 1
            log(f"warning: {where}: skipped: {err.detail}")

        def jobs() -> Iterator[tuple[Prompt, int]]:
            scheduled: set[str] = set()
            for prompt in prompts(on_invalid, lambda msg: None):
                if prompt.key in scheduled:
                    continue
                scheduled.add(prompt.key)
                for sample in range(n):
                    if (prompt.key, sample) not in output.done:
                        yield prompt, sample

        run = _Run(
            settings,
            report,
            output,
            log,
            concurrency=concurrency,
            max_retries=max_retries,
            retry_bad=retry_bad,
            backoff=backoff,
            allow_no_thought=allow_no_thought,
        )
        started = time.monotonic()
        try:
            with Failures(failures_file) as failed, Progress(report, enabled=progress) as bar:
                client = ChatClient(url, api_key, api_key_env, timeout=timeout, connections=concurrency)
                run_coroutine(run.main(client, jobs(), RequestGate(rpm, tpm), failed, bar))
        except KeyboardInterrupt:
            log(f"interrupted: {report.done} records written this run; run the same command again to resume")
            raise
        finally:
            report.seconds = time.monotonic() - started
    return report


class _Run:
    """The request loop of one run: ``concurrency`` workers share one iterator of jobs."""

    def __init__(
        self,
        settings: _Settings,
        report: DistillReport,
        output: Output,
        log: Callable[[str], None],
        *,
        concurrency: int,
        max_retries: int,
        retry_bad: int,
        backoff: float,
        allow_no_thought: bool,
    ) -> None:
        self.settings = settings
        self.params = settings.params()
        self.report = report
        self.output = output
        self.log = log
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.retry_bad = retry_bad
        self.backoff = backoff
        self.allow_no_thought = allow_no_thought
        self.thought_seen = False
        self.no_thought = 0

    async def main(
        self, client: ChatClient, jobs: Iterator[tuple[Prompt, int]], gate: RequestGate, failed: Failures, bar: Progress
    ) -> None:
        self.client, self.gate, self.failed, self.bar = client, gate, failed, bar
        self.log = bar.around(self.log)
        async with client:
            await run_workers(jobs, lambda job: self._distill_one(*job), min(self.concurrency, self.report.pending))

    async def _distill_one(self, prompt: Prompt, sample: int) -> None:
        messages = prompt.messages()
        body = self.settings.body(messages)
        estimate = estimate_tokens("".join(m["content"] for m in messages))
        retries = bad = 0
        started = time.monotonic()
        while True:
            if self.gate.limited:
                await self.gate.wait(estimate)
            try:
                reply = await self.client.complete(body)
            except RetryableError as err:
                self.gate.charge(-estimate)
                retries += 1
                if retries > self.max_retries:
                    return self._fail(
                        prompt, sample, err.reason, f"gave up after {retries} tries: {err.detail}", retries + bad
                    )
                self.report.retried[err.reason] += 1
                if err.retry_after is not None:
                    self.gate.pause(err.retry_after)
                await asyncio.sleep(backoff_delay(retries, self.backoff, err.retry_after))
                continue
            except RequestError as err:
                return self._fail(prompt, sample, err.reason, err.detail, retries + bad + 1)
            self._count_usage(reply, estimate)
            result = self._check(reply)
            if isinstance(result, RecordError):
                bad += 1
                if bad > self.retry_bad:
                    return self._fail(prompt, sample, result.reason, result.detail, retries + bad, reply)
                self.report.retried[result.reason] += 1
                continue
            thought, answer = result
            self._write(prompt, sample, thought, answer, reply, retries + bad + 1, time.monotonic() - started)
            return

    def _check(self, reply: Reply) -> tuple[str | None, str] | RecordError:
        """Thought and answer of a usable reply, or why it is not usable."""
        if reply.finish_reason == "length":
            return RecordError("length", "the reply was cut off (finish_reason length); raise --max-tokens")
        if reply.finish_reason not in _OK_FINISH:
            return RecordError(
                f"finish_{reply.finish_reason}", f"the reply ended with finish_reason {reply.finish_reason!r}"
            )
        try:
            thought, answer = reply.thought_and_answer()
        except RecordError as err:
            return err
        if not answer:
            return RecordError("empty_answer", "the reply has no answer (empty content after the thought)")
        if thought:
            self.thought_seen = True
        elif not self.allow_no_thought:
            self.no_thought += 1
            if not self.thought_seen and self.no_thought >= _NO_THOUGHT_PROBE:
                raise UserError(
                    f"{self.no_thought} replies came without a thought (no reasoning_content/reasoning field, no "
                    "<think> markup) and none with one: use a reasoning model, start vLLM/SGLang with "
                    "--reasoning-parser, or pass --allow-no-thought to keep answer-only records"
                )
            return RecordError("no_thought", "the reply has no thought (no reasoning field, no <think> markup)")
        return thought, answer

    def _count_usage(self, reply: Reply, estimate: int) -> None:
        usage = reply.usage if isinstance(reply.usage, dict) else {}
        prompt_tokens = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        self.report.prompt_tokens += prompt_tokens
        self.report.completion_tokens += completion
        details = usage.get("completion_tokens_details")
        self.report.reasoning_tokens += _int(details.get("reasoning_tokens")) if isinstance(details, dict) else 0
        cached = usage.get("prompt_tokens_details")  # OpenAI/vLLM; DeepSeek reports prompt_cache_hit_tokens
        self.report.cached_tokens += (
            _int(cached.get("cached_tokens"))
            if isinstance(cached, dict)
            else _int(usage.get("prompt_cache_hit_tokens"))
        )
        used = (
            prompt_tokens + completion if usage else estimate + estimate_tokens((reply.reasoning or "") + reply.content)
        )
        self.gate.charge(used - estimate)

    def _write(
        self, prompt: Prompt, sample: int, thought: str | None, answer: str, reply: Reply, attempts: int, seconds: float
    ) -> None:
        record: dict[str, Any] = {
            "id": f"{prompt.key}-{sample}",
            "key": prompt.key,
            "sample": sample,
            "input": prompt.prompt,
            "reasoning_content": thought,
            "content": answer,
        }
        if prompt.system:
            record["system"] = prompt.system
        if prompt.history:
            record["history"] = [[turn.prompt, turn.answer] for turn in prompt.history]
        if prompt.reference is not None:
            record["reference_answer"] = prompt.reference
        if prompt.source is not None:
            record["repo_name"] = prompt.source
        if prompt.source_id is not None:
            record["source_id"] = prompt.source_id
        record.update(
            where=prompt.where,
            model=self.settings.model,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            params=self.params,
            attempts=attempts,
            seconds=round(seconds, 3),
        )
        self.output.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.report.done += 1
        self.bar.advance()

    def _fail(
        self, prompt: Prompt, sample: int, reason: str, detail: str, attempts: int, reply: Reply | None = None
    ) -> None:
        detail = self.client.redact(detail)
        self.report.failed[reason] += 1
        self.log(f"warning: {prompt.where} sample {sample}: failed ({reason}): {detail}")
        record = {
            "id": f"{prompt.key}-{sample}",
            "key": prompt.key,
            "sample": sample,
            "where": prompt.where,
            "input": prompt.prompt,
            "reason": reason,
            "detail": detail,
            "attempts": attempts,
        }
        if reply is not None:
            record.update(finish_reason=reply.finish_reason, usage=reply.usage)
        self.failed.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.bar.advance()


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _check_resumable(output: Output, settings: _Settings) -> None:
    """Refuse to mix replies to different questions (model, system prompt, suffix) in one OUT."""
    if output.first is None:
        return
    params = output.first.get("params") or {}
    for what, old, new in (
        ("--model", output.first.get("model"), settings.model),
        ("--system", params.get("system"), settings.system),
        ("--prompt-suffix", params.get("prompt_suffix"), settings.prompt_suffix),
    ):
        if old != new:
            raise UserError(
                f"{output.path} holds replies made with {what} {old!r}, not {new!r}; resume with the "
                "same options, or write to another --out"
            )


def _distill_key(record: dict[str, Any]) -> tuple[str, int]:
    return record["key"], record["sample"]


class Output:
    """OUT opened for appending under an exclusive lock; the keys of the records already there are in ``done``.

    ``key_of`` reads a record's key (a KeyError/TypeError means the line is not ours); ``command`` names the
    command that writes such files, for messages.
    """

    def __init__(
        self,
        path: Path,
        log: Callable[[str], None],
        *,
        key_of: Callable[[dict[str, Any]], tuple[str, int]] = _distill_key,
        command: str = "distill",
    ) -> None:
        self.path = path
        self._log = log
        self._key_of = key_of
        self._command = command
        self.done: set[tuple[str, int]] = set()
        self.first: dict[str, Any] | None = None

    def __enter__(self) -> Output:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserError(f"--out {self.path}: cannot write it: {err.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._load()
        except BlockingIOError:
            os.close(self._fd)
            raise UserError(
                f"{self.path} is being written by another {self._command} run; wait for it to end "
                "or choose another --out"
            ) from None
        except BaseException:
            os.close(self._fd)
            raise
        return self

    def _load(self) -> None:
        """Read the records of an earlier run; cut away a partial last line left by a kill."""
        end = 0  # offset just past the last complete line
        with open(self._fd, "rb", closefd=False) as f:
            f.seek(0)
            for lineno, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    os.ftruncate(self._fd, end)
                    self._log(
                        f"{self.path}: removed a partial last line ({len(line)} bytes) left by an interrupted run"
                    )
                    break
                end += len(line)
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                    key = self._key_of(record)
                except (orjson.JSONDecodeError, TypeError, KeyError):
                    raise UserError(
                        f"{self.path}:{lineno}: not a record written by {self._command}; choose another --out"
                    ) from None
                self.done.add(key)
                if self.first is None:
                    self.first = record

    def write(self, data: bytes) -> None:
        """Append one whole line (a kill -9 cannot split a single write of a regular file)."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as err:
            raise UserError(f"cannot write {self.path}: {err.strerror}") from None

    def __exit__(self, *exc: object) -> None:
        try:
            if self._created and os.fstat(self._fd).st_size == 0:
                self.path.unlink(missing_ok=True)  # nothing was written: leave no trace of a failed start
            else:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)


class Failures:
    """The failures file: created at the first failure, a line flushed per failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def write(self, line: bytes) -> None:
        if self._file is None:
            try:
                self._file = open(self.path, "wb")  # noqa: SIM115 — kept open for the run, closed in __exit__
            except OSError as err:
                raise UserError(f"cannot write the failures file {self.path}: {err.strerror}") from None
        self._file.write(line)
        self._file.flush()

    def __enter__(self) -> Failures:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


class Progress:
    """A tqdm bar over the requests of this run, with failed/retried counts and tokens in its postfix."""

    def __init__(self, report: DistillReport, *, enabled: bool, desc: str = "distill") -> None:
        self._report = report
        self._bar: Any = None
        self._postfix_at = 0.0
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=report.pending,
                unit="req",
                desc=desc,
                file=sys.stderr,
                disable=None,
                mininterval=0.5,
                dynamic_ncols=True,
            )

    def around(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log`` writing above the bar instead of through it."""
        if self._bar is None:
            return log

        def log_above(msg: str) -> None:
            with self._bar.external_write_mode(file=sys.stderr):
                log(msg)

        return log_above

    def advance(self) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if now - self._postfix_at > 0.5:  # formatting the postfix costs more than the update itself
            self._postfix_at = now
            self._bar.set_postfix_str(self._postfix(), refresh=False)
        self._bar.update()

    def _postfix(self) -> str:
        r = self._report
        return (
            f"done={r.done} failed={sum(r.failed.values())} retried={sum(r.retried.values())} "
            f"tok={_human(r.prompt_tokens + r.completion_tokens)}"
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.close()


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


async def run_workers(jobs: Iterator[_T], handle: Callable[[_T], Awaitable[None]], count: int) -> None:
    """``count`` workers handling the jobs of one iterator (``next`` never awaits, so they can share it), started
    over RAMP_S. A fatal error (bad key, URL) or Ctrl-C cancels the others before the caller closes its session."""

    async def worker(delay: float) -> None:
        await asyncio.sleep(delay)
        for job in jobs:
            await handle(job)

    workers = [asyncio.ensure_future(worker(i * RAMP_S / count)) for i in range(count)]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def run_coroutine(coro: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run``, also from inside a running loop (a notebook cell): then on a fresh loop in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def format_summary(report: DistillReport) -> str:
    """The closing lines: records, failures and retries by reason, tokens, cost."""
    failed = sum(report.failed.values())
    lines = [
        f"{'records planned':<22}{report.planned:>10}  ({report.already_done} already in {report.out})",
        f"{'written this run':<22}{report.done:>10}  → {report.out}",
        f"{'failed':<22}{failed:>10}" + (f"  → {report.failures_file}" if failed else ""),
    ]
    lines += [f"  {reason:<20}{count:>10}" for reason, count in report.failed.most_common()]
    retried = sum(report.retried.values())
    lines.append(
        f"{'retried attempts':<22}{retried:>10}"
        + (
            "  (" + ", ".join(f"{reason} {count}" for reason, count in report.retried.most_common()) + ")"
            if retried
            else ""
        )
    )
    if report.invalid or report.duplicates:
        lines.append(
            f"{'skipped SRC records':<22}{report.invalid + report.duplicates:>10}  "
            f"({report.invalid} unreadable, {report.duplicates} repeated prompts)"
        )
    lines.append(
        f"{'tokens':<22}prompt {report.prompt_tokens:,} (cached {report.cached_tokens:,}), completion "
        f"{report.completion_tokens:,} (reasoning {report.reasoning_tokens:,})"
    )
    if report.cost is not None:
        lines.append(
            f"{'cost':<22}${report.cost:,.4f} at ${report.price_in or 0:g}/M prompt, "
            f"${report.price_out or 0:g}/M completion tokens"
        )
    rate = (report.done + failed) / report.seconds if report.seconds else 0.0
    lines.append(f"{'time':<22}{report.seconds:,.1f} s ({rate:,.1f} requests/s)")
    return "\n".join(lines)
