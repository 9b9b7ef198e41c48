"""Exact LLaMA-Factory token counts with batched tokenizer calls.

LLaMA-Factory encodes a conversation by formatting each turn through its template and calling
``tokenizer.encode`` once per text piece; ``cutoff_len`` then applies to the sum over all turns. We run the
template's own ``encode_multiturn`` against a stand-in tokenizer that only records the text pieces, then
tokenize all recorded pieces of a batch in one fast-tokenizer call. The count is the one LLaMA-Factory
will see, without re-implementing any template.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lf_reasoning.errors import UserError

Messages = list[dict[str, str]]


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


class TokenCounter:
    """Counts the tokens LLaMA-Factory's template ``template`` produces for whole conversations."""

    def __init__(self, tokenizer_path: str, template: str, *, enable_thinking: bool | None = True) -> None:
        try:
            from llamafactory.data import get_template_and_fix_tokenizer
            from llamafactory.hparams import DataArguments
            from transformers import AutoTokenizer
        except ImportError as err:
            raise UserError("token counting needs LLaMA-Factory: pip install 'lf-reasoning[train]'") from err
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        except (OSError, ValueError) as err:
            raise UserError(f"--tokenizer {tokenizer_path}: cannot load a tokenizer: {err}") from err
        try:
            data_args = DataArguments(template=template, enable_thinking=enable_thinking)
            self.template = get_template_and_fix_tokenizer(self.tokenizer, data_args)
        except ValueError as err:
            raise UserError(f"--template {template}: {err}") from err

    def count(self, conversations: Sequence[tuple[str | None, Messages]]) -> list[int]:
        """Token totals for ``(system, messages)`` conversations, as ``cutoff_len`` would measure them."""
        recorder = _RecordingTokenizer(self.tokenizer)
        encoded = []
        for system, messages in conversations:
            pairs = self.template.encode_multiturn(recorder, messages, system)
            encoded.append([i for source, target in pairs for i in (*source, *target)])
        lengths = [len(ids) for ids in self.tokenizer(recorder.texts, add_special_tokens=False)["input_ids"]]
        extra = 1 if self.template.efficient_eos else 0
        return [sum(1 if i >= 0 else lengths[-i - 1] for i in ids) + extra for ids in encoded]
