"""verify and eval: answers checked against references, predictions scored."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lf_reasoning.cli.options import force_option, input_options, out_option, workers_option
from lf_reasoning.errors import EXIT_PARTIAL, EXIT_STATUS


@click.command(
    epilog=EXIT_STATUS
    + """

\b
Examples:
  lf-reasoning verify distilled.jsonl --out verified.jsonl --timeout 10
  lf-reasoning verify exam.csv --out verified.jsonl --map prompt=question --map answer=response \\
      --map reference=gold
  lf-reasoning convert verified.jsonl --name r1_math --dataset-dir data --require-verified
"""
)
@click.argument("sources", nargs=-1, required=True, metavar="IN...")
@out_option("JSON Lines file to write (written to a temp file, renamed into place at the end).")
@input_options()
@workers_option()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds one answer may take; the worker is then stopped and the answer reported as timeout.",
)
@click.option(
    "--judge-base-url",
    metavar="URL",
    help="OpenAI-compatible API of an LLM judge: answers no rule can decide get a 10/0 verdict from it.",
)
@click.option("--judge-model", metavar="NAME", help="Model name of the judge (required with --judge-base-url).")
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the judge's API key (never written anywhere).",
)
@force_option("Replace an existing OUT that is not verify output (an input is never overwritten).")
def verify(
    sources: tuple[str, ...],
    out: Path,
    fmt: str,
    mapping: tuple[str, ...],
    hub_split: str,
    workers: int | None,
    timeout: float,
    judge_base_url: str | None,
    judge_model: str | None,
    api_key_env: str,
    force: bool,
) -> None:
    """Check every answer of IN against its reference answer with Math-Verify.

    IN is one or more files, directories or Hugging Face datasets in any shape convert reads (distill output,
    R1 distill dumps with `reference_answer`, OpenR1 `answer`, AM `reference_answer`…). Each record is written
    to OUT unchanged plus a `verify` object: method, extracted gold and prediction, verdict (true/false/null), score
    (10/0/null), and the reason when there is no verdict. Multiple-choice references (A-E) are compared as
    letters; records without a reference or with an answer no rule can extract are `unverifiable`.
    """
    import contextlib

    from lf_reasoning.commands.verify import VerifyOptions, format_report
    from lf_reasoning.commands.verify import verify as run_verify
    from lf_reasoning.errors import UserError
    from lf_reasoning.record.inputs import Inputs

    if bool(judge_base_url) != bool(judge_model):
        raise UserError("--judge-base-url and --judge-model go together")
    options = VerifyOptions(
        Inputs(sources, fmt, mapping, hub_split), out, workers=workers, timeout=timeout, force=force
    )
    with contextlib.ExitStack() as stack:
        judge = None
        if judge_base_url and judge_model:
            from lf_reasoning.api.judge import CorrectnessJudge, judge_options

            judge = stack.enter_context(
                CorrectnessJudge(
                    judge_options(judge_base_url, judge_model, api_key_env=api_key_env),
                    log=lambda msg: click.echo(msg, err=True),
                )
            )
        report = run_verify(options, judge=judge, log=lambda msg: click.echo(msg, err=True), progress=True)
    click.echo(format_report(report))
    if report.invalid:
        sys.exit(EXIT_PARTIAL)


@click.command(
    "eval",
    epilog=EXIT_STATUS
    + """

\b
Examples:
  lf-reasoning eval saves/predict/generated_predictions.jsonl --task classify --labels labels.txt --plot cm.png
  lf-reasoning eval --compare answer_only.jsonl with_thought.jsonl --task classify --json
  lf-reasoning eval untrained.jsonl answer_only.jsonl with_thought.jsonl --task classify
""",
)
@click.argument("predictions", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--task",
    required=True,
    type=click.Choice(["classify", "math", "free"]),
    help="classify: accuracy, macro-F1, per-class table; math: Math-Verify accuracy; free: format and length only.",
)
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="classify: the label set, one label per line [default: the gold labels seen].",
)
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="A B",
    help="Two predictions files of the same dataset side by side (the same as giving both as PREDICTIONS).",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="classify: write a confusion-matrix PNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@force_option("Replace an existing --plot file that is not a PNG (a predictions file is never overwritten).")
def eval_command(
    predictions: tuple[Path, ...],
    task: str,
    labels_file: Path | None,
    compare: tuple[Path, Path] | None,
    plot: Path | None,
    as_json: bool,
    force: bool,
) -> None:
    """Score PREDICTIONS: LLaMA-Factory's generated_predictions.jsonl (`predict`, `label`) or distill/verify output
    (`content`, `reasoning_content`, `reference_answer`). Several files of the same dataset (e.g. the untrained
    model, answer-only, with thoughts) are put side by side in one table and one plot.

    The thought is separated from the answer with convert's rules. Every task reports the thought format
    (well-formed in LLaMA-Factory's exact form, empty, none, malformed), mean thought and answer length in
    characters and the share cut off without an answer. classify compares answers after normalising
    (NFKC full-width forms, case, whitespace, surrounding punctuation; a label inside a sentence counts only when
    it is the only label found) and counts ambiguous, out-of-set and empty answers as wrong.
    """
    import orjson

    from lf_reasoning.commands.evaluate import compare as compare_runs
    from lf_reasoning.commands.evaluate import evaluate, format_report, plot_confusion, read_labels
    from lf_reasoning.errors import UserError

    if bool(predictions) == bool(compare):
        raise UserError("give either PREDICTIONS or --compare A B")
    if (labels_file or plot) and task != "classify":
        raise UserError("--labels and --plot apply to --task classify only")
    labels = read_labels(labels_file) if labels_file else None
    paths = predictions or compare
    if plot:
        from lf_reasoning.paths import check_targets
        from lf_reasoning.plot import plot_target

        check_targets([plot_target(plot)], inputs=[*paths, *([labels_file] if labels_file else [])], force=force)
    reports = compare_runs(paths, task, labels) if len(paths) > 1 else [evaluate(paths[0], task, labels)]
    for report in reports:
        for message in report.invalid + report.warnings:
            click.echo(f"warning: {message}", err=True)
    key = plot_confusion(reports, plot) if plot else None
    if as_json:
        data = [r.to_json() for r in reports]
        click.echo(orjson.dumps(data if len(paths) > 1 else data[0], option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_report(*reports))
    if plot:
        click.echo(
            f"confusion matrix written to {plot}"
            + (f" (no CJK font installed, so the classes are numbered: {key})" if key else ""),
            err=as_json,
        )
    if any(r.invalid for r in reports):
        sys.exit(EXIT_PARTIAL)
