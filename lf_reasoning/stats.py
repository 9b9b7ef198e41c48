"""Token lengths of a registered dataset, exactly as LLaMA-Factory's template and ``cutoff_len`` see them.

Records stream from the data file in batches; only three integers per record are kept (prompt, thought and
answer tokens). ``cutoff_len`` truncates silently, so the point is to pick one that drops nothing you need.
"""

from __future__ import annotations

import difflib
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.dataset_info import DATA_CONFIG, REMOTE_KEYS, load_dataset_info
from lf_reasoning.sources import SUFFIXES, has_supported_suffix

Part = Literal["prompt", "thought", "answer", "total"]
PARTS: tuple[Part, ...] = ("prompt", "thought", "answer", "total")
PERCENTILES = (50.0, 90.0, 95.0, 99.0)
CUTOFFS = (1024, 2048, 4096, 8192)
BATCH_SIZE = 512  # records per tokenizer call
TRUNCATION_NOTE = (
    "LLaMA-Factory truncates longer records silently, from the tail: the end of the response (the "
    "answer and EOS) is cut,\nso the model trains on thoughts that never reach an answer; later turns "
    "are dropped.\nDrop long records instead: lf-reasoning convert … --max-tokens N."
)


@dataclass(frozen=True)
class LengthStats:
    """Per-record token counts (numpy int arrays in file order) and the records LLaMA-Factory would drop."""

    prompt: np.ndarray  # masked: system, user turns, template scaffolding
    thought: np.ndarray  # thought text of every trained turn
    answer: np.ndarray  # the other trained tokens: answers, thought words, end-of-turn / EOS
    dropped: int = 0  # records LLaMA-Factory skips (not a user/assistant alternation ending in a response)

    @cached_property
    def total(self) -> np.ndarray:
        """Tokens per record as ``cutoff_len`` measures them."""
        return self.prompt + self.thought + self.answer

    @property
    def n(self) -> int:
        return len(self.total)

    def percentile(self, p: float, part: Part = "total") -> int:
        """The smallest length that at least ``p`` percent of the records do not exceed."""
        return int(np.percentile(getattr(self, part), p, method="inverted_cdf"))

    def mean(self, part: Part = "total") -> float:
        return float(np.mean(getattr(self, part)))

    def truncated_share(self, cutoff_len: int) -> float:
        """Share of records longer than ``cutoff_len`` tokens, which LLaMA-Factory would truncate."""
        return float(np.mean(self.total > cutoff_len))


def measure_lengths(
    dataset_dir: Path, name: str, tokenizer: str, template: str, *, enable_thinking: bool | None = True
) -> LengthStats:
    """Measure dataset ``name`` of ``dataset_dir`` with ``tokenizer`` and LLaMA-Factory template ``template``."""
    from lf_reasoning.llamafactory.tokens import TokenCounter, iter_conversations

    entry, files = dataset_files(Path(dataset_dir), name)
    counter = TokenCounter(tokenizer, template, enable_thinking=enable_thinking)
    columns: tuple[array[int], ...] = (array("q"), array("q"), array("q"))
    dropped = 0
    for batch in _batches(iter_conversations(name, entry, files), BATCH_SIZE):
        conversations = [c for c in batch if c is not None]
        dropped += len(batch) - len(conversations)
        for parts in counter.measure(conversations):
            for column, value in zip(columns, parts, strict=True):
                column.append(value)
    if not columns[0]:
        raise UserError(f"dataset '{name}': no record LLaMA-Factory would train on ({dropped} dropped)")
    prompt, thought, answer = (np.frombuffer(column, dtype=np.int64) for column in columns)
    return LengthStats(prompt, thought, answer, dropped)


def suggest_cutoff_len(stats: LengthStats, percentile: float = 99.0, multiple: int = 256) -> int:
    """The smallest multiple of ``multiple`` covering ``percentile`` percent of the records' totals."""
    return max(1, math.ceil(stats.percentile(percentile) / multiple)) * multiple


