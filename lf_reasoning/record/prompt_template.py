"""``--prompt-template``: text wrapped around every prompt, whose placeholders name the prompt as read (``{prompt}``)
or source columns (``{question}\\n\\n{options}``), so one prompt can be built from several columns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.record.sample import ReasoningSample

# {name} is a placeholder; {{ and }} are literal braces; anything else ("\boxed{}", "{1}") is kept as written.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.-]*)\}")
_BRACES = {"{{": "{", "}}": "}"}


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template and where it came from (named in every error). Invalid text raises :class:`UserError`."""

    text: str
    source: str = "--prompt-template"
    placeholders: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [m[1] for m in _PLACEHOLDER.finditer(self.text) if m[1]]
        object.__setattr__(self, "placeholders", tuple(dict.fromkeys(names)))
        if not self.placeholders:
            raise UserError(
                f"{self.source}: the prompt template has no placeholder; put {{prompt}} where the question goes, or "
                "{COLUMN} for a source column"
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns the template reads (every placeholder but ``{prompt}``)."""
        return tuple(name for name in self.placeholders if name != "prompt")

    def check(self, record: dict[str, Any], where: str) -> None:
        """Refuse, before anything is written, a placeholder that names no column of a file's first record."""
        missing = [name for name in self.columns if name not in record]
        if missing:
            keys = ", ".join(sorted(record)[:30])
            names = ", ".join(f"{{{name}}}" for name in missing)
            raise UserError(
                f"{self.source}: placeholder {names} names no column of {where}; its columns are [{keys}]. "
                "Use {prompt} for the prompt as read, or one of those columns (write {{ and }} for literal braces)."
            )

    def apply(self, sample: ReasoningSample, record: dict[str, Any]) -> None:
        """Wrap the sample's prompt; earlier turns too, unless the template reads columns (they describe the last
        question only)."""
        sample.prompt = self.render(sample.prompt, record)
        if not self.columns:
            for turn in sample.history:
                turn.prompt = self.render(turn.prompt, record)

    def render(self, prompt: str, record: dict[str, Any]) -> str:
        """The template with ``{prompt}`` → ``prompt`` and ``{COLUMN}`` → the record's value (a list: one item a
        line)."""

        def fill(match: re.Match[str]) -> str:
            name = match[1]
            if name is None:
                return _BRACES[match[0]]
            if name == "prompt":
                return prompt
            if name not in record or record[name] is None:
                raise RecordError("missing_field", f"column '{name}' of {self.source} is missing")
            return _as_text(record[name])

        return _PLACEHOLDER.sub(fill, self.text)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(item if isinstance(item, str) else orjson.dumps(item).decode() for item in value)
    return orjson.dumps(value).decode()  # numbers, booleans, objects
