"""``grade``: distilled data checked the way the Chinese-DeepSeek-R1-Distill-data-110k authors checked theirs, in one
resumable command.

Every record takes one of two routes:

- ``math`` (math and exam items: every record with a reference answer, or those ``--math-when COLUMN=REGEX``
  picks): the answer is checked against the reference with Math-Verify, multiple-choice letters as letters, in
  worker processes under a timeout of our own (:mod:`lf_reasoning.answer_check`): 10 right, 0 wrong. Where no rule
  extracts an answer (or the reference is prose, or there is none) or the check times out, the LLM judge decides
  correct (10) or incorrect (0) (:data:`~lf_reasoning.api.judge.VERIFY_RUBRIC`).
- ``general``: the judge rates the answer 0-10 on harmlessness, helpfulness and correctness
  (:data:`~lf_reasoning.api.judge.SCORE_RUBRIC`).

Each record is written to OUT unchanged plus a ``grade`` object (route, method, verdict, score, sub-scores, judge
model, …) and a top-level ``score`` (the grade's; a different score the record had is kept as
``grade.previous_score``), so ``convert --min-score`` and ``--require-verified`` read it whatever the shape. OUT is
append-only and resumed like distill's and score's (:mod:`lf_reasoning.api.output`; a record is known by a digest
of its content, ``grade.key``): a first pass runs Math-Verify and writes what the rules decide, then the judge
requests run concurrently through the one request loop (:func:`~lf_reasoning.api.runner.run_requests`: retries,
rate limits, the API key, the failures file). A judge reply that cannot be parsed is asked for again, then the
record is written ungraded (score null, with the error); a request that fails for good goes to the failures file
and is sent again by the next run.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from lf_reasoning.answer_check import VerifyResult, Workers, quiet_math_verify, unverifiable
from lf_reasoning.api.judge import (
    CRITERIA,
    SCORE_RUBRIC,
    VERIFY_RUBRIC,
    ask_judge,
    parse_score,
    parse_verdict,
    render,
    rubric_id,
)
from lf_reasoning.api.options import RequestOptions
from lf_reasoning.api.output import Output
from lf_reasoning.api.report import RunReport, reason_lines, retried_line
from lf_reasoning.api.retry import Outcome
from lf_reasoning.api.runner import Session, check_run_files, run_requests
from lf_reasoning.commands.score import first_sample
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.plot import new_figure, save_png
from lf_reasoning.record.formats import Format
from lf_reasoning.record.inputs import Inputs, iter_inputs
from lf_reasoning.record.sample import ReasoningSample

ROUTES = ("math", "general")
_ORDER = [("math", "math_verify"), ("math", "judge"), ("general", "rubric")]  # summary rows


@dataclass(frozen=True)
class RouteRule:
    """``--math-when COLUMN=REGEX``: a record is math/exam when its COLUMN matches REGEX (``re.search``)."""

    column: str
    pattern: re.Pattern[str]

    def matches(self, record: dict[str, Any]) -> bool:
        value = record.get(self.column)
        return value is not None and self.pattern.search(str(value)) is not None


def parse_math_when(rules: Sequence[str]) -> tuple[RouteRule, ...]:
    """``["repo_name=math|exam", …]`` → rules; a malformed rule or pattern is a :class:`UserError`."""
    parsed = []
    for rule in rules:
        column, sep, pattern = rule.partition("=")
        if not sep or not column.strip() or not pattern:
            raise UserError(f"--math-when {rule!r}: expected COLUMN=REGEX, e.g. --math-when 'repo_name=math|exam'")
        try:
            parsed.append(RouteRule(column.strip(), re.compile(pattern)))
        except re.error as err:
            raise UserError(f"--math-when {rule!r}: {pattern!r} is not a regular expression ({err})") from None
    return tuple(parsed)


@dataclass(frozen=True)
class GradeOptions:
    """What ``grade`` reads, whom it asks (see :func:`~lf_reasoning.api.judge.judge_options`) and how it routes."""

    inputs: Inputs
    request: RequestOptions  # the judge
    math_when: tuple[str, ...] = ()  # COLUMN=REGEX rules (any matches); empty: a record with a reference is math
    rubric: str | None = None  # the 0-10 rubric ({prompt}, {answer}, {reference}); None: SCORE_RUBRIC
    verify_rubric: str | None = None  # the correct/incorrect question; None: VERIFY_RUBRIC
    workers: int | None = None  # Math-Verify processes; default one per CPU
    math_timeout: float = 10.0  # seconds one Math-Verify check may take

    def __post_init__(self) -> None:
        object.__setattr__(self, "math_when", tuple(self.math_when))
        if self.math_timeout <= 0:
            raise UserError(f"--math-timeout {self.math_timeout:g}: must be more than 0 seconds")
        self.rules  # noqa: B018 — validates --math-when now

    @cached_property
    def rules(self) -> tuple[RouteRule, ...]:
        return parse_math_when(self.math_when)


@dataclass
class Tally:
    """What OUT holds: records by (route, method), right/wrong verdicts, scores, ungraded by reason."""

    methods: Counter[tuple[str, str]] = field(default_factory=Counter)  # graded records
    right: Counter[tuple[str, str]] = field(default_factory=Counter)
    wrong: Counter[tuple[str, str]] = field(default_factory=Counter)
    score_sums: Counter[tuple[str, str]] = field(default_factory=Counter)
    scores: Counter[tuple[str, int]] = field(default_factory=Counter)  # (route, score rounded down) → records
    ungraded: Counter[str] = field(default_factory=Counter)  # written with score null, by reason
    to_judge: Counter[str] = field(default_factory=Counter)  # why Math-Verify left a math record to the judge

    def count(self, grade: dict[str, Any]) -> None:
        route, method, score = grade.get("route"), grade.get("method"), grade.get("score")
        if not isinstance(score, int | float):
            self.ungraded[str(grade.get("error_reason") or "unreadable")] += 1
            return
        key = (str(route), str(method))
        self.methods[key] += 1
        self.score_sums[key] += score
        self.scores[(str(route), int(score))] += 1
        if grade.get("verdict") is True:
            self.right[key] += 1
        elif grade.get("verdict") is False:
            self.wrong[key] += 1
        if grade.get("rule_reason"):
            self.to_judge[grade["rule_reason"]] += 1

    @property
    def graded(self) -> int:
        return sum(self.methods.values())


@dataclass(kw_only=True)
class GradeReport(RunReport):
    """``pending``: the records sent to the judge this run; ``tally``: every record of OUT, earlier runs' too."""

    tally: Tally = field(default_factory=Tally)
    checked: int = 0  # answers Math-Verify checked this run
    ungraded: int = 0  # written ungraded this run (the exit status counts these, not earlier runs')


