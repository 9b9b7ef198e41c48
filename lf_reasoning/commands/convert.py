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

from lf_reasoning.atomic import AtomicFile, commit_together
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.llamafactory.dataset_info import (
    DATA_CONFIG,
    alpaca_entry,
    dataset_info_bytes,
    load_dataset_info,
    merge_entry,
    sharegpt_entry,
    with_tools_column,
)
from lf_reasoning.llamafactory.thought_words import META_KEY, words_record
from lf_reasoning.paths import REJECTS_FILE, Target, check_targets, inside, same_file
from lf_reasoning.record.fields_seen import unused_notes
from lf_reasoning.record.filters import Dedup, SampleFilter, dedup_digest
from lf_reasoning.record.formats import Format, read_record
from lf_reasoning.record.inputs import Inputs, iter_inputs
from lf_reasoning.record.markup import DEFAULT_WORDS, ThoughtWords
from lf_reasoning.record.prompt_template import PromptTemplate
from lf_reasoning.record.render import Style, ThinkMode, lf_messages, to_record
from lf_reasoning.record.sample import ReasoningSample
from lf_reasoning.record.sources import Lines, Raw, parse_line
from lf_reasoning.workers import ordered_map

if TYPE_CHECKING:
    from lf_reasoning.llamafactory.tokens import TokenCounter

_NAME = re.compile(r"^[\w.-]+$")
_TOKEN_BATCH = 512
_CHUNK = 256  # records per worker task: big enough to amortise pickling, small enough to keep memory flat
_DUPLICATE = {  # --dedup mode → (reject reason, what repeated)
    "conversation": ("duplicate", "the same conversation (normalised)"),
    "exact": ("duplicate", "the same conversation (byte for byte)"),
    "prompt": ("duplicate_prompt", "the same prompt"),
}
LOUD_DEDUP = 0.10  # a dedup that removes more than this share of the samples says so loudly
# (system, messages, tools) as LLaMA-Factory encodes them
Conversation = tuple[str | None, list[dict[str, str]], str | None]
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
    prompt_template: str | None = None  # wrapped around every prompt: {prompt} and {COLUMN} placeholders
    prompt_template_source: str = "--prompt-template"  # the template's file, named in its errors
    min_score: float | None = None
    require_verified: bool = False
    dedup: Dedup = "conversation"
    max_tokens: int | None = None  # drop records longer than this (needs tokenizer and template)
    tokenizer: str | None = None  # default: model
    template: str | None = None  # LLaMA-Factory template: thoughts in its words, tokens counted with it
    model: str | None = None  # resolves the template as `config` does (--template then overrides, with a warning)
    rejects: Path | None = None  # default: DIR/NAME.rejects.jsonl
    strict: bool = False
    force: bool = False
    workers: int | None = None  # default: one per CPU
    # Filled in from template/model on construction (workers get them pickled, without importing LLaMA-Factory):
    words: ThoughtWords = field(default=DEFAULT_WORDS, init=False)  # how every thought is written
    template_notes: tuple[str, ...] = field(default=(), init=False)  # why this template, and any warning

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset_dir", Path(self.dataset_dir))
        if not _NAME.match(self.name):
            raise UserError(f"--name {self.name!r}: use letters, digits, '_', '-' or '.' (it becomes a file name)")
        self.wrap  # noqa: B018 — a template without placeholders is refused now
        if self.template is not None or self.model is not None:
            self._resolve_template()
        if self.max_tokens is not None and not ((self.tokenizer or self.model) and self.template):
            raise UserError(
                "--max-tokens needs --tokenizer PATH and --template NAME (the LLaMA-Factory template "
                "you will train with, e.g. qwen3 or deepseekr1), or --model M for both, to count tokens exactly"
            )

    def _resolve_template(self) -> None:
        """The template (from --model as `config` chooses it, --template overriding) and its thought words."""
        from lf_reasoning.llamafactory.templates import choose_template
        from lf_reasoning.llamafactory.thought_words import template_words

        if self.model is not None:
            choice = choose_template(self.model, override=self.template)
            object.__setattr__(self, "template", choice.template)
            notes = (f"template {choice.template}: {choice.reason}", *choice.warnings)
            object.__setattr__(self, "template_notes", notes)
        assert self.template is not None
        object.__setattr__(self, "words", template_words(self.template))

    @property
    def data_file(self) -> Path:
        return self.dataset_dir / f"{self.name}.jsonl"

    @property
    def rejects_file(self) -> Path:
        return self.rejects or self.dataset_dir / f"{self.name}.rejects.jsonl"

    @cached_property
    def wrap(self) -> PromptTemplate | None:
        if self.prompt_template is None:
            return None
        return PromptTemplate(self.prompt_template, self.prompt_template_source)

    @cached_property
    def keep(self) -> SampleFilter:
        return SampleFilter(think=self.think, min_score=self.min_score, require_verified=self.require_verified)


