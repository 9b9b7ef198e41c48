"""Each LLaMA-Factory template's thought words, the words a dataset is written in, and the check that they agree.

A template recognises (trains as a thought, strips with ``enable_thinking: false``, masks in history) only a thought
written in its own ``thought_words``, following its class's rules: ``ReasoningTemplate.remove_thought`` matches
``open + thought + close`` literally, and ``add_thought("")`` is the empty thought (``open + close``; the closing
word alone for ``Glm47ReasoningTemplate``). Both are read from the installed LLaMA-Factory here, never copied.

``convert --template T`` writes T's words and records them in its ``dataset_info.json`` entry under
:data:`META_KEY` (LLaMA-Factory's ``DatasetAttr.join`` reads only the keys it knows, so it ignores ours; a sidecar
file could be lost or go stale, the entry travels with the registry). A dataset without the record is in the
default words, or its first records tell (:func:`dataset_words`). ``config``, ``train``, ``stats`` and ``validate
--template`` compare them with the training template (:func:`words_mismatch`) and name the convert command that
fixes a mismatch.

``python -m lf_reasoning.llamafactory.thought_words --markdown`` prints the README's table of thought words.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from lf_reasoning.errors import UserError
from lf_reasoning.llamafactory.dataset_info import META_KEY
from lf_reasoning.record.markup import ThoughtWords, has_markup

THINK_MODES = ("keep", "drop", "empty")
SAMPLE_SIZE = 100  # records read to tell the words of a dataset that has no record
Source = Literal["recorded", "detected", "default"]


def template_words(name: str) -> ThoughtWords:
    """The words template ``name`` recognises: its ``thought_words`` and its class's empty thought."""
    template = _templates().get(name)
    if template is None:
        from lf_reasoning.llamafactory.templates import _unknown_template_message

        raise UserError(_unknown_template_message(name))
    return _words_of(template)


def _words_of(template: Any) -> ThoughtWords:
    open_, close = template.thought_words
    return ThoughtWords(open_, close, template.add_thought(""))


def _templates() -> dict[str, Any]:
    try:
        from llamafactory.data.template import TEMPLATES
    except ImportError as err:
        raise UserError("template thought words need LLaMA-Factory: pip install 'lf-reasoning[train]'") from err
    return TEMPLATES


def reasoning_templates() -> list[str]:
    """Names of LLaMA-Factory's reasoning templates (``ReasoningTemplate`` and its subclasses), in its order."""
    from llamafactory.data.template import ReasoningTemplate

    return [name for name, template in _templates().items() if isinstance(template, ReasoningTemplate)]


def words_groups() -> dict[ThoughtWords, list[str]]:
    """Every distinct set of thought words among LLaMA-Factory's templates and the templates using it."""
    groups: dict[ThoughtWords, list[str]] = {}
    for name, template in _templates().items():
        groups.setdefault(_words_of(template), []).append(name)
    return groups


def needs_processor(name: str) -> bool:
    """Whether the template's multimodal plugin refuses to load without an image/video/audio processor."""
    plugin = _templates()[name].mm_plugin
    return any(getattr(plugin, f"{kind}_token", None) is not None for kind in ("image", "video", "audio"))


def markdown_table() -> str:
    """The README table: one row per distinct set of words of the reasoning templates."""
    reasoning = set(reasoning_templates())
    rows = ["| templates | open | close | empty thought | class |", "|---|---|---|---|---|"]
    for words, names in words_groups().items():
        shown = [n for n in names if n in reasoning]
        if not shown:
            continue  # plain templates: thoughts are trained verbatim, their (default) words are never used
        classes = sorted({type(_templates()[n]).__name__ for n in shown})
        listed = ", ".join(f"`{n}`" + ("\\*" if needs_processor(n) else "") for n in shown)
        cells = (_code(words.open), _code(words.close), _code(words.empty))
        rows.append(f"| {listed} | {' | '.join(cells)} | {', '.join(classes)} |")
    return "\n".join(rows)


def _code(text: str) -> str:
    """A Markdown table cell showing ``text`` exactly: newlines as ``\\n``, pipes escaped."""
    return "`" + text.replace("\n", "\\n").replace("|", "\\|") + "`"


