"""What LLaMA-Factory trains, token by token: its own SFT encoding, with the origin of every token.

Records are loaded through LLaMA-Factory's loader (``_get_merged_dataset``: its file reading and converter),
the template comes from ``get_template_and_fix_tokenizer`` and each record is encoded by
``SupervisedDatasetProcessor._encode_data_example``, so ``input_ids`` and ``labels`` are the ones training
sees (cutoff_len, mask_history, train_on_prompt, enable_thinking, the empty thought block). Provenance rides
along without changing a single id: the template's formatters return strings that know which characters are
content of which role, and the tokenizer is wrapped to return ``int`` subclasses that remember the piece and
character span they came from; ids the template adds itself (special tokens, EOS) stay plain ints.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.tokens import _log_to_stderr

IGNORE_INDEX = -100
Role = Literal["system", "user", "thought", "answer", "tool", "empty_thought", "template"]
ROLES: tuple[Role, ...] = ("system", "user", "thought", "answer", "tool", "empty_thought", "template")
_UNLIMITED = 1 << 40  # a cutoff_len nothing reaches: the record as it would be without truncation
# The content role of each formatter; prefix, system and user turns are never trained unless train_on_prompt.
_FORMATTER_ROLES: tuple[tuple[str, Role], ...] = (
    ("format_prefix", "template"),
    ("format_system", "system"),
    ("format_user", "user"),
    ("format_assistant", "answer"),
    ("format_observation", "tool"),
    ("format_function", "tool"),
)
_SENTINEL = "\x00lf-reasoning-content\x00"


@dataclass(frozen=True)
class Segment:
    """A run of consecutive tokens with the same role that are all trained or all masked."""

    text: str  # the tokens decoded together, special tokens kept
    trained: bool  # labels != -100: the loss is computed on these tokens
    role: Role
    tokens: int


@dataclass(frozen=True)
class Cut:
    """Tokens cutoff_len removed at one point of the kept sequence (before kept token ``at``; at the end when
    ``at`` is the length), with their roles and whether they would have been trained."""

    at: int
    removed: tuple[Segment, ...]


@dataclass(frozen=True)
class EncodedRecord:
    """One record as LLaMA-Factory trains it, split into segments."""

    index: int  # row of the dataset in file order (0-based), as LLaMA-Factory's loader reads it
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    roles: tuple[Role, ...]  # one per token
    segments: tuple[Segment, ...]
    cuts: tuple[Cut, ...]  # where cutoff_len removed tokens, in order; empty when the record fits
    removed_thoughts: int  # assistant turns whose thought the template removed (enable_thinking false, mask_history)

    @property
    def tokens(self) -> int:
        return len(self.input_ids)

    @property
    def cut_at(self) -> int | None:
        """The first token position where cutoff_len removed tokens; None when nothing was cut."""
        return self.cuts[0].at if self.cuts else None

    @property
    def cut_tokens(self) -> int:
        return sum(segment.tokens for cut in self.cuts for segment in cut.removed)

    def counts(self, trained: bool) -> Counter[Role]:
        """Tokens per role among the trained (or the masked) ones."""
        counts: Counter[Role] = Counter()
        for segment in self.segments:
            if segment.trained == trained:
                counts[segment.role] += segment.tokens
        return counts


@dataclass(frozen=True)
class DroppedRecord:
    """A record LLaMA-Factory's SFT stage skips (its processor logs "Dropped invalid example")."""

    index: int
    reason: str


class _Content(str):
    """A formatted template piece that knows the role of each of its characters."""

    char_roles: tuple[Role, ...]

    def __new__(cls, text: str, char_roles: Sequence[Role]) -> _Content:
        piece = super().__new__(cls, text)
        piece.char_roles = tuple(char_roles)
        return piece


class _TokenId(int):
    """A real token id that also carries the role it was encoded from and a key unique to its position."""

    role: Role
    key: tuple[int, int]  # (encode call, position in that call's ids)

    def __new__(cls, value: int, role: Role, key: tuple[int, int]) -> _TokenId:
        token = super().__new__(cls, value)
        token.role, token.key = role, key
        return token