# Every record dropped for one of these reasons means an option the data cannot satisfy: say which, and what to do.
_ONLY_REASON = {
    "no_score": "none of the {n} records has a score; --min-score needs scores (from `lf-reasoning score`, or "
    "--map score=COLUMN)",
    "unverified": "none of the {n} records has a positive verification verdict; --require-verified needs the output "
    "of `lf-reasoning verify` (or drop the option)",
}


def _why_all_rejected(report: ConvertReport) -> str:
    reasons = report.invalid + report.filtered
    if len(reasons) == 1:
        reason, n = next(iter(reasons.items()))
        if reason in _ONLY_REASON:
            return _ONLY_REASON[reason].format(n=n)
    counts = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(5))
    return f"all {report.read} records were rejected ({counts})"


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
    notes: list[str] = field(default_factory=list)  # per file: long text columns no field read
    dedup: Dedup = "conversation"
    deduplicated: int = 0  # samples that reached dedup (duplicates included): the base of the loud warning


# What a worker reports per sample: small named tuples, cheap to pickle back to the main process.
class Kept(NamedTuple):
    where: str
    score: float | None
    line: bytes  # the rendered output record
    digest: bytes | None  # dedup key (None: dedup off)
    conversation: Conversation | None  # sent back only when tokens are counted (--max-tokens)
    tools: bool  # the record has a `tools` list (the entry then registers the column)


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
    for note in options.template_notes:
        log(note)
    if options.template is not None:
        words = options.words
        log(f"thoughts in `{options.template}`'s words: {words.open!r}…{words.close!r}, empty {words.empty!r}")
    sources = options.inputs.files()
    registry = _prepare_target(options, sources)
    report = ConvertReport(data_file=options.data_file, rejects_file=options.rejects_file, dedup=options.dedup)

    def on_format(src: str, fmt: Format, why: str) -> None:
        report.formats[src] = f"{fmt.name} ({why})"
        if why not in ("--format", "--map"):
            log(f"{src}: format {fmt.name}: {why}")

    def on_first(src: str, where: str, record: dict[str, Any], fmt: Format) -> None:
        if options.wrap is not None:
            options.wrap.check(record, where)
        try:
            samples = read_record(fmt, record)
        except RecordError:  # a bad first record is rejected like any other
            return
        report.notes += unused_notes(src, record, samples, fmt.unread)

    def items() -> Iterator[Item]:
        for where, raw, fmt in iter_inputs(
            options.inputs, lazy=True, on_format=on_format, on_first=on_first, sources=sources
        ):
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
        sink.commit(registry)
    return report


def _token_counter(options: ConvertOptions) -> TokenCounter | None:
    if options.max_tokens is None:
        return None
    from lf_reasoning.llamafactory.tokens import TokenCounter

    tokenizer = options.tokenizer or options.model
    assert tokenizer and options.template  # checked by ConvertOptions
    return TokenCounter(tokenizer, options.template)


def _prepare_target(options: ConvertOptions, sources: list[Path | str]) -> dict[str, Any]:
    """Create the dataset directory and return the registry with ``NAME`` merged in; refuse before anything is
    written when an output would overwrite an input, another output or a file that belongs to something else."""
    dataset_dir, name, data_file = options.dataset_dir, options.name, options.data_file
    info = load_dataset_info(dataset_dir) if dataset_dir.is_dir() else {}
    _refuse_others_files(info, name, dataset_dir, {"the data file": data_file, "--rejects": options.rejects_file})
    targets = [
        Target("the data file", data_file, ours=lambda _: name in info, foreign=f"is not registered as '{name}'"),
        Target("the registry", dataset_dir / DATA_CONFIG),  # read (and refused if unreadable) above
        Target("--rejects", options.rejects_file, ours=REJECTS_FILE),
    ]
    check_targets(
        targets,
        inputs=sources,
        sources=options.inputs.sources,
        force=options.force,
        force_hint="pass --force to overwrite it (other entries of the registry are kept)",
    )
    try:  # only once nothing is refused: a refused run leaves no folder behind
        dataset_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--dataset-dir {dataset_dir}: cannot create it: {err.strerror}") from err
    entry = sharegpt_entry(data_file.name) if options.style == "sharegpt" else alpaca_entry(data_file.name)
    if options.template is not None and options.think != "drop":  # the words the thoughts are in (validate reads it)
        entry[META_KEY] = words_record(options.template, options.think, options.words)
    return merge_entry(info, name, entry, force=options.force)


def _refuse_others_files(info: dict[str, Any], name: str, dataset_dir: Path, outputs: dict[str, Path]) -> None:
    """An output that is the data of another entry of the registry is refused, ``--force`` or not: replacing it
    would destroy that dataset."""
    for other, entry in info.items():
        file_name = entry.get("file_name") if isinstance(entry, dict) and other != name else None
        if not isinstance(file_name, str) or not file_name.strip():
            continue
        for label, path in outputs.items():
            if same_file(path, dataset_dir / file_name) or inside(path, dataset_dir / file_name):
                raise UserError(
                    f"{label} {path} holds the data of the entry '{other}' in {dataset_dir / DATA_CONFIG}: "
                    f"writing it would destroy that dataset. Choose another --name"
                    + (" or --rejects path" if label == "--rejects" else "")
                    + f" (or remove the entry '{other}' first)"
                )


