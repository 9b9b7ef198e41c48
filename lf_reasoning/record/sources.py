"""Open every supported input and stream its raw records, each tagged with where it came from.

A record that cannot be parsed is yielded as a :class:`RecordError` (so one bad line rejects one record);
a source that cannot be read at all raises :class:`UserError`.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from lf_reasoning.errors import RecordError, UserError

_BLOCK_BYTES = 1 << 20  # lazy reading hands out about this much text per block
SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".parquet", ".csv")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Lines:
    """A block of unparsed JSON Lines (lazy reading): ``lines[i]`` is line ``first + i`` of ``path``."""

    path: str
    first: int
    lines: list[bytes]


# A raw record: parsed, or the reason it could not be; or, in lazy reading, a block of lines still unparsed.
Raw = dict[str, Any] | RecordError | Lines


def has_supported_suffix(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


# Hugging Face's split names and their synonyms (datasets' data_files.SPLIT_KEYWORDS); a file is named by a split
# when a folder under SRC, or the file name, is the keyword or starts with it and a separator (``test.jsonl``,
# ``data/train-00000-of-00002.parquet``, ``validation/part0.json``), as ``load_dataset`` reads a folder.
SPLIT_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_SPLIT_OF_KEYWORD = {keyword: split for split, keywords in SPLIT_KEYWORDS.items() for keyword in keywords}
_SPLIT_NAME = re.compile(rf"({'|'.join(_SPLIT_OF_KEYWORD)})(?:$|[-._ 0-9])", re.IGNORECASE)
# metadata a Hub snapshot or a LLaMA-Factory data folder holds beside its records
_NOT_RECORDS = ("dataset_infos.json", "dataset_info.json")


def list_files(src: str, *, split: str = "train") -> list[Path]:
    """The files a SRC argument names: a file, or the supported files of a directory (sorted), leaving out hidden
    folders and files and dataset metadata. A directory whose files are named by more than one split (a downloaded
    Hub dataset) gives only those of ``split``: reading it whole would mix test rows into the training data."""
    path = Path(src)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and has_supported_suffix(p)
            and p.name.lower() not in _NOT_RECORDS
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise UserError(f"{src}: directory holds no {', '.join(SUFFIXES)} file")
        return _files_of_split(src, path, files, split)
    if path.is_file():
        if not has_supported_suffix(path):
            raise UserError(f"{src}: unsupported file type; use one of {', '.join(SUFFIXES)}")
        return [path]
    close = difflib.get_close_matches(path.name, _names_in(path.parent), n=1, cutoff=0.75)
    hint = f"; did you mean {path.parent / close[0]}?" if close else ""
    raise UserError(f"{src}: no such file or directory{hint}")


def _files_of_split(src: str, folder: Path, files: list[Path], split: str) -> list[Path]:
    """The files of ``split`` when ``files`` are named by more than one split; else all of them."""
    splits = {f: _split_of(f.relative_to(folder)) for f in files}
    found = sorted({s for s in splits.values() if s is not None}, key=list(SPLIT_KEYWORDS).index)
    if len(found) < 2:
        return files
    wanted = _SPLIT_OF_KEYWORD.get(split.lower(), split)
    if wanted not in found:
        raise UserError(
            f"{src}: no {split!r} split here; its files are named by the splits {', '.join(found)}: "
            "pick one with --split"
        )
    return [f for f, s in splits.items() if s == wanted]


def _split_of(relative: Path) -> str | None:
    """The split a file's folders (outermost first) or name place it in; ``None``: not named by a split."""
    for part in relative.parts:
        match = _SPLIT_NAME.match(part)
        if match:
            return _SPLIT_OF_KEYWORD[match.group(1).lower()]
    return None


def _names_in(folder: Path) -> list[str]:
    try:
        return [p.name for p in folder.iterdir()]
    except OSError:
        return []


