"""``eval``: score a predictions file (LLaMA-Factory's ``generated_predictions.jsonl`` or distill/verify output).

Each record's prediction is split into thought and answer with the rules ``convert`` uses
(:func:`~lf_reasoning.record.thoughts.split_thought`). Every task reports thought-format compliance, mean thought and
answer length and the share cut off without an answer; ``classify`` adds accuracy, macro-F1, a per-class table
and a confusion matrix; ``math`` adds Math-Verify accuracy. Bad records are counted and named, never fatal.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from lf_reasoning.errors import RecordError, UserError
from lf_reasoning.plot import new_figure, save_png
from lf_reasoning.record.markup import THOUGHT_OPEN
from lf_reasoning.record.sources import BOM
from lf_reasoning.record.thoughts import has_exact_thought, merge_thought, split_thought
from lf_reasoning.textfile import read_text

Task = Literal["classify", "math", "free"]
TASKS: tuple[Task, ...] = ("classify", "math", "free")
FORMATS = ("well_formed", "empty", "none", "malformed")
# Wrong-answer outcomes of classify that are not a label of the set (columns of the confusion matrix).
AMBIGUOUS, OUT_OF_SET, EMPTY, MALFORMED = "ambiguous", "out of set", "empty", "malformed"
NON_LABELS = (AMBIGUOUS, OUT_OF_SET, EMPTY, MALFORMED)

_SPACES = re.compile(r"\s+")
_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei", "SimHei", "Microsoft YaHei", "PingFang SC")
_EMPTY_THOUGHT_PROMPT = re.compile(r"(?:<think>\s*(?:</think>)?\s*)$")  # thought markup the template put in a prompt


@dataclass(slots=True)
class ClassMetrics:
    """Precision, recall and F1 of one label; ``support`` is the number of gold records with it."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(slots=True)
class EvalReport:
    """All numbers of one predictions file; ``invalid`` lists unreadable lines (``file:line: why``)."""

    path: str
    task: Task
    records: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    thought_chars: list[int] = field(default_factory=list)
    answer_chars: list[int] = field(default_factory=list)
    cut_off: int = 0
    invalid: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)  # records not scored: "no gold", "gold out of set"
    outcomes: Counter[str] = field(default_factory=Counter)  # why scored answers were wrong
    correct: int = 0
    scored: int = 0
    labels: list[str] = field(default_factory=list)
    confusion: dict[str, Counter[str]] = field(default_factory=dict)  # gold label -> predicted label/outcome
    prompts: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    def share(self, count: int) -> float:
        return count / self.records if self.records else 0.0

    def per_class(self) -> dict[str, ClassMetrics]:
        """Per-label metrics from the confusion matrix (a wrong outcome counts as a miss of the gold label)."""
        metrics = {}
        for label in self.labels:
            support = sum(self.confusion.get(label, Counter()).values())
            predicted = sum(row[label] for row in self.confusion.values())
            tp = self.confusion.get(label, Counter())[label]
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            metrics[label] = ClassMetrics(precision, recall, f1, support)
        return metrics

    @property
    def macro_f1(self) -> float | None:
        """Mean F1 over the labels that occur as gold or as prediction (others have no defined F1)."""
        predicted = Counter(label for row in self.confusion.values() for label in row.elements())
        f1s = [m.f1 for label, m in self.per_class().items() if m.support or predicted[label]]
        return sum(f1s) / len(f1s) if f1s else None

    def to_json(self) -> dict[str, Any]:
        """Every number, for ``--json``."""
        data: dict[str, Any] = {
            "path": self.path,
            "task": self.task,
            "records": self.records,
            "format": {name: self.share(self.formats[name]) for name in FORMATS},
            "format_counts": {name: self.formats[name] for name in FORMATS},
            "mean_thought_chars": _mean(self.thought_chars),
            "mean_answer_chars": _mean(self.answer_chars),
            "cut_off": self.share(self.cut_off),
            "cut_off_count": self.cut_off,
            "invalid_lines": self.invalid,
            "warnings": self.warnings,
            "excluded": dict(self.excluded),
        }
        if self.task != "free":
            data |= {
                "accuracy": self.accuracy,
                "correct": self.correct,
                "scored": self.scored,
                "wrong": dict(self.outcomes),
            }
        if self.task == "classify":
            data |= {
                "macro_f1": self.macro_f1,
                "labels": self.labels,
                "per_class": {k: _metrics_json(m) for k, m in self.per_class().items()},
                "confusion": {gold: dict(row) for gold, row in self.confusion.items()},
            }
        return data


