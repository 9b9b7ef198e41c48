"""env: the versions and devices this interpreter sees (for bug reports and "which LLaMA-Factory runs?")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from lf_reasoning import __version__
from lf_reasoning.errors import EXIT_STATUS
from lf_reasoning.llamafactory.compat import TESTED_RANGE, TESTED_VERSIONS, llamafactory_version, range_warning


@click.command(
    "env",
    epilog=EXIT_STATUS
    + f"""

\b
LLaMA-Factory tested range: {TESTED_RANGE} (tested: {", ".join(TESTED_VERSIONS)}).
It is reported as imported: a source checkout on PYTHONPATH or an
editable install (pip install -e) is named as such, with the version it
declares. Outside the tested range a warning goes to stderr; the exit status is
still 0. Devices are those torch sees (CUDA, Ascend NPU, Apple MPS), else
"CPU only".

\b
Examples:
  lf-reasoning env
  lf-reasoning env --json > env.json
  PYTHONPATH=~/LLaMA-Factory/src lf-reasoning env   # which LLaMA-Factory runs
""",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def env_command(as_json: bool) -> None:
    """Versions and devices that run here, for bug reports.

    lf-reasoning, Python, platform, LLaMA-Factory (and where it is imported from), torch, transformers,
    datasets, accelerate, peft, trl, math-verify, and the devices torch sees; a warning when LLaMA-Factory is
    outside the tested range."""
    from lf_reasoning.commands.env import collect_env, format_report

    report = collect_env()
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else format_report(report))
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


def version_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--version``: lf-reasoning's version and the LLaMA-Factory one imports (no torch: it stays fast)."""

    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        lf = llamafactory_version()
        click.echo(f"lf-reasoning, version {__version__} (LLaMA-Factory {lf or 'not installed'})")
        warning = range_warning(lf) if lf else None
        if warning:
            click.echo(f"warning: {warning}", err=True)
        ctx.exit()

    return click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=show,
        help="Show the lf-reasoning and LLaMA-Factory versions and exit (more: lf-reasoning env).",
    )