# --- what a dataset is written in ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetWords:
    """The words the thoughts of a dataset are written in, and how that is known."""

    name: str
    source: Source  # recorded by convert, detected from the first records, or the default (no thought markup)
    think: str  # keep | drop | empty (recorded), or what the detected records hold
    words: frozenset[ThoughtWords]  # recorded: one; detected: the words (all equally specific) the data matches
    template: str | None = None  # the template named in the record
    where: str | None = None  # detected: first record in these words
    file_name: str = ""
    formatting: str = "sharegpt"
    system: bool = False  # detected: a record has a system prompt

    def fits(self, words: ThoughtWords) -> bool:
        """Whether a template with ``words`` recognises this dataset's thoughts."""
        if self.think == "drop" or self.source == "default":
            return True  # no thought in the data: every template adds its own empty block
        if self.source == "recorded":
            (own,) = self.words
            # --think empty writes every thought as the empty block; keep writes thoughts, and empty history ones
            return own.empty == words.empty if self.think == "empty" else own == words
        return words in self.words

    def describe(self) -> str:
        if self.source == "recorded":
            (own,) = self.words
            return f"written in `{self.template}`'s words {_show(own)} (recorded by `lf-reasoning convert`)"
        if not self.words:
            return f"in the words of several templates, mixed (first at {self.where})"
        names = _names_of(self.words)
        listed = ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
        shown = " or ".join(dict.fromkeys(_show(w) for w in words_groups() if w in self.words))  # LF's order
        return f"written in {shown} (the words of {listed or 'no template'}; first at {self.where})"


def _show(words: ThoughtWords) -> str:
    return repr(words.open + "…" + words.close)


def _names_of(words: frozenset[ThoughtWords]) -> list[str]:
    """The reasoning templates using any of ``words``, in LLaMA-Factory's order."""
    reasoning = set(reasoning_templates())
    return [f"`{n}`" for w, names in words_groups().items() if w in words for n in names if n in reasoning]


def words_record(template: str, think: str, words: ThoughtWords) -> dict[str, Any]:
    """The :data:`META_KEY` value ``convert --template`` writes into its entry."""
    return {
        "template": template,
        "think": think,
        "thought_words": {"open": words.open, "close": words.close, "empty": words.empty},
    }


def read_record(value: Any) -> tuple[str, str, ThoughtWords]:
    """``(template, think, words)`` of a :data:`META_KEY` value; ValueError saying what is malformed."""
    if not isinstance(value, dict):
        raise ValueError(f"'{META_KEY}' is not an object")
    words = value.get("thought_words")
    template, think = value.get("template"), value.get("think")
    if not isinstance(template, str) or think not in THINK_MODES:
        raise ValueError(f"'{META_KEY}' needs a template name and think one of {', '.join(THINK_MODES)}")
    if not isinstance(words, dict) or not all(isinstance(words.get(k), str) for k in ("open", "close", "empty")):
        raise ValueError(f"'{META_KEY}.thought_words' needs the strings open, close and empty")
    return template, think, ThoughtWords(words["open"], words["close"], words["empty"])


def best_words(text: str, candidates: Iterable[ThoughtWords]) -> frozenset[ThoughtWords]:
    """The words ``text`` is written in: of the candidates that split it, the most specific (longest words), so
    ``<think>\\nT\\n</think>\\n\\nA`` is in the default words, not in ``<think>``…``</think>`` with extra newlines."""
    matches = [w for w in candidates if w.split(text) is not None]
    if not matches:
        return frozenset()
    longest = max(len(w.open) + len(w.close) for w in matches)
    return frozenset(w for w in matches if len(w.open) + len(w.close) == longest)


def has_thought_markup(text: str, candidates: Iterable[ThoughtWords]) -> bool:
    """Whether ``text`` holds ``<think>``-like markup or any of the candidates' words."""
    return has_markup(text) or any(m and m in text for w in candidates for m in w.markers())


def dataset_words(dataset_dir: Path, name: str, entry: dict[str, Any]) -> DatasetWords:
    """What dataset ``name``'s thoughts are written in: its record, else what its first records show."""
    file_name, formatting = str(entry.get("file_name", "")), str(entry.get("formatting", "alpaca"))
    if META_KEY in entry:
        try:
            template, think, words = read_record(entry[META_KEY])
        except ValueError as err:
            raise UserError(
                f"{dataset_dir / 'dataset_info.json'}: entry '{name}': {err}; run `lf-reasoning validate`"
            ) from err
        return DatasetWords(name, "recorded", think, frozenset({words}), template, None, file_name, formatting)
    candidates = list(words_groups())
    found: frozenset[ThoughtWords] | None = None  # the words every response with markup so far is written in
    where, thoughts, system = None, set(), False
    for at, text in _responses(dataset_dir, name, entry):
        if text is None:  # a record's system prompt
            system = True
            continue
        words = best_words(text, candidates) if has_thought_markup(text, candidates) else frozenset()
        if not words:
            continue  # no thought, or markup no template recognises (validate flags that)
        found = words if found is None else found & words
        where = where or at
        split = next(iter(words)).split(text)
        thoughts.add("empty" if split and not split[0] else "full")
    if found is None:
        return DatasetWords(name, "default", "drop", frozenset(), None, None, file_name, formatting)
    think = "empty" if thoughts == {"empty"} else "keep"
    return DatasetWords(name, "detected", think, found, None, where, file_name, formatting, system)