class _Job(NamedTuple):
    key: str  # content digest + occurrence
    where: str
    record: dict[str, Any]
    sample: ReasoningSample | RecordError  # the record's first usable sample, or why there is none
    route: str | None  # None: the record cannot be read


def grade(
    options: GradeOptions, out: Path, *, log: Callable[[str], None] = lambda msg: None, progress: bool = False
) -> GradeReport:
    """Grade every record of ``options.inputs`` into ``out`` (see the module docstring). The API key is read from
    ``$api_key_env`` only."""
    request = options.request
    api_key = request.api_key(log, "judge requests")
    files = options.inputs.files()
    out = Path(out)
    report = GradeReport(out=out, failures_file=request.failures_file(out))
    check_run_files(report, files, options.inputs)
    quiet_math_verify()
    started = time.monotonic()
    run = _Grade(options, files, report, log)

    def key_of(record: dict[str, Any]) -> str:
        grade, key = record["grade"], record["grade"]["key"]  # a KeyError or TypeError: not grade's output
        report.tally.count(grade)
        return key

    with Output(out, log, key_of=key_of, command="grade", made_with=_made_with, this_run=run.settings) as output:
        run.check_rules(output, progress)
        run_requests(
            request,
            report,
            output,
            run.jobs(output.done),
            run.handle,
            api_key=api_key,
            command="grade",
            log=log,
            progress=progress,
            verb="graded",
        )
    report.seconds = time.monotonic() - started  # both passes
    return report


