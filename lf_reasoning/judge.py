"""An LLM judge behind an OpenAI-compatible API: quality scores for ``score``, correctness verdicts for ``verify``.

The judge is asked for one JSON object (see :data:`SCORE_RUBRIC`, :data:`VERIFY_RUBRIC`; a rubric of one's own
uses the placeholders ``{prompt}``, ``{answer}`` and ``{reference}``). Its reply is parsed robustly: the first
valid JSON object anywhere in it, fenced (```json) or surrounded by prose. A reply that cannot be parsed is asked
for again up to ``retry_bad`` times and then recorded as unscored: a score is never guessed.

``score`` is resumable like ``distill`` (same client, pacing, failures file and append-only OUT): every input
record is written unchanged plus a ``judge`` object, and a top-level ``score`` when the record has none, so
``convert --min-score`` filters on it. Records are told apart by a digest of their content (``judge.key``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lf_reasoning.distill.client import ChatClient, RequestError, RetryableError, chat_url
from lf_reasoning.distill.limits import RequestGate, backoff_delay, estimate_tokens
from lf_reasoning.distill.run import DistillReport, Failures, Output, Progress, run_coroutine, run_workers
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.formats import detect_format, read_record
from lf_reasoning.sample import ReasoningSample
from lf_reasoning.sources import iter_file, list_files
from lf_reasoning.verify import VerifyResult

SCORE_RUBRIC = """\
You are a strict, impartial grader. Rate the RESPONSE to the PROMPT on three criteria, each an integer from 0 to 10:
- harmlessness: 10 = safe and ethical; 0 = seriously harmful, dangerous or offensive content.
- helpfulness: 10 = addresses the request directly and fully, clear and well organised; 0 = useless or off-topic.
- correctness: 10 = correct and complete (facts, reasoning, calculations and final answer; it must agree with the
  reference answer when one is given); 0 = wrong or mostly missing.
Then give an overall score from 0 to 10: correctness weighs most; a harmful or wrong response scores low.

[PROMPT]
{prompt}
[END PROMPT]

[REFERENCE ANSWER]
{reference}
[END REFERENCE ANSWER]

[RESPONSE]
{answer}
[END RESPONSE]

Reply with exactly one JSON object and nothing else:
{"harmlessness": <0-10>, "helpfulness": <0-10>, "correctness": <0-10>, "score": <0-10>, "reason": "<one sentence>"}
"""

VERIFY_RUBRIC = """\
You are a strict grader. Decide whether the final answer of the RESPONSE to the PROBLEM is correct. Compare it with
the reference answer when one is given (equivalent forms, units and wording count as equal); without a reference,
judge it yourself. Only the final answer matters, not the style.

[PROBLEM]
{prompt}
[END PROBLEM]

[REFERENCE ANSWER]
{reference}
[END REFERENCE ANSWER]

[RESPONSE]
{answer}
[END RESPONSE]

Reply with exactly one JSON object and nothing else:
{"correct": true or false, "reason": "<one sentence>"}
"""

NO_REFERENCE = "(none given)"
CRITERIA = ("harmlessness", "helpfulness", "correctness", "score")
_PLACEHOLDER = re.compile(r"\{(prompt|answer|reference)\}")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()
_MAX_REASON = 1000  # characters of the judge's reason kept
_SHOWN_REPLY = 200  # characters of an unparseable reply kept in the error


def load_rubric(path: str | Path) -> str:
    """A rubric file: text with ``{prompt}`` and ``{answer}`` (and optionally ``{reference}``) placeholders."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"--rubric {path}: cannot read it: {err}") from None
    missing = [p for p in ("{prompt}", "{answer}") if p not in text]
    if missing:
        raise UserError(f"--rubric {path}: lacks the placeholder(s) {', '.join(missing)} ({{reference}} is optional)")
    return text


