"""Run the ``lf-reasoning`` CLI in-process the way a user would, for tests that assert exit codes and messages."""

from __future__ import annotations

from click.testing import CliRunner

from lf_reasoning.cli import main


def run(*args: str) -> tuple[int, str]:
    """Exit code and combined output of ``lf-reasoning ARGS``; an unexpected exception (a bug) is re-raised."""
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output
