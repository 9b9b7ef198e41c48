"""Small text files the user hands over whole (a prompt template, a rubric, a config): read as UTF-8, or refused
with a message naming the file, the first undecodable byte and how to fix the file."""

from __future__ import annotations

from pathlib import Path

from lf_reasoning.errors import UserError


def read_text(path: str | Path, what: str) -> str:
    """The text of ``path`` (UTF-8, a leading BOM dropped); ``what`` names the file in errors (an option)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{what} {path}: cannot read it: {err.strerror or err}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(not_utf8(path, what, data, err)) from None


def not_utf8(path: str | Path, what: str, data: bytes, err: UnicodeDecodeError) -> str:
    """The message for a file that is not UTF-8: where the first bad byte is, and how to convert the file."""
    line = data.count(b"\n", 0, err.start) + 1
    return (
        f"{what} {path}: not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start} (line {line}) "
        f"cannot be decoded ({err.reason}). Save the file as UTF-8, e.g. `iconv -f GBK -t UTF-8 {path} > fixed.txt` "
        "(or -f LATIN1 for Western European text)"
    )
