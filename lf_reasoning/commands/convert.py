"""``convert``: read any supported source, filter, render and register one LLaMA-Factory dataset.

Nothing is written until every check that can fail early has passed; the data file, the rejects file and
``dataset_info.json`` are each written to a temp file and renamed into place only when the run completes.
Records are parsed, read, filtered and rendered in worker processes; this process deduplicates, counts tokens
and writes (:class:`DatasetSink`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from lf_reasoning.atomic import AtomicFile
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.llamafactory.dataset_info import (
    alpaca_entry,
    load_dataset_info,
    merge_entry,
    sharegpt_entry,
    write_dataset_info,
)
from lf_reasoning.record.filters import Dedup, SampleFilter, prompt_digest
from lf_reasoning.record.formats import Format, read_record
from lf_reasoning.record.inputs import Inputs, iter_inputs
from lf_reasoning.record.render import Style, ThinkMode, lf_messages, to_record
from lf_reasoning.record.sample import ReasoningSample
from lf_reasoning.record.sources import Lines, Raw, parse_line
from lf_reasoning.workers import ordered_map

if TYPE_CHECKING:
    from lf_reasoning.llamafactory.tokens import TokenCounter

_NAME = re.compile(r"^[\w.-]+$")
_TOKEN_BATCH = 512
_CHUNK = 256  # records per worker task: big enough to amortise pickling, small enough to keep memory flat
Conversation = tuple[str | None, list[dict[str, str]]]  # (system, messages) as LLaMA-Factory encodes them
Item = tuple[str, Raw, str]  # (where, raw record, format name) as sent to a worker


@dataclass(frozen=True)
class ConvertOptions:
    """Everything ``convert`` is asked to do; invalid combinations raise :class:`UserError` when it is built."""

    inputs: Inputs
    name: str
    dataset_dir: Path
    style: Style = "sharegpt"
    think: ThinkMode = "keep"
    system: str | None = None
    prompt_template: str | None = None  # wrapped around every prompt at its {prompt} placeholder
    min_score: float | None = None
    require_verified: bool = False
    dedup: Dedup = "normalized"
    max_tokens: int | None = None  # drop records longer than this (needs tokenizer and template)
    tokenizer: str | None = None
    template: str | None = None
    rejects: Path | None = None  # default: DIR/NAME.rejects.jsonl
    strict: bool = False
    force: bool = False
    workers: int | None = None  # default: one per CPU

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset_dir", Path(self.dataset_dir))
        if not _NAME.match(self.name):
            raise UserError(f"--name {self.name!r}: use letters, digits, '_', '-' or '.' (it becomes a file name)")
        if self.prompt_template is not None and "{prompt}" not in self.prompt_template:
            raise UserError("the prompt template has no {prompt} placeholder; put {prompt} where the question goes")
        if self.max_tokens is not None and not (self.tokenizer and self.template):
            raise UserError(
                "--max-tokens needs --tokenizer PATH and --template NAME (the LLaMA-Factory template "
                "you will train with, e.g. qwen3 or deepseekr1) to count tokens exactly"
            )

    @property
    def data_file(self) -> Path:
        return self.dataset_dir / f"{self.name}.jsonl"

    @property
    def rejects_file(self) -> Path:
        return self.rejects or self.dataset_dir / f"{self.name}.rejects.jsonl"

    @cached_property
    def keep(self) -> SampleFilter:
        return SampleFilter(think=self.think, min_score=self.min_score, require_verified=self.require_verified)


@dataclass
class ConvertReport:
    data_file: Path
    rejects_file: Path
    read: int = 0  # raw records read
    written: int = 0  # rejects_file exists only when something was rejected (or --rejects was given)
    invalid: Counter[str] = field(default_factory=Counter)  # bad input: parse errors, wrong types, bad markup
    filtered: Counter[str] = field(default_factory=Counter)  # good input dropped by a filter
    formats: dict[str, str] = field(default_factory=dict)  # source → "format (why)"
    scores: Counter[int] = field(default_factory=Counter)


# What a worker reports per sample: small named tuples, cheap to pickle back to the main process.
class Kept(NamedTuple):
    where: str
    score: float | None
    line: bytes  # the rendered output record
    digest: bytes | None  # dedup key (None: dedup off)
    conversation: Conversation | None  # sent back only when tokens are counted (--max-tokens)


class Rejected(NamedTuple):
    where: str
    score: float | None
    reason: str
    detail: str
    record: Any  # what the rejects file shows: the raw record, the sample or the undecodable line
    invalid: bool  # bad input (counted as invalid) rather than good input a filter dropped


class Blank(NamedTuple):
    """A whitespace-only line: not a record."""

    where: str


Outcome = Kept | Rejected | Blank


def convert(
    options: ConvertOptions, *, log: Callable[[str], None] = lambda msg: None, progress: bool = False
) -> ConvertReport:
    """Convert ``options.inputs`` into ``DIR/NAME.jsonl`` and register ``NAME`` in ``DIR/dataset_info.json``."""
    counter = _token_counter(options)
    sources = options.inputs.files()
    registry = _prepare_target(options)
    report = ConvertReport(data_file=options.data_file, rejects_file=options.rejects_file)

    def on_format(src: str, fmt: Format, why: str) -> None:
        report.formats[src] = f"{fmt.name} ({why})"
        if why not in ("--format", "--map"):
            log(f"{src}: format {fmt.name}: {why}")

    def items() -> Iterator[Item]:
        for where, raw, fmt in iter_inputs(options.inputs, lazy=True, on_format=on_format, sources=sources):
            report.read += len(raw.lines) if isinstance(raw, Lines) else 1
            yield where, raw, fmt.name if fmt is not None else ""

    work = functools.partial(process_chunk, options)
    chunks = ordered_map(work, _chunked(items(), _CHUNK), options.workers or os.cpu_count() or 1)
    bar = _progress_bar() if progress else None
    with DatasetSink(options, report, counter, log) as sink, contextlib.ExitStack() as stack:
        # closing(): on an error or Ctrl-C the workers stop here, not whenever the generator is collected
        stack.enter_context(contextlib.closing(chunks))
        if bar is not None:
            stack.callback(bar.close)
        for chunk, outcomes in chunks:
            for outcome in outcomes:
                sink.add(outcome)
            if bar is not None:
                bar.update(_size(chunk))
        sink.commit()
        write_dataset_info(options.dataset_dir, registry)
    return report


def _token_counter(options: ConvertOptions) -> TokenCounter | None:
    if options.max_tokens is None:
        return None
    from lf_reasoning.llamafactory.tokens import TokenCounter

    assert options.tokenizer and options.template  # checked by ConvertOptions
    return TokenCounter(options.tokenizer, options.template)


def _prepare_target(options: ConvertOptions) -> dict[str, Any]:
    """Create the dataset directory and return the registry with ``NAME`` merged in; refuse before anything is
    written when the entry or the data file belongs to something else."""
    dataset_dir, name, data_file = options.dataset_dir, options.name, options.data_file
    try:
        dataset_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--dataset-dir {dataset_dir}: cannot create it: {err.strerror}") from err
    info = load_dataset_info(dataset_dir)
    entry = sharegpt_entry(data_file.name) if options.style == "sharegpt" else alpaca_entry(data_file.name)
    merged = merge_entry(info, name, entry, force=options.force)
    if data_file.exists() and name not in info and not options.force:
        raise UserError(
            f"{data_file} exists but is not registered as '{name}'; pass --force to overwrite it "
            "or choose another --name"
        )
    return merged


class DatasetSink:
    """Owns the output files and the report: deduplicates, counts tokens in batches, writes kept records and
    rejects. Nothing replaces the previous files unless :meth:`commit` is reached."""

    def __init__(
        self, options: ConvertOptions, report: ConvertReport, counter: TokenCounter | None, log: Callable[[str], None]
    ) -> None:
        self.options, self.report, self.counter, self.log = options, report, counter, log
        self.seen: set[bytes] = set()
        self.counting: list[Kept] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> DatasetSink:
        self.data = self._stack.enter_context(AtomicFile(self.options.data_file))
        self.rejects = self._stack.enter_context(AtomicFile(self.options.rejects_file))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def add(self, outcome: Outcome) -> None:
        if isinstance(outcome, Blank):  # a whitespace-only line was counted as read
            self.report.read -= 1
            return
        if outcome.score is not None:
            self.report.scores[int(outcome.score)] += 1
        if isinstance(outcome, Rejected):
            if outcome.invalid:
                if self.options.strict:
                    raise UserError(f"{outcome.where}: {outcome.detail} (--strict stops at the first invalid record)")
                self.log(f"warning: {outcome.where}: {outcome.detail}")
            self._reject(outcome.where, outcome.reason, outcome.detail, outcome.record, outcome.invalid)
            return
        if outcome.digest is not None:
            if outcome.digest in self.seen:
                detail = f"prompt already seen ({self.options.dedup} dedup)"
                self._reject(outcome.where, "duplicate_prompt", detail, orjson.Fragment(outcome.line), False)
                return
            self.seen.add(outcome.digest)
        if self.counter is None:
            self._write(outcome.line)
            return
        self.counting.append(outcome)
        if len(self.counting) >= _TOKEN_BATCH:
            self._flush_counting()

    def commit(self) -> None:
        """Write what is pending and rename the files into place (the caller then writes the registry)."""
        self._flush_counting()
        report, rejects_file = self.report, self.options.rejects_file
        if self.rejects.lines or self.options.rejects is not None:
            self.rejects.commit()
        else:  # no rejects: a default-path file left by an earlier run would describe that run, not this one
            rejects_file.unlink(missing_ok=True)
        if report.written == 0:
            raise UserError(
                f"no records written: all {report.read} records were rejected; reasons are in "
                f"{rejects_file}. {self.options.dataset_dir}/dataset_info.json was not changed."
            )
        self.data.commit()

    def _write(self, line: bytes) -> None:
        self.data.write_line(line)
        self.report.written += 1

    def _reject(self, where: str, reason: str, detail: str, record: Any, invalid: bool) -> None:
        (self.report.invalid if invalid else self.report.filtered)[reason] += 1
        entry = {"where": where, "reason": reason, "detail": detail, "record": record}
        self.rejects.write_line(orjson.dumps(entry, default=str))

    def _flush_counting(self) -> None:
        if not self.counting:
            return
        assert self.counter is not None and self.options.max_tokens is not None
        limit = self.options.max_tokens
        lengths = self.counter.count([kept.conversation for kept in self.counting])
        for kept, n in zip(self.counting, lengths, strict=True):
            if n > limit:
                detail = f"{n} tokens > --max-tokens {limit}"
                self._reject(kept.where, "too_long", detail, orjson.Fragment(kept.line), False)
            else:
                self._write(kept.line)
        self.counting.clear()


def process_chunk(options: ConvertOptions, chunk: list[Item]) -> list[Outcome]:
    """Parse, read, filter and render one chunk of raw records (runs in a worker process)."""
    out: list[Outcome] = []
    for where, raw, fmt_name in _expand(chunk):
        record = parse_line(raw) if isinstance(raw, bytes) else raw
        if record is None:
            out.append(Blank(where))
            continue
        if isinstance(record, RecordError):
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else None
            out.append(Rejected(where, None, record.reason, record.detail, line, invalid=True))
            continue
        try:
            samples = read_record(options.inputs.reader(fmt_name), record)
        except RecordError as err:
            out.append(Rejected(where, None, err.reason, err.detail, record, invalid=True))
            continue
        out.extend(_sample_outcome(options, where, sample, record) for sample in samples)
    return out


def _sample_outcome(
    options: ConvertOptions, where: str, sample: ReasoningSample | RecordError, record: dict[str, Any]
) -> Outcome:
    if isinstance(sample, RecordError):  # one unusable candidate of a multi-sample record
        return Rejected(where, None, sample.reason, sample.detail, record, invalid=False)
    _apply_prompt_options(sample, options.system, options.prompt_template)
    error = options.keep(sample)
    if error is not None:
        return Rejected(where, sample.score, error.reason, error.detail, asdict(sample), invalid=False)
    conversation = (sample.system, lf_messages(sample, options.think)) if options.max_tokens is not None else None
    line = orjson.dumps(to_record(sample, options.think, options.style))
    return Kept(where, sample.score, line, prompt_digest(sample, options.dedup), conversation)


def _chunked(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    """Lists of up to ``size`` records; a block of unparsed lines is a chunk of its own."""
    chunk: list[Item] = []
    for item in items:
        if isinstance(item[1], Lines):
            if chunk:
                yield chunk
                chunk = []
            yield [item]
            continue
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _size(chunk: list[Item]) -> int:
    return sum(len(raw.lines) if isinstance(raw, Lines) else 1 for _, raw, _ in chunk)


def _expand(chunk: list[Item]) -> Iterator[tuple[str, dict[str, Any] | RecordError | bytes, str]]:
    """The records of a chunk, with blocks of unparsed lines split into single lines."""
    for where, raw, fmt_name in chunk:
        if isinstance(raw, Lines):
            for i, line in enumerate(raw.lines):
                yield f"{raw.path}:{raw.first + i}", line, fmt_name
        else:
            yield where, raw, fmt_name


def _apply_prompt_options(sample: ReasoningSample, system: str | None, prompt_template: str | None) -> None:
    if system is not None:
        sample.system = system
    if prompt_template is not None:
        sample.prompt = prompt_template.replace("{prompt}", sample.prompt)
        for turn in sample.history:
            turn.prompt = prompt_template.replace("{prompt}", turn.prompt)


def _progress_bar() -> Any:
    from tqdm import tqdm

    return tqdm(unit=" records", file=sys.stderr, disable=None, mininterval=0.5)


def format_report(report: ConvertReport) -> str:
    """The closing table: read / written / rejected by reason, and the score distribution."""
    rejected = sum(report.invalid.values()) + sum(report.filtered.values())
    lines = [
        f"{'read':<34}{report.read:>10}",
        f"{'written':<34}{report.written:>10}  → {report.data_file}",
        f"{'rejected':<34}{rejected:>10}" + (f"  → {report.rejects_file}" if rejected else ""),
    ]
    for title, counter in (("invalid input", report.invalid), ("filtered", report.filtered)):
        for reason, n in counter.most_common():
            lines.append(f"  {reason + f' ({title})':<32}{n:>10}")
    if report.scores:
        histogram = "  ".join(f"{score}:{n}" for score, n in sorted(report.scores.items()))
        lines.append(f"score distribution                {histogram}")
    return "\n".join(lines)
