"""Two kinds of failure: a whole run that cannot proceed, and one record that is rejected."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """Something the user can fix (a path, an option, a file); the CLI prints it and exits 1."""


class RecordError(ValueError):
    """One record cannot be used. ``reason`` is a short stable code used in reports and rejects files."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[RecordError], tuple[str, str]]:
        # the default pickles ``args`` (the detail alone): records rejected in the main process travel to workers
        return RecordError, (self.reason, self.detail)


# One exit-status table for every command (``EXIT_STATUS`` is the text of every ``--help`` epilog and the README).
EXIT_OK = 0
EXIT_ERROR = 1  # an error: nothing written, every existing file as it was
EXIT_USAGE = 2  # click's usage errors: an unknown option, a missing argument, a value of the wrong type
EXIT_PARTIAL = 3  # written, but some input records were invalid, or some requests failed or went unscored
EXIT_INTERRUPTED = 130  # Ctrl-C: the previous state kept, or a resumable one

EXIT_STATUS = """\b
Exit status (the same for every command):
  0    done
  1    error (a value, file or record the message names): nothing written,
       existing files unchanged
  2    usage error: unknown option, missing argument, value of the wrong type
  3    written, but some input records were invalid or some requests failed
       (each listed with its reason in the rejects or failures file)
  130  interrupted (Ctrl-C): previous files kept, or resumable output"""
