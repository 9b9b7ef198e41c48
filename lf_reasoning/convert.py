"""``convert``: read any supported source, filter, render and register one LLaMA-Factory dataset.

Nothing is written until every check that can fail early has passed; the data file, the rejects file and
``dataset_info.json`` are each written to a temp file and renamed into place only when the run completes.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.filters import Dedup, SampleFilter
from lf_reasoning.formats import Format, detect_format, resolve_reader
from lf_reasoning.llamafactory.dataset_info import (
    alpaca_entry,
    load_dataset_info,
    merge_entry,
    sharegpt_entry,
    write_dataset_info,
)
from lf_reasoning.render import Style, ThinkMode, lf_messages, to_record
from lf_reasoning.sample import ReasoningSample
from lf_reasoning.sources import Raw, iter_file, iter_hub, list_files, looks_like_hub_name

_NAME = re.compile(r"^[\w.-]+$")
_TOKEN_BATCH = 512


@dataclass
class ConvertReport:
    data_file: Path
    rejects_file: Path
    read: int = 0  # raw records read
    written: int = 0
    invalid: Counter[str] = field(default_factory=Counter)  # bad input: parse errors, wrong types, bad markup
    filtered: Counter[str] = field(default_factory=Counter)  # good input dropped by a filter
    formats: dict[str, str] = field(default_factory=dict)  # source file → "format (why)"
    scores: Counter[int] = field(default_factory=Counter)


@dataclass
class _Counting:
    """Token-length filter for ``--max-tokens``: counts in batches, drops what LLaMA-Factory would cut."""

    max_tokens: int
    counter: Any  # lf_reasoning.llamafactory.tokens.TokenCounter, imported only when used
    think: ThinkMode
    pending: list[tuple[str, ReasoningSample]] = field(default_factory=list)

    def flush(self) -> Iterator[tuple[str, ReasoningSample, RecordError | None]]:
        batch, self.pending = self.pending, []
        if not batch:
            return
        lengths = self.counter.count([(s.system, lf_messages(s, self.think)) for _, s in batch])
        for (where, sample), n in zip(batch, lengths, strict=True):
            error = None
            if n > self.max_tokens:
                error = RecordError("too_long", f"{n} tokens > --max-tokens {self.max_tokens}")
            yield where, sample, error


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
    log: Callable[[str], None] = lambda msg: None,
    progress: bool = False,
) -> ConvertReport:
    """Convert ``sources`` into ``dataset_dir/name.jsonl`` and register ``name`` in its dataset_info.json."""
    if not _NAME.match(name):
        raise UserError(f"--name {name!r}: use letters, digits, '_', '-' or '.' (it becomes a file name)")
    if prompt_template is not None and "{prompt}" not in prompt_template:
        raise UserError("the prompt template has no {prompt} placeholder; put {prompt} where the question goes")
    counting = None
    if max_tokens is not None:
        if not tokenizer or not template:
            raise UserError("--max-tokens needs --tokenizer PATH and --template NAME (the LLaMA-Factory template "
                            "you will train with, e.g. qwen3 or deepseekr1) to count tokens exactly")
        from lf_reasoning.llamafactory.tokens import TokenCounter

        counting = _Counting(max_tokens, TokenCounter(tokenizer, template), think)
    reader = resolve_reader(fmt, mapping)
    inputs = _resolve_inputs(sources, hub_split)

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
        raise UserError(f"{data_file} exists but is not registered as '{name}'; pass --force to overwrite it "
                        "or choose another --name")

    report = ConvertReport(data_file=data_file, rejects_file=rejects_file)
    keep = SampleFilter(think=think, min_score=min_score, require_verified=require_verified, dedup=dedup)
    data_out = _TempFile(data_file)
    try:
        rejects_out = _TempFile(rejects_file)
    except UserError:
        data_out.discard()
        raise
    bar = _progress_bar(progress)
    try:
        def reject(where: str, error: RecordError, counter: Counter[str], record: Any) -> None:
            counter[error.reason] += 1
            rejects_out.write({"where": where, "reason": error.reason, "detail": error.detail, "record": record})

        def emit(where: str, sample: ReasoningSample, error: RecordError | None) -> None:
            if error is not None:
                reject(where, error, report.filtered, asdict(sample))
                return
            data_out.write(to_record(sample, think, style))
            report.written += 1

        for where, raw, fmt_used in _iter_records(inputs, reader, report, log):
            report.read += 1
            if bar is not None and report.read % 1000 == 0:
                bar.update(1000)
            if isinstance(raw, RecordError):
                samples: Sequence[ReasoningSample | RecordError] | RecordError = raw
            else:
                assert fmt_used is not None  # detected from the first valid record
                try:
                    samples = fmt_used.read(raw)
                except RecordError as err:
                    samples = err
            if isinstance(samples, RecordError):
                if strict:
                    raise UserError(f"{where}: {samples.detail} (--strict stops at the first invalid record)")
                log(f"warning: {where}: {samples.detail}")
                reject(where, samples, report.invalid, raw if isinstance(raw, dict) else None)
                continue
            for sample in samples:
                if isinstance(sample, RecordError):
                    reject(where, sample, report.filtered, raw)
                    continue
                _apply_prompt_options(sample, system, prompt_template)
                if sample.score is not None:
                    report.scores[int(sample.score)] += 1
                error = keep(sample)
                if error is not None or counting is None:
                    emit(where, sample, error)
                    continue
                counting.pending.append((where, sample))
                if len(counting.pending) >= _TOKEN_BATCH:
                    for item in counting.flush():
                        emit(*item)
        if counting is not None:
            for item in counting.flush():
                emit(*item)
        if bar is not None:
            bar.update(report.read % 1000)
        rejects_out.commit()
        if report.written == 0:
            raise UserError(f"no records written: all {report.read} records were rejected; reasons are in "
                            f"{rejects_file}. {dataset_dir}/dataset_info.json was not changed.")
        data_out.commit()
        write_dataset_info(dataset_dir, merged)
    finally:
        if bar is not None:
            bar.close()
        data_out.discard()
        rejects_out.discard()
    return report


def _resolve_inputs(sources: Sequence[str], hub_split: str) -> list[Path | str]:
    """Every local file (directories expanded) or hub name, checked to exist before anything is written."""
    if not sources:
        raise UserError("no SRC given: pass a file, a directory or a Hugging Face dataset name")
    inputs: list[Path | str] = []
    for src in sources:
        if looks_like_hub_name(src):
            inputs.append(src)
        else:
            inputs.extend(list_files(src))
    return inputs


def _iter_records(
    inputs: list[Path | str], reader: Format | None, report: ConvertReport, log: Callable[[str], None]
) -> Iterator[tuple[str, Raw, Format | None]]:
    """Raw records of every input with the format that reads them (detected on each file's first record)."""
    for src in inputs:
        records = iter_file(src) if isinstance(src, Path) else iter_hub(src)
        fmt = reader
        for where, raw in records:
            if fmt is None and not isinstance(raw, RecordError):
                fmt, why = detect_format(raw, where)
                report.formats[str(src)] = f"{fmt.name} ({why})"
                log(f"{src}: format {fmt.name}: {why}")
            yield where, raw, fmt
        if reader is not None:
            report.formats[str(src)] = f"{reader.name} (--format)"


def _apply_prompt_options(sample: ReasoningSample, system: str | None, prompt_template: str | None) -> None:
    if system is not None:
        sample.system = system
    if prompt_template is not None:
        sample.prompt = prompt_template.replace("{prompt}", sample.prompt)
        for turn in sample.history:
            turn.prompt = prompt_template.replace("{prompt}", turn.prompt)


class _TempFile:
    """A JSONL file written next to its destination and renamed into place by :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd, self._tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as err:
            raise UserError(f"cannot write {path}: {err.strerror}") from err
        self._file: IO[bytes] = os.fdopen(fd, "wb", buffering=1 << 20)
        self._done = False

    def write(self, obj: dict[str, Any]) -> None:
        self._file.write(orjson.dumps(obj, default=str) + b"\n")

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        self._done = True

    def discard(self) -> None:
        """Remove the temp file unless committed (safe to call twice, and after a failure)."""
        self._file.close()
        if not self._done:
            Path(self._tmp).unlink(missing_ok=True)


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" records", file=sys.stderr, disable=None, mininterval=0.5)


def format_report(report: ConvertReport) -> str:
    """The closing table: read / written / rejected by reason, and the score distribution."""
    rejected = sum(report.invalid.values()) + sum(report.filtered.values())
    lines = [f"{'read':<34}{report.read:>10}", f"{'written':<34}{report.written:>10}  → {report.data_file}",
             f"{'rejected':<34}{rejected:>10}" + (f"  → {report.rejects_file}" if rejected else "")]
    for title, counter in (("invalid input", report.invalid), ("filtered", report.filtered)):
        for reason, n in counter.most_common():
            lines.append(f"  {reason + f' ({title})':<32}{n:>10}")
    if report.scores:
        histogram = "  ".join(f"{score}:{n}" for score, n in sorted(report.scores.items()))
        lines.append(f"score distribution                {histogram}")
    return "\n".join(lines)