def _made_with(record: dict[str, Any]) -> dict[str, Any]:
    """The settings a graded record was made with (a rule-decided one names no judge)."""
    grade = record["grade"]
    return {"--judge-model": grade.get("judge_model"), **(grade.get("settings") or {})}


def _has_reference(sample: ReasoningSample | RecordError) -> bool:
    return isinstance(sample, ReasoningSample) and sample.reference is not None and bool(sample.reference.strip())


class _Grade:
    """One run: the Math-Verify pass over the inputs, then a judge request per record still missing from OUT."""

    def __init__(
        self, options: GradeOptions, files: list[Path | str], report: GradeReport, log: Callable[[str], None]
    ) -> None:
        self.options = options
        self.files = files
        self.report = report
        self.log = log
        self.model = options.request.model
        self.rubric = options.rubric or SCORE_RUBRIC
        self.verify_rubric = options.verify_rubric or VERIFY_RUBRIC
        # kept in every record: resuming with another judge, rubric or routing would skip records made otherwise
        self.settings = {
            "--judge-model": self.model,
            "--rubric": rubric_id(options.rubric),
            "--verify-rubric": rubric_id(options.verify_rubric),
            "--math-when": list(options.math_when),
        }
        self.decided: set[str] = set()  # written by the Math-Verify pass
        self.undecided: dict[str, VerifyResult] = {}  # math records the rules left to the judge, with the reason

    def _records(self, on_invalid: Callable[[str, RecordError], None], log: Callable[[str], None]) -> Iterator[_Job]:
        """Every input record with its key, first sample and route; formats go to ``log``."""
        rules = self.options.rules

        def on_format(src: str, fmt: Format, why: str) -> None:
            log(f"{src}: format {fmt.name}: {why}")

        def on_first(src: str, where: str, record: dict[str, Any], fmt: Format) -> None:
            missing = [rule.column for rule in rules if rule.column not in record]
            if missing:  # a misspelt column would route every record the same way: refuse at once
                keys = ", ".join(sorted(record)[:20])
                raise UserError(f"{where}: no column '{missing[0]}' for --math-when; the keys are [{keys}]")

        seen: Counter[str] = Counter()  # identical records are each graded: the key counts occurrences
        inputs = self.options.inputs
        for where, raw, fmt in iter_inputs(inputs, on_format=on_format, on_first=on_first, sources=self.files):
            if isinstance(raw, RecordError):
                on_invalid(where, raw)
                continue
            assert isinstance(raw, dict) and fmt is not None, "iter_inputs without lazy yields parsed records"
            digest = hashlib.sha1(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:20]
            seen[digest] += 1
            sample = first_sample(fmt, raw)
            if isinstance(sample, RecordError):
                route = None
            elif rules:
                route = "math" if any(rule.matches(raw) for rule in rules) else "general"
            else:
                route = "math" if _has_reference(sample) else "general"
            yield _Job(f"{digest}-{seen[digest]}", where, raw, sample, route)

    def check_rules(self, output: Output[str], progress: bool) -> None:
        """The first pass: count the records, check the math route's answers with Math-Verify (in worker processes,
        a deadline each) and write at once those the rules decide; the rest wait for the judge."""
        report, done = self.report, output.done
        n = max(1, min(self.options.workers or os.cpu_count() or 1, 32))
        with ExitStack() as stack:
            pool: Workers | None = None
            bar: Any = None
            for job in self._records(lambda where, err: None, self.log):
                report.planned += 1
                if job.key in done:
                    report.already_done += 1
                    continue
                if job.route != "math" or not _has_reference(job.sample):
                    report.pending += 1
                    continue
                if pool is None:  # started only when there is an answer to check
                    pool = Workers(n, self.options.math_timeout)
                    stack.callback(pool.close)
                    if progress:
                        from tqdm import tqdm

                        bar = stack.enter_context(
                            tqdm(desc="Math-Verify", unit=" answers", file=sys.stderr, disable=None, mininterval=0.5)
                        )
                while not pool.idle:
                    self._collect(pool, output, bar)
                assert isinstance(job.sample, ReasoningSample) and job.sample.reference is not None
                pool.submit(job, job.sample.reference, job.sample.answer)
            while pool is not None and pool.busy:
                self._collect(pool, output, bar)
        if self.decided or report.already_done:
            self.log(
                f"{report.out}: {report.already_done + len(self.decided)} of {report.planned} records graded "
                f"({len(self.decided)} by Math-Verify this run); "
                + (f"asking the judge about the {report.pending} left" if report.pending else "none left for the judge")
            )

    def _collect(self, pool: Workers, output: Output[str], bar: Any) -> None:
        for job, result in pool.collect():
            self.report.checked += 1
            if bar is not None:
                bar.update()
            if result.verdict is None:  # no rule extracts an answer, the reference is prose, or a timeout
                self.undecided[job.key] = result
                self.report.pending += 1
                continue
            grade = {
                "route": "math",
                "method": "math_verify",
                "verdict": result.verdict,
                "score": result.score,
                "gold": result.gold,
                "prediction": result.prediction,
                "judge_model": None,
            }
            output.write(self._line(job, grade))
            self.report.done += 1
            self.decided.add(job.key)

    def jobs(self, done: set[str]) -> Iterator[_Job]:
        """The second pass: what OUT still lacks; unreadable lines are counted and named here."""

        def on_invalid(where: str, err: RecordError) -> None:
            self.report.invalid += 1
            self.log(f"warning: {where}: {err.detail} (skipped: not written to the output)")

        return (
            job
            for job in self._records(on_invalid, lambda msg: None)
            if job.key not in done and job.key not in self.decided
        )

    async def handle(self, session: Session, job: _Job) -> None:
        sample = job.sample
        if isinstance(sample, RecordError):  # written ungraded, with the reader's reason
            self.report.ungraded += 1
            session.log(f"warning: {job.where}: ungraded: {sample.detail}")
            grade = {"route": None, "method": None, "verdict": None, "score": None}
            return session.write(self._line(job, {**grade, "error_reason": sample.reason, "error": sample.detail}))
        if job.route == "math":
            rule = self.undecided.pop(job.key, None)
            if rule is None:
                rule = (
                    unverifiable("unchecked", "the input changed during the run")
                    if _has_reference(sample)
                    else unverifiable("no_reference", "the record has no reference answer")
                )
            content = render(self.verify_rubric, sample.prompt, sample.answer, sample.reference)
            outcome = await ask_judge(session.asker, content, parse_verdict)
            grade = {"route": "math", "method": "judge", "verdict": None, "score": None}
            if outcome.value is not None:
                verdict = outcome.value["correct"]
                grade.update(verdict=verdict, score=10 if verdict else 0)
            grade.update(gold=rule.gold, prediction=rule.prediction, rule_reason=rule.reason)
        else:
            content = render(self.rubric, sample.prompt, sample.answer, sample.reference)
            outcome = await ask_judge(session.asker, content, parse_score)
            grade = {"route": "general", "method": "rubric", "verdict": None, "score": None}
            if outcome.value is not None:
                grade.update({name: outcome.value[name] for name in CRITERIA})
        if outcome.failed:
            return self._fail(session, job, outcome)
        if outcome.value is not None:
            grade["reason"] = outcome.value["reason"] or None
        else:
            assert outcome.error is not None
            self.report.ungraded += 1
            session.log(f"warning: {job.where}: ungraded: {outcome.error.detail}")
            grade.update(error_reason=outcome.error.reason, error=outcome.error.detail)
        grade.update(judge_model=self.model, attempts=outcome.attempts)
        session.write(self._line(job, grade))

    @staticmethod
    def _fail(session: Session, job: _Job, outcome: Outcome[dict[str, Any]]) -> None:
        """A judge request failed for good: listed in the failures file, sent again by the next run."""
        error = outcome.error
        assert error is not None
        line = {"key": job.key, "where": job.where, "reason": error.reason, "detail": error.detail}
        session.fail(job.where, error, {**line, "attempts": outcome.attempts})

    def _line(self, job: _Job, grade: dict[str, Any]) -> bytes:
        """The record as read plus ``grade`` and the top-level ``score``; counted in the tally."""
        record = dict(job.record)
        grade["key"] = job.key
        if isinstance(job.sample, ReasoningSample) and "generation" in job.sample.meta:
            grade["sample"] = job.sample.meta["generation"]  # the OpenR1 generation graded
        previous = record.get("score")
        if previous is not None and previous != grade["score"]:
            grade["previous_score"] = previous
        grade["settings"] = {k: v for k, v in self.settings.items() if k != "--judge-model"}
        record["grade"] = grade
        record["score"] = grade["score"]
        self.report.tally.count(grade)
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)