def iter_file(path: Path, *, lazy: bool = False) -> Iterator[tuple[str, Raw]]:
    """Yield ``(where, record)`` for every record of one file; ``where`` is ``file:line`` or ``file#index``.

    With ``lazy``, JSON Lines records after the first object come in unparsed :class:`Lines` blocks for
    :func:`parse_line`, so parsing (and everything per line) can happen in worker processes.
    """
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            yield from _iter_parquet(path)
        elif name.endswith(".csv"):
            yield from _iter_csv(path)
        else:
            yield from _iter_json(path, lazy)
    except (OSError, EOFError) as err:  # mid-file: a truncated or damaged .gz/.zst, a failing disk
        hint = (
            "; it may be truncated or damaged: download or compress it again" if name.endswith((".gz", ".zst")) else ""
        )
        raise UserError(f"{path}: cannot read it: {getattr(err, 'strerror', None) or err}{hint}") from None


def iter_hub(name: str, *, split: str = "train") -> Iterator[tuple[str, Raw]]:
    """Stream a Hugging Face dataset ``owner/name`` (``owner/name:subset`` picks a configuration)."""
    import datasets

    repo, _, subset = name.partition(":")
    try:
        data = datasets.load_dataset(repo, subset or None, split=split, streaming=True)
        for i, row in enumerate(data):
            yield f"{name}#{i}", row
    except Exception as err:  # datasets raises many types: connection, missing config, offline mode
        raise UserError(
            f"{name}: not a local file or directory, and loading it from the Hugging Face Hub failed: "
            f"{type(err).__name__}: {err}"
        ) from err


def resolve_sources(sources: Sequence[str], *, split: str = "train") -> list[Path | str]:
    """The local files (directories expanded, keeping ``split`` of a split folder) and hub names that SRC arguments
    name, checked to exist."""
    if not sources:
        raise UserError("no SRC given: pass a file, a directory or a Hugging Face dataset name")
    inputs: list[Path | str] = []
    for src in sources:
        if looks_like_hub_name(src):
            inputs.append(src)
        else:
            inputs.extend(list_files(src, split=split))
    return inputs


def looks_like_hub_name(src: str) -> bool:
    """``owner/name`` or ``owner/name:config`` that is no local path. A name ending in a data-file suffix, or whose
    owner part is a local folder (``data/tarin.jsonl``), is a mistyped path, not a hub dataset."""
    repo = src.partition(":")[0]
    if Path(src).exists() or repo.count("/") != 1 or repo.startswith((".", "/", "~")):
        return False
    return not has_supported_suffix(Path(repo)) and not Path(repo.split("/")[0]).is_dir()