def _responses(dataset_dir: Path, name: str, entry: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    """``(where, text)`` of the trained turns (answers, tool calls) of the first records, as LLaMA-Factory's own
    converter aligns them, and ``(where, None)`` for a record with a system prompt; a record it cannot align is
    left to ``validate`` (stats and config say so)."""
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments

    from lf_reasoning.llamafactory.lengths import dataset_files
    from lf_reasoning.llamafactory.tokens import _Row
    from lf_reasoning.record.sources import iter_file

    _, files = dataset_files(dataset_dir, name)
    attr = get_dataset_list([name], {name: entry})[0]
    try:
        converter = get_dataset_converter(attr.formatting, attr, DataArguments())
    except ValueError:
        return
    records = ((where, raw) for path in files for where, raw in iter_file(path))
    for where, raw in islice(records, SAMPLE_SIZE):
        if not isinstance(raw, dict):
            continue
        try:
            aligned = converter(_Row(raw))
        except (KeyError, TypeError, AttributeError):
            continue
        if aligned["_system"]:
            yield where, None
        for message in [*aligned["_prompt"], *aligned["_response"]]:
            if message.get("role") in ("assistant", "function") and isinstance(message.get("content"), str):
                yield where, message["content"]


def words_mismatch(dataset_dir: Path, names: Sequence[str], template: str) -> list[str]:
    """One message per dataset whose thoughts ``template`` would not recognise, each with the fix."""
    from lf_reasoning.llamafactory.dataset_info import REMOTE_KEYS, load_dataset_info

    words = template_words(template)
    info = load_dataset_info(dataset_dir)
    messages = []
    for name in names:
        entry = info.get(name)
        if not isinstance(entry, dict) or (META_KEY not in entry and any(k in entry for k in REMOTE_KEYS)):
            continue  # missing entries are refused elsewhere; remote data is not read
        data = dataset_words(dataset_dir, name, entry)
        if not data.fits(words):
            messages.append(
                f"dataset '{name}' has thoughts {data.describe()}, but template `{template}` recognises only "
                f"{_show(words)} (empty thought {words.empty!r}): it would train them as answer text and never "
                f"strip them. Fix: {fix_command(dataset_dir, data, template)}"
            )
    return messages


def refuse_mismatch(dataset_dir: Path, names: Sequence[str], template: str, prefix: str = "") -> None:
    """Raise :class:`UserError` when a dataset's thoughts are not in ``template``'s words."""
    messages = words_mismatch(dataset_dir, names, template)
    if messages:
        raise UserError(prefix + "\n".join(messages))


def fix_command(dataset_dir: Path, data: DatasetWords, template: str) -> str:
    """The convert command that rewrites the dataset in ``template``'s words.

    Our readers parse ``<think>`` markup with any spacing, so such a dataset is re-read from its own file into a
    new entry (``--dedup off``: it was deduplicated already; the original is kept). Other words are not markup a
    reader knows: the sources are converted again.
    """
    new = f"{data.name}_{template}"
    readable = data.words and all(w.markers() == ("<think>", "</think>") for w in data.words)
    if not readable:
        return (
            f"run the `lf-reasoning convert` that made it again with `--template {template}`: "
            f"`lf-reasoning convert SRC... --name {data.name} --dataset-dir {dataset_dir} --template {template} "
            "--force`"
        )
    options = [f"--template {template}", "--dedup off"]
    if data.formatting == "alpaca":
        options.append("--style alpaca")
    if data.think == "empty":
        options.append("--think empty")
    source = dataset_dir / data.file_name
    return (
        f"`lf-reasoning convert {source} --name {new} --dataset-dir {dataset_dir} {' '.join(options)}`, "
        f"then train on dataset {new}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lf_reasoning.llamafactory.thought_words",
        description="Print the thought words of the installed LLaMA-Factory's reasoning templates.",
    )
    parser.add_argument("--markdown", action="store_true", help="as the README's Markdown table")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table())
        return
    for name in reasoning_templates():
        words = template_words(name)
        print(f"{name:<12} open={words.open!r} close={words.close!r} empty={words.empty!r}")


if __name__ == "__main__":
    main()
