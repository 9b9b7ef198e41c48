"""distill and score: the commands that call an API.

Each command's options reach the library as one options object: click's parameters are named like the fields of
:class:`~lf_reasoning.record.inputs.Inputs`, :class:`~lf_reasoning.api.options.RequestOptions` and the command's
own options class, and :func:`_take` builds each from them.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lf_reasoning.cli.options import input_options, judge_options, out_option
from lf_reasoning.errors import EXIT_PARTIAL, EXIT_STATUS

_T = TypeVar("_T")


def _request_limits(retry_bad_help: str, *, timeout: float) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The rate-limit and retry options shared by the commands that call an API (distill, score)."""
    options = (
        click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests per minute limit."),
        click.option("--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens per minute limit."),
        click.option(
            "--max-retries",
            type=click.IntRange(min=0),
            default=8,
            show_default=True,
            help="Retries on 429, 5xx, timeouts, resets, empty replies.",
        ),
        click.option(
            "--backoff",
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            help="First retry delay in seconds, doubled per retry (jittered; Retry-After wins).",
        ),
        click.option("--retry-bad", type=click.IntRange(min=0), default=2, show_default=True, help=retry_bad_help),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=timeout,
            show_default=True,
            help="Seconds allowed per request.",
        ),
    )

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


_concurrency = click.option(
    "--concurrency", type=click.IntRange(min=1), default=8, show_default=True, help="Requests in flight at once."
)
_api_key_env = click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the API key (the key itself is never written anywhere).",
)
_failures = click.option(
    "--failures",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where failed requests are listed [default: OUT without .jsonl + .failures.jsonl].",
)


def _take(cls: type[_T], params: dict[str, Any], **given: Any) -> _T:
    """A ``cls`` (a dataclass) built from the click parameters named like its fields; they are taken out of
    ``params``, so that what is left belongs to the next one."""
    names = [f.name for f in dataclasses.fields(cls) if f.name in params]  # type: ignore[arg-type]
    return cls(**{name: params.pop(name) for name in names}, **given)


def _log(msg: str) -> None:
    click.echo(msg, err=True)


@click.command(
    epilog=EXIT_STATUS
    + """
Run the same command again to retry failed requests.

\b
Examples:
  export DEEPSEEK_API_KEY=...
  lf-reasoning distill math.jsonl --out r1.jsonl --base-url https://api.deepseek.com/v1 \\
      --model deepseek-reasoner --api-key-env DEEPSEEK_API_KEY --concurrency 32 \\
      --prompt-suffix '请一步步推理，并把最终答案放到 \\boxed{}。' --price-in 0.55 --price-out 2.19
  lf-reasoning distill prompts.jsonl --out qwen3.jsonl --base-url http://localhost:8000/v1 \\
      --model Qwen/Qwen3-8B --n 4 --temperature 0.6 --stream
  lf-reasoning convert r1.jsonl --name r1 --dataset-dir data
"""
)
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@out_option("JSON Lines output (R1-distill shape, read by convert); appended to and resumed.")
@click.option("--base-url", required=True, help="OpenAI-compatible API root, e.g. http://localhost:8000/v1.")
@click.option("--model", required=True, help="Model name sent with every request.")
@_concurrency
@click.option(
    "--n", "n", type=click.IntRange(min=1), default=1, show_default=True, help="Samples per prompt (one request each)."
)
@click.option("--stream", is_flag=True, help="Stream replies (server-sent events).")
@_api_key_env
@click.option("--temperature", type=float, help="Sampling temperature [default: the server's].")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion token limit (thought + answer).")
@click.option("--system", help="System prompt for every request (replaces the source's).")
@click.option("--prompt-suffix", help="Text added on a new line after every prompt.")
@click.option(
    "--prompt-template",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Text file wrapped around every prompt, as in convert: {prompt} is the prompt as read, {COLUMN} a source "
    "column ('{question}\\n\\n{options}'); {{ and }} are literal braces.",
)
@click.option("--extra-body", metavar="JSON", help="More request fields, e.g. '{\"top_p\": 0.95}'.")
@_request_limits("Re-requests of a reply cut off (finish_reason length), without answer or thought.", timeout=900)
@click.option("--allow-no-thought", is_flag=True, help="Keep replies that come without a thought.")
@click.option(
    "--no-reference",
    "keep_reference",
    is_flag=True,
    flag_value=False,
    default=True,
    help="Drop the source's answers (Alpaca output, last assistant turn, Response, …) instead of keeping them as "
    "reference_answer, the gold grade and verify check against; --map reference=COLUMN takes another column.",
)
@click.option("--price-in", type=click.FloatRange(min=0), help="Price per million prompt tokens (for the summary).")
@click.option("--price-out", type=click.FloatRange(min=0), help="Price per million completion tokens.")
@_failures
@input_options(
    "Read prompts from any table: prompt (required), query (appended), system, reference, id, source. "
    "reference=COLUMN alone keeps the detected shape and takes the reference answers from COLUMN."
)
def distill(out: Path, **params: Any) -> None:
    """Ask a reasoning model (OpenAI-compatible API) for a thought and an answer per prompt of SRC.

    Prompts are read from any shape convert reads, or from a table with a prompt/question/problem column.
    The source's answers (Alpaca output, the last assistant turn, Response, a reference column…) are kept as
    reference_answer, which grade and verify check the new answers against. Writes one record per (prompt,
    sample) to OUT as soon as it completes; re-running the same command after a crash, Ctrl-C or kill -9 sends
    only what is missing. Reasoning is read from reasoning_content, reasoning, reasoning_details or inline
    <think> markup.
    """
    from lf_reasoning.api.options import RequestOptions
    from lf_reasoning.commands.distill import DistillOptions, format_summary
    from lf_reasoning.commands.distill import distill as run_distill
    from lf_reasoning.record.inputs import Inputs

    inputs = _take(Inputs, params, prompts=True)
    options = DistillOptions(inputs, _take(RequestOptions, params), **params)
    report = run_distill(options, out, log=_log, progress=True)
    click.echo(format_summary(report))
    if report.failed or report.invalid:  # unreadable input records are skipped, not distilled
        sys.exit(EXIT_PARTIAL)