def _open_binary(path: Path) -> IO[bytes]:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        return io.BufferedReader(_ZstdReader(path), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


class _ZstdReader(io.RawIOBase):
    """Zstandard frames, one after another; a file cut off inside a frame raises :class:`EOFError` as gzip does
    (zstandard's ``stream_reader`` ends quietly there: the records after the cut would be lost unnoticed)."""

    def __init__(self, path: Path) -> None:
        import zstandard

        self._file = open(path, "rb")  # noqa: SIM115 — closed by close(), as the BufferedReader around it is
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._out = memoryview(b"")
        self._error = zstandard.ZstdError

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            if self._frame.eof:  # a frame ended: another may follow
                data = self._frame.unused_data or self._file.read(1 << 20)
                if not data:
                    return 0
                self._frame = self._decompressor.decompressobj()
            else:
                data = self._file.read(1 << 20)
                if not data:
                    raise EOFError("compressed file ended before the end of its last Zstandard frame")
            try:
                self._out = memoryview(self._frame.decompress(data))
            except self._error as err:
                raise OSError(f"not valid Zstandard data ({err})") from None
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def _iter_json(path: Path, lazy: bool) -> Iterator[tuple[str, Raw]]:
    with _open_binary(path) as f:
        head = f.peek(64)[:64] if hasattr(f, "peek") else b""
        if head.startswith(BOM):
            f.read(len(BOM))
            head = head[len(BOM) :]
        if head.lstrip()[:1] == b"[":
            data = f.read()
            items = _json_array(path, data)
            if items is not None:
                yield from _array_items(path, items)
                return
            f = io.BytesIO(data)  # JSON Lines whose first line is an array (a bad record): read line by line
        empty, lineno = True, 0
        for line in f:
            lineno += 1
            record = parse_line(line)
            if record is None:
                continue
            empty = False
            yield f"{path}:{lineno}", record
            if lazy and isinstance(record, dict):  # the format is known: hand out the rest unparsed
                while block := f.readlines(_BLOCK_BYTES):
                    yield f"{path}:{lineno + 1}", Lines(str(path), lineno + 1, block)
                    lineno += len(block)
    if empty:
        raise UserError(f"{path}: file is empty (no records)")


def parse_line(line: bytes) -> dict[str, Any] | RecordError | None:
    """One JSON Lines record; ``None`` for a blank line."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        if not line.strip():  # checked only on failure: strip copies the line
            return None
        if "UTF-8" in err.msg:
            return RecordError("invalid_utf8", f"line is not valid UTF-8 ({err.msg}); re-encode the file as UTF-8")
        return RecordError("invalid_json", f"invalid JSON at column {err.colno}: {err.msg}")
    if isinstance(obj, dict):
        return obj
    return RecordError("not_an_object", f"line holds a JSON {type(obj).__name__}, not an object")


def _json_array(path: Path, data: bytes) -> list[Any] | None:
    """The items of a file that starts with ``[``; ``None`` when it is JSON Lines whose first line is an array."""
    try:
        items = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        first, _, rest = data.partition(b"\n")
        if err.lineno > 1 and rest.strip() and _is_json(first):
            return None
        raise UserError(
            f"{path}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}. "
            "Fix the file or write it as JSON Lines (one object per line)."
        ) from err
    if not items:
        raise UserError(f"{path}: file is empty (an empty JSON array)")
    return items


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _array_items(path: Path, items: list[Any]) -> Iterator[tuple[str, Raw]]:
    for i, obj in enumerate(items):
        where = f"{path}#{i}"
        if isinstance(obj, dict):
            yield where, obj
        else:
            yield where, RecordError("not_an_object", f"item is a JSON {type(obj).__name__}, not an object")


def _iter_parquet(path: Path) -> Iterator[tuple[str, Raw]]:
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for a damaged file
        raise UserError(f"{path}: cannot read as Parquet: {err}") from err
    if reader.metadata.num_rows == 0:
        raise UserError(f"{path}: file is empty (no rows)")
    i = 0
    for batch in reader.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield f"{path}#{i}", row
            i += 1


def _iter_csv(path: Path) -> Iterator[tuple[str, Raw]]:
    # a long thought is one field: the csv module's default limit (131,072 characters) would stop the file there
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    # surrogateescape keeps reading past invalid bytes so only the affected row is rejected
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise UserError(f"{path}: file is empty (no header row)")
        empty = True
        while True:
            start = reader.line_num + 1  # a row located by its first line (a quoted field may hold line breaks)
            try:
                cells = next(reader, None)
            except csv.Error as err:  # e.g. a NUL byte: the reader cannot go on past it
                raise UserError(f"{path}:{start}: cannot read the CSV: {err}; fix that row") from None
            if cells is None:
                break
            if not cells:  # a blank line
                continue
            empty = False
            where = f"{path}:{start}"
            if len(cells) > len(header):
                detail = f"row has {len(cells)} fields, the header {len(header)}; quote a field that holds a comma"
                yield where, RecordError("csv_columns", detail)
                continue
            row: dict[str, str | None] = dict(zip(header, cells, strict=False))
            row.update(dict.fromkeys(header[len(cells) :]))  # a short row: the missing fields are None
            try:
                "".join(v for v in row.values() if v).encode("utf-8")
            except UnicodeEncodeError:
                yield where, RecordError("invalid_utf8", "row is not valid UTF-8; re-encode the file as UTF-8")
                continue
            yield where, row
    if empty:
        raise UserError(f"{path}: file has a header but no rows")
