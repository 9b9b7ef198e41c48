"""Readers: one per source shape, each turning a raw record into canonical :class:`ReasoningSample` s.

Detection tries the shapes in order (most specific first) on a file's first record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.formats.columns import column_reader, parse_mapping
from lf_reasoning.formats.conversation import detect_messages, detect_sharegpt, read_messages, read_sharegpt
from lf_reasoning.formats.cot import detect_medical_cot, detect_s1k, read_medical_cot, read_s1k
from lf_reasoning.formats.distill import detect_openr1, detect_r1_distill, read_openr1, read_r1_distill
from lf_reasoning.formats.instruction import detect_alpaca, read_alpaca
from lf_reasoning.sample import ReasoningSample

# A reader returns the samples of one raw record; a record holding several candidates (OpenR1 generations)
# may return, in place of a sample, the RecordError that rules one candidate out.
Reader = Callable[[dict[str, Any]], Sequence[ReasoningSample | RecordError]]


@dataclass(frozen=True)
class Format:
    name: str
    summary: str
    detect: Callable[[dict[str, Any]], str | None]
    read: Reader


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("openr1", "OpenR1-Math: problem + generations[] with Math-Verify verdicts", detect_openr1, read_openr1),
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
        ),
        Format(
            "sharegpt", "ShareGPT conversations (incl. <|begin_of_thought|> markup)", detect_sharegpt, read_sharegpt
        ),
        Format(
            "alpaca", "Alpaca instruction/input/output (output may hold <think> markup)", detect_alpaca, read_alpaca
        ),
    )
}
FORMAT_NAMES = ("auto", *FORMATS, "columns")


def detect_format(record: dict[str, Any], where: str) -> tuple[Format, str]:
    """The first shape that matches ``record``, and why."""
    for fmt in FORMATS.values():
        reason = fmt.detect(record)
        if reason:
            return fmt, reason
    keys = ", ".join(sorted(record)[:20])
    raise UserError(
        f"{where}: cannot tell the format from the keys [{keys}]. Pass --format NAME "
        f"({', '.join(FORMATS)}) or map the columns, e.g. --map prompt=Question --map thought=Complex_CoT "
        "--map answer=Response"
    )


def resolve_reader(fmt: str, mapping: list[str] | tuple[str, ...]) -> Format | None:
    """The reader for an explicit ``--format``/``--map`` choice; ``None`` means detect per file."""
    if mapping:
        if fmt not in ("auto", "columns"):
            raise UserError(f"--map cannot be combined with --format {fmt}; use --format columns (or leave it out)")
        return Format("columns", "mapped columns", lambda r: "--map", column_reader(parse_mapping(mapping)))
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
