"""``convert``: read any supported source, filter, render and register one LLaMA-Factory dataset.

Nothing is written until every check that can fail early has passed; the data file, the rejects file and
``dataset_info.json`` are each written to a temp file and renamed into place only when the run completes.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import multiprocessing
import os
import re
import signal
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from lf_reasoning.atomic import AtomicFile
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.filters import Dedup, SampleFilter, prompt_digest
from lf_reasoning.formats import Format, detect_format, read_record, resolve_reader
from lf_reasoning.llamafactory.dataset_info import (
    alpaca_entry,
    load_dataset_info,
    merge_entry,
    sharegpt_entry,
    write_dataset_info,
)
from lf_reasoning.render import Style, ThinkMode, lf_messages, to_record
from lf_reasoning.sample import ReasoningSample
from lf_reasoning.sources import Lines, Raw, iter_file, iter_hub, parse_line, resolve_sources

_NAME = re.compile(r"^[\w.-]+$")
_TOKEN_BATCH = 512
_CHUNK = 256  # records per worker task: big enough to amortise pickling, small enough to keep memory flat
Messages = list[dict[str, str]]


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


@dataclass(frozen=True)
class _Settings:
    """Everything a worker needs to turn raw records into output lines (picklable)."""

    mapping: tuple[str, ...]
    think: ThinkMode
    style: Style
    system: str | None
    prompt_template: str | None
    dedup: Dedup
    keep: SampleFilter
    with_messages: bool  # send the conversation back for token counting


# What a worker reports per sample (tuples: cheap to pickle back to the main process):
#   ("ok", where, score, output_line, prompt_digest, (system, messages) | None)
#   ("filtered", where, score, reason, detail, sample_dict)
#   ("invalid", where, reason, detail, raw_record)
#   ("blank", where)  — a whitespace-only line, not a record
Outcome = tuple[Any, ...]


def convert(
    sources: Sequence[str],
    name: str,
    dataset_dir: Path,
    *,
    fmt: str = "auto",
    mapping: Sequence[str] = (),
    style: Style = "sharegpt",
    think: ThinkMode = "keep",
    system: str | None = None,
    prompt_template: str | None = None,
    min_score: float | None = None,
    require_verified: bool = False,
    dedup: Dedup = "normalized",
    max_tokens: int | None = None,
    tokenizer: str | None = None,
    template: str | None = None,
    rejects: Path | None = None,
    strict: bool = False,
    force: bool = False,
    hub_split: str = "train",
    workers: int | None = None,
    log: Callable[[str], None] = lambda msg: None,
    progress: bool = False,
) -> ConvertReport:
    """Convert ``sources`` into ``dataset_dir/name.jsonl`` and register ``name`` in its dataset_info.json.

    Records are parsed, read, filtered and rendered in ``workers`` processes (default: one per CPU) and
    written in input order; deduplication and token counting run in this process.
    """
    if not _NAME.match(name):
        raise UserError(f"--name {name!r}: use letters, digits, '_', '-' or '.' (it becomes a file name)")
    if prompt_template is not None and "{prompt}" not in prompt_template:
        raise UserError("the prompt template has no {prompt} placeholder; put {prompt} where the question goes")
    counter = None
    if max_tokens is not None:
        if not tokenizer or not template:
            raise UserError(
                "--max-tokens needs --tokenizer PATH and --template NAME (the LLaMA-Factory template "
                "you will train with, e.g. qwen3 or deepseekr1) to count tokens exactly"
            )
        from lf_reasoning.llamafactory.tokens import TokenCounter

        counter = TokenCounter(tokenizer, template)
    reader = resolve_reader(fmt, mapping)
    inputs = resolve_sources(sources)

    dataset_dir = Path(dataset_dir)
    try:
        dataset_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--dataset-dir {dataset_dir}: cannot create it: {err.strerror}") from err
    data_file = dataset_dir / f"{name}.jsonl"
    rejects_file = rejects or dataset_dir / f"{name}.rejects.jsonl"
    info = load_dataset_info(dataset_dir)
    entry = sharegpt_entry(data_file.name) if style == "sharegpt" else alpaca_entry(data_file.name)
    merged = merge_entry(info, name, entry, force=force)
    if data_file.exists() and name not in info and not force:
        raise UserError(
            f"{data_file} exists but is not registered as '{name}'; pass --force to overwrite it "
            "or choose another --name"
        )

    settings = _Settings(
        tuple(mapping),
        think,
        style,
        system,
        prompt_template,
        dedup,
        SampleFilter(think=think, min_score=min_score, require_verified=require_verified),
        with_messages=counter is not None,
    )
    report = ConvertReport(data_file=data_file, rejects_file=rejects_file)
    seen: set[bytes] = set()
    counting: list[tuple[str, bytes, tuple[str | None, Messages]]] = []
    with AtomicFile(data_file) as data_out, AtomicFile(rejects_file) as rejects_out, contextlib.ExitStack() as stack:

        def reject(counter_: Counter[str], where: str, reason: str, detail: str, record: Any) -> None:
            counter_[reason] += 1
            rejects_out.write_line(
                orjson.dumps({"where": where, "reason": reason, "detail": detail, "record": record}, default=str)
            )

        def flush_counting() -> None:
            assert counter is not None and max_tokens is not None
            lengths = counter.count([conv for _, _, conv in counting])
            for (where, line, _), n in zip(counting, lengths, strict=True):
                if n > max_tokens:
                    reject(
                        report.filtered,
                        where,
                        "too_long",
                        f"{n} tokens > --max-tokens {max_tokens}",
                        orjson.Fragment(line),
                    )
                else:
                    data_out.write_line(line)
                    report.written += 1
            counting.clear()

        records = _iter_records(inputs, reader, report, log, hub_split)
        # closing(): on an error or Ctrl-C the workers stop here, not whenever the generator is collected
        outcomes = stack.enter_context(contextlib.closing(_run_workers(settings, records, workers, progress)))
        for outcome in outcomes:
            kind, where = outcome[0], outcome[1]
            if kind == "ok":
                _, _, score, line, digest, conv = outcome
                if score is not None:
                    report.scores[int(score)] += 1
                if digest is not None:
                    if digest in seen:
                        reject(
                            report.filtered,
                            where,
                            "duplicate_prompt",
                            f"prompt already seen ({dedup} dedup)",
                            orjson.Fragment(line),
                        )
                        continue
                    seen.add(digest)
                if conv is None:
                    data_out.write_line(line)
                    report.written += 1
                    continue
                counting.append((where, line, conv))
                if len(counting) >= _TOKEN_BATCH:
                    flush_counting()
            elif kind == "filtered":
                _, _, score, reason, detail, record = outcome
                if score is not None:
                    report.scores[int(score)] += 1
                reject(report.filtered, where, reason, detail, record)
            elif kind == "invalid":
                _, _, reason, detail, record = outcome
                if strict:
                    raise UserError(f"{where}: {detail} (--strict stops at the first invalid record)")
                log(f"warning: {where}: {detail}")
                reject(report.invalid, where, reason, detail, record)
            else:  # a whitespace-only line was counted as read
                report.read -= 1
        if counting:
            flush_counting()
        if rejects_out.lines or rejects is not None:
            rejects_out.commit()
        else:  # no rejects: a default-path file left by an earlier run would describe that run, not this one
            rejects_file.unlink(missing_ok=True)
        if report.written == 0:
            raise UserError(
                f"no records written: all {report.read} records were rejected; reasons are in "
                f"{rejects_file}. {dataset_dir}/dataset_info.json was not changed."
            )
        data_out.commit()
        write_dataset_info(dataset_dir, merged)
    return report


def _iter_records(
    inputs: list[Path | str],
    reader: Format | None,
    report: ConvertReport,
    log: Callable[[str], None],
    hub_split: str,
) -> Iterator[tuple[str, Raw, str]]:
    """``(where, raw, format name)`` for every raw record; the format is detected on each file's first record."""
    for src in inputs:
        records = iter_file(src, lazy=True) if isinstance(src, Path) else iter_hub(src, split=hub_split)
        fmt = reader
        if reader is not None:
            report.formats[str(src)] = f"{reader.name} (--format)"
        for where, raw in records:
            if fmt is None and isinstance(raw, dict):
                fmt, why = detect_format(raw, where)
                report.formats[str(src)] = f"{fmt.name} ({why})"
                log(f"{src}: format {fmt.name}: {why}")
            report.read += len(raw.lines) if isinstance(raw, Lines) else 1
            yield where, raw, fmt.name if fmt is not None else ""