def _metrics_json(m: ClassMetrics) -> dict[str, float | int]:
    return {"precision": m.precision, "recall": m.recall, "f1": m.f1, "support": m.support}


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def normalize(text: str) -> str:
    """Compare form of an answer: NFKC (full-width → half-width), Latin case folded, whitespace collapsed,
    leading/trailing punctuation (ASCII and CJK: 。，！？：“” …) and whitespace removed."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(text)
    while start < end and _is_trim(text[start]):
        start += 1
    while end > start and _is_trim(text[end - 1]):
        end -= 1
    return text[start:end]


def _is_trim(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] == "P"


def match_label(answer: str, labels: dict[str, str]) -> str:
    """The label (``labels`` maps normalised → shown form) an answer names, or an outcome from NON_LABELS.

    An exact match after :func:`normalize` wins; otherwise a label inside a longer answer counts only when it
    is the one label of the set found there (a label contained in a longer found label is not counted).
    """
    norm = normalize(answer)
    if not norm:
        return EMPTY
    if norm in labels:
        return labels[norm]
    found = [key for key in labels if re.search(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])", norm)]
    found = [key for key in found if not any(key != other and key in other for other in found)]
    if len(found) > 1:
        return AMBIGUOUS
    return labels[found[0]] if found else OUT_OF_SET


def read_labels(path: Path) -> list[str]:
    """Labels from a file, one per line (blank lines skipped); duplicates after normalising are an error."""
    lines = read_text(path, "--labels").splitlines()
    labels = [line.strip() for line in lines if line.strip()]
    if not labels:
        raise UserError(f"--labels {path}: no labels (expected one label per line)")
    seen: dict[str, str] = {}
    for label in labels:
        if normalize(label) in seen:
            raise UserError(
                f"--labels {path}: {label!r} and {seen[normalize(label)]!r} are the same label after normalising"
            )
        seen[normalize(label)] = label
    return labels


@dataclass(slots=True)
class _Record:
    where: str
    prompt: str
    fmt: str
    thought: str | None
    answer: str | None  # None when the markup is malformed and no answer can be separated
    gold: str | None


def _parse_prediction(obj: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """``(format, thought, answer)`` of a record's prediction; ``answer`` is ``""`` for a never-closed thought."""
    if "predict" in obj:
        text = str(obj["predict"])
        if str(obj.get("prompt", "")).endswith(THOUGHT_OPEN) and not text.lstrip().startswith("<think>"):
            text = THOUGHT_OPEN + text  # the chat template opened the thought in the prompt
        try:
            thought, answer = split_thought(text)
        except RecordError as err:
            return "malformed", None, "" if err.reason == "unclosed_thought" else None
        exact = has_exact_thought(text)
    else:
        try:
            thought, answer = merge_thought(obj.get("reasoning_content"), str(obj["content"]))
        except RecordError as err:
            return "malformed", None, "" if err.reason == "unclosed_thought" else None
        exact = True  # a separate reasoning field is rendered in LLaMA-Factory's form by convert
    if thought is None:
        return "none", None, answer
    if not thought:
        return "empty", thought, answer
    return ("well_formed" if exact else "malformed"), thought, answer


def _read(path: Path, report: EvalReport) -> list[_Record]:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    records = []
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            where = f"{path}:{number}"
            if number == 1:
                line = line.removeprefix(BOM)  # written by an editor on Windows
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                report.invalid.append(f"{where}: not valid JSON ({err})")
                continue
            if not isinstance(obj, dict) or ("predict" not in obj and "content" not in obj):
                report.invalid.append(f"{where}: expected an object with `predict` (LLaMA-Factory) or `content`")
                continue
            fmt, thought, answer = _parse_prediction(obj)
            gold = obj.get("label") if "predict" in obj else obj.get("reference_answer")
            if gold is not None:
                try:
                    gold = split_thought(str(gold))[1]  # a label trained with a thought holds the markup
                except RecordError as err:
                    report.warnings.append(f"{where}: gold answer has malformed thought markup ({err.detail})")
                    gold = None
            prompt = str(obj.get("prompt", obj.get("input", "")))
            records.append(
                _Record(where, _EMPTY_THOUGHT_PROMPT.sub("", prompt).rstrip(), fmt, thought, answer, gold or None)
            )
    if not records:
        problem = f"none of its lines is a prediction ({report.invalid[0]})" if report.invalid else "it is empty"
        raise UserError(f"{path}: nothing to evaluate: {problem}")
    return records