class DatasetSink:
    """Owns the output files and the report: deduplicates, counts tokens in batches, writes kept records and
    rejects. Nothing replaces the previous files unless :meth:`commit` is reached."""

    def __init__(
        self, options: ConvertOptions, report: ConvertReport, counter: TokenCounter | None, log: Callable[[str], None]
    ) -> None:
        self.options, self.report, self.counter, self.log = options, report, counter, log
        self.seen: set[bytes] = set()
        self.counting: list[Kept] = []
        self.tools = False  # a written record has a `tools` list
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
            self.report.deduplicated += 1
            if outcome.digest in self.seen:
                reason, what = _DUPLICATE[self.options.dedup]
                detail = f"{what} already seen (--dedup {self.options.dedup})"
                self._reject(outcome.where, reason, detail, orjson.Fragment(outcome.line), False)
                return
            self.seen.add(outcome.digest)
        if self.counter is None:
            self._write(outcome.line, outcome.tools)
            return
        self.counting.append(outcome)
        if len(self.counting) >= _TOKEN_BATCH:
            self._flush_counting()

    def commit(self, registry: dict[str, Any]) -> None:
        """Write what is pending, then replace the data file, the rejects file and ``dataset_info.json`` (with
        ``registry``) in one step: a failure at any point leaves all of them as they were."""
        self._flush_counting()
        report, options = self.report, self.options
        if report.written == 0:  # exit 1, nothing changed: the dataset's own rejects file still describes it
            if options.rejects is not None:  # a file the user named for this run's reasons
                commit_together([self.rejects])
            where = f"each is in {options.rejects}" if options.rejects else "--rejects FILE keeps each with its reason"
            raise UserError(
                f"no records written: {_why_all_rejected(report)}; {where}. "
                f"Nothing was changed in {options.dataset_dir}."
            )
        files = [self.data]
        if self.rejects.lines or options.rejects is not None:
            files.append(self.rejects)
        if self.tools:  # known only now: the entry registers the `tools` column (with_tools_column says why)
            registry = {**registry, options.name: with_tools_column(registry[options.name])}
        info = self._stack.enter_context(AtomicFile(options.dataset_dir / DATA_CONFIG))
        info.write(dataset_info_bytes(registry))
        commit_together([*files, info])
        if self.rejects not in files:  # no rejects: a default-path file of an earlier run describes that run
            options.rejects_file.unlink(missing_ok=True)

    def _write(self, line: bytes, tools: bool) -> None:
        self.data.write_line(line)
        self.report.written += 1
        self.tools |= tools

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
                self._write(kept.line, kept.tools)
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
    try:
        _apply_prompt_options(sample, options.system, options.wrap, record)
    except RecordError as err:
        return Rejected(where, sample.score, err.reason, err.detail, record, invalid=True)
    error = options.keep(sample)
    if error is not None:
        return Rejected(where, sample.score, error.reason, error.detail, asdict(sample), invalid=False)
    try:
        messages = lf_messages(sample, options.think, options.words) if options.max_tokens is not None else None
        line = orjson.dumps(to_record(sample, options.think, options.style, options.words))
    except RecordError as err:  # a thought or answer holding the template's own thought words (filtered), or tool
        # turns that --style alpaca cannot hold (the data cannot be written as asked: invalid)
        invalid = err.reason == "tools_need_sharegpt"
        return Rejected(where, sample.score, err.reason, err.detail, asdict(sample), invalid=invalid)
    conversation = (sample.system, messages, sample.tools) if messages is not None else None
    digest = dedup_digest(sample, options.dedup, options.think)
    return Kept(where, sample.score, line, digest, conversation, sample.tools is not None)


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


def _apply_prompt_options(
    sample: ReasoningSample, system: str | None, wrap: PromptTemplate | None, record: dict[str, Any]
) -> None:
    if system is not None:
        sample.system = system
    if wrap is not None:
        wrap.apply(sample, record)


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
    lines += report.notes
    warning = dedup_warning(report)
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def dedup_warning(report: ConvertReport) -> str | None:
    """A loud line when dedup removed more than :data:`LOUD_DEDUP` of the samples that reached it."""
    removed = report.filtered["duplicate"] + report.filtered["duplicate_prompt"]
    if not report.deduplicated or removed <= LOUD_DEDUP * report.deduplicated:
        return None
    share = removed / report.deduplicated
    other = (
        "--dedup conversation drops only whole repeated conversations"
        if report.dedup == "prompt"
        else "check the source for copies"
    )
    return (
        f"WARNING: --dedup {report.dedup} removed {removed} of {report.deduplicated} samples ({share:.0%}) as "
        f"repeats; {other}, --dedup off keeps every sample. The removed ones are in {report.rejects_file}."
    )
