"""grade: Math-Verify for math/exam records, the LLM judge for the rest, in one resumable command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lf_reasoning.cli.api import _api_key_env, _concurrency, _failures, _log, _request_limits, _take
from lf_reasoning.cli.options import force_option, input_options, judge_options, out_option, workers_option
from lf_reasoning.errors import EXIT_PARTIAL, EXIT_STATUS


@click.command(
    epilog=EXIT_STATUS
    + """
Run the same command again to retry failed requests.

\b
Examples:
  lf-reasoning distill math.jsonl --out distilled.jsonl --base-url URL --model deepseek-reasoner
  lf-reasoning grade distilled.jsonl --out graded.jsonl --judge-base-url http://localhost:8000/v1 \\
      --judge-model Qwen/Qwen2.5-72B-Instruct --concurrency 32 --plot scores.png
  lf-reasoning grade r1_110k.jsonl --out graded.jsonl --judge-base-url URL --judge-model NAME \\
      --math-when 'repo_name=math|exam'
  lf-reasoning convert graded.jsonl --name r1_graded --dataset-dir data --min-score 8
"""
)
@click.argument("sources", nargs=-1, required=True, metavar="IN...")
@out_option("JSON Lines output: every record plus `grade` and `score`; appended to and resumed.")
@judge_options
@click.option(
    "--math-when",
    "math_when",
    multiple=True,
    metavar="COLUMN=REGEX",
    help="Records whose COLUMN matches REGEX (re.search; repeat for several rules, any may match) are math/exam "
    "items, the others get the 0-10 rubric [default: every record with a reference answer is math/exam].",
)
@click.option(
    "--rubric",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="0-10 rubric file with {prompt}, {answer} (and {reference}) placeholders [default: ours].",
)
@click.option(
    "--verify-rubric",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Correct/incorrect question for the math answers no rule decides, same placeholders; the reply must be "
    'JSON {"correct": true|false} [default: ours].',
)
@workers_option("Math-Verify worker processes")
@click.option(
    "--math-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds one Math-Verify check may take; the answer then goes to the judge.",
)
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of the score distribution of OUT."
)
@_concurrency
@_api_key_env
@click.option("--temperature", type=float, default=0.0, show_default=True, help="Sampling temperature of the judge.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Completion token limit of a judge reply.")
@_request_limits(
    "Re-requests of a judge reply that cannot be parsed (then the record is written ungraded).", timeout=300
)
@_failures
@input_options()
@force_option("Replace an existing --plot file that is not a PNG (an input is never overwritten).")
def grade(
    out: Path, rubric: Path | None, verify_rubric: Path | None, plot: Path | None, force: bool, **params: Any
) -> None:
    """Grade every record of IN the way the DeepSeek-R1 distill-110k data was checked: math and exam answers
    against their reference with Math-Verify (10 right, 0 wrong; multiple-choice letters as letters), the LLM judge
    deciding correct/incorrect (10/0) where no rule extracts an answer or Math-Verify times out, and every other
    record rated 0-10 by the judge on harmlessness, helpfulness and correctness.

    IN is one or more files, directories or Hugging Face datasets in any shape convert reads (distill output keeps
    the source's answers as reference_answer). Each record is written to OUT unchanged plus a `grade` object
    (route, method, verdict, score, sub-scores, judge model, key) and a top-level `score`, so `convert
    --min-score` and `--require-verified` work on it directly. Judge requests run concurrently with distill's
    retries, rate limits and failures file; re-running the same command sends only what is missing.
    """
    from lf_reasoning.api.judge import JUDGE_OPTIONS, load_rubric
    from lf_reasoning.api.options import RequestOptions
    from lf_reasoning.commands.grade import GradeOptions, format_grade_summary, plot_scores
    from lf_reasoning.commands.grade import grade as run_grade
    from lf_reasoning.record.inputs import Inputs

    inputs = _take(Inputs, params)
    request = _take(RequestOptions, params, option_prefix=JUDGE_OPTIONS)
    options = GradeOptions(
        inputs,
        request,
        rubric=load_rubric(rubric) if rubric else None,
        verify_rubric=load_rubric(verify_rubric) if verify_rubric else None,
        **params,
    )
    if plot:  # refused now, not after the run: the plot is neither an input, OUT nor a file that is not a PNG
        from lf_reasoning.paths import Target, check_targets
        from lf_reasoning.plot import plot_target

        check_targets(
            [Target("--out", out), plot_target(plot)], inputs=inputs.files(), sources=inputs.sources, force=force
        )
    report = run_grade(options, out, log=_log, progress=True)
    click.echo(format_grade_summary(report))
    if plot:
        plot_scores(report.tally, plot, f"{out.name}: {report.tally.graded} records graded")
        click.echo(f"score distribution written to {plot}")
    if report.failed or report.invalid or report.ungraded:
        sys.exit(EXIT_PARTIAL)