def evaluate(path: Path, task: Task, labels: Sequence[str] | None = None) -> EvalReport:
    """Score one predictions file; ``labels`` is the label set of ``classify`` (default: the gold labels)."""
    report = EvalReport(str(path), task)
    records = _read(path, report)
    report.records = len(records)
    report.prompts = [r.prompt for r in records]
    for r in records:
        report.formats[r.fmt] += 1
        if r.thought is not None:
            report.thought_chars.append(len(r.thought))
        if r.answer is not None:
            report.answer_chars.append(len(r.answer))
        if r.answer == "":
            report.cut_off += 1
    if task == "free":
        return report
    scored = []
    for r in records:
        if r.gold is None:
            report.excluded["no gold"] += 1
            report.warnings.append(
                f"{r.where}: no gold answer (`label`/`reference_answer` missing or empty); not scored"
            )
        else:
            scored.append(r)
    if task == "math":
        _score_math(scored, report)
    else:
        _score_classify(scored, report, labels)
    return report


def _score_math(records: list[_Record], report: EvalReport) -> None:
    from lf_reasoning.answer_check import check_answers

    answered = []
    for r in records:
        report.scored += 1
        if r.answer is None or not r.answer.strip():
            report.outcomes[MALFORMED if r.answer is None else EMPTY] += 1
        else:
            answered.append((r.gold or "", r.answer))
    # worker processes with a deadline per answer: one pathological expression cannot hang the evaluation
    for result in check_answers(answered):
        if result.verdict:
            report.correct += 1
        else:
            report.outcomes["wrong" if result.verdict is False else f"unverifiable ({result.reason})"] += 1


def _score_classify(records: list[_Record], report: EvalReport, labels: Sequence[str] | None) -> None:
    if labels is None:
        golds = {normalize(r.gold or ""): r.gold or "" for r in reversed(records)}
        labels = sorted(golds.values())
    report.labels = list(labels)
    by_norm = {normalize(label): label for label in labels}
    report.confusion = {label: Counter() for label in labels}
    for r in records:
        gold = by_norm.get(normalize(r.gold or ""))
        if gold is None:
            report.excluded["gold out of set"] += 1
            report.warnings.append(f"{r.where}: gold label {r.gold!r} is not in the label set; not scored")
            continue
        predicted = MALFORMED if r.answer is None else match_label(r.answer, by_norm)
        report.scored += 1
        report.confusion[gold][predicted] += 1
        if predicted == gold:
            report.correct += 1
        else:
            report.outcomes[predicted if predicted in NON_LABELS else "wrong label"] += 1


