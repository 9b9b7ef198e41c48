"""``verify``: check each record's answer against its reference answer (:mod:`lf_reasoning.answer_check`).

Every input record is written back unchanged with a ``verify`` object (see ``VerifyResult.to_json``); answers no
rule can decide go to an LLM judge when one is given. The output file is written to a temp file and renamed into
place only when the run completes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from lf_reasoning.answer_check import Task, VerifyResult, Workers, quiet_math_verify, unverifiable
from lf_reasoning.atomic import AtomicFile
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.paths import Target, check_targets, jsonl_with
from lf_reasoning.record.formats import Format
from lf_reasoning.record.inputs import Inputs, iter_inputs
from lf_reasoning.record.sample import ReasoningSample

_WINDOW = 1024  # records read but not yet written: bounds memory while one slow record holds up the output
# Answers sent to a worker in one message: an OpenR1 record's generations together (they share the gold's parse),
# two such records per message to halve the sends; results still come back one by one, each with its deadline.
_BATCH = 8
# Answers the rules left undecided go here (an LLM judge): it returns the final result.
Judge = Callable[[ReasoningSample, VerifyResult], VerifyResult]


@dataclass(frozen=True)
class VerifyOptions:
    inputs: Inputs
    out: Path
    workers: int | None = None  # default: one per CPU
    timeout: float = 10.0  # seconds one answer may take
    force: bool = False  # replace an existing OUT that is not verify output

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.timeout <= 0:
            raise UserError(f"--timeout {self.timeout:g}: must be more than 0 seconds")


@dataclass
class VerifyReport:
    out: Path
    read: int = 0  # input records
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # lines that are not records (not written)
    answers: int = 0  # answers checked (an OpenR1 record holds several)
    verdicts: Counter[str] = field(default_factory=Counter)  # "true" / "false" / "none"
    methods: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # why there is no verdict (timeout, no_reference, …)
    formats: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def invalid(self) -> int:
        """Input records that could not be read (skipped lines, or records the format's reader rejected)."""
        return sum(self.skipped.values()) + self.reasons["invalid_record"]


@dataclass(eq=False)
class _Entry:
    """One input record on its way to the output, with a result slot per sample."""

    record: dict[str, Any]
    samples: list[ReasoningSample | None]
    results: list[VerifyResult | None]
    as_list: bool
    missing: int = 0


def verify(
    options: VerifyOptions,
    *,
    judge: Judge | None = None,
    log: Callable[[str], None] = lambda msg: None,
    progress: bool = False,
) -> VerifyReport:
    """Verify every record of ``options.inputs`` into ``options.out``, in input order.

    Each record is written unchanged plus ``verify`` (an object, or for a multi-sample record such as OpenR1 one
    per generation). Records the rules cannot decide go to ``judge`` when one is given, else are ``unverifiable``.
    """
    out, sources = options.out, options.inputs.files()
    _check_out(options, sources)
    quiet_math_verify()
    report = VerifyReport(out=out)
    started = time.monotonic()
    entries = _iter_entries(options.inputs, sources, report, log)
    n = max(1, min(options.workers or os.cpu_count() or 1, 32))
    with AtomicFile(out) as out_file, contextlib.ExitStack() as stack:
        pool = Workers(n, options.timeout)
        stack.callback(pool.close)
        bar = tqdm(unit=" records", file=sys.stderr, disable=None, mininterval=0.5) if progress else None
        if bar is not None:
            stack.callback(bar.close)
        for entry in _checked(entries, pool, n):
            _finish(entry, judge, report)
            out_file.write_line(orjson.dumps({**entry.record, "verify": _verify_value(entry)}, default=str))
            report.written += 1
            if bar is not None:
                bar.update(1)
        if report.written == 0:
            raise UserError(
                f"no records written: none of the {report.read} input lines is a record; {out} was not changed"
            )
        out_file.commit()
    report.seconds = time.monotonic() - started
    return report


def _check_out(options: VerifyOptions, sources: Sequence[Path | str]) -> None:
    out = options.out
    target = Target("--out", out, ours=jsonl_with("verify"), foreign="is not verify output")
    check_targets([target], inputs=sources, sources=options.inputs.sources, force=options.force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create its directory: {err.strerror}") from err


def _checked(entries: Iterator[_Entry], pool: Workers, n: int) -> Iterator[_Entry]:
    """The entries in input order once every answer in them is checked; at most ``_WINDOW`` are held while a slow
    answer holds up the output, and at most ``n`` batches wait for a free worker."""
    pending: deque[_Entry] = deque()
    batches: deque[list[Task]] = deque()
    batch: list[Task] = []
    exhausted = False
    while True:
        while not exhausted and len(pending) < _WINDOW and len(batches) < n:
            entry = next(entries, None)
            if entry is None:
                exhausted = True
                break
            pending.append(entry)
            for i, sample in enumerate(entry.samples):
                if entry.results[i] is None and sample is not None and sample.reference is not None:
                    batch.append(((entry, i), sample.reference, sample.answer))
            if len(batch) >= _BATCH:
                batches.append(batch)
                batch = []
        if batch:  # nothing more is read for now: what was read must not wait for a full batch
            batches.append(batch)
            batch = []
        while batches and pool.idle:
            pool.submit_batch(batches.popleft())
        while pending and pending[0].missing == 0:
            yield pending.popleft()
        if exhausted and not pending:
            return
        if pool.busy:
            for (entry, i), result in pool.collect():
                entry.results[i] = result
                entry.missing -= 1


def _iter_entries(
    inputs: Inputs, sources: list[Path | str], report: VerifyReport, log: Callable[[str], None]
) -> Iterator[_Entry]:
    """Every record as an entry; results are filled in at once where no check is needed."""

    def on_format(src: str, fmt: Format, why: str) -> None:
        report.formats[src] = f"{fmt.name} ({why})"
        log(f"{src}: format {fmt.name}: {why}")

    for where, raw, fmt in iter_inputs(inputs, on_format=on_format, sources=sources):
        report.read += 1
        if isinstance(raw, RecordError):
            log(f"warning: {where}: {raw.detail} (skipped: not written to the output)")
            report.skipped[raw.reason] += 1
            continue
        assert isinstance(raw, dict) and fmt is not None  # iter_inputs without lazy yields parsed records
        try:
            read = fmt.read(raw)
        except RecordError as err:
            log(f"warning: {where}: {err.detail} (written with verify reason invalid_record)")
            yield _Entry(raw, [None], [unverifiable("invalid_record", err.detail)], fmt.multi_sample)
            continue
        yield _entry(raw, read, fmt.multi_sample)


def _entry(record: dict[str, Any], read: Sequence[ReasoningSample | RecordError], as_list: bool) -> _Entry:
    samples: list[ReasoningSample | None] = []
    results: list[VerifyResult | None] = []
    for item in read:
        if isinstance(item, RecordError):  # one unusable generation of an OpenR1 record
            samples.append(None)
            results.append(unverifiable(item.reason, item.detail))
        elif item.reference is None or not item.reference.strip():
            samples.append(item)
            results.append(unverifiable("no_reference", "the record has no reference answer"))
        else:
            samples.append(item)
            results.append(None)
    return _Entry(record, samples, results, as_list, missing=results.count(None))


def _finish(entry: _Entry, judge: Judge | None, report: VerifyReport) -> None:
    """Hand undecided answers to the judge (when given) and count the final results."""
    for i, result in enumerate(entry.results):
        assert result is not None
        sample = entry.samples[i]
        if result.verdict is None and result.reason is not None:
            report.reasons[result.reason] += 1
            if judge is not None and sample is not None:
                result = entry.results[i] = judge(sample, result)
        report.answers += 1
        report.methods[result.method] += 1
        report.verdicts[str(result.verdict).lower()] += 1


def _verify_value(entry: _Entry) -> dict[str, Any] | list[dict[str, Any]]:
    values = [r.to_json() for r in entry.results if r is not None]
    return values if entry.as_list else values[0]


def format_report(report: VerifyReport) -> str:
    """The closing table: records read / written, verdicts, why answers got none, and the throughput."""
    skipped = sum(report.skipped.values())
    rate = report.answers / report.seconds if report.seconds else 0.0
    lines = [f"{'read':<34}{report.read:>10}", f"{'written':<34}{report.written:>10}  → {report.out}"]
    if skipped:
        lines.append(f"{'skipped (not records)':<34}{skipped:>10}")
        lines += [f"  {reason:<32}{n:>10}" for reason, n in report.skipped.most_common()]
    lines += [
        f"{'answers checked':<34}{report.answers:>10}  ({rate:,.0f}/s, {report.seconds:.1f} s)",
        f"{'  verified true (score 10)':<34}{report.verdicts['true']:>10}",
        f"{'  verified false (score 0)':<34}{report.verdicts['false']:>10}",
        f"{'  unverifiable':<34}{report.verdicts['none']:>10}",
    ]
    if report.methods["judge"]:
        lines.append(f"{'  decided by the judge':<34}{report.methods['judge']:>10}")
    lines += [
        f"{'timeouts':<34}{report.reasons['timeout']:>10}",
        f"{'errors (worker error or crash)':<34}{report.reasons['error'] + report.reasons['crashed']:>10}",
    ]
    if report.reasons:
        lines.append("no rule-based verdict, by reason")
        lines += [f"  {reason:<32}{n:>10}" for reason, n in report.reasons.most_common()]
    return "\n".join(lines)
