"""inspect: what LLaMA-Factory trains in each record, in colour, as JSON lines or as a web page."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from lf_reasoning.cli.options import cutoff_len_option, dataset_dir_option, enable_thinking_option, force_option
from lf_reasoning.errors import EXIT_STATUS, UserError


def _record_numbers(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        numbers = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give record numbers separated by commas, e.g. 0,5,12") from None
    if not numbers or min(numbers) < 0:
        raise click.BadParameter(f"{value!r}: record numbers start at 0 (file order)")
    return numbers


@click.command(
    "inspect",
    epilog=EXIT_STATUS
    + """

\b
Roles: system, user, thought, answer, tool, empty_thought (the empty
<think> block LLaMA-Factory's reasoning templates add), template (its tokens).
Trained text is bold on a coloured background; masked text is dimmed.

\b
Examples:
  lf-reasoning inspect r1 --dataset-dir data --model deepseek-ai/DeepSeek-R1-Distill-Qwen-7B
  lf-reasoning inspect r1 --dataset-dir data --tokenizer ./model --template qwen3 \\
      --enable-thinking false --records 0,7 --cutoff-len 1024
  lf-reasoning inspect r1 --dataset-dir data --model ./model --mask-history --json
  lf-reasoning inspect r1 --dataset-dir data --model ./model -n 20 --html r1.html
""",
)
@click.argument("name")
@dataset_dir_option("Directory holding dataset_info.json (LLaMA-Factory's `dataset_dir`).")
@click.option("--model", help="Model you will train (hub id or folder): its tokenizer, and its template by default.")
@click.option("--tokenizer", help="Or only a tokenizer (path or id); the template from it or from --template.")
@click.option("--template", help="LLaMA-Factory template [default: chosen from the model, with the reason].")
@enable_thinking_option(
    "LLaMA-Factory's enable_thinking (the value you will train with; the web page shows true and false)."
)
@click.option("-n", "n", type=click.IntRange(min=1), default=5, show_default=True, help="Show the first N records.")
@click.option(
    "--records",
    callback=_record_numbers,
    metavar="I,J,...",
    help="Show these records instead (0-based, in file order).",
)
@cutoff_len_option("The cutoff_len you will train with; the point where it cuts is marked.")
@click.option("--mask-history", is_flag=True, help="LLaMA-Factory's mask_history: train only the last turn.")
@click.option("--train-on-prompt", is_flag=True, help="LLaMA-Factory's train_on_prompt: train the prompt too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per record: segments, tokens, cut_at.")
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained web page: dataset summary, then the records with both enable_thinking values.",
)
@force_option("Replace an existing --html file that is not an inspect page (the dataset is never overwritten).")
def inspect_command(
    name: str,
    dataset_dir: Path,
    model: str | None,
    tokenizer: str | None,
    template: str | None,
    enable_thinking: bool | None,
    n: int,
    records: tuple[int, ...] | None,
    cutoff_len: int,
    mask_history: bool,
    train_on_prompt: bool,
    as_json: bool,
    html: Path | None,
    force: bool,
) -> None:
    """Show what LLaMA-Factory trains in records of dataset NAME: trained and masked text, by role.

    The records are loaded, templated and tokenized by LLaMA-Factory's own code (its loader, template and
    supervised processor), so what is shown is what is trained: whether each thought is trained, masked or
    gone, the empty thought block the template adds, the history masked by --mask-history, and where
    --cutoff-len cuts.
    """
    import orjson

    from lf_reasoning.commands.inspect import (
        InspectOptions,
        format_header,
        format_record,
        inspect,
        record_json,
    )

    if records is not None and click.get_current_context().get_parameter_source("n") is not ParameterSource.DEFAULT:
        raise UserError("-n and --records: choose one")
    if html is not None:  # checked before the (slow) encoding: never an input or a file that is not our page
        from lf_reasoning.commands.inspect_html import html_target
        from lf_reasoning.llamafactory.dataset_info import DATA_CONFIG
        from lf_reasoning.llamafactory.lengths import dataset_files
        from lf_reasoning.paths import check_targets

        _, files = dataset_files(dataset_dir, name)
        check_targets([html_target(html)], inputs=[*files, dataset_dir / DATA_CONFIG], force=force)
    options = InspectOptions(
        name,
        dataset_dir,
        model=model,
        tokenizer=tokenizer,
        template=template,
        enable_thinking=enable_thinking,
        n=n,
        records=records,
        cutoff_len=cutoff_len,
        mask_history=mask_history,
        train_on_prompt=train_on_prompt,
        both_thinking=html is not None,
        summary=html is not None,
    )
    report = inspect(options)
    click.echo(f"template: {report.template} ({report.template_reason})", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        for record in report.records:
            click.echo(orjson.dumps(record_json(record)).decode())
    elif html is None:
        click.echo(format_header(report))
        for record in report.records:
            click.echo(format_record(record, cutoff_len))
    if html is not None:
        from lf_reasoning.commands.inspect_html import write_html

        write_html(report, html)
        click.echo(f"wrote {html}", err=as_json)
