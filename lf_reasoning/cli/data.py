"""convert, validate and stats: source data in, a registered LLaMA-Factory dataset out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from lf_reasoning.cli.options import dataset_dir_option, input_options

THINK_HELP = (
    "keep: train the thought as given (default); drop: answer only (method 3: LLaMA-Factory's "
    "reasoning templates then add an empty thought themselves); empty: write an explicit empty "
    "<think> block before every answer."
)


@click.command(
    epilog="""\b
Exit status: 0 all input records were valid; 2 the dataset was written but some
input records were invalid (listed in the rejects file); 1 an error, nothing written.

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
    help="Output layout (sharegpt is written with explicit role/content tags).",
)
@click.option(
    "--think", type=click.Choice(["keep", "drop", "empty"]), default="keep", show_default=True, help=THINK_HELP
)
@click.option("--system", help="System prompt for every record (replaces the source's).")
@click.option(
    "--prompt-template",
    type=click.File(encoding="utf-8"),
    help="Text file with a {prompt} placeholder, wrapped around every prompt (the file's final newline "
    "is not part of it).",
)
@click.option("--min-score", type=float, help="Drop records whose score is below X (or that have none).")
@click.option("--require-verified", is_flag=True, help="Drop records without a positive verification verdict.")
@click.option(
    "--dedup",
    type=click.Choice(["normalized", "exact", "off"]),
    default="normalized",
    show_default=True,
    help="Drop repeated prompts: normalized folds case, full-width forms and spacing.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Drop (never truncate) records longer than N tokens; set it to your cutoff_len.",
)
@click.option("--tokenizer", help="Tokenizer path or id used by --max-tokens.")
@click.option("--template", help="LLaMA-Factory template used by --max-tokens (e.g. qwen3, deepseekr1).")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected records go with their reason [default: DIR/NAME.rejects.jsonl].",
)
@click.option("--strict", is_flag=True, help="Stop at the first invalid record instead of rejecting it.")
@click.option("--force", is_flag=True, help="Replace an existing different entry NAME (other entries are kept).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes [default: one per CPU].")
def convert(
    sources: tuple[str, ...],
    name: str,
    dataset_dir: Path,
    fmt: str,
    mapping: tuple[str, ...],
    style: str,
    think: str,
    system: str | None,
    prompt_template: TextIO | None,
    min_score: float | None,
    require_verified: bool,
    dedup: str,
    max_tokens: int | None,
    tokenizer: str | None,
    template: str | None,
    rejects: Path | None,
    strict: bool,
    force: bool,
    hub_split: str,
    workers: int | None,
) -> None:
    """Convert SRC (files, directories or a Hugging Face dataset) into a LLaMA-Factory dataset.

    Reads every known reasoning shape (R1 distill dumps, OpenR1, s1K, CoT sets, OpenAI messages with
    reasoning fields, ShareGPT with thought markup, Alpaca), writes DIR/NAME.jsonl with thoughts in
    LLaMA-Factory's exact `<think>\\n…\\n</think>\\n\\n` form, and adds NAME to DIR/dataset_info.json
    keeping every other entry. Files: .json .jsonl .jsonl.gz .jsonl.zst .parquet .csv.
    """
    from lf_reasoning.commands.convert import ConvertOptions, format_report
    from lf_reasoning.commands.convert import convert as run_convert
    from lf_reasoning.record.inputs import Inputs

    options = ConvertOptions(
        Inputs(sources, fmt, mapping, hub_split),
        name,
        dataset_dir,
        style=style,  # type: ignore[arg-type]
        think=think,  # type: ignore[arg-type]
        system=system,
        prompt_template=prompt_template.read().removesuffix("\n") if prompt_template else None,
        min_score=min_score,
        require_verified=require_verified,
        dedup=dedup,  # type: ignore[arg-type]
        max_tokens=max_tokens,
        tokenizer=tokenizer,
        template=template,
        rejects=rejects,
        strict=strict,
        force=force,
        workers=workers,
    )
    report = run_convert(options, log=lambda msg: click.echo(msg, err=True), progress=True)
    click.echo(format_report(report))
    if report.invalid:
        sys.exit(2)


@click.command()
@dataset_dir_option("Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).")
@click.argument("names", nargs=-1)
def validate(dataset_dir: Path, names: tuple[str, ...]) -> None:
    """Check DIR/dataset_info.json the way LLaMA-Factory will read it.

    Reports every problem at once: unknown (misspelt) keys, partial columns/tags blocks, missing files,
    columns absent from the data, mixed file types in a folder, thought markup LLaMA-Factory will not
    recognise. Remote (hub) entries are listed, not checked. Exits 1 when there is an error.
    """
    from lf_reasoning.llamafactory.validate import format_problems, validate_dataset_info

    problems = validate_dataset_info(dataset_dir, list(names) or None)
    click.echo(format_problems(problems))
    if any(p.severity == "error" for p in problems):
        sys.exit(1)


@click.command()
@click.argument("name")
@dataset_dir_option("Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).")
@click.option("--tokenizer", required=True, help="Tokenizer path or id of the model you will train.")
@click.option(
    "--template",
    help="LLaMA-Factory template you will train with [default: chosen from the tokenizer's model, with the reason].",
)
@click.option(
    "--cutoff-len",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="The cutoff_len you plan to train with.",
)
@click.option(
    "--enable-thinking",
    type=click.Choice(["true", "false", "none"]),
    default="true",
    show_default=True,
    help="LLaMA-Factory's enable_thinking data argument (use the value you will train with).",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a histogram PNG of lengths.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
def stats(
    name: str,
    dataset_dir: Path,
    tokenizer: str,
    template: str | None,
    cutoff_len: int,
    enable_thinking: str,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Token lengths of dataset NAME exactly as LLaMA-Factory's template and cutoff_len see them.

    Prints percentiles of prompt, thought, answer and total tokens per record and the share of records
    each cutoff_len would truncate (LLaMA-Factory cuts the tail: the answer and EOS).
    """
    import orjson

    from lf_reasoning.commands.stats import format_stats, plot_lengths, stats_json
    from lf_reasoning.llamafactory.lengths import measure_lengths

    if not template:
        from lf_reasoning.llamafactory.templates import choose_template

        choice = choose_template(tokenizer)  # a UserError asks for --template when the model says nothing
        template = choice.template
        click.echo(f"template: {template} ({choice.reason})", err=True)
    thinking = {"true": True, "false": False, "none": None}[enable_thinking]
    lengths = measure_lengths(dataset_dir, name, tokenizer, template, enable_thinking=thinking)
    if plot:
        plot_lengths(lengths, plot, cutoff_len, f"{name}: tokens per record ({template})")
    if as_json:
        click.echo(orjson.dumps(stats_json(lengths, cutoff_len), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_stats(lengths, cutoff_len) + (f"\nhistogram written to {plot}" if plot else ""))
