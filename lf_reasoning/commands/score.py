"""``score``: every record rated 0-10 by an LLM judge (:mod:`lf_reasoning.api.judge`), resumably.

Resumable like ``distill`` (same client, pacing, failures file and append-only OUT): every input record is
written unchanged plus a ``judge`` object, and a top-level ``score`` when the record has none, so
``convert --min-score`` filters on it. Records are told apart by a digest of their content (``judge.key``).
Transport failures that persist are listed in the failures file, not in OUT: the next run sends them again. A
reply that cannot be parsed is asked for again, then the record is written with ``judge.score`` null and the error.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from lf_reasoning.api.judge import SCORE_RUBRIC, ask_judge, parse_score, render, rubric_id
from lf_reasoning.api.options import RequestOptions
from lf_reasoning.api.output import Output
from lf_reasoning.api.report import RunReport, reason_lines, retried_line
from lf_reasoning.api.runner import Session, check_run_files, run_requests
from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import Format, read_record
from lf_reasoning.record.inputs import Inputs, iter_inputs
from lf_reasoning.record.sample import ReasoningSample


@dataclass(frozen=True)
class ScoreOptions:
    """What ``score`` reads, whom it asks (see :func:`~lf_reasoning.api.judge.judge_options`) and with what."""

    inputs: Inputs
    request: RequestOptions
    rubric: str | None = None  # text with {prompt}, {answer} (and {reference}) placeholders; None: SCORE_RUBRIC


@dataclass(kw_only=True)
class ScoreReport(RunReport):
    unscored: Counter[str] = field(default_factory=Counter)  # written with score null, by reason
    scores: Counter[float] = field(default_factory=Counter)  # this run's overall scores


class _Job(NamedTuple):
    key: str  # content digest + occurrence
    where: str
    record: dict[str, Any]
    sample: ReasoningSample | RecordError  # the record's first usable sample, or why there is none


def score(
    options: ScoreOptions, out: Path, *, log: Callable[[str], None] = lambda msg: None, progress: bool = False
) -> ScoreReport:
    """Score every record of ``options.inputs`` with the judge into ``out`` (see the module docstring). The API
    key is read from ``$api_key_env`` only."""
    request = options.request
    api_key = request.api_key(log, "judge requests")
    files = options.inputs.files()
    out = Path(out)
    report = ScoreReport(out=out, failures_file=request.failures_file(out))
    check_run_files(report, files, options.inputs)
    run = _Score(options, files, report, log)
    with Output(
        out,
        log,
        key_of=lambda record: record["judge"]["key"],
        command="score",
        made_with=_made_with,
        this_run={"--judge-model": request.model, "--rubric": run.rubric_id},
    ) as output:
        run.plan(output.done)
        run_requests(
            request,
            report,
            output,
            run.jobs(output.done),
            run.handle,
            api_key=api_key,
            command="score",
            log=log,
            progress=progress,
            verb="scored",
        )
    return report


def _made_with(record: dict[str, Any]) -> dict[str, Any]:
    """The judge and rubric a scored record was made with (files written before the rubric was kept lack it)."""
    judge = record["judge"]
    return {"--judge-model": judge.get("model"), "--rubric": judge.get("rubric")}


def _jobs(
    inputs: Inputs,
    files: list[Path | str],
    on_invalid: Callable[[str, RecordError], None],
    log: Callable[[str], None] = lambda msg: None,
) -> Iterator[_Job]:
    """Every input record with its key and first sample; the formats go to ``log``."""

    def on_format(src: str, fmt: Format, why: str) -> None:
        log(f"{src}: format {fmt.name}: {why}")

    seen: Counter[str] = Counter()  # identical records are each scored: the key counts occurrences
    for where, raw, fmt in iter_inputs(inputs, on_format=on_format, sources=files):
        if isinstance(raw, RecordError):
            on_invalid(where, raw)
            continue
        assert isinstance(raw, dict) and fmt is not None, "iter_inputs without lazy yields parsed records"
        digest = hashlib.sha1(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:20]
        seen[digest] += 1
        yield _Job(f"{digest}-{seen[digest]}", where, raw, first_sample(fmt, raw))


def first_sample(fmt: Format, raw: dict[str, Any]) -> ReasoningSample | RecordError:
    """The record's first usable sample (with the verdicts it carries), or why it has none (score and grade judge
    one answer per record: an OpenR1 record's first usable generation)."""
    try:
        samples = read_record(fmt, raw)
    except RecordError as err:
        return err
    if not samples:
        return RecordError("no_sample", "the record holds no prompt/answer pair")
    return next((s for s in samples if isinstance(s, ReasoningSample)), samples[0])