@click.command(
    epilog=EXIT_STATUS
    + """
Run the same command again to retry failed requests (records written unscored stay as they are).

\b
Examples:
  lf-reasoning score r1.jsonl --out scored.jsonl --judge-base-url http://localhost:8000/v1 \\
      --judge-model Qwen/Qwen2.5-72B-Instruct --concurrency 32
  lf-reasoning convert scored.jsonl --name r1_good --dataset-dir data --min-score 8
"""
)
@click.argument("sources", nargs=-1, required=True, metavar="IN...")
@out_option("JSON Lines output: every record plus a `judge` object; appended to and resumed.")
@judge_options
@click.option(
    "--rubric",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rubric prompt file with {prompt}, {answer} (and {reference}) placeholders [default: ours].",
)
@_concurrency
@_api_key_env
@click.option("--temperature", type=float, default=0.0, show_default=True, help="Sampling temperature of the judge.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion token limit of a judge reply.")
@_request_limits("Re-requests of a reply that cannot be parsed (then the record is written unscored).", timeout=300)
@_failures
@input_options()
def score(out: Path, rubric: Path | None, **params: Any) -> None:
    """Score every record of IN 0-10 with an LLM judge: harmlessness, helpfulness, correctness and overall.

    IN is one or more files, directories or Hugging Face datasets in any shape convert reads (--format, --map).
    Each record is written to OUT unchanged plus a `judge` object (the three ratings, score, reason, model) and
    a top-level `score` when it has none, so `convert --min-score` filters on it. A judge reply that cannot be
    parsed is asked for again, then the record is written with score null and the error: scores are never
    guessed. Re-running the same command sends only what is missing.
    """
    from lf_reasoning.api.judge import JUDGE_OPTIONS, load_rubric
    from lf_reasoning.api.options import RequestOptions
    from lf_reasoning.commands.score import ScoreOptions, format_score_summary
    from lf_reasoning.commands.score import score as run_score
    from lf_reasoning.record.inputs import Inputs

    inputs = _take(Inputs, params)
    request = _take(RequestOptions, params, option_prefix=JUDGE_OPTIONS)
    options = ScoreOptions(inputs, request, load_rubric(rubric) if rubric else None, **params)
    report = run_score(options, out, log=_log, progress=True)
    click.echo(format_score_summary(report))
    if report.failed or report.unscored or report.invalid:
        sys.exit(EXIT_PARTIAL)