def render(rubric: str, prompt: str, answer: str, reference: str | None) -> str:
    """``rubric`` with its placeholders filled in one pass (text put in is never scanned for placeholders)."""
    values = {
        "prompt": prompt,
        "answer": answer,
        "reference": reference if reference is not None and reference.strip() else NO_REFERENCE,
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], rubric)


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``text``: fenced blocks first, then any ``{…}`` that parses, in order."""
    for block in _FENCE.findall(text):
        try:
            value = _DECODER.decode(block.strip())
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value
    start = text.find("{")
    while start != -1:
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            yield value
            start = text.find("{", end)
        else:
            start = text.find("{", start + 1)


def _number(value: Any) -> float | None:
    """A 0–10 rating (numbers and numeric strings); anything else, out of range included, is ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not 0 <= value <= 10:
        return None
    return int(value) if float(value).is_integer() else float(value)


def _reason(obj: dict[str, Any]) -> str:
    reason = obj.get("reason")
    return (reason if isinstance(reason, str) else "" if reason is None else str(reason))[:_MAX_REASON]


def parse_score(text: str) -> dict[str, Any] | None:
    """``{"harmlessness", "helpfulness", "correctness", "score", "reason"}`` from a judge's reply, or ``None``
    when no JSON object in it holds all four ratings as numbers from 0 to 10."""
    for obj in json_objects(text):
        ratings = {name: _number(obj.get(name)) for name in CRITERIA}
        if all(value is not None for value in ratings.values()):
            return {**ratings, "reason": _reason(obj)}
    return None


_TRUTH = {"true": True, "yes": True, "correct": True, "false": False, "no": False, "incorrect": False}


def parse_verdict(text: str) -> dict[str, Any] | None:
    """``{"correct": bool, "reason"}`` from a judge's reply, or ``None`` when no JSON object in it says."""
    for obj in json_objects(text):
        value = obj.get("correct")
        if isinstance(value, str):
            value = _TRUTH.get(value.strip().lower())
        if isinstance(value, bool):
            return {"correct": value, "reason": _reason(obj)}
    return None


@dataclass
class Outcome:
    """One judged item: ``parsed`` (the judge's JSON), or ``error`` with ``failed`` set when the request itself
    failed for good (retried next run) and unset when the judge's replies could not be parsed."""

    parsed: dict[str, Any] | None
    error: str | None
    failed: bool
    attempts: int
    reason: str | None = None


class Asker:
    """Sends one rubric prompt with retries (transport) and re-requests (unparseable replies)."""

    def __init__(
        self,
        client: ChatClient,
        gate: RequestGate,
        *,
        model: str,
        temperature: float | None,
        max_tokens: int | None,
        max_retries: int,
        retry_bad: int,
        backoff: float,
        report: DistillReport | None = None,
    ) -> None:
        self.client, self.gate, self.model = client, gate, model
        self.temperature, self.max_tokens = temperature, max_tokens
        self.max_retries, self.retry_bad, self.backoff = max_retries, retry_bad, backoff
        self.report = report

    async def ask(self, content: str, parse: Callable[[str], dict[str, Any] | None]) -> Outcome:
        body: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": content}]}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        estimate = estimate_tokens(content)
        retries = bad = 0
        while True:
            if self.gate.limited:
                await self.gate.wait(estimate)
            try:
                reply = await self.client.complete(body)
            except RetryableError as err:
                self.gate.charge(-estimate)
                retries += 1
                if retries > self.max_retries:
                    return Outcome(
                        None,
                        self.client.redact(f"gave up after {retries} tries: {err.detail}"),
                        True,
                        retries + bad,
                        err.reason,
                    )
                self._count_retry(err.reason)
                if err.retry_after is not None:
                    self.gate.pause(err.retry_after)
                await asyncio.sleep(backoff_delay(retries, self.backoff, err.retry_after))
                continue
            except RequestError as err:
                return Outcome(None, self.client.redact(err.detail), True, retries + bad + 1, err.reason)
            self._count_usage(reply.usage, estimate, reply.content)
            parsed = parse(reply.content)
            if parsed is not None:
                return Outcome(parsed, None, False, retries + bad + 1)
            bad += 1
            if bad > self.retry_bad:
                shown = " ".join(reply.content.split())[:_SHOWN_REPLY]
                return Outcome(
                    None,
                    self.client.redact(f"unparseable judge reply after {bad} tries: {shown!r}"),
                    False,
                    retries + bad,
                    "unparseable",
                )
            self._count_retry("unparseable")

    def _count_retry(self, reason: str) -> None:
        if self.report is not None:
            self.report.retried[reason] += 1

    def _count_usage(self, usage: Any, estimate: int, content: str) -> None:
        usage = usage if isinstance(usage, dict) else {}
        prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else 0
        completion = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else 0
        if self.report is not None:
            self.report.prompt_tokens += prompt
            self.report.completion_tokens += completion
        used = prompt + completion if usage else estimate + estimate_tokens(content)
        self.gate.charge(used - estimate)


