"""The prompts to distill: read from any shape ``convert`` reads, or from a prompt-only table.

Each prompt gets a stable ``key`` (a digest of its system prompt, earlier turns and text as read from the
source) that, with the sample index, identifies an output record across runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.formats import Format, fields
from lf_reasoning.record.inputs import Inputs, iter_inputs
from lf_reasoning.record.prompt_template import PromptTemplate
from lf_reasoning.record.sample import ReasoningSample, Turn


@dataclass(slots=True)
class Prompt:
    key: str
    where: str  # file:line or file#index
    prompt: str  # the user message as sent (with --prompt-suffix)
    system: str | None  # as sent (--system replaces the source's)
    history: list[Turn] = field(default_factory=list)
    reference: str | None = None
    source: str | None = None
    source_id: str | None = None

    def messages(self) -> list[dict[str, str]]:
        """The chat sent: earlier turns carry their answers only (APIs such as DeepSeek's refuse a reasoning
        field in a request)."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for turn in self.history:
            messages += [{"role": "user", "content": turn.prompt}, {"role": "assistant", "content": turn.answer}]
        messages.append({"role": "user", "content": self.prompt})
        return messages


def iter_prompts(
    inputs: Inputs,
    *,
    system: str | None,
    prompt_suffix: str | None,
    wrap: PromptTemplate | None = None,
    keep_reference: bool = True,
    on_invalid: Callable[[str, RecordError], None] = lambda where, err: None,
    log: Callable[[str], None] = lambda msg: None,
    sources: list[Path | str] | None = None,
) -> Iterator[Prompt]:
    """Every prompt of ``inputs`` in order; a record that cannot be read goes to ``on_invalid``.

    Each keeps the source's answer as its reference (see :meth:`Format.prompt`), or the ``--map reference=COLUMN``
    column's value, or none without ``keep_reference``."""
    column = inputs.reference_column

    def on_format(src: str, fmt: Format, why: str) -> None:
        log(f"{src}: format {fmt.name}: {why}; {fmt.prompt_note}; {_reference_note(fmt, column, keep_reference)}")

    def on_first(src: str, where: str, record: dict[str, Any], fmt: Format) -> None:
        if wrap is not None:
            wrap.check(record, where)
        if column is not None and column not in record:  # a misspelt column would drop every reference
            keys = ", ".join(sorted(record)[:20])
            raise UserError(f"{where}: no column '{column}' for --map reference={column}; the keys are [{keys}]")

    for where, raw, fmt in iter_inputs(inputs, on_format=on_format, on_first=on_first, sources=sources):
        if isinstance(raw, RecordError):
            on_invalid(where, raw)
            continue
        assert isinstance(raw, dict) and fmt is not None, "only lazy reading yields unparsed lines"
        try:
            sample = fmt.prompt(raw)
            if wrap is not None:  # the question as sent (the reference answer is the source's, unwrapped)
                wrap.apply(sample, raw)
        except RecordError as err:
            on_invalid(where, err)
            continue
        if column is not None:
            try:  # numeric answers (GSM8K-style) become their text
                sample.reference = fields.reference(raw, column)
            except RecordError as err:
                on_invalid(where, err)
                continue
        elif not keep_reference:
            sample.reference = None
        yield _prompt(sample, where, system, prompt_suffix)


def _reference_note(fmt: Format, column: str | None, keep: bool) -> str:
    """What distill says it keeps as the reference answer (the gold ``grade`` and ``verify`` check against)."""
    if column is not None:
        return f"reference answers from `{column}` (--map)"
    if not keep:
        return "the source's answers are dropped (--no-reference)"
    if fmt.answers is None:
        return "no reference answers (name a column with --map reference=COLUMN)"
    return f"keeping the source's answers as reference (from {fmt.answers}); --no-reference to drop"


def _prompt(sample: ReasoningSample, where: str, system: str | None, suffix: str | None) -> Prompt:
    history = [[t.prompt, t.answer] for t in sample.history] if sample.history else []
    key = hashlib.blake2b(orjson.dumps([sample.system, history, sample.prompt]), digest_size=10).hexdigest()
    text = f"{sample.prompt}\n{suffix}" if suffix else sample.prompt
    return Prompt(
        key=key,
        where=where,
        prompt=text,
        system=system if system is not None else sample.system,
        history=sample.history,
        reference=sample.reference,
        source=sample.source,
        source_id=sample.id,
    )