def _run_workers(
    settings: _Settings, records: Iterator[tuple[str, Raw, str]], workers: int | None, progress: bool
) -> Iterator[Outcome]:
    """Process chunks of records in worker processes and yield the outcomes in input order.

    Each worker holds at most one chunk; its next chunk is sent only after its result is received, so
    results come back in dispatch order and no pipe can deadlock. There are no helper threads, so an error
    or Ctrl-C can always stop the workers at once (``multiprocessing.Pool.terminate`` can hang when a worker
    dies in the middle of a large reply).
    """
    chunks = _chunked(records, _CHUNK)
    head = list(itertools.islice(chunks, 2))
    n = min(workers or os.cpu_count() or 1, 32)
    bar = _progress_bar() if progress else None
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        if len(head) < 2 or n < 2:  # small input: starting processes would cost more than it saves
            for chunk in itertools.chain(head, chunks):
                if bar is not None:
                    bar.update(_size(chunk))
                yield from _process_chunk(settings, chunk)
            return
        chunks = itertools.chain(head, chunks)
        in_flight: deque[tuple[Connection, int]] = deque()
        for _ in range(n):
            chunk = next(chunks, None)
            if chunk is None:
                break
            conn, child = multiprocessing.Pipe()
            proc = multiprocessing.Process(target=_worker, args=(child, settings), daemon=True)
            proc.start()
            child.close()
            procs.append(proc)
            conn.send(chunk)
            in_flight.append((conn, _size(chunk)))
        while in_flight:
            conn, size = in_flight.popleft()
            result = conn.recv()
            chunk = next(chunks, None)
            if chunk is None:
                conn.send(None)  # no more work: the worker exits
            else:
                conn.send(chunk)
                in_flight.append((conn, _size(chunk)))
            if bar is not None:
                bar.update(size)
            yield from result
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        if bar is not None:
            bar.close()


