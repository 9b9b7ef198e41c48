"""One resumable run of API requests: workers sharing one iterator of jobs, the progress bar, the failures file."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from lf_reasoning.api.limits import RequestGate
from lf_reasoning.api.options import RequestOptions
from lf_reasoning.api.output import Failures, Output
from lf_reasoning.api.report import RunReport
from lf_reasoning.api.retry import Asker
from lf_reasoning.errors import RecordError
from lf_reasoning.paths import REJECTS_FILE, Target, check_targets

if TYPE_CHECKING:
    from lf_reasoning.record.inputs import Inputs

# Workers start spread over this many seconds, not at once: a burst of simultaneous requests is what rate limiters
# punish, and with similar latencies its replies keep coming back in bursts that queue behind each other.
RAMP_S = 0.25
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Session:
    """What the workers of one run share: the retry loop, OUT, the failures file, the bar and a log above it."""

    asker: Asker
    report: RunReport
    output: Output[Any]
    failures: Failures
    bar: Progress
    log: Callable[[str], None]

    def write(self, line: bytes) -> None:
        """Append one finished record (a whole line) to OUT."""
        self.output.write(line)
        self.report.done += 1
        self.bar.advance()

    def fail(self, what: str, error: RecordError, line: dict[str, Any]) -> None:
        """A request failed for good: counted, logged and listed in the failures file (the next run retries it)."""
        self.report.failed[error.reason] += 1
        self.log(f"warning: {what}: failed ({error.reason}): {error.detail}")
        self.failures.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
        self.bar.advance()


def check_run_files(report: RunReport, files: Sequence[Path | str], inputs: Inputs) -> None:
    """OUT and the failures file are neither inputs nor inside an input folder nor one file; an existing
    failures file must be one (it is replaced when the run starts)."""
    check_targets(
        [Target("--out", report.out), Target("--failures", report.failures_file, ours=REJECTS_FILE)],
        inputs=files,
        sources=inputs.sources,
        force_hint="remove it",
    )


def run_requests(
    options: RequestOptions,
    report: RunReport,
    output: Output[Any],
    jobs: Iterator[_T],
    handle: Callable[[Session, _T], Awaitable[None]],
    *,
    api_key: str | None,
    command: str,
    log: Callable[[str], None],
    progress: bool,
    verb: str = "written",
) -> None:
    """Handle the ``report.pending`` ``jobs`` with ``options.concurrency`` workers; ``report.seconds`` is set
    even when a fatal error or Ctrl-C ends the run. The failures file of the previous run goes first: its requests
    are among the jobs."""
    report.failures_file.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        with Failures(report.failures_file) as failures, Progress(report, enabled=progress, desc=command) as bar:
            asker = Asker(options.client(api_key), RequestGate(options.rpm, options.tpm), options, report)
            session = Session(asker, report, output, failures, bar, bar.around(log))
            run_coroutine(_serve(session, jobs, handle, min(options.concurrency, report.pending)))
    except KeyboardInterrupt:
        log(f"interrupted: {report.done} records {verb} this run; run the same command again to resume")
        raise
    finally:
        report.seconds = time.monotonic() - started


async def _serve(
    session: Session, jobs: Iterator[_T], handle: Callable[[Session, _T], Awaitable[None]], count: int
) -> None:
    async with session.asker.client:
        await run_workers(jobs, lambda job: handle(session, job), count)


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


class Progress:
    """A tqdm bar over the requests of this run, with failed/retried counts and tokens in its postfix."""

    def __init__(self, report: RunReport, *, enabled: bool, desc: str) -> None:
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
