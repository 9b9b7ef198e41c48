"""The prompts to distill: read from any shape ``convert`` reads, or from a prompt-only table.

Each prompt gets a stable ``key`` (a digest of its system prompt, earlier turns and text as read from the
source) that, with the sample index, identifies an output record across runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from lf_reasoning.errors import RecordError
from lf_reasoning.record.formats import Format
from lf_reasoning.record.inputs import Inputs, iter_inputs
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
    on_invalid: Callable[[str, RecordError], None] = lambda where, err: None,
    log: Callable[[str], None] = lambda msg: None,
    sources: list[Path | str] | None = None,
) -> Iterator[Prompt]:
    """Every prompt of ``inputs`` in order; a record that cannot be read goes to ``on_invalid``."""

    def on_format(src: str, fmt: Format, why: str) -> None:
        log(f"{src}: format {fmt.name}: {why}; {fmt.prompt_note}")

    for where, raw, fmt in iter_inputs(inputs, on_format=on_format, sources=sources):
        if isinstance(raw, RecordError):
            on_invalid(where, raw)
            continue
        assert isinstance(raw, dict) and fmt is not None, "only lazy reading yields unparsed lines"
        try:
            sample = fmt.prompt(raw)
        except RecordError as err:
            on_invalid(where, err)
            continue
        yield _prompt(sample, where, system, prompt_suffix)


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
