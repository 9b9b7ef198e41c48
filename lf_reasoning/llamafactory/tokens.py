"""Exact LLaMA-Factory token counts with batched tokenizer calls.

LLaMA-Factory encodes a conversation by formatting each turn through its template and calling
``tokenizer.encode`` once per text piece; ``cutoff_len`` then applies to the sum over all turns. We run the
template's own ``encode_multiturn`` against a stand-in tokenizer that only records the text pieces, then
tokenize all recorded pieces of a batch in one fast-tokenizer call. The count is the one LLaMA-Factory
will see, without re-implementing any template.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.compat import require
from lf_reasoning.record.sources import iter_file

Messages = list[dict[str, str]]
# (system, messages) or (system, messages, tools): the tools' JSON list is shown in the prompt
Conversation = tuple[str | None, Messages] | tuple[str | None, Messages, str | None]
# The role convert writes a tool call under (dataset_info.SHAREGPT_TAGS) → LLaMA-Factory's ``Role`` value for it
_ROLES = {"function_call": "function"}
Pairs = list[tuple[list[int], list[int]]]


class TokenParts(NamedTuple):
    """One conversation's tokens as LLaMA-Factory trains it; ``total`` is what ``cutoff_len`` limits."""

    prompt: int  # masked: system, user turns, template scaffolding
    thought: int  # the thought text inside the template's thought words, in every trained turn
    answer: int  # the rest of the trained tokens: answers, thought words, end-of-turn / EOS

    @property
    def total(self) -> int:
        return self.prompt + self.thought + self.answer