class _Score:
    """One run: a planning pass over the inputs, then a job per record missing from OUT."""

    def __init__(
        self, options: ScoreOptions, files: list[Path | str], report: ScoreReport, log: Callable[[str], None]
    ) -> None:
        self.inputs = options.inputs
        self.files = files
        self.rubric = options.rubric or SCORE_RUBRIC
        # kept in every record: a resume with another rubric is refused (its records would not be re-scored)
        self.rubric_id = rubric_id(options.rubric)
        self.model = options.request.model
        self.report = report
        self.log = log

    def plan(self, done: set[str]) -> None:
        """Count what is planned and missing (for the progress bar and the report)."""
        self.report.plan((job.key for job in _jobs(self.inputs, self.files, lambda where, err: None)), done)
        if self.report.already_done:
            self.log(
                f"{self.report.out}: {self.report.already_done} of {self.report.planned} records already scored; "
                f"sending the {self.report.pending} missing"
            )

    def jobs(self, done: set[str]) -> Iterator[_Job]:
        """The second pass: what OUT lacks; formats are logged, unreadable records counted and named here."""

        def on_invalid(where: str, err: RecordError) -> None:
            self.report.invalid += 1
            self.log(f"warning: {where}: {err.detail} (skipped: not written to the output)")

        return (job for job in _jobs(self.inputs, self.files, on_invalid, self.log) if job.key not in done)

    async def handle(self, session: Session, job: _Job) -> None:
        if isinstance(job.sample, RecordError):
            error = job.sample
            return self._write(session, job, {"score": None, "error": f"{error.reason}: {error.detail}"}, error.reason)
        sample = job.sample
        outcome = await ask_judge(
            session.asker, render(self.rubric, sample.prompt, sample.answer, sample.reference), parse_score
        )
        if outcome.value is not None:
            return self._write(session, job, {**outcome.value, "attempts": outcome.attempts}, None)
        error = outcome.error
        assert error is not None
        if outcome.failed:
            line = {"key": job.key, "where": job.where, "reason": error.reason, "detail": error.detail}
            return session.fail(job.where, error, {**line, "attempts": outcome.attempts})
        session.log(f"warning: {job.where}: unscored: {error.detail}")
        verdict = {"score": None, "error": error.detail, "attempts": outcome.attempts}
        return self._write(session, job, verdict, error.reason)

    def _write(self, session: Session, job: _Job, verdict: dict[str, Any], unscored: str | None) -> None:
        record = dict(job.record)
        record["judge"] = {**verdict, "model": self.model, "rubric": self.rubric_id, "key": job.key}
        if unscored is not None:
            self.report.unscored[unscored] += 1
        else:
            self.report.scores[verdict["score"]] += 1
            if record.get("score") is None:
                record["score"] = verdict["score"]
        session.write(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE))


def format_score_summary(report: ScoreReport) -> str:
    """The closing lines: records scored, unscored and failed, the score distribution, tokens."""
    failed = sum(report.failed.values())
    unscored = sum(report.unscored.values())
    lines = [
        f"{'records':<22}{report.planned:>10}  ({report.already_done} already in {report.out})",
        f"{'written this run':<22}{report.done:>10}  → {report.out}",
        f"{'  scored':<22}{report.done - unscored:>10}",
        f"{'  unscored':<22}{unscored:>10}",
        *reason_lines(report.unscored, 4),
        f"{'failed':<22}{failed:>10}" + (f"  → {report.failures_file} (run again to retry)" if failed else ""),
        *reason_lines(report.failed, 2),
        retried_line(report),
    ]
    if report.invalid:
        lines.append(f"{'skipped input lines':<22}{report.invalid:>10}")
    if report.scores:
        lines.append("score distribution    " + "  ".join(f"{s:g}: {n}" for s, n in sorted(report.scores.items())))
    lines.append(f"{'tokens':<22}prompt {report.prompt_tokens:,}, completion {report.completion_tokens:,}")
    lines.append(f"{'time':<22}{report.seconds:,.1f} s")
    return "\n".join(lines)