def dataset_files(dataset_dir: Path, name: str) -> tuple[dict[str, Any], list[Path]]:
    """The registry entry ``name`` of ``dataset_dir`` and its local data files (a file, or a folder's files)."""
    info = load_dataset_info(dataset_dir)
    registry = dataset_dir / DATA_CONFIG
    if name not in info:
        if not info:
            raise UserError(f"{registry}: no such registry or it is empty; create it with lf-reasoning convert")
        close = difflib.get_close_matches(name, list(info), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"it has: {', '.join(sorted(info)[:20])}"
        raise UserError(f"{registry}: no dataset '{name}'; {hint}")
    entry = info[name]
    if not isinstance(entry, dict):
        raise UserError(f"{registry}: entry '{name}' is not a JSON object; run lf-reasoning validate")
    remote = [key for key in REMOTE_KEYS if key in entry]
    if remote:
        raise UserError(f"dataset '{name}' is remote ({remote[0]}); stats reads local files: convert it first")
    if not isinstance(entry.get("file_name"), str):
        raise UserError(f"{registry}: entry '{name}' has no file_name; run lf-reasoning validate")
    path = dataset_dir / entry["file_name"]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"{path}: data file of dataset '{name}' is missing (file_name in {registry})")
    if not files or not all(map(has_supported_suffix, files)):
        raise UserError(f"{path}: stats reads {', '.join(SUFFIXES)} data files")
    return entry, files


def format_stats(stats: LengthStats, cutoff_len: int) -> str:
    """A percentile table per part, the share each cutoff_len truncates, and a suggested cutoff_len."""
    head = ["tokens", *(f"p{p:g}" for p in PERCENTILES), "max", "mean"]
    rows = [head]
    for part in PARTS:
        values = [stats.percentile(p, part) for p in (*PERCENTILES, 100.0)]
        rows.append([part, *map(str, values), f"{stats.mean(part):.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    table = [
        "  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    dropped = f" ({stats.dropped} more that LLaMA-Factory drops)" if stats.dropped else ""
    lines = [
        f"{stats.n} records{dropped}",
        *table,
        "prompt is masked (system, user turns, template); thought + answer are trained (answer includes the "
        "thought words and end-of-turn)",
        "",
        "cutoff_len  truncated records",
    ]
    for cut in sorted({*CUTOFFS, cutoff_len}):
        share = stats.truncated_share(cut)
        mark = "  <- --cutoff-len" if cut == cutoff_len else ""
        lines.append(f"{cut:>10}  {round(share * stats.n):>9} ({share:.1%}){mark}")
    lines += [TRUNCATION_NOTE, f"suggested cutoff_len (covers p99, multiple of 256): {suggest_cutoff_len(stats)}"]
    return "\n".join(lines)


def stats_json(stats: LengthStats, cutoff_len: int) -> dict[str, Any]:
    """The numbers of :func:`format_stats` as a JSON-ready dict."""
    return {
        "records": stats.n,
        "dropped": stats.dropped,
        "parts": {
            part: {
                **{f"p{p:g}": stats.percentile(p, part) for p in PERCENTILES},
                "max": stats.percentile(100.0, part),
                "mean": round(stats.mean(part), 2),
            }
            for part in PARTS
        },
        "truncated_share": {str(cut): stats.truncated_share(cut) for cut in sorted({*CUTOFFS, cutoff_len})},
        "cutoff_len": cutoff_len,
        "suggested_cutoff_len": suggest_cutoff_len(stats),
    }


def plot_lengths(stats: LengthStats, path: Path, cutoff_len: int, title: str) -> None:
    """Write a histogram PNG of total lengths with ``cutoff_len`` marked (matplotlib's Agg canvas, no pyplot)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from err
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.hist(stats.total, bins=min(100, max(10, stats.n // 20)), color="#4c72b0")
    share = stats.truncated_share(cutoff_len)
    ax.axvline(cutoff_len, color="#c44e52", linestyle="--", label=f"cutoff_len {cutoff_len}: {share:.1%} truncated")
    ax.set(title=title, xlabel="tokens per record (LLaMA-Factory total)", ylabel="records")
    ax.legend()
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as err:
        raise UserError(f"--plot {path}: cannot write: {err.strerror}") from err


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch
