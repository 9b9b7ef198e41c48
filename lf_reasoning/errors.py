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