def compare(paths: Sequence[Path], task: Task, labels: Sequence[str] | None = None) -> list[EvalReport]:
    """Evaluate runs on the same dataset side by side; a different record count or prompt is a :class:`UserError`."""
    reports = [evaluate(path, task, labels) for path in paths]
    first = reports[0]
    for path, other in zip(paths[1:], reports[1:], strict=True):
        if first.records != other.records:
            raise UserError(
                f"cannot compare: {paths[0]} has {first.records} records but {path} has {other.records}; "
                "the predictions come from different datasets (or one run is incomplete)"
            )
        for index, (pa, pb) in enumerate(zip(first.prompts, other.prompts, strict=True), 1):
            if pa != pb:
                raise UserError(
                    f"cannot compare: record {index} has a different prompt in {paths[0]} and {path} "
                    f"({pa[:40]!r} vs {pb[:40]!r}); the predictions come from different datasets"
                )
    if task == "classify" and labels is None and any(r.labels != first.labels for r in reports):
        # one label set for every column: the first run's gold labels
        reports = [first] + [evaluate(path, task, first.labels) for path in paths[1:]]
    return reports


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: list[list[str]]) -> str:
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0] + " " * (widths[0] - _width(row[0]))]
        cells += [" " * (w - _width(cell)) + cell for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_names(paths: Sequence[str | Path]) -> list[str]:
    """Column names for runs: file names, or where those repeat (LLaMA-Factory always writes
    generated_predictions.jsonl) the nearest folder name that tells the runs apart."""
    parts = [Path(p).parts[::-1] for p in paths]
    for depth in range(min(map(len, parts))):
        names = [p[depth] for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def format_report(*reports: EvalReport) -> str:
    """A text summary of one report, or of several side by side (``--compare``)."""
    head = ["", *run_names([r.path for r in reports])]
    rows = [head, ["records"] + [str(r.records) for r in reports]]
    rows += [
        [f"thought {name.replace('_', '-')}"] + [_pct(r.share(r.formats[name])) for r in reports] for name in FORMATS
    ]
    rows += [
        ["mean thought chars"] + [_num(_mean(r.thought_chars)) for r in reports],
        ["mean answer chars"] + [_num(_mean(r.answer_chars)) for r in reports],
        ["cut off, no answer"] + [_pct(r.share(r.cut_off)) for r in reports],
    ]
    task = reports[0].task
    if task != "free":
        rows.append(["accuracy"] + [f"{_pct(r.accuracy)} ({r.correct}/{r.scored})" for r in reports])
    if task == "classify":
        rows.append(["macro-F1"] + [_num(r.macro_f1, 3) for r in reports])
    rows += [[f"  wrong: {k}"] + [str(r.outcomes[k]) for r in reports] for k in sorted(_keys(reports, "outcomes"))]
    rows += [[f"  not scored: {k}"] + [str(r.excluded[k]) for r in reports] for k in sorted(_keys(reports, "excluded"))]
    rows += [["invalid lines"] + [str(len(r.invalid)) for r in reports]] if any(r.invalid for r in reports) else []
    text = _table(rows)
    if task == "classify" and reports[0].labels:
        names = [""] if len(reports) == 1 else [f"{h} " for h in head[1:]]
        table = [["label", "support"] + [f"{name}{m}" for name in names for m in ("P", "R", "F1")]]
        per_class = [r.per_class() for r in reports]
        for label in reports[0].labels:
            table.append(
                [label, str(per_class[0][label].support)]
                + [f"{v:.2f}" for m in per_class for v in (m[label].precision, m[label].recall, m[label].f1)]
            )
        text += "\n\n" + _table(table)
    return text


def _keys(reports: Sequence[EvalReport], counter: str) -> set[str]:
    return {key for r in reports for key in getattr(r, counter)}


def plot_confusion(reports: Sequence[EvalReport], path: Path) -> str | None:
    """Write the confusion matrix of each report (side by side) as a PNG (matplotlib's Agg canvas, no pyplot).

    Without a CJK font, labels with CJK characters would be drawn as boxes: the classes are then numbered and the
    returned key (``1 体育, 2 财经, …``) says which is which; None when the labels are drawn as they are."""
    import warnings

    from matplotlib import font_manager, rc_context

    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [name for name in _CJK_FONTS if name in installed]
    labels = reports[0].labels
    columns = labels + [k for k in NON_LABELS if any(row[k] for r in reports for row in r.confusion.values())]
    numbered = not cjk and any(_width(label) > len(label) for label in labels)
    shown = {label: str(i) for i, label in enumerate(labels, 1)} if numbered else {}
    size = 1.5 + 0.45 * len(columns)
    fig = new_figure(size * len(reports) + 1, size)
    names = run_names([r.path for r in reports])
    for ax, report, name in zip(fig.subplots(1, len(reports), squeeze=False)[0], reports, names, strict=True):
        matrix = [[report.confusion[gold][col] for col in columns] for gold in labels]
        ax.imshow(matrix, cmap="Blues")
        top = max(max(row) for row in matrix) if matrix else 0
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if value:
                    ax.text(
                        j,
                        i,
                        str(value),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if value > top / 2 else "black",
                    )
        ax.set_xticks(range(len(columns)), [shown.get(c, c) for c in columns], rotation=60, ha="right")
        ax.set_yticks(range(len(labels)), [shown.get(label, label) for label in labels])
        ax.set(title=f"{name}: accuracy {_pct(report.accuracy)}", xlabel="predicted", ylabel="gold")
    with rc_context({"font.sans-serif": [*cjk, "DejaVu Sans"]}), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Glyph missing" for a character no installed font has
        save_png(fig, path)
    return ", ".join(f"{number} {label}" for label, number in shown.items()) or None
