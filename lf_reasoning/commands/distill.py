"""``distill``: ask an OpenAI-compatible server for a thought and an answer per (prompt, sample), resumably.

OUT is JSON Lines in the R1-distill shape ``convert`` reads (``input``, ``reasoning_content``, ``content``, plus
``id``, ``key``, ``sample``, ``usage``, ``finish_reason``, ``params``…), appended to and resumed as described in
:mod:`lf_reasoning.api.output`: the next run skips every (key, sample) already in OUT and sends only what is
missing. Requests that fail for good go to the failures file, never to OUT.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from lf_reasoning.api.client import Reply
from lf_reasoning.api.options import RequestOptions
from lf_reasoning.api.output import Output
from lf_reasoning.api.report import RunReport, reason_lines, retried_line
from lf_reasoning.api.retry import Outcome
from lf_reasoning.api.runner import Session, check_run_files, run_requests
from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.formats.columns import parse_mapping
from lf_reasoning.record.inputs import Inputs
from lf_reasoning.record.prompt_template import PromptTemplate
from lf_reasoning.record.prompts import Prompt, iter_prompts
from lf_reasoning.textfile import read_text

_OK_FINISH = (None, "stop", "eos")
_NO_THOUGHT_PROBE = 10  # replies without any thought, none with one, before the run stops (a misconfigured server)
_RESERVED = ("model", "messages", "stream", "stream_options")  # request fields --extra-body must leave alone


@dataclass(frozen=True)
class DistillOptions:
    """Everything ``distill`` is asked to do; invalid values raise :class:`UserError` when it is built.

    ``extra_body``: more request fields, as a mapping or as JSON text (``--extra-body``); read from :attr:`extra`.
    """

    inputs: Inputs
    request: RequestOptions
    n: int = 1  # samples per prompt, one request each
    stream: bool = False
    system: str | None = None  # replaces the source's system prompt
    prompt_suffix: str | None = None  # added on a new line after every prompt
    prompt_template: Path | None = None  # a file wrapped around every prompt: {prompt} and {COLUMN} placeholders
    extra_body: dict[str, Any] | str | None = None
    allow_no_thought: bool = False
    keep_reference: bool = True  # keep the source's answers as reference_answer (False: --no-reference)
    price_in: float | None = None  # per million tokens, for the summary
    price_out: float | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise UserError("--n and --concurrency must be at least 1; --max-retries and --retry-bad at least 0")
        if not self.inputs.prompts:  # distill sends prompts: a prompt-only table is a valid SRC
            object.__setattr__(self, "inputs", dataclasses.replace(self.inputs, prompts=True))
        if not self.keep_reference and "reference" in parse_mapping(self.inputs.mapping, required=()):
            raise UserError("--no-reference drops the reference answers --map reference=COLUMN asks for: give one")
        self.extra  # noqa: B018 — validates --extra-body now
        self.wrap  # noqa: B018 — and the prompt template

    @cached_property
    def wrap(self) -> PromptTemplate | None:
        if self.prompt_template is None:
            return None
        text = read_text(self.prompt_template, "--prompt-template")  # names the first byte that is not UTF-8
        return PromptTemplate(text.removesuffix("\n"), str(self.prompt_template))

    @cached_property
    def extra(self) -> dict[str, Any]:
        """``extra_body`` parsed and checked."""
        extra = self.extra_body or {}
        if isinstance(extra, str):
            try:
                extra = orjson.loads(extra)
            except orjson.JSONDecodeError as err:
                raise UserError(f"--extra-body: not JSON ({err})") from None
        if not isinstance(extra, dict):
            raise UserError("--extra-body: expected a JSON object, e.g. '{\"top_p\": 0.95}'")
        clash = sorted(set(_RESERVED) & extra.keys())
        if clash:
            raise UserError(f"--extra-body must not set {', '.join(clash)}: use the matching options")
        return dict(extra)

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        body = {**self.extra, **self.request.body(messages)}
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # the closing chunk then carries the token counts
        return body

    def params(self) -> dict[str, Any]:
        """What was asked for, recorded with every reply."""
        params = {
            "temperature": self.request.temperature,
            "max_tokens": self.request.max_tokens,
            "stream": self.stream,
            "system": self.system,
            "prompt_suffix": self.prompt_suffix,
            "prompt_template": self.wrap.text if self.wrap else None,
            "extra_body": self.extra or None,
        }
        return {k: v for k, v in params.items() if v is not None}


@dataclass(kw_only=True)
class DistillReport(RunReport):
    duplicates: int = 0  # repeated prompts in SRC (each is distilled once)
    price_in: float | None = None  # per million tokens
    price_out: float | None = None

    @property
    def cost(self) -> float | None:
        if self.price_in is None and self.price_out is None:
            return None
        return (self.prompt_tokens * (self.price_in or 0) + self.completion_tokens * (self.price_out or 0)) / 1e6


class _Job(NamedTuple):
    prompt: Prompt
    sample: int


class _Answer(NamedTuple):
    thought: str | None
    answer: str


def distill(
    options: DistillOptions, out: Path, *, log: Callable[[str], None] = lambda msg: None, progress: bool = False
) -> DistillReport:
    """Distill every prompt of ``options.inputs`` ``options.n`` times into ``out`` (see the module docstring).

    Transport failures (429, 5xx, timeouts, resets, empty bodies, keep-alive-only streams) are retried with
    exponential backoff (a ``Retry-After`` is honoured); replies cut off (``finish_reason: length``), with an
    empty answer, without a thought (unless ``allow_no_thought``) or with broken markup are asked for again (see
    :class:`~lf_reasoning.api.options.RequestOptions`). The API key is read from ``$api_key_env`` and never
    written anywhere.
    """
    api_key = options.request.api_key(log)
    files = options.inputs.files()
    out = Path(out)
    report = DistillReport(
        out=out,
        failures_file=options.request.failures_file(out),
        price_in=options.price_in,
        price_out=options.price_out,
    )
    check_run_files(report, files, options.inputs)
    with Output(out, log, key_of=lambda record: (record["key"], record["sample"]), command="distill") as output:
        _check_resumable(output, options)
        run = _Distill(options, files, report, log)
        run.plan(output.done)
        run_requests(
            options.request,
            report,
            output,
            run.jobs(output.done),
            run.handle,
            api_key=api_key,
            command="distill",
            log=log,
            progress=progress,
        )
    return report


def _check_resumable(output: Output[Any], options: DistillOptions) -> None:
    """Refuse to mix replies to different questions (model, system prompt, suffix) or asked otherwise (sampling,
    token limit, extra body) in one OUT: a resume that changed them would send nothing and say it is done."""
    if output.first is None:
        return
    params = output.first.get("params") or {}
    for what, old, new in (
        ("--model", output.first.get("model"), options.request.model),
        ("--system", params.get("system"), options.system),
        ("--prompt-suffix", params.get("prompt_suffix"), options.prompt_suffix),
        ("--prompt-template", params.get("prompt_template"), options.wrap.text if options.wrap else None),
        ("--temperature", params.get("temperature"), options.request.temperature),
        ("--max-tokens", params.get("max_tokens"), options.request.max_tokens),
        ("--extra-body", params.get("extra_body"), options.extra or None),
    ):
        if old != new:
            raise UserError(
                f"{output.path} holds replies made with {what} {old!r}, not {new!r}; resume with the "
                "same options, or write to another --out"
            )


class _Distill:
    """One run: a planning pass over SRC, then a job per (prompt, sample) missing from OUT."""

    def __init__(
        self, options: DistillOptions, files: list[Path | str], report: DistillReport, log: Callable[[str], None]
    ) -> None:
        self.options = options
        self.files = files
        self.report = report
        self.log = log
        self.params = options.params()
        self.thought_seen = False
        self.no_thought = 0

    def _prompts(
        self, on_invalid: Callable[[str, RecordError], None], log: Callable[[str], None], count_repeats: bool
    ) -> Iterator[Prompt]:
        """The prompts of SRC, each once (a repeated prompt would only be a second sample)."""
        seen: set[str] = set()
        options = self.options
        for prompt in iter_prompts(
            options.inputs,
            system=options.system,
            prompt_suffix=options.prompt_suffix,
            wrap=options.wrap,
            keep_reference=options.keep_reference,
            on_invalid=on_invalid,
            log=log,
            sources=self.files,
        ):
            if prompt.key in seen:
                if count_repeats:
                    self.report.duplicates += 1
                continue
            seen.add(prompt.key)
            yield prompt

    def plan(self, done: set[tuple[str, int]]) -> None:
        """Count what is planned and missing (for the progress bar and the report); formats are logged here."""
        prompts = self._prompts(lambda where, err: None, self.log, count_repeats=True)
        self.report.plan(((prompt.key, sample) for prompt in prompts for sample in range(self.options.n)), done)
        if self.report.already_done:
            self.log(
                f"{self.report.out}: {self.report.already_done} of {self.report.planned} records already there; "
                f"sending the {self.report.pending} missing"
            )

    def jobs(self, done: set[tuple[str, int]]) -> Iterator[_Job]:
        """The second pass: what OUT lacks; unreadable records are counted and named here."""

        def on_invalid(where: str, err: RecordError) -> None:
            self.report.invalid += 1
            self.log(f"warning: {where}: skipped: {err.detail}")

        for prompt in self._prompts(on_invalid, lambda msg: None, count_repeats=False):
            for sample in range(self.options.n):
                if (prompt.key, sample) not in done:
                    yield _Job(prompt, sample)

    async def handle(self, session: Session, job: _Job) -> None:
        started = time.monotonic()
        outcome = await session.asker.ask(self.options.body(job.prompt.messages()), self._check)
        if outcome.error is None:
            record = self._record(job, outcome, time.monotonic() - started)
            return session.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        prompt = job.prompt
        line: dict[str, Any] = {
            "id": f"{prompt.key}-{job.sample}",
            "key": prompt.key,
            "sample": job.sample,
            "where": prompt.where,
            "input": prompt.prompt,
            "reason": outcome.error.reason,
            "detail": outcome.error.detail,
            "attempts": outcome.attempts,
        }
        if outcome.reply is not None:  # the replies came but could not be used: the last one's numbers
            line.update(finish_reason=outcome.reply.finish_reason, usage=outcome.reply.usage)
        session.fail(f"{prompt.where} sample {job.sample}", outcome.error, line)

    def _check(self, reply: Reply) -> _Answer | RecordError:
        """Thought and answer of a usable reply, or why it is not usable."""
        if reply.finish_reason == "length":
            return RecordError("length", "the reply was cut off (finish_reason length); raise --max-tokens")
        if reply.finish_reason not in _OK_FINISH:
            return RecordError(
                f"finish_{reply.finish_reason}", f"the reply ended with finish_reason {reply.finish_reason!r}"
            )
        try:
            thought, answer = reply.thought_and_answer()
        except RecordError as err:
            return err
        if not answer:
            return RecordError("empty_answer", "the reply has no answer (empty content after the thought)")
        if thought:
            self.thought_seen = True
        elif not self.options.allow_no_thought:
            self.no_thought += 1
            if not self.thought_seen and self.no_thought >= _NO_THOUGHT_PROBE:
                raise UserError(
                    f"{self.no_thought} replies came without a thought (no reasoning_content/reasoning field, no "
                    "<think> markup) and none with one: use a reasoning model, start vLLM/SGLang with "
                    "--reasoning-parser, or pass --allow-no-thought to keep answer-only records"
                )
            return RecordError("no_thought", "the reply has no thought (no reasoning field, no <think> markup)")
        return _Answer(thought, answer)

    def _record(self, job: _Job, outcome: Outcome[_Answer], seconds: float) -> dict[str, Any]:
        prompt, answer, reply = job.prompt, outcome.value, outcome.reply
        assert answer is not None and reply is not None, "only accepted replies are recorded"
        record: dict[str, Any] = {
            "id": f"{prompt.key}-{job.sample}",
            "key": prompt.key,
            "sample": job.sample,
            "input": prompt.prompt,
            "reasoning_content": answer.thought,
            "content": answer.answer,
        }
        if prompt.system:
            record["system"] = prompt.system
        if prompt.history:
            record["history"] = [[turn.prompt, turn.answer] for turn in prompt.history]
        if prompt.reference is not None:
            record["reference_answer"] = prompt.reference
        if prompt.source is not None:
            record["repo_name"] = prompt.source
        if prompt.source_id is not None:
            record["source_id"] = prompt.source_id
        record.update(
            where=prompt.where,
            model=self.options.request.model,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            params=self.params,
            attempts=outcome.attempts,
            seconds=round(seconds, 3),
        )
        return record


def format_summary(report: DistillReport) -> str:
    """The closing lines: records, failures and retries by reason, tokens, cost."""
    failed = sum(report.failed.values())
    lines = [
        f"{'records planned':<22}{report.planned:>10}  ({report.already_done} already in {report.out})",
        f"{'written this run':<22}{report.done:>10}  → {report.out}",
        f"{'failed':<22}{failed:>10}" + (f"  → {report.failures_file}" if failed else ""),
        *reason_lines(report.failed, 2),
        retried_line(report),
    ]
    if report.invalid or report.duplicates:
        lines.append(
            f"{'skipped SRC records':<22}{report.invalid + report.duplicates:>10}  "
            f"({report.invalid} unreadable, {report.duplicates} repeated prompts)"
        )
    lines.append(
        f"{'tokens':<22}prompt {report.prompt_tokens:,} (cached {report.cached_tokens:,}), completion "
        f"{report.completion_tokens:,} (reasoning {report.reasoning_tokens:,})"
    )
    if report.cost is not None:
        lines.append(
            f"{'cost':<22}${report.cost:,.4f} at ${report.price_in or 0:g}/M prompt, "
            f"${report.price_out or 0:g}/M completion tokens"
        )
    rate = (report.done + failed) / report.seconds if report.seconds else 0.0
    lines.append(f"{'time':<22}{report.seconds:,.1f} s ({rate:,.1f} requests/s)")
    return "\n".join(lines)
