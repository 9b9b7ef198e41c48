"""The ``lf-reasoning`` command line: parses options, calls library functions, prints results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import click

from lf_reasoning import __version__
from lf_reasoning.formats import FORMATS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lf-reasoning")
def main() -> None:
    """Reasoning data and configs for LLaMA-Factory, correct by default.

    \b
    Typical flow:
      lf-reasoning convert data.jsonl --name my_r1 --dataset-dir data
      lf-reasoning validate --dataset-dir data
    """


THINK_HELP = ("keep: train the thought as given (default); drop: answer only (method 3: LLaMA-Factory's "
              "reasoning templates then add an empty thought themselves); empty: write an explicit empty "
              "<think> block before every answer.")


@main.command(epilog="""\b
Exit status: 0 all input records were valid; 2 the dataset was written but some
input records were invalid (listed in the rejects file); 1 an error, nothing written.

\b
Examples:
  lf-reasoning convert distill_r1_110k.jsonl --name r1_110k --dataset-dir data --min-score 9
  lf-reasoning convert medical_o1_sft.json --name medical --dataset-dir data \\
      --prompt-template examples/medical_prompt.txt
  lf-reasoning convert titles.csv --name news --dataset-dir data --map prompt=title --map answer=label
""")
@click.argument("sources", nargs=-1, required=True, metavar="SRC...")
@click.option("--name", required=True, help="Dataset name to register (also the data file name).")
@click.option("--dataset-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="LLaMA-Factory `dataset_dir`: the data file and dataset_info.json go here.")
@click.option("--format", "fmt", default="auto", show_default=True, metavar="auto|" + "|".join(FORMATS),
              help="Source shape; auto detects it from each file's first record and says why.")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Read any table: map prompt, answer (required), thought, system, score, source, id, reference.")
@click.option("--style", type=click.Choice(["sharegpt", "alpaca"]), default="sharegpt", show_default=True,
              help="Output layout (sharegpt is written with explicit role/content tags).")
@click.option("--think", type=click.Choice(["keep", "drop", "empty"]), default="keep", show_default=True,
              help=THINK_HELP)
@click.option("--system", help="System prompt for every record (replaces the source's).")
@click.option("--prompt-template", type=click.File(encoding="utf-8"),
              help="Text file with a {prompt} placeholder, wrapped around every prompt.")
@click.option("--min-score", type=float, help="Drop records whose score is below X (or that have none).")
@click.option("--require-verified", is_flag=True, help="Drop records without a positive verification verdict.")
@click.option("--dedup", type=click.Choice(["normalized", "exact", "off"]), default="normalized", show_default=True,
              help="Drop repeated prompts: normalized folds case, full-width forms and spacing.")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="Drop (never truncate) records longer than N tokens; set it to your cutoff_len.")
@click.option("--tokenizer", help="Tokenizer path or id used by --max-tokens.")
@click.option("--template", help="LLaMA-Factory template used by --max-tokens (e.g. qwen3, deepseekr1).")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Where rejected records go with their reason [default: DIR/NAME.rejects.jsonl].")
@click.option("--strict", is_flag=True, help="Stop at the first invalid record instead of rejecting it.")
@click.option("--force", is_flag=True, help="Replace an existing different entry NAME (other entries are kept).")
@click.option("--split", "hub_split", default="train", show_default=True, help="Split of a Hugging Face dataset SRC.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes [default: one per CPU].")
def convert(sources: tuple[str, ...], name: str, dataset_dir: Path, fmt: str, mapping: tuple[str, ...],
            style: str, think: str, system: str | None, prompt_template: TextIO | None, min_score: float | None,
            require_verified: bool, dedup: str, max_tokens: int | None, tokenizer: str | None,
            template: str | None, rejects: Path | None, strict: bool, force: bool, hub_split: str,
            workers: int | None) -> None:
    """Convert SRC (files, directories or a Hugging Face dataset) into a LLaMA-Factory dataset.

    Reads every known reasoning shape (R1 distill dumps, OpenR1, s1K, CoT sets, OpenAI messages with
    reasoning fields, ShareGPT with thought markup, Alpaca), writes DIR/NAME.jsonl with thoughts in
    LLaMA-Factory's exact `<think>\\n…\\n</think>\\n\\n` form, and adds NAME to DIR/dataset_info.json
    keeping every other entry. Files: .json .jsonl .jsonl.gz .jsonl.zst .parquet .csv.
    """
    from lf_reasoning.convert import convert as run_convert
    from lf_reasoning.convert import format_report

    report = run_convert(
        sources, name, dataset_dir, fmt=fmt, mapping=mapping, style=style, think=think,  # type: ignore[arg-type]
        system=system, prompt_template=prompt_template.read() if prompt_template else None,
        min_score=min_score, require_verified=require_verified, dedup=dedup,  # type: ignore[arg-type]
        max_tokens=max_tokens, tokenizer=tokenizer, template=template, rejects=rejects, strict=strict,
        force=force, hub_split=hub_split, workers=workers, log=lambda msg: click.echo(msg, err=True), progress=True,
    )
    click.echo(format_report(report))
    if report.invalid:
        sys.exit(2)


@main.command()
@click.option("--dataset-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).")
@click.argument("names", nargs=-1)
def validate(dataset_dir: Path, names: tuple[str, ...]) -> None:
    """Check DIR/dataset_info.json the way LLaMA-Factory will read it.

    Reports every problem at once: unknown (misspelt) keys, partial columns/tags blocks, missing files,
    columns absent from the data, mixed file types in a folder, thought markup LLaMA-Factory will not
    recognise. Remote (hub) entries are listed, not checked. Exits 1 when there is an error.
    """
    from lf_reasoning.validate import format_problems, validate_dataset_info

    problems = validate_dataset_info(dataset_dir, list(names) or None)
    click.echo(format_problems(problems))
    if any(p.severity == "error" for p in problems):
        sys.exit(1)


# --- config command (issue 3) ---


# --- train command (issue 3) ---


# --- stats command (issue 3) ---