class _RecordingTokenizer:
    """Returns a negative placeholder id per ``encode`` call; real special-token ids stay non-negative."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.texts: list[str] = []

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        self.texts.append(text)
        return [-len(self.texts)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def check_local_dir(value: str, option: str) -> None:
    """Refuse a path-like ``value`` that is no directory, before Hugging Face reads it as a hub id and answers with
    its repo-id rules. Path-like: it starts with ``.``, ``/`` or ``~``, has more than one ``/`` (a hub id has one:
    ``owner/name``), holds a backslash on Windows, or names an existing file."""
    path = Path(value).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise UserError(f"{option} {value}: is a file; pass the folder that holds tokenizer.json (or a hub id)")
    if value.startswith((".", "/", "~")) or value.count("/") > 1 or (os.sep != "/" and os.sep in value):
        raise UserError(f"{option} {value}: no such directory (a local folder, or a hub id such as Qwen/Qwen3-8B)")


class TokenCounter:
    """Counts the tokens LLaMA-Factory's template ``template`` produces for whole conversations."""

    def __init__(self, tokenizer_path: str, template: str, *, enable_thinking: bool | None = True) -> None:
        try:
            _log_to_stderr()
            from llamafactory.data import get_template_and_fix_tokenizer
            from llamafactory.data.template import TEMPLATES
            from llamafactory.hparams import DataArguments
            from transformers import AutoTokenizer
        except ImportError as err:
            raise UserError("token counting needs LLaMA-Factory: pip install 'lf-reasoning[train]'") from err
        if template not in TEMPLATES:
            close = difflib.get_close_matches(template, list(TEMPLATES), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else " (see llamafactory/data/template.py)"
            raise UserError(f"--template {template}: LLaMA-Factory has no such template{hint}")
        check_local_dir(tokenizer_path, "--tokenizer")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        except (OSError, ValueError) as err:
            raise UserError(f"--tokenizer {tokenizer_path}: cannot load a tokenizer: {err}") from err
        require(DataArguments, "enable_thinking", "the data argument enable_thinking", "counting tokens")
        try:
            data_args = DataArguments(template=template, enable_thinking=enable_thinking)
            self.template = get_template_and_fix_tokenizer(self.tokenizer, data_args)
        except ValueError as err:
            raise UserError(f"--template {template}: {err}") from err

    def _encode(self, conversations: Iterable[Conversation]) -> tuple[list[str], list[Pairs]]:
        """The recorded text pieces and, per conversation, its (prompt, response) pairs of placeholder ids."""
        recorder = _RecordingTokenizer(self.tokenizer)
        encoded = [
            self.template.encode_multiturn(recorder, _lf_roles(messages), system, *tools)
            for system, messages, *tools in conversations
        ]
        return recorder.texts, encoded

    def count(self, conversations: Sequence[Conversation]) -> list[int]:
        """Token totals for ``(system, messages)`` conversations, as ``cutoff_len`` would measure them."""
        texts, encoded = self._encode(conversations)
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        extra = 1 if self.template.efficient_eos else 0
        return [sum(_size(ids, lengths) for pair in pairs for ids in pair) + extra for pairs in encoded]

    def measure(self, conversations: Sequence[Conversation]) -> list[TokenParts]:
        """Prompt, thought and answer tokens of each conversation; ``total`` equals :meth:`count`.

        Thought tokens are those of the trained pieces whose characters lie between the template's thought
        words (``<think>\\n`` … ``\\n</think>\\n\\n``), read from the same tokenization (character offsets),
        so measuring them costs no second tokenizer pass.
        """
        if not self.tokenizer.is_fast:
            raise UserError("measuring thought tokens needs a fast tokenizer (a tokenizer.json next to the model)")
        texts, encoded = self._encode(conversations)
        # The Rust tokenizer behind ``tokenizer(texts)``, as transformers configures it for an unpadded,
        # untruncated call; skipping the conversion of every id to a Python list.
        backend = self.tokenizer.backend_tokenizer
        backend.no_truncation()
        backend.no_padding()
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        lengths = [len(encoding) for encoding in encodings]
        open_word, close_word = self.template.thought_words
        extra = 1 if self.template.efficient_eos else 0
        parts = []
        for pairs in encoded:
            prompt = sum(_size(source, lengths) for source, _ in pairs)
            trained = sum(_size(target, lengths) for _, target in pairs) + extra
            pieces = [-i - 1 for _, target in pairs for i in target if i < 0 and open_word in texts[-i - 1]]
            thought = sum(_thought_tokens(texts[j], encodings[j], open_word, close_word) for j in pieces)
            parts.append(TokenParts(prompt, thought, trained - thought))
        return parts


def _lf_roles(messages: Messages) -> Messages:
    if not any(m["role"] in _ROLES for m in messages):
        return messages
    return [{**m, "role": _ROLES.get(m["role"], m["role"])} for m in messages]


def _log_to_stderr() -> None:
    """LLaMA-Factory logs to stdout; move its console handler to stderr (before its import-time warnings) so
    our stdout (reports, JSON) stays clean."""
    from llamafactory.extras.logging import get_logger

    for handler in get_logger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setStream(sys.stderr)


def _size(ids: list[int], lengths: list[int]) -> int:
    """Tokens of a recorded id list: a placeholder stands for its piece's length, a real id for itself."""
    return sum(1 if i >= 0 else lengths[-i - 1] for i in ids)


def _thought_tokens(text: str, encoding: Any, open_word: str, close_word: str) -> int:
    """Tokens of ``encoding`` (of ``text``) covering the characters inside each thought block of ``text``."""
    n = 0
    start = text.find(open_word)
    while start >= 0:
        first = start + len(open_word)
        end = text.find(close_word, first)
        if end < 0:
            break
        lo = next((t for p in range(first, end) if (t := encoding.char_to_token(p)) is not None), None)
        if lo is not None:
            hi = next(t for p in range(end - 1, first - 1, -1) if (t := encoding.char_to_token(p)) is not None)
            n += hi - lo + 1
        start = text.find(open_word, end + len(close_word))
    return n


class _Row(dict):  # type: ignore[type-arg]
    """A raw record where an absent column reads as ``None``, as in the ``datasets`` table LLaMA-Factory loads."""

    def __missing__(self, key: str) -> None:
        return None


def iter_conversations(name: str, entry: dict[str, Any], files: Sequence[Path]) -> Iterator[Conversation | None]:
    """Stream the records of dataset ``name`` (``entry`` from dataset_info.json; local ``files``) as
    LLaMA-Factory's own converter aligns them; ``None`` for a record its SFT stage drops (bad turn order).
    """
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments

    attr = get_dataset_list([name], {name: entry})[0]
    try:
        converter = get_dataset_converter(attr.formatting, attr, DataArguments())
    except ValueError as err:
        raise UserError(f"dataset '{name}': formatting {attr.formatting!r}: {err}") from err
    for path in files:
        for where, raw in iter_file(path):
            if not isinstance(raw, dict):
                raise UserError(f"{where}: {raw}; LLaMA-Factory cannot load this file either")
            try:
                aligned = converter(_Row(raw))
            except (KeyError, TypeError, AttributeError) as err:
                raise UserError(
                    f"{where}: record does not fit the '{name}' entry's columns/tags "
                    f"({type(err).__name__}: {err}); run `lf-reasoning validate`"
                ) from err
            extras = [key[1:] for key in ("_images", "_videos", "_audios") if aligned[key]]
            if extras:
                raise UserError(f"{where}: the record has {', '.join(extras)}; stats measures text conversations only")
            prompt, response = aligned["_prompt"], aligned["_response"]
            if len(prompt) % 2 != 1 or len(response) != 1:
                yield None
            else:  # the tools' JSON list is shown in the prompt
                yield aligned["_system"] or None, prompt + response, aligned["_tools"] or None