def format_grade_summary(report: GradeReport) -> str:
    """The closing lines: records by route and method (right/wrong, mean score), ungraded and failed records, the
    score distribution of OUT, tokens and time."""
    tally = report.tally
    failed = sum(report.failed.values())
    lines = [
        f"{'records':<22}{report.planned:>10}  ({report.already_done} already in {report.out})",
        f"{'written this run':<22}{report.done:>10}  → {report.out}"
        + (f"  ({report.checked} answers checked by Math-Verify)" if report.checked else ""),
        f"{'graded, by route':<22}{'records':>10}{'right':>8}{'wrong':>8}{'mean score':>12}",
    ]
    rows = sorted(tally.methods.items(), key=lambda item: _ORDER.index(item[0]) if item[0] in _ORDER else len(_ORDER))
    for (route, method), n in rows:
        key = (route, method)
        right, wrong = (tally.right[key], tally.wrong[key]) if route == "math" else ("-", "-")
        lines.append(f"  {route + ' / ' + method:<20}{n:>10}{right:>8}{wrong:>8}{tally.score_sums[key] / n:>12.1f}")
        if key == ("math", "judge") and tally.to_judge:  # why Math-Verify gave no verdict
            reasons = ", ".join(f"{reason} {count}" for reason, count in tally.to_judge.most_common())
            lines.append(f"    no rule verdict: {reasons}")
    lines += [
        f"{'ungraded':<22}{sum(tally.ungraded.values()):>10}",
        *reason_lines(tally.ungraded, 4),
        f"{'failed':<22}{failed:>10}" + (f"  → {report.failures_file} (run again to retry)" if failed else ""),
        *reason_lines(report.failed, 2),
        retried_line(report),
    ]
    if report.invalid:
        lines.append(f"{'skipped input lines':<22}{report.invalid:>10}")
    if tally.scores:
        histogram = Counter[int]()
        for (_, score), n in tally.scores.items():
            histogram[score] += n
        lines.append(f"{'scores in OUT':<22}" + "  ".join(f"{s}: {n}" for s, n in sorted(histogram.items())))
    lines.append(f"{'tokens':<22}prompt {report.prompt_tokens:,}, completion {report.completion_tokens:,}")
    lines.append(f"{'time':<22}{report.seconds:,.1f} s")
    return "\n".join(lines)


def plot_scores(tally: Tally, path: Path, title: str) -> None:
    """A PNG of OUT's score distribution (scores 0-10, rounded down), math and general routes stacked
    (:mod:`lf_reasoning.plot`)."""
    fig = new_figure(8, 4.5)
    from matplotlib.ticker import MaxNLocator

    ax = fig.subplots()
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    xs = list(range(11))
    bottom = [0] * 11
    for route, colour in zip(ROUTES, ("#4c72b0", "#dd8452"), strict=True):
        heights = [tally.scores[(route, x)] for x in xs]
        ax.bar(xs, heights, bottom=bottom, color=colour, label=f"{route} ({sum(heights)})")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set(title=title, xlabel="score", ylabel="records", xticks=xs)
    ax.legend()
    save_png(fig, path)
