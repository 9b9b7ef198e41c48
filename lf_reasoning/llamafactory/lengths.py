"""Token lengths of a registered dataset, exactly as LLaMA-Factory's template and ``cutoff_len`` see them.

Records stream from the data file in batches; only three integers per record are kept (prompt, thought and
answer tokens). ``cutoff_len`` truncates silently, so the point is to pick one that drops nothing you need.
"""

from __future__ import annotations

import difflib
import math
import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.dataset_info import DATA_CONFIG, REMOTE_KEYS, load_dataset_info
from lf_reasoning.llamafactory.tokens import TokenCounter, iter_conversations
from lf_reasoning.record.sources import SUFFIXES, has_supported_suffix

Part = Literal["prompt", "thought", "answer", "total"]
BATCH_SIZE = 512  # records per tokenizer call
_THOUGHT = re.compile(r"<think>\s*\S")  # a non-empty thought block


@dataclass(frozen=True)
class LengthStats:
    """Per-record token counts (numpy int arrays in file order) and the records LLaMA-Factory would drop."""

    prompt: np.ndarray  # masked: system, user turns, template scaffolding
    thought: np.ndarray  # thought text of every trained turn
    answer: np.ndarray  # the other trained tokens: answers, thought words, end-of-turn / EOS
    dropped: int = 0  # records LLaMA-Factory skips (not a user/assistant alternation ending in a response)

    @classmethod
    def concatenate(cls, parts: Sequence[LengthStats]) -> LengthStats:
        """The records of all ``parts`` (several datasets trained together), in order."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            *(np.concatenate([getattr(p, a) for p in parts]) for a in ("prompt", "thought", "answer")),
            dropped=sum(p.dropped for p in parts),
        )

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


def count_thoughts(dataset_dir: Path, names: Sequence[str]) -> int:
    """Records of datasets ``names`` with a non-empty thought in a response (no tokenizer needed)."""
    count = 0
    for name in names:
        entry, files = dataset_files(dataset_dir, name)
        for conversation in iter_conversations(name, entry, files):
            if conversation and any(
                m["role"] in ("assistant", "function") and _THOUGHT.search(m["content"]) for m in conversation[1]
            ):
                count += 1
    return count


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


def _batches(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch
