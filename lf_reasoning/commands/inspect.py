"""``lf-reasoning inspect``: what LLaMA-Factory trains in each record, as coloured text, JSON lines or a web page.

The encoding is LLaMA-Factory's own (:mod:`lf_reasoning.llamafactory.inspect_encode`); this module chooses the
records, the template and the ``enable_thinking`` values, and renders the segments.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.inspect_encode import (
    ROLES,
    Cut,
    DroppedRecord,
    EncodedRecord,
    EncodeSettings,
    Role,
    SftEncoder,
)
from lf_reasoning.record.markup import has_markup

Encoded = EncodedRecord | DroppedRecord
# Terminal colours per role: a coloured background (with black text) when trained, the colour dimmed when
# masked; both read on dark and light backgrounds.
ROLE_COLOURS: dict[Role, str] = {
    "system": "magenta",
    "user": "blue",
    "thought": "cyan",
    "answer": "green",
    "tool": "yellow",
    "empty_thought": "red",
    "template": "white",
}
ROLE_NAMES: dict[Role, str] = {
    "system": "system",
    "user": "user",
    "thought": "thought",
    "answer": "answer",
    "tool": "tool call / result",
    "empty_thought": "empty thought block added by the template",
    "template": "template tokens",
}


@dataclass(frozen=True)
class InspectOptions:
    """What to inspect and how LLaMA-Factory would be configured to train it."""

    name: str  # dataset in dataset_dir/dataset_info.json
    dataset_dir: Path
    model: str | None = None  # the model to train (hub id or folder): its tokenizer and template
    tokenizer: str | None = None  # or only a tokenizer (then the template from it or from ``template``)
    template: str | None = None  # LLaMA-Factory template; default: chosen from the model, with the reason
    enable_thinking: bool | None = True
    n: int = 5  # the first n records ...
    records: tuple[int, ...] | None = None  # ... or these (0-based, file order)
    cutoff_len: int = 2048
    mask_history: bool = False
    train_on_prompt: bool = False
    both_thinking: bool = False  # also encode with the other enable_thinking value (the web page shows both)
    summary: bool = False  # dataset-wide numbers (the web page's head)

    def __post_init__(self) -> None:
        if (self.model is None) == (self.tokenizer is None):
            raise UserError("pass --model M (the model you will train) or --tokenizer T, not both")
        if self.n < 1:
            raise UserError(f"-n {self.n}: show at least one record")
        if self.records is not None and (not self.records or min(self.records) < 0):
            raise UserError("--records: give record numbers (0-based, as in the file), e.g. --records 0,5,12")


@dataclass(frozen=True)
class Summary:
    """Dataset-wide numbers for the web page."""

    totals: tuple[int, ...]  # tokens per record, as cutoff_len measures them
    dropped: int  # records LLaMA-Factory's SFT stage skips
    scores: tuple[float, ...]  # the records' own ``score`` values, where they have one
    thoughts: dict[str, int]  # responses by thought form: thought, empty, none, other markup

    def over_cutoff(self, cutoff_len: int) -> float:
        return sum(t > cutoff_len for t in self.totals) / len(self.totals) if self.totals else 0.0


@dataclass(frozen=True)
class InspectReport:
    name: str
    model: str
    template: str
    template_reason: str
    warnings: tuple[str, ...]
    reasoning: bool  # a ReasoningTemplate: enable_thinking applies
    thought_words: tuple[str, str]
    options: InspectOptions
    records: tuple[Encoded, ...]  # with options.enable_thinking
    other: tuple[Encoded, ...] | None  # with the other enable_thinking value (both_thinking on a reasoning template)
    summary: Summary | None


def inspect(options: InspectOptions) -> InspectReport:
    """Encode the chosen records of ``options.name`` exactly as LLaMA-Factory's SFT stage would."""
    from lf_reasoning.llamafactory.lengths import dataset_files
    from lf_reasoning.llamafactory.templates import choose_template

    dataset_files(options.dataset_dir, options.name)  # a missing or misspelt entry, named with a fix, before loading
    source = options.model or options.tokenizer
    assert source is not None  # checked by InspectOptions
    choice = choose_template(source, options.template)
    settings = EncodeSettings(options.cutoff_len, options.mask_history, options.train_on_prompt)
    with SftEncoder(source, options.dataset_dir, options.name, choice.template, settings) as encoder:
        indices = list(options.records) if options.records is not None else None
        if indices is None:
            indices = list(range(min(options.n, len(encoder.rows(options.n)))))
        if not indices:
            raise UserError(f"dataset '{options.name}' in {options.dataset_dir} has no records")
        records = tuple(encoder.encode(indices, options.enable_thinking))
        other = None
        if options.both_thinking and encoder.reasoning:
            other = tuple(encoder.encode(indices, options.enable_thinking is False))
        summary = _summary(encoder, options, choice.template) if options.summary else None
        return InspectReport(
            options.name,
            source,
            choice.template,
            choice.reason,
            choice.warnings,
            encoder.reasoning,
            encoder.thought_words,
            options,
            records,
            other,
            summary,
        )


def _summary(encoder: SftEncoder, options: InspectOptions, template: str) -> Summary:
    from lf_reasoning.llamafactory.lengths import dataset_files, measure_lengths
    from lf_reasoning.record.sources import iter_file

    source = options.model or options.tokenizer
    assert source is not None
    try:  # batched: fast on large datasets
        lengths = measure_lengths(
            options.dataset_dir, options.name, source, template, enable_thinking=options.enable_thinking
        )
        totals, dropped = tuple(int(t) for t in lengths.total), lengths.dropped
    except UserError:  # records it does not measure (tool calls): encode every record instead
        encoded = list(encoder.encode(range(len(encoder.rows())), options.enable_thinking))
        totals = tuple(r.tokens + r.cut_tokens for r in encoded if isinstance(r, EncodedRecord))
        dropped = len(encoded) - len(totals)
    _, files = dataset_files(options.dataset_dir, options.name)
    scores = tuple(
        float(raw["score"])
        for path in files
        for _, raw in iter_file(path)
        if isinstance(raw, dict) and isinstance(raw.get("score"), int | float) and not isinstance(raw["score"], bool)
    )
    forms: Counter[str] = Counter()
    for row in encoder.rows():
        for message in row["_response"]:
            match = encoder.thought.search(message["content"])
            if match:
                forms["empty block" if not match.group(1).strip() else "thought"] += 1
            elif has_markup(message["content"]):
                forms["other markup (not the template's words: trained verbatim)"] += 1
            else:
                forms["no thought"] += 1
    return Summary(totals, dropped, scores, dict(forms))


def record_json(record: Encoded) -> dict[str, Any]:
    """One ``--json`` line: segments agree token for token with LLaMA-Factory's labels."""
    if isinstance(record, DroppedRecord):
        return {"index": record.index, "dropped": record.reason}
    return {
        "index": record.index,
        "segments": [
            {"text": s.text, "trained": s.trained, "role": s.role, "tokens": s.tokens} for s in record.segments
        ],
        "tokens": record.tokens,
        "cut_at": record.cut_at,
        "cut_tokens": record.cut_tokens,
        "removed_thoughts": record.removed_thoughts,
    }


def legend() -> str:
    """The key to the terminal colours."""
    parts = [
        click.style(" trained ", bold=True, fg="black", bg="white"),
        click.style("masked (no loss)", dim=True),
    ]
    roles = [_style(ROLE_NAMES[r], r, True) for r in ROLES]
    return (
        "legend: " + "  ".join(parts) + "\nroles (trained colours; masked: the same colour dimmed): " + ", ".join(roles)
    )


def format_header(report: InspectReport) -> str:
    options = report.options
    thinking = (
        f"enable_thinking {str(options.enable_thinking).lower()}"
        if report.reasoning
        else "enable_thinking has no effect"
    )
    settings = [f"template {report.template}", thinking, f"cutoff_len {options.cutoff_len}"]
    settings += ["mask_history"] * options.mask_history + ["train_on_prompt"] * options.train_on_prompt
    return f"{report.name}: {' · '.join(settings)}\n{legend()}"


def format_record(record: Encoded, cutoff_len: int) -> str:
    """A record in colour (plain text when not a terminal: click strips the styles), then its token counts."""
    if isinstance(record, DroppedRecord):
        return click.style(f"── record {record.index}: {record.reason}", bold=True)
    trained = record.counts(True)
    head = f"── record {record.index} · {record.tokens} tokens · {sum(trained.values())} trained "
    cuts = {cut.at: cut for cut in record.cuts}
    body = []
    position = 0
    for segment in record.segments:
        if position in cuts:
            body.append(_cut_mark(cuts[position], cutoff_len))
        body.append(_style(_visible(segment.text), segment.role, segment.trained))
        position += segment.tokens
    if position in cuts:
        body.append(_cut_mark(cuts[position], cutoff_len))
    lines = [click.style(head + "─" * max(0, 60 - len(head)), bold=True), "".join(body)]
    lines.append(f"   trained: {_counts(trained)} · masked: {_counts(record.counts(False))}")
    if record.removed_thoughts:
        turns = "turn" if record.removed_thoughts == 1 else "turns"
        lines.append(f"   thought removed by the template from {record.removed_thoughts} {turns}: never trained")
    return "\n".join(lines)


def _cut_mark(cut: Cut, cutoff_len: int) -> str:
    return click.style(f"\n{cut_note(cut, cutoff_len)}\n", fg="red", bold=True)


def cut_note(cut: Cut, cutoff_len: int) -> str:
    """What cutoff_len removed at one point, by role."""
    lost = Counter[str]()
    for segment in cut.removed:
        lost[f"{segment.role}{'' if segment.trained else ' (masked)'}"] += segment.tokens
    detail = ", ".join(f"{role} {n}" for role, n in lost.items())
    return f"✂ cutoff_len {cutoff_len} removes {sum(lost.values())} tokens here ({detail}): the model never sees them"


def _counts(counts: Counter[Role]) -> str:
    return ", ".join(f"{role} {n}" for role, n in sorted(counts.items(), key=lambda kv: ROLES.index(kv[0]))) or "none"


def _visible(text: str) -> str:
    """Newlines shown as ↵ (an empty thought block is mostly newlines), then kept."""
    return text.replace("\n", "↵\n")


def _style(text: str, role: Role, trained: bool) -> str:
    """Each line styled on its own: a background colour carried over a newline would fill the terminal line."""
    colour = ROLE_COLOURS[role]
    if trained:
        style = {"fg": "black", "bg": colour, "bold": True}
    else:
        style = {"fg": None if role == "template" else colour, "dim": True}
    return "\n".join(click.style(line, **style) if line else "" for line in text.split("\n"))
