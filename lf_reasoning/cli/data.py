"""convert, validate and stats: source data in, a registered LLaMA-Factory dataset out."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lf_reasoning.cli.options import (
    cutoff_len_option,
    dataset_dir_option,
    enable_thinking_option,
    force_option,
    input_options,
    workers_option,
)
from lf_reasoning.errors import EXIT_ERROR, EXIT_PARTIAL, EXIT_STATUS

THINK_HELP = (
    "keep: train the thought as given (default); drop: answer only (method 3: LLaMA-Factory's "
    "reasoning templates then add an empty thought themselves); empty: write an explicit empty "
    "<think> block before every answer."
)


@click.command(
    epilog=EXIT_STATUS
    + """

\b
Examples:
  lf-reasoning convert distill_r1_110k.jsonl --name r1_110k --dataset-dir data --min-score 9
  lf-reasoning convert medical_o1_sft.json --name medical --dataset-dir data \\
      --prompt-template examples/medical_prompt.txt
  lf-reasoning convert titles.csv --name news --dataset-dir data --map prompt=title --map answer=label
"""
)
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@click.option("--name", required=True, help="Dataset name to register (also the data file name).")
@dataset_dir_option("LLaMA-Factory `dataset_dir`: the data file and dataset_info.json go here.")
@input_options()
@click.option(
    "--style",
    type=click.Choice(["sharegpt", "alpaca"]),
    default="sharegpt",
    show_default=True,
    help="Output layout (sharegpt is written with explicit role/content tags; alpaca holds no tool calls).",
)
@click.option(
    "--think", type=click.Choice(["keep", "drop", "empty"]), default="keep", show_default=True, help=THINK_HELP
)
@click.option("--system", help="System prompt for every record (replaces the source's).")
@click.option(
    "--prompt-template",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Text file wrapped around every prompt: {prompt} is the prompt as read, {COLUMN} a source column, so "
    "several columns can make one prompt ('{question}\\n\\n{options}'); {{ and }} are literal braces. The file's "
    "final newline is not part of it.",
)
@click.option("--min-score", type=float, help="Drop records whose score is below X (or that have none).")
@click.option("--require-verified", is_flag=True, help="Drop records without a positive verification verdict.")
@click.option(
    "--dedup",
    type=click.Choice(["conversation", "exact", "prompt", "off"]),
    default="conversation",
    show_default=True,
    help="Drop repeats. conversation: the whole conversation as written (system, every turn, thought and answer) "
    "repeats, with case, full-width forms and spacing of the system and user turns folded; exact: the same byte "
    "for byte; prompt: one sample per prompt (system and user turns, folded), e.g. for repeated questions in "
    "distill dumps; off: keep all. The summary warns when dedup removes more than 10% of the samples.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Drop (never truncate) records longer than N tokens; set it to your cutoff_len.",
)
@click.option("--tokenizer", help="Tokenizer path or id used by --max-tokens [default: --model].")
@click.option(
    "--template",
    help="LLaMA-Factory template you will train with: every thought (history and empty ones too) is written in "
    "its own thought words (list them: python -m lf_reasoning.llamafactory.thought_words) and recorded in the "
    "entry, and --max-tokens counts with it [default: LLaMA-Factory's <think>\\n…\\n</think>\\n\\n].",
)
@click.option(
    "--model",
    help="Model you will train (hub id or folder): the template is chosen from it as `config` does; "
    "--template then overrides it, with a warning when they disagree.",
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected records go with their reason [default: DIR/NAME.rejects.jsonl].",
)
@click.option("--strict", is_flag=True, help="Stop at the first invalid record instead of rejecting it.")
@click.option("--force", is_flag=True, help="Replace an existing different entry NAME (other entries are kept).")
@workers_option()
def convert(
    sources: tuple[str, ...],
    name: str,
    dataset_dir: Path,
    fmt: str,
    mapping: tuple[str, ...],
    style: str,
    think: str,
    system: str | None,
    prompt_template: Path | None,
    min_score: float | None,
    require_verified: bool,
    dedup: str,
    max_tokens: int | None,
    tokenizer: str | None,
    template: str | None,
    model: str | None,
    rejects: Path | None,
    strict: bool,
    force: bool,
    hub_split: str,
    workers: int | None,
) -> None:
    """Convert SRC (files, directories or a Hugging Face dataset) into a LLaMA-Factory dataset.

    Reads every known reasoning shape (R1 distill dumps, OpenR1, s1K, CoT sets, OpenAI messages with
    reasoning fields, ShareGPT with thought markup, Alpaca), writes DIR/NAME.jsonl with thoughts in
    LLaMA-Factory's exact `<think>\\n…\\n</think>\\n\\n` form (or in the words of --template / --model),
    and adds NAME to DIR/dataset_info.json keeping every other entry. Files: .json .jsonl .jsonl.gz
    .jsonl.zst .parquet .csv.

    Tool calls (ShareGPT function_call/observation turns, OpenAI tool_calls + role tool, LLaMA-Factory v1
    tool_call parts, with a `tools` list) are written as function_call/observation turns, each call after
    its thought, with a registered `tools` column (sharegpt style only).
    """
    from lf_reasoning.commands.convert import ConvertOptions, format_report
    from lf_reasoning.commands.convert import convert as run_convert
    from lf_reasoning.record.inputs import Inputs
    from lf_reasoning.textfile import read_text

    options = ConvertOptions(
        Inputs(sources, fmt, mapping, hub_split),
        name,
        dataset_dir,
        style=style,  # type: ignore[arg-type]
        think=think,  # type: ignore[arg-type]
        system=system,
        prompt_template=read_text(prompt_template, "--prompt-template").removesuffix("\n") if prompt_template else None,
        prompt_template_source=str(prompt_template) if prompt_template else "--prompt-template",
        min_score=min_score,
        require_verified=require_verified,
        dedup=dedup,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        tokenizer=tokenizer,
        template=template,
        model=model,
        rejects=rejects,
        strict=strict,
        force=force,
        workers=workers,
    )
    report = run_convert(options, log=lambda msg: click.echo(msg, err=True), progress=True)
    click.echo(format_report(report))
    shown = f"--model {model}" if model else f"--tokenizer {tokenizer}" if tokenizer else "--model MODEL"
    shown += f" --template {template}" if template else ""
    click.echo(f"see what is trained: lf-reasoning inspect {name} --dataset-dir {dataset_dir} {shown}")
    if report.invalid:
        sys.exit(EXIT_PARTIAL)


@click.command(epilog=EXIT_STATUS)
@dataset_dir_option("Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).")
@click.argument("names", nargs=-1)
@click.option(
    "--template",
    help="LLaMA-Factory template you will train with: an entry whose thoughts it would not recognise (written in "
    "another template's words) is an error naming the convert command that fixes it.",
)
def validate(dataset_dir: Path, names: tuple[str, ...], template: str | None) -> None:
    """Check DIR/dataset_info.json the way LLaMA-Factory will read it.

    Reports every problem at once: unknown (misspelt) keys, partial columns/tags blocks, missing files,
    columns absent from the data, mixed file types in a folder, thought markup LLaMA-Factory will not
    recognise. Remote (hub) entries are listed, not checked. Exits 1 when there is an error.
    """
    from lf_reasoning.llamafactory.validate import format_problems, validate_dataset_info

    problems = validate_dataset_info(dataset_dir, list(names) or None, template)
    click.echo(format_problems(problems))
    if any(p.severity == "error" for p in problems):
        sys.exit(EXIT_ERROR)


@click.command(epilog=EXIT_STATUS)
@click.argument("name")
@dataset_dir_option("Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).")
@click.option("--tokenizer", required=True, help="Tokenizer path or id of the model you will train.")
@click.option(
    "--template",
    help="LLaMA-Factory template you will train with [default: chosen from the tokenizer's model, with the reason].",
)
@cutoff_len_option("The cutoff_len you plan to train with.")
@enable_thinking_option("LLaMA-Factory's enable_thinking data argument (use the value you will train with).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a histogram PNG of lengths.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@force_option("Replace an existing --plot file that is not a PNG (the dataset is never overwritten).")
def stats(
    name: str,
    dataset_dir: Path,
    tokenizer: str,
    template: str | None,
    cutoff_len: int,
    enable_thinking: bool | None,
    plot: Path | None,
    as_json: bool,
    force: bool,
) -> None:
    """Token lengths of dataset NAME exactly as LLaMA-Factory's template and cutoff_len see them.

    Prints percentiles of prompt, thought, answer and total tokens per record and the share of records
    each cutoff_len would truncate (LLaMA-Factory cuts the tail: the answer and EOS).
    """
    import orjson

    from lf_reasoning.commands.stats import format_stats, plot_lengths, stats_json
    from lf_reasoning.llamafactory.dataset_info import DATA_CONFIG
    from lf_reasoning.llamafactory.lengths import dataset_files, measure_lengths
    from lf_reasoning.llamafactory.thought_words import words_mismatch
    from lf_reasoning.paths import check_targets
    from lf_reasoning.plot import plot_target

    if plot:
        _, files = dataset_files(dataset_dir, name)
        check_targets([plot_target(plot)], inputs=[*files, dataset_dir / DATA_CONFIG], force=force)
    if not template:
        from lf_reasoning.llamafactory.templates import choose_template

        choice = choose_template(tokenizer)  # a UserError asks for --template when the model says nothing
        template = choice.template
        click.echo(f"template: {template} ({choice.reason})", err=True)
    lengths = measure_lengths(dataset_dir, name, tokenizer, template, enable_thinking=enable_thinking)

    for mismatch in words_mismatch(dataset_dir, [name], template):  # measured anyway: it is what would be trained
        click.echo(f"warning: {mismatch} (until then, its thought tokens are counted as answer tokens)", err=True)
    if plot:
        plot_lengths(lengths, plot, cutoff_len, f"{name}: tokens per record ({template})")
    if as_json:
        click.echo(orjson.dumps(stats_json(lengths, cutoff_len), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_stats(lengths, cutoff_len) + (f"\nhistogram written to {plot}" if plot else ""))
