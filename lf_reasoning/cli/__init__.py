"""The ``lf-reasoning`` command line: parses options, calls library functions, prints results.

One module per command group; each command is a thin wrapper around a function in :mod:`lf_reasoning.commands`.
"""

from __future__ import annotations

from typing import Any

import click

from lf_reasoning.cli.api import distill, score
from lf_reasoning.cli.checks import eval_command, verify
from lf_reasoning.cli.data import convert, stats, validate
from lf_reasoning.cli.env import env_command, version_option
from lf_reasoning.cli.grade import grade
from lf_reasoning.cli.inspect import inspect_command
from lf_reasoning.cli.serve import serve
from lf_reasoning.cli.training import config_command, train
from lf_reasoning.errors import EXIT_INTERRUPTED, EXIT_STATUS


class _Main(click.Group):
    """The command group; Ctrl-C exits 130 (``EXIT_INTERRUPTED``) instead of click's 1 ("Aborted!")."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted: no file was replaced (distill, score and grade resume when run again)", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_STATUS,
)
@version_option()
def main() -> None:
    """Reasoning data and configs for LLaMA-Factory, correct by default.

    \b
    Typical flow:
      lf-reasoning convert data.jsonl --name my_r1 --dataset-dir data --model Qwen/Qwen3-8B
      lf-reasoning inspect my_r1 --dataset-dir data --model Qwen/Qwen3-8B
      lf-reasoning config --model Qwen/Qwen3-8B --dataset my_r1 --dataset-dir data --out runs/r1
      lf-reasoning train runs/r1/train.yaml
      lf-reasoning serve runs/r1/train.yaml
    Making data: distill (from a reasoning model's API), then grade (or verify / score).
    """


for command in (
    convert,
    validate,
    stats,
    config_command,
    train,
    distill,
    verify,
    eval_command,
    score,
    grade,
    env_command,
    serve,
    inspect_command,
):
    main.add_command(command)
