"""Readers: one per source shape, each turning a raw record into canonical :class:`ReasoningSample` s.

Detection tries the shapes in order (most specific first) on a file's first record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.formats.columns import column_reader, parse_mapping, prompt_reader
from lf_reasoning.record.formats.conversation import (
    detect_messages,
    detect_sharegpt,
    read_messages,
    read_messages_prompt,
    read_sharegpt,
    read_sharegpt_prompt,
)
from lf_reasoning.record.formats.cot import detect_medical_cot, detect_s1k, read_medical_cot, read_s1k
from lf_reasoning.record.formats.distill import (
    detect_openr1,
    detect_r1_distill,
    read_openr1,
    read_openr1_prompt,
    read_r1_distill,
)
from lf_reasoning.record.formats.instruction import detect_alpaca, read_alpaca
from lf_reasoning.record.sample import ReasoningSample

# A reader returns the samples of one raw record; a record holding several candidates (OpenR1 generations)
# may return, in place of a sample, the RecordError that rules one candidate out.
Reader = Callable[[dict[str, Any]], Sequence[ReasoningSample | RecordError]]
# How distill reads the prompt to send (answer left empty, the source's reference answer kept).
PromptReader = Callable[[dict[str, Any]], ReasoningSample]

# Prompt-only tables (e.g. {"question", "answer"} or {"problem", "solution"}) that distill reads: the first key
# present is used.
PROMPT_KEYS = ("prompt", "question", "problem", "query", "instruction", "input")
REFERENCE_KEYS = ("reference_answer", "reference", "answer", "final_answer", "solution")


@dataclass(frozen=True)
class Format:
    """A source shape: how to recognise it, read its samples, and read the prompts distill sends from it."""

    name: str
    summary: str
    detect: Callable[[dict[str, Any]], str | None]
    read: Reader
    read_prompt: PromptReader | None = None  # None: the prompt of the record's first sample
    prompt_note: str = "its prompts are used (its answers are not sent)"  # what distill says it takes
    multi_sample: bool = False  # one record holds several samples: verify writes one verdict per sample

    def prompt(self, record: dict[str, Any]) -> ReasoningSample:
        if self.read_prompt is not None:
            return self.read_prompt(record)
        first = self.read(record)[0]
        if isinstance(first, RecordError):
            raise first
        return first


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "openr1",
            "OpenR1-Math: problem + generations[] with Math-Verify verdicts",
            detect_openr1,
            read_openr1,
            read_openr1_prompt,
            "prompts from 'problem', references from 'answer'",
            multi_sample=True,
        ),
        Format("s1k", "s1K: question, thinking_trajectories[0], attempt", detect_s1k, read_s1k),
        Format(
            "r1_distill",
            "R1 distill dump: input, reasoning_content, content, score, repo_name",
            detect_r1_distill,
            read_r1_distill,
        ),
        Format("medical_cot", "CoT set: Question, Complex_CoT, Response", detect_medical_cot, read_medical_cot),
        Format(
            "messages",
            "OpenAI messages (reasoning_content/reasoning, AM info, LLaMA-Factory v1 parts)",
            detect_messages,
            read_messages,
            read_messages_prompt,
            "the last user turn is the prompt",
        ),
        Format(
            "sharegpt",
            "ShareGPT conversations (incl. <|begin_of_thought|> markup)",
            detect_sharegpt,
            read_sharegpt,
            read_sharegpt_prompt,
            "the last user turn is the prompt",
        ),
        Format(
            "alpaca", "Alpaca instruction/input/output (output may hold <think> markup)", detect_alpaca, read_alpaca
        ),
    )
}
FORMAT_NAMES = ("auto", *FORMATS, "columns")


def detect_format(record: dict[str, Any], where: str, *, prompts: bool = False) -> tuple[Format, str]:
    """The first shape that matches ``record``, and why. With ``prompts`` (distill), a table with a prompt
    column is accepted too."""
    for fmt in FORMATS.values():
        reason = fmt.detect(record)
        if reason:
            return fmt, reason
    keys = ", ".join(sorted(record)[:20])
    if not prompts:
        raise UserError(
            f"{where}: cannot tell the format from the keys [{keys}]. Pass --format NAME "
            f"({', '.join(FORMATS)}) or map the columns, e.g. --map prompt=Question --map thought=Complex_CoT "
            "--map answer=Response"
        )
    prompt_key = next((k for k in PROMPT_KEYS if isinstance(record.get(k), str)), None)
    if prompt_key is None:
        raise UserError(
            f"{where}: no prompt found in the keys [{keys}]; name its column with "
            "--map prompt=COLUMN (and --map reference=COLUMN for a reference answer)"
        )
    mapping = {"prompt": prompt_key, "system": "system", "id": "id"}
    if prompt_key == "instruction":  # Alpaca without outputs: LLaMA-Factory joins instruction and input
        mapping["query"] = "input"
    reference_key = next((k for k in REFERENCE_KEYS if k in record and k != prompt_key), None)
    note = f"prompts from '{prompt_key}'"
    if reference_key:
        mapping["reference"] = reference_key
        note += f", reference answers from '{reference_key}'"
    return _columns("prompts", mapping, note), f"has a '{prompt_key}' column"


def _columns(name: str, mapping: dict[str, str], note: str = "prompts from the mapped columns") -> Format:
    read_prompt = prompt_reader(mapping)
    read = column_reader(mapping) if "answer" in mapping else (lambda record: [read_prompt(record)])
    return Format(name, "mapped columns", lambda record: "--map", read, read_prompt, note)


def resolve_reader(fmt: str, mapping: Sequence[str], *, prompts: bool = False) -> Format | None:
    """The reader for an explicit ``--format``/``--map`` choice; ``None`` means detect per file.

    ``prompts`` (distill) needs only a prompt column mapped; every other command needs prompt and answer.
    """
    if mapping:
        if fmt not in ("auto", "columns"):
            raise UserError(f"--map cannot be combined with --format {fmt}; use --format columns (or leave it out)")
        return _columns("columns", parse_mapping(mapping, required=("prompt",) if prompts else ("prompt", "answer")))
    if fmt == "auto":
        return None
    if fmt == "columns":
        raise UserError("--format columns needs --map FIELD=COLUMN (at least prompt and answer)")
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; choose one of {', '.join(FORMAT_NAMES)}")
    return FORMATS[fmt]


def read_record(fmt: Format, record: dict[str, Any]) -> Sequence[ReasoningSample | RecordError]:
    """``fmt.read`` plus the verdict ``lf-reasoning verify`` attached to the record, whatever its shape.

    ``verify`` is one object, or a list with one per OpenR1 generation. A verdict sets ``meta["verified"]``
    (so convert drops wrong answers, and ``--require-verified`` keeps only right ones); its 10/0 score becomes
    the record's score only when the record has none of its own (a judge's quality score wins).
    """
    samples = fmt.read(record)
    verdicts = record.get("verify")
    if not verdicts:
        return samples
    for sample in samples:
        if isinstance(sample, RecordError):
            continue
        verdict = verdicts[sample.meta.get("generation", 0)] if isinstance(verdicts, list) else verdicts
        if isinstance(verdict, dict) and verdict.get("verdict") is not None:
            sample.meta["verified"] = bool(verdict["verdict"])
            if sample.score is None and isinstance(verdict.get("score"), int | float):
                sample.score = verdict["score"]
    return samples
