"""Readers: one per source shape, each turning a raw record into canonical :class:`ReasoningSample` s.

Detection tries the shapes in order (most specific first) on a file's first record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.fields_seen import suggest_map
from lf_reasoning.record.formats.columns import column_reader, parse_mapping, prompt_reader
from lf_reasoning.record.formats.conversation import (
    detect_messages,
    detect_sharegpt,
    read_messages,
    read_messages_prompt,
    read_sharegpt,
    read_sharegpt_prompt,
)
from lf_reasoning.record.formats.cot import (
    detect_medical_cot,
    detect_s1k,
    detect_s1k_gemini,
    read_medical_cot,
    read_s1k,
    read_s1k_gemini,
)
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
    prompt_note: str = "its prompts are sent"  # what distill says it takes
    multi_sample: bool = False  # one record holds several samples: verify writes one verdict per sample
    answers: str | None = None  # where distill finds the source's answers, kept as reference (None: it has none)
    unread: frozenset[str] = frozenset()  # text columns left out on purpose (not reported as unused by convert)
    tools: bool = False  # reads a `tools` list and tool turns (else a record with tools is rejected)

    def prompt(self, record: dict[str, Any]) -> ReasoningSample:
        """What distill sends: the prompt, its system prompt and earlier turns, and as ``reference`` the source's
        reference answer or, without one, the source's own answer (the gold that ``grade``/``verify`` read)."""
        reject_tools(record, "distill cannot send tools to the API yet")
        if self.read_prompt is not None:
            sample = self.read_prompt(record)
        else:
            first = self.read(record)[0]
            if isinstance(first, RecordError):
                raise first
            sample = first
        if sample.reference is None or not sample.reference.strip():
            sample.reference = sample.answer if sample.answer.strip() else None
        return sample


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "openr1",
            "OpenR1-Math: problem + generations[] with Math-Verify verdicts",
            detect_openr1,
            read_openr1,
            read_openr1_prompt,
            "prompts from 'problem'",
            multi_sample=True,
            answers="`answer`",
            unread=frozenset({"solution"}),  # the reference worked solution: the generations are the traces
        ),
        Format(
            "s1k",
            "s1K: question, thinking_trajectories[0], attempt; s1K-1.1: deepseek_thinking_trajectory, deepseek_attempt",
            detect_s1k,
            read_s1k,
            unread=frozenset({"metadata", "gemini_thinking_trajectory", "gemini_attempt"}),
            answers="`solution`, else the attempt",
        ),
        Format(
            "s1k_gemini",
            "s1K-1.1 with the Gemini trace: question, gemini_thinking_trajectory, gemini_attempt",
            detect_s1k_gemini,
            read_s1k_gemini,
            unread=frozenset({"metadata", "deepseek_thinking_trajectory", "deepseek_attempt"}),
            answers="`solution`, else the attempt",
        ),
        Format(
            "r1_distill",
            "R1 distill dump: input, reasoning_content, content, score, repo_name",
            detect_r1_distill,
            read_r1_distill,
            answers="`reference_answer`, else `content`",
        ),
        Format(
            "medical_cot",
            "CoT set: Question, Complex_CoT, Response",
            detect_medical_cot,
            read_medical_cot,
            answers="`Response`",
        ),
        Format(
            "messages",
            "OpenAI messages (reasoning_content/reasoning, AM info, LLaMA-Factory v1 parts)",
            detect_messages,
            read_messages,
            read_messages_prompt,
            "the last user turn is the prompt",
            answers="AM `info.reference_answer`, else the last assistant turn",
            tools=True,
        ),
        Format(
            "sharegpt",
            "ShareGPT conversations (incl. <|begin_of_thought|> markup)",
            detect_sharegpt,
            read_sharegpt,
            read_sharegpt_prompt,
            "the last user turn is the prompt",
            answers="the last assistant turn",
            tools=True,
        ),
        Format(
            "alpaca",
            "Alpaca instruction/input/output (output may hold <think> markup)",
            detect_alpaca,
            read_alpaca,
            answers="`output`",
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
            f"({', '.join(FORMATS)}) or map the columns, e.g. {suggest_map(record)}"
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
    if reference_key:
        mapping["reference"] = reference_key
    return _columns("prompts", mapping, f"prompts from '{prompt_key}'"), f"has a '{prompt_key}' column"


def _columns(name: str, mapping: dict[str, str], note: str = "prompts from the mapped columns") -> Format:
    read_prompt = prompt_reader(mapping)
    read = column_reader(mapping) if "answer" in mapping else (lambda record: [read_prompt(record)])
    answers = f"`{mapping['reference']}`" if "reference" in mapping else None
    return Format(name, "mapped columns", lambda record: "--map", read, read_prompt, note, answers=answers)


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

    ``lf-reasoning grade``'s ``grade`` object (on the generation ``grade.sample`` of a multi-sample record) wins over
    both: its score is the sample's score and its verdict, where it has one, sets ``meta["verified"]``.
    """
    if not fmt.tools:
        reject_tools(record, f"the {fmt.name} format has no tool turns (messages and sharegpt records carry them)")
    samples = fmt.read(record)
    verdicts = record.get("verify")
    grade = record.get("grade")
    if not verdicts and not isinstance(grade, dict):
        return samples
    for sample in samples:
        if isinstance(sample, RecordError):
            continue
        generation = sample.meta.get("generation", 0)
        if isinstance(verdicts, list):  # one verdict per generation; a shorter list leaves the rest without one
            verdict = verdicts[generation] if generation < len(verdicts) else None
        else:
            verdict = verdicts or None
        if isinstance(verdict, dict) and verdict.get("verdict") is not None:
            sample.meta["verified"] = bool(verdict["verdict"])
            if sample.score is None and isinstance(verdict.get("score"), int | float):
                sample.score = verdict["score"]
        if isinstance(grade, dict) and grade.get("sample", 0) == generation:
            if isinstance(grade.get("verdict"), bool):
                sample.meta["verified"] = grade["verdict"]
            if isinstance(grade.get("score"), int | float):
                sample.score = grade["score"]
    return samples


def reject_tools(record: dict[str, Any], why: str) -> None:
    """A record declaring tools (a ``tools`` list, or a JSON string of one) is never used without them."""
    tools = record.get("tools")
    if tools and not (isinstance(tools, str) and tools.strip() in ("[]", "null", "")):
        raise RecordError(
            "tools_not_supported",
            f"the record has a 'tools' field, and {why}; using it without them would train answers about tools the "
            "model never sees",
        )