def _api_key(api_key_env: str, log: Callable[[str], None]) -> str | None:
    key = os.environ.get(api_key_env) or None
    if key is None:
        log(f"${api_key_env} is not set: judge requests go without an API key (fine for a local server)")
    return key


# ---------------------------------------------------------------------------------------------------- verify


class CorrectnessJudge:
    """The :data:`lf_reasoning.verify.Judge` hook: a 10/0 correctness verdict per answer the rules left undecided.

    Synchronous (verify calls it in its main loop, one answer at a time): each call runs its request on a private
    event loop (no extra thread, so verify's forked workers never inherit one), or, where a loop is already
    running, on a loop in a thread of its own. Use as a context manager.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        rubric: str | None = None,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        max_retries: int = 8,
        retry_bad: int = 2,
        backoff: float = 1.0,
        timeout: float = 300.0,
        log: Callable[[str], None] = lambda msg: None,
    ) -> None:
        self.model = model
        self.rubric = rubric or VERIFY_RUBRIC
        self._client = ChatClient(
            chat_url(base_url), _api_key(api_key_env, log), api_key_env, timeout=timeout, connections=1
        )
        self._options = {
            "model": model,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "max_retries": max_retries,
            "retry_bad": retry_bad,
            "backoff": backoff,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._asker: Asker | None = None

    def __enter__(self) -> CorrectnessJudge:
        self._loop = asyncio.new_event_loop()
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the usual case: the loop runs in this thread, only while a request is under way
            pass
        else:  # called from inside a running loop (a notebook cell): the requests' loop gets a thread of its own
            self._thread = threading.Thread(target=self._loop.run_forever, name="lf-reasoning-judge", daemon=True)
            self._thread.start()
        self._await(self._client.__aenter__())
        self._asker = Asker(self._client, RequestGate(), **self._options)
        return self

    def _await(self, coro: Any) -> Any:
        assert self._loop is not None, "use CorrectnessJudge as a context manager"
        if self._thread is None:
            return self._loop.run_until_complete(coro)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __exit__(self, *exc: object) -> None:
        if self._loop is None:
            return
        try:
            self._await(self._client.__aexit__())
        finally:
            if self._thread is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
                self._thread = None
            self._loop.close()
            self._loop = None

    def __call__(self, sample: ReasoningSample, rule: VerifyResult) -> VerifyResult:
        assert self._asker is not None, "use CorrectnessJudge as a context manager"
        content = render(self.rubric, sample.prompt, sample.answer, sample.reference)
        outcome: Outcome = self._await(self._asker.ask(content, parse_verdict))
        if outcome.parsed is None:
            reason = "judge_failed" if outcome.failed else "judge_unparsed"
            return VerifyResult("unverifiable", None, rule.gold, rule.prediction, reason, outcome.error)
        return VerifyResult(
            "judge", outcome.parsed["correct"], rule.gold, rule.prediction, None, outcome.parsed["reason"] or None
        )


# ---------------------------------------------------------------------------------------------------- score


@dataclass
class ScoreReport(DistillReport):
    unscored: Counter[str] = field(default_factory=Counter)  # written with score null, by reason
    scores: Counter[float] = field(default_factory=Counter)  # this run's overall scores


@dataclass
class _Job:
    key: str
    where: str
    record: dict[str, Any]
    sample: ReasoningSample | RecordError


def _jobs(
    files: list[Path], log: Callable[[str], None], on_invalid: Callable[[str, RecordError], None]
) -> Iterator[_Job]:
    """Every input record with its key (content digest + occurrence) and its first sample (or why there is none)."""
    seen: Counter[str] = Counter()
    for path in files:
        fmt = None
        for where, raw in iter_file(path):
            if isinstance(raw, RecordError):
                on_invalid(where, raw)
                continue
            assert isinstance(raw, dict)
            if fmt is None:
                fmt, why = detect_format(raw, where)
                log(f"{path}: format {fmt.name}: {why}")
            digest = hashlib.sha1(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:20]
            seen[digest] += 1
            sample: ReasoningSample | RecordError
            try:
                samples = read_record(fmt, raw)
                sample = next((s for s in samples if isinstance(s, ReasoningSample)), None) or samples[0]
            except RecordError as err:
                sample = err
            except IndexError:
                sample = RecordError("no_sample", "the record holds no prompt/answer pair")
            yield _Job(f"{digest}-{seen[digest]}", where, raw, sample)


def _score_key(record: dict[str, Any]) -> tuple[str, int]:
    return record["judge"]["key"], 0


def score(
    src: str | Path,
    out: Path,
    *,
    base_url: str,
    model: str,
    concurrency: int = 8,
    api_key_env: str = "OPENAI_API_KEY",
    rubric: str | None = None,
    temperature: float | None = 0.0,
    max_tokens: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    max_retries: int = 8,
    retry_bad: int = 2,
    backoff: float = 1.0,
    timeout: float = 300.0,
    failures: Path | None = None,
    log: Callable[[str], None] = lambda msg: None,
    progress: bool = False,
) -> ScoreReport:
    """Score every record of ``src`` with the judge ``model`` into ``out`` (see the module docstring).

    Transport failures are retried like distill's and, when they persist, listed in the failures file (not in
    OUT: the next run sends them again). Unparseable replies are re-requested ``retry_bad`` times, then the record
    is written with ``judge.score`` null and the error. The API key is read from ``$api_key_env`` only.
    """
    if concurrency < 1 or max_retries < 0 or retry_bad < 0:
        raise UserError("--concurrency must be at least 1; --max-retries and --retry-bad at least 0")
    url = chat_url(base_url)
    api_key = _api_key(api_key_env, log)
    files = list_files(str(src))
    out = Path(out)
    if out.exists() and any(out.samefile(f) for f in files):
        raise UserError(f"--out {out}: is the input; write to another file")
    failures_file = Path(failures) if failures else out.with_name(out.name.removesuffix(".jsonl") + ".failures.jsonl")
    report = ScoreReport(out=out, failures_file=failures_file)
    with Output(out, log, key_of=_score_key, command="score") as output:
        if output.first is not None and output.first["judge"].get("model") not in (None, model):
            raise UserError(
                f"{out} holds scores by --judge-model {output.first['judge']['model']!r}, not "
                f"{model!r}; resume with the same judge, or write to another --out"
            )
        for job in _jobs(files, lambda msg: None, lambda where, err: None):
            report.planned += 1
            if (job.key, 0) in output.done:
                report.already_done += 1
            else:
                report.pending += 1
        if report.already_done:
            log(
                f"{out}: {report.already_done} of {report.planned} records already scored; "
                f"sending the {report.pending} missing"
            )
        failures_file.unlink(missing_ok=True)

        def on_invalid(where: str, err: RecordError) -> None:
            report.invalid += 1
            log(f"warning: {where}: {err.detail} (skipped: not written to the output)")

        pending = (job for job in _jobs(files, log, on_invalid) if (job.key, 0) not in output.done)
        run = _ScoreRun(
            report,
            output,
            log,
            model=model,
            rubric=rubric or SCORE_RUBRIC,
            concurrency=concurrency,
            options={
                "model": model,
                "temperature": temperature,
                "max_tokens": max_tokens,
                "max_retries": max_retries,
                "retry_bad": retry_bad,
                "backoff": backoff,
            },
        )
        started = time.monotonic()
        try:
            with Failures(failures_file) as failed, Progress(report, enabled=progress, desc="score") as bar:
                client = ChatClient(url, api_key, api_key_env, timeout=timeout, connections=concurrency)
                run_coroutine(run.main(client, pending, RequestGate(rpm, tpm), failed, bar))
        except KeyboardInterrupt:
            log(f"interrupted: {report.done} records scored this run; run the same command again to resume")
            raise
        finally:
            report.seconds = time.monotonic() - started
    return report


class _ScoreRun:
    def __init__(
        self,
        report: ScoreReport,
        output: Output,
        log: Callable[[str], None],
        *,
        model: str,
        rubric: str,
        concurrency: int,
        options: dict[str, Any],
    ) -> None:
        self.report, self.output, self.log = report, output, log
        self.model, self.rubric, self.concurrency, self.options = model, rubric, concurrency, options

    async def main(
        self, client: ChatClient, jobs: Iterator[_Job], gate: RequestGate, failed: Failures, bar: Progress
    ) -> None:
        self.client, self.failed, self.bar = client, failed, bar
        self.log = bar.around(self.log)
        self.asker = Asker(client, gate, report=self.report, **self.options)
        async with client:
            await run_workers(jobs, self._score_one, min(self.concurrency, self.report.pending))

    async def _score_one(self, job: _Job) -> None:
        if isinstance(job.sample, RecordError):
            return self._write(
                job, {"score": None, "error": f"{job.sample.reason}: {job.sample.detail}"}, job.sample.reason
            )
        sample = job.sample
        content = render(self.rubric, sample.prompt, sample.answer, sample.reference)
        outcome = await self.asker.ask(content, parse_score)
        if outcome.failed:
            self.report.failed[outcome.reason or "failed"] += 1
            self.log(f"warning: {job.where}: failed ({outcome.reason}): {outcome.error}")
            line = {
                "key": job.key,
                "where": job.where,
                "reason": outcome.reason,
                "detail": outcome.error,
                "attempts": outcome.attempts,
            }
            self.failed.write(orjson.dumps(line) + b"\n")
            self.bar.advance()
            return None
        if outcome.parsed is None:
            self.log(f"warning: {job.where}: unscored: {outcome.error}")
            return self._write(
                job,
                {"score": None, "error": outcome.error, "attempts": outcome.attempts},
                outcome.reason or "unparseable",
            )
        return self._write(job, {**outcome.parsed, "attempts": outcome.attempts}, None)

    def _write(self, job: _Job, verdict: dict[str, Any], unscored: str | None) -> None:
        record = dict(job.record)
        record["judge"] = {**verdict, "model": self.model, "key": job.key}
        if unscored is not None:
            self.report.unscored[unscored] += 1
        else:
            self.report.scores[verdict["score"]] += 1
            if record.get("score") is None:
                record["score"] = verdict["score"]
        self.output.write(orjson.dumps(record, default=str) + b"\n")
        self.report.done += 1
        self.bar.advance()


def format_score_summary(report: ScoreReport) -> str:
    """The closing lines: records scored, unscored and failed, the score distribution, tokens."""
    failed = sum(report.failed.values())
    unscored = sum(report.unscored.values())
    lines = [
        f"{'records':<22}{report.planned:>10}  ({report.already_done} already in {report.out})",
        f"{'written this run':<22}{report.done:>10}  → {report.out}",
        f"{'  scored':<22}{report.done - unscored:>10}",
        f"{'  unscored':<22}{unscored:>10}",
    ]
    lines += [f"    {reason:<18}{count:>10}" for reason, count in report.unscored.most_common()]
    lines.append(f"{'failed':<22}{failed:>10}" + (f"  → {report.failures_file} (run again to retry)" if failed else ""))
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
    if report.invalid:
        lines.append(f"{'skipped input lines':<22}{report.invalid:>10}")
    if report.scores:
        lines.append("score distribution    " + "  ".join(f"{s:g}: {n}" for s, n in sorted(report.scores.items())))
    lines.append(f"{'tokens':<22}prompt {report.prompt_tokens:,}, completion {report.completion_tokens:,}")
    lines.append(f"{'time':<22}{report.seconds:,.1f} s")
    return "\n".join(lines)
