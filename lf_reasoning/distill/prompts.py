"""The prompts to distill: read from any shape ``convert`` reads, or from a prompt-only table.

Each prompt gets a stable ``key`` (a digest of its system prompt, earlier turns and text as read from the
source) that, with the sample index, identifies an output record across runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.formats import detect_format, fields
from lf_reasoning.sample import ReasoningSample, Turn
from lf_reasoning.sources import iter_file, iter_hub

# Prompt-only records (e.g. {"question", "answer"} or {"problem", "solution"}): the first key present is used.
PROMPT_KEYS = ("prompt", "question", "problem", "query", "instruction", "input")
REFERENCE_KEYS = ("reference_answer", "reference", "answer", "final_answer", "solution")
MAPPABLE = ("prompt", "query", "system", "reference", "id", "source")  # query: appended on a new line (Alpaca input)

PromptReader = Callable[[dict[str, Any]], ReasoningSample]


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


def parse_prompt_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """``["prompt=Question", …]`` → ``{"prompt": "Question", …}``; only ``prompt`` is required."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, sep, column = (part.strip() for part in pair.partition("="))
        if not sep or not name or not column:
            raise UserError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. --map prompt=Question")
        if name not in MAPPABLE:
            raise UserError(f"--map {pair!r}: unknown field '{name}'; fields are {', '.join(MAPPABLE)}")
        mapping[name] = column
    if mapping and "prompt" not in mapping:
        raise UserError("--map needs prompt=COLUMN (the column holding the question)")
    return mapping


def iter_prompts(
    inputs: Sequence[Path | str],
    *,
    mapping: dict[str, str],
    system: str | None,
    prompt_suffix: str | None,
    hub_split: str = "train",
    on_invalid: Callable[[str, RecordError], None] = lambda where, err: None,
    log: Callable[[str], None] = lambda msg: None,
) -> Iterator[Prompt]:
    """Every prompt of ``inputs`` (from :func:`lf_reasoning.sources.resolve_sources`) in order; a record that
    cannot be read goes to ``on_invalid``."""
    for src in inputs:
        records = iter_file(src) if isinstance(src, Path) else iter_hub(src, split=hub_split)
        read: PromptReader | None = _mapped_reader(mapping) if mapping else None
        for where, raw in records:
            if isinstance(raw, RecordError):
                on_invalid(where, raw)
                continue
            assert isinstance(raw, dict), "only lazy reading yields unparsed lines"
            if read is None:
                read, why = _choose_reader(raw, where)
                log(f"{src}: {why}")
            try:
                sample = read(raw)
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


def _choose_reader(record: dict[str, Any], where: str) -> tuple[PromptReader, str]:
    """The reader for a file, chosen on its first record: a shape ``convert`` knows, else prompt-only columns."""
    try:
        fmt, why = detect_format(record, where)
    except UserError:
        prompt_key = next((k for k in PROMPT_KEYS if isinstance(record.get(k), str)), None)
        if prompt_key is None:
            keys = ", ".join(sorted(record)[:20])
            raise UserError(
                f"{where}: no prompt found in the keys [{keys}]; name its column with "
                "--map prompt=COLUMN (and --map reference=COLUMN for a reference answer)"
            ) from None
        mapping = {"prompt": prompt_key, "system": "system", "id": "id"}
        if prompt_key == "instruction":  # Alpaca without outputs: LLaMA-Factory joins instruction and input
            mapping["query"] = "input"
        reference_key = next((k for k in REFERENCE_KEYS if k in record and k != prompt_key), None)
        if reference_key:
            mapping["reference"] = reference_key
        return _mapped_reader(mapping), (
            f"prompts from '{prompt_key}'" + (f", reference answers from '{reference_key}'" if reference_key else "")
        )
    if fmt.name in ("messages", "sharegpt"):
        return _chat_reader(fmt.read, fmt.name), f"format {fmt.name}: {why}; the last user turn is the prompt"
    if fmt.name == "openr1":  # the prompt is valid whatever became of the dump's generations
        mapping = {"prompt": "problem", "reference": "answer", "id": "uuid", "source": "source"}
        return _mapped_reader(mapping), f"format openr1: {why}; prompts from 'problem', references from 'answer'"
    return _first_sample(fmt.read), f"format {fmt.name}: {why}; its prompts are used (its answers are not sent)"


def _first_sample(read: Callable[[dict[str, Any]], Any]) -> PromptReader:
    return lambda record: read(record)[0]


def _chat_reader(read: Callable[[dict[str, Any]], Any], fmt_name: str) -> PromptReader:
    """Chat records may end on the user turn to be answered; the conversation reader wants a final assistant
    turn, so an empty one is added before reading."""
    key, role, text = ("messages", "role", "content") if fmt_name == "messages" else ("conversations", "from", "value")

    def read_prompt(record: dict[str, Any]) -> ReasoningSample:
        turns = record.get(key)
        if (
            isinstance(turns, list)
            and turns
            and isinstance(turns[-1], dict)
            and turns[-1].get(role) in ("user", "human")
        ):
            record = {**record, key: [*turns, {role: "assistant", text: ""}]}
        return read(record)[0]

    return read_prompt


def _mapped_reader(mapping: dict[str, str]) -> PromptReader:
    prompt_key, query_key, system_key = mapping["prompt"], mapping.get("query"), mapping.get("system")
    reference_key, source_key, id_key = mapping.get("reference"), mapping.get("source"), mapping.get("id")
    text, identifier = fields.text, fields.identifier

    def read(record: dict[str, Any]) -> ReasoningSample:
        prompt = text(record, prompt_key)
        if query_key is not None:
            query = text(record, query_key, required=False)
            if query:
                prompt = f"{prompt}\n{query}"
        if not prompt or prompt.isspace():
            raise RecordError("empty_prompt", f"field '{prompt_key}' is empty")
        reference = record.get(reference_key) if reference_key is not None else None
        return ReasoningSample(
            prompt=prompt,
            answer="",
            system=text(record, system_key, required=False) if system_key is not None else None,
            reference=None if reference is None else str(reference),  # numeric answers (GSM8K-style) become text
            source=identifier(record, source_key) if source_key is not None else None,
            id=identifier(record, id_key) if id_key is not None else None,
        )

    return read