def _worker(conn: Connection, settings: _Settings) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the main process alone decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while (chunk := conn.recv()) is not None:
        conn.send(_process_chunk(settings, chunk))


def _chunked(items: Iterator[tuple[str, Raw, str]], size: int) -> Iterator[list[tuple[str, Raw, str]]]:
    """Lists of up to ``size`` records; a block of unparsed lines is a chunk of its own."""
    chunk: list[tuple[str, Raw, str]] = []
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


def _process_chunk(settings: _Settings, chunk: list[tuple[str, Raw, str]]) -> list[Outcome]:
    """Parse, read, filter and render one chunk of raw records (runs in a worker process)."""
    out: list[Outcome] = []
    for where, raw, fmt_name in _expand(chunk):
        record = parse_line(raw) if isinstance(raw, bytes) else raw
        if record is None:
            out.append(("blank", where))
            continue
        if isinstance(record, RecordError):
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else None
            out.append(("invalid", where, record.reason, record.detail, line))
            continue
        try:
            samples = read_record(_reader(fmt_name, settings.mapping), record)
        except RecordError as err:
            out.append(("invalid", where, err.reason, err.detail, record))
            continue
        for sample in samples:
            if isinstance(sample, RecordError):  # one unusable candidate of a multi-sample record
                out.append(("filtered", where, None, sample.reason, sample.detail, record))
                continue
            _apply_prompt_options(sample, settings.system, settings.prompt_template)
            error = settings.keep(sample)
            if error is not None:
                out.append(("filtered", where, sample.score, error.reason, error.detail, asdict(sample)))
                continue
            conv = (sample.system, lf_messages(sample, settings.think)) if settings.with_messages else None
            line = orjson.dumps(to_record(sample, settings.think, settings.style))
            out.append(("ok", where, sample.score, line, prompt_digest(sample, settings.dedup), conv))
    return out


def _size(chunk: list[tuple[str, Raw, str]]) -> int:
    return sum(len(raw.lines) if isinstance(raw, Lines) else 1 for _, raw, _ in chunk)


def _expand(chunk: list[tuple[str, Raw, str]]) -> Iterator[tuple[str, dict[str, Any] | RecordError | bytes, str]]:
    """The records of a chunk, with blocks of unparsed lines split into single lines."""
    for where, raw, fmt_name in chunk:
        if isinstance(raw, Lines):
            for i, line in enumerate(raw.lines):
                yield f"{raw.path}:{raw.first + i}", line, fmt_name
        else:
            yield where, raw, fmt_name


@functools.cache
def _reader(fmt_name: str, mapping: tuple[str, ...]) -> Format:
    reader = resolve_reader(fmt_name, mapping)
    assert reader is not None, "records reach a worker only after their format is known"
    return reader


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