class _ProvenanceTokenizer:
    """Returns the real tokenizer's ids from ``encode``, as :class:`_TokenId` tagged from the text's char roles."""

    def __init__(self, tokenizer: Any, empty_thought: str) -> None:
        self._tokenizer = tokenizer
        self._empty_thought = empty_thought  # the block ReasoningTemplate adds itself (``add_thought()``)
        self._calls = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        encoding = self._tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        ids = encoding["input_ids"]
        if ids != self._tokenizer.encode(text, add_special_tokens=add_special_tokens):
            raise RuntimeError("the tokenizer's offsets call and encode() disagree")  # a bug, not user input
        if isinstance(text, _Content):
            char_roles = text.char_roles
        else:
            role: Role = "empty_thought" if text == self._empty_thought else "template"
            char_roles = (role,) * len(text)
        self._calls += 1
        return [
            _TokenId(i, _span_role(char_roles, start, end), (self._calls, n))
            for n, (i, (start, end)) in enumerate(zip(ids, encoding["offset_mapping"], strict=True))
        ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def _span_role(char_roles: Sequence[Role], start: int, end: int) -> Role:
    """The most common role among a token's characters (the first on a tie)."""
    span = char_roles[start:end] or char_roles[start : start + 1]
    return Counter(span).most_common(1)[0][0] if span else "template"


class _ProvenanceFormatter:
    """Wraps one of the template's formatters: same elements, strings tagged with the role of their characters."""

    def __init__(self, formatter: Any, role: Role, thought: re.Pattern[str]) -> None:
        self._formatter = formatter
        self._role = role
        self._thought = thought
        self.contents: list[str] = []  # every content formatted (the assistant's, after thought removal)

    def apply(self, **kwargs: Any) -> list[Any]:
        elements = self._formatter.apply(**kwargs)
        content = kwargs.get("content")
        if not isinstance(content, str):
            return [_Content(e, (self._role,) * len(e)) if isinstance(e, str) else e for e in elements]
        self.contents.append(content)
        try:  # where the content lands in each element: format once more with a sentinel for it
            shaped = self._formatter.apply(**{**kwargs, "content": _SENTINEL})
        except Exception:  # FunctionFormatter parses its content as JSON: the whole call is a tool call
            shaped = None
        tagged = []
        for n, element in enumerate(elements):
            if not isinstance(element, str):
                tagged.append(element)
                continue
            around = shaped[n].split(_SENTINEL) if shaped and isinstance(shaped[n], str) else None
            if around is not None and len(around) == 2 and element == around[0] + content + around[1]:
                roles = ["template"] * len(around[0]) + self._content_roles(content) + ["template"] * len(around[1])
            elif self._role == "template":
                roles = ["template"] * len(element)
            else:
                roles = [self._role] * len(element)
            tagged.append(_Content(element, roles))
        return tagged

    def _content_roles(self, content: str) -> list[Role]:
        roles: list[Role] = [self._role] * len(content)
        if self._role == "answer":  # the template's own thought pattern, as its remove_thought() sees it
            for match in self._thought.finditer(content):
                roles[match.start() : match.end()] = ["thought"] * (match.end() - match.start())
        return roles

    def __getattr__(self, name: str) -> Any:
        return getattr(self._formatter, name)


@dataclass(frozen=True)
class EncodeSettings:
    """The LLaMA-Factory data arguments that change what a record trains."""

    cutoff_len: int = 2048
    mask_history: bool = False
    train_on_prompt: bool = False


class SftEncoder:
    """LLaMA-Factory's tokenizer, template and loader for one dataset; :meth:`encode` gives its training view.

    ``model`` is what ``model_name_or_path`` would be (a local model or tokenizer folder, or a hub id).
    """

    def __init__(
        self, model: str, dataset_dir: Path, name: str, template: str, settings: EncodeSettings = EncodeSettings()
    ) -> None:
        try:
            _log_to_stderr()
            from llamafactory.data import get_template_and_fix_tokenizer
            from llamafactory.data.template import TEMPLATES, ReasoningTemplate
            from llamafactory.hparams import get_train_args
            from llamafactory.model import load_tokenizer
        except ImportError as err:
            raise UserError("inspect needs LLaMA-Factory: pip install 'lf-reasoning[train]'") from err
        self.name, self.dataset_dir = name, Path(dataset_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix="lf-reasoning-inspect-")
        args: dict[str, Any] = {
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "model_name_or_path": model,
            "dataset": name,
            "dataset_dir": str(dataset_dir),
            "template": template,
            "cutoff_len": settings.cutoff_len,
            "mask_history": settings.mask_history,
            "train_on_prompt": settings.train_on_prompt,
            "output_dir": str(Path(self._tmp.name) / "output"),
            "cache_dir": str(Path(self._tmp.name) / "cache"),  # datasets' arrow cache: thrown away afterwards
            "overwrite_cache": True,
            "report_to": "none",
        }
        # At INFO (its default) the parser turns on transformers' info logging: a config dump per tokenizer load.
        verbosity = os.environ.get("LLAMAFACTORY_VERBOSITY")
        os.environ["LLAMAFACTORY_VERBOSITY"] = verbosity or "WARN"
        try:
            self._model_args, self._data_args, self._training_args, _, _ = get_train_args(args)
        except ValueError as err:
            raise UserError(f"LLaMA-Factory refuses these settings: {err}") from err
        finally:
            if verbosity is None:
                del os.environ["LLAMAFACTORY_VERBOSITY"]
        try:
            tokenizer = load_tokenizer(self._model_args)["tokenizer"]
        except (OSError, ValueError) as err:
            raise UserError(f"{model}: cannot load a tokenizer: {err}") from err
        if not tokenizer.is_fast:
            raise UserError(f"{model}: inspect needs a fast tokenizer (a tokenizer.json next to the model)")
        # get_template_and_fix_tokenizer sets enable_thinking on the registered template: work on a private copy
        shared = TEMPLATES[template]
        TEMPLATES[template] = copy.deepcopy(shared)
        try:
            lf_template = get_template_and_fix_tokenizer(tokenizer, self._data_args)
        except ValueError as err:  # e.g. train_on_prompt with a template that uses efficient_eos
            raise UserError(f"--template {template}: {err}") from err
        finally:
            TEMPLATES[template] = shared
        self.tokenizer = tokenizer
        self.reasoning = isinstance(lf_template, ReasoningTemplate)
        self.thought_words: tuple[str, str] = tuple(lf_template.thought_words)  # type: ignore[assignment]
        # ReasoningTemplate.remove_thought's pattern: what the template strips, masks or keeps as a thought
        self.thought = re.compile(
            f"{re.escape(self.thought_words[0])}(.*?){re.escape(self.thought_words[1])}", re.DOTALL
        )
        self._formatters = {
            attr: _ProvenanceFormatter(getattr(lf_template, attr), role, self.thought)
            for attr, role in _FORMATTER_ROLES
        }
        for attr, wrapped in self._formatters.items():
            setattr(lf_template, attr, wrapped)
        self._template = lf_template
        self._rows: list[dict[str, Any]] | None = None
        self._loaded_limit: int | None = None

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> SftEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The first ``limit`` (all when None) records as LLaMA-Factory's loader aligns them."""
        from llamafactory.data.loader import _get_merged_dataset

        if self._rows is None or (self._loaded_limit is not None and (limit is None or limit > self._loaded_limit)):
            self._data_args.max_samples = limit  # the loader reads only the rows shown
            try:
                dataset = _get_merged_dataset(
                    [self.name], self._model_args, self._data_args, self._training_args, "sft"
                )
            except (ValueError, KeyError, TypeError) as err:
                raise UserError(
                    f"dataset '{self.name}' in {self.dataset_dir}: LLaMA-Factory cannot load it: {err}"
                ) from err
            self._rows, self._loaded_limit = dataset.to_list(), limit
        return self._rows if limit is None else self._rows[:limit]

    def encode(self, indices: Sequence[int], enable_thinking: bool | None) -> Iterator[EncodedRecord | DroppedRecord]:
        """The records at ``indices`` as LLaMA-Factory's supervised processor encodes them."""
        from llamafactory.data.processor import SupervisedDatasetProcessor

        rows = self.rows(max(indices) + 1 if indices else 0)
        template = copy.copy(self._template)  # shares the wrapped formatters; only enable_thinking differs
        template.enable_thinking = enable_thinking
        empty = template.add_thought()
        unlimited = copy.copy(self._data_args)
        unlimited.cutoff_len = _UNLIMITED
        for index in indices:
            if index >= len(rows):
                raise UserError(f"dataset '{self.name}' has {len(rows)} records: there is no record {index}")
            row = rows[index]
            prompt, response = row["_prompt"], row["_response"]
            if len(prompt) % 2 != 1 or len(response) != 1:
                yield DroppedRecord(index, "LLaMA-Factory drops it: not user/assistant turns ending in one response")
                continue
            if row.get("_images") or row.get("_videos") or row.get("_audios"):
                raise UserError(f"dataset '{self.name}', record {index}: inspect shows text conversations only")
            example = {
                "prompt": prompt,
                "response": response,
                "system": row["_system"],
                "tools": row["_tools"],
                "images": [],
                "videos": [],
                "audios": [],
            }
            assistant = self._formatters["format_assistant"]
            assistant.contents.clear()
            processor = SupervisedDatasetProcessor(
                template, _ProvenanceTokenizer(self.tokenizer, empty), None, self._data_args
            )
            input_ids, labels = processor._encode_data_example(**example)
            kept_thoughts = sum(1 for c in assistant.contents if self._has_thought(c))
            # The same record without truncation; a fresh tokenizer numbers its encode calls the same way.
            processor = SupervisedDatasetProcessor(
                template, _ProvenanceTokenizer(self.tokenizer, empty), None, unlimited
            )
            full_ids, full_labels = processor._encode_data_example(**example)
            given = sum(1 for m in prompt + response if m["role"] == "assistant" and self._has_thought(m["content"]))
            yield self._record(index, input_ids, labels, full_ids, full_labels, max(0, given - kept_thoughts))

    def _has_thought(self, content: str) -> bool:
        return any(m.group(1).strip() for m in self.thought.finditer(content))

    def _record(
        self,
        index: int,
        input_ids: list[int],
        labels: list[int],
        full_ids: list[int],
        full_labels: list[int],
        removed_thoughts: int,
    ) -> EncodedRecord:
        roles = [_role(i) for i in input_ids]
        # The kept tokens are a subsequence of the untruncated encoding: walk both to find what cutoff_len removed
        # and where in the kept tokens (infer_seqlen may shorten a turn's prompt as well as its response).
        removed: dict[int, list[int]] = {}
        position = 0
        for n, token in enumerate(full_ids):
            if position < len(input_ids) and _same(token, input_ids[position]):
                position += 1
            else:
                removed.setdefault(position, []).append(n)
        plain_ids = tuple(int(i) for i in input_ids)
        plain_labels = tuple(int(label) for label in labels)
        segments = self._segments(plain_ids, plain_labels, roles, set(removed))
        cuts = tuple(
            Cut(
                at,
                self._segments(
                    [int(full_ids[n]) for n in ns], [int(full_labels[n]) for n in ns], [_role(full_ids[n]) for n in ns]
                ),
            )
            for at, ns in removed.items()
        )
        return EncodedRecord(index, plain_ids, plain_labels, tuple(roles), segments, cuts, removed_thoughts)

    def _segments(
        self, ids: Sequence[int], labels: Sequence[int], roles: Sequence[Role], breaks: Set[int] = frozenset()
    ) -> tuple[Segment, ...]:
        """Runs of equal (role, trained), also broken at ``breaks`` (where cutoff_len removed tokens)."""
        segments = []
        start = 0
        for n in range(1, len(ids) + 1):
            if (
                n == len(ids)
                or n in breaks
                or roles[n] != roles[start]
                or (labels[n] != IGNORE_INDEX) != (labels[start] != IGNORE_INDEX)
            ):
                text = self.tokenizer.decode(list(ids[start:n]), skip_special_tokens=False)
                segments.append(Segment(text, labels[start] != IGNORE_INDEX, roles[start], n - start))
                start = n
        return tuple(segments)


def _role(token: int) -> Role:
    return token.role if isinstance(token, _TokenId) else "template"


def _same(a: int, b: int) -> bool:
    """The same token of the same encode call, or the same id added by the template itself."""
    if isinstance(a, _TokenId) or isinstance(b, _TokenId):
        return isinstance(a, _TokenId) and isinstance(b, _TokenId) and a.key == b.key
    return a == b
