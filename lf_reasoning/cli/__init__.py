"""The ``lf-reasoning`` command line: parses options, calls library functions, prints results.

One module per command group; each command is a thin wrapper around a function in :mod:`lf_reasoning.commands`.
"""

from __future__ import annotations

import click

from lf_reasoning import __version__
from lf_reasoning.cli.api import distill, score
from lf_reasoning.cli.checks import eval_command, verify
from lf_reasoning.cli.data import convert, stats, validate
from lf_reasoning.cli.training import config_command, train


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lf-reasoning")
def main() -> None:
    """Reasoning data and configs for LLaMA-Factory, correct by default.

    \b
    Typical flow:
      lf-reasoning convert data.jsonl --name my_r1 --dataset-dir data
      lf-reasoning validate --dataset-dir data
    """


for command in (convert, validate, stats, config_command, train, distill, verify, eval_command, score):
    main.add_command(command)
