"""Answer checking: Math-Verify (gold first, ``\\boxed{}`` first) and multiple-choice letters, in worker processes
under a deadline of our own.

Math-Verify's ``signal.alarm`` timeouts fail outside the main thread and cannot stop C-level big-number work, so
every check runs in a worker process: one that overruns is killed and replaced, and one pathological expression
costs one timeout, never the run. Used by ``verify`` and by ``eval --task math``.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import re
import signal
import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Literal

from lf_reasoning import latex_cache
from lf_reasoning.errors import UserError

Method = Literal["math_verify", "unverifiable", "judge"]

CHOICES = ("A", "B", "C", "D", "E")
_SHOWN_CHARS = 200  # longest extracted gold/prediction kept in the output

_CHOICE_MARKUP = re.compile(r"\\(?:boxed|text\w*|math\w*)|[{}()（）$.:：\s]")
_LEADING_CHOICE = re.compile(r"^[\W_]*(?:\\text\w*\{)?[\s(（]*([A-E])(?![A-Za-z])")
_PARENTHESISED_CHOICE = re.compile(r"[(（]\s*([A-E])\s*[)）]")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_CJK_UNIT = re.compile(r"(?<=[\d}])\s*(?:\\(?:text|mathrm)\{\s*)?[\u4e00-\u9fff]{1,4}\s*\}?\s*$")  # 5厘米, 3\text{天}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking one answer. ``verdict`` is ``None`` when it could not be decided (``reason``)."""

    method: Method
    verdict: bool | None = None
    gold: str | None = None  # what was extracted from the reference
    prediction: str | None = None  # what was extracted from the answer
    reason: str | None = None  # a short stable code when there is no verdict (timeout, no_reference, …)
    detail: str | None = None

    @property
    def score(self) -> int | None:
        """10 for correct, 0 for wrong (the 110k R1-distill set's convention), ``None`` without a verdict."""
        return None if self.verdict is None else 10 if self.verdict else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "verdict": self.verdict,
            "score": self.score,
            "gold": self.gold,
            "prediction": self.prediction,
            "reason": self.reason,
            "detail": self.detail,
        }


# A correctness judge for answers the rules could not decide: it gets the sample and the rule-based result
# (method "unverifiable", with its reason) and returns the final result (method "judge", or "unverifiable").


def unverifiable(reason: str, detail: str, gold: str | None = None, prediction: str | None = None) -> VerifyResult:
    return VerifyResult("unverifiable", None, gold, prediction, reason, detail)


# --- rule-based checking (runs in worker processes) ---


def check_answer(reference: str, answer: str) -> VerifyResult:
    """Check ``answer`` against ``reference`` with Math-Verify, gold first. No timeout: call it in a worker.

    A reference that is a choice letter (A–E) is compared as a letter; a reference that is prose rather than
    math, or an answer in which nothing could be extracted, gives no verdict (never a wrong ``False``).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold = _gold(reference)
    if isinstance(gold, str):
        return _check_choice(gold, answer)
    if isinstance(gold, VerifyResult):
        return gold
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    pred = parse(answer, extraction_config=config, parsing_timeout=None)
    shown_gold, shown_pred = _shown(gold), _shown(pred)
    if not pred:
        return unverifiable("no_prediction", "no math answer could be extracted from the response", shown_gold)
    if _same(gold, pred) or verify(gold, pred, timeout_seconds=None):
        return VerifyResult("math_verify", True, shown_gold, shown_pred)
    if _has_math(gold) and _has_math(pred):
        return VerifyResult("math_verify", False, shown_gold, shown_pred)
    side = "reference" if not _has_math(gold) else "response"
    return unverifiable(
        "unparsed", f"the answer extracted from the {side} is not parseable math and differs", shown_gold, shown_pred
    )


@functools.lru_cache(maxsize=256)
def _gold(reference: str) -> str | VerifyResult | list[Any]:
    """The reference as the answers are checked against it: a choice letter, the result every answer gets (a
    text reference, no extractable gold), or Math-Verify's parse. Cached: the generations of an OpenR1 record
    (and the many records with the same short answer) share one parse, the most expensive step after the
    answer's own."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    letter = choice_letter(reference)
    if letter is not None:
        return letter
    if is_text_answer(reference):
        return unverifiable("text_reference", "the reference is text, not a math answer")
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold = parse(_delimited(reference), extraction_config=config, parsing_timeout=None)
    if not gold:
        return unverifiable("no_gold", "no math answer could be extracted from the reference")
    return gold


def _same(gold: list[Any], pred: list[Any]) -> bool:
    """The cheap exit: the answer's parsed value is the gold's (equal sympy structures: the same after Math-Verify's
    normalisation of ``\\left``/``\\right``, ``\\dfrac``, ``$``, … and parse; for an answer written like the gold,
    spacing aside, the parse caches even return the same object: see ``latex_cache``). ``verify`` would find them
    equal, so it is skipped (~0.7 ms an answer). Folding the strings by hand instead would change verdicts:
    Math-Verify reads ``1, 000`` as the set {0, 1} but ``1,000`` as 1000, ``2 3`` as 5, and cannot parse
    ``5^ {\\circ}``."""
    return _has_math(gold) and not isinstance(pred[0], str) and (pred[0] is gold[0] or pred[0] == gold[0])


def _check_choice(letter: str, answer: str) -> VerifyResult:
    """Multiple choice: Math-Verify's string extraction, never mixed with the math configs."""
    from math_verify import StringExtractionConfig, parse, verify

    config = [StringExtractionConfig(strings=CHOICES)]
    gold = parse(letter, extraction_config=config, parsing_timeout=None)
    pred = parse(_choice_text(answer), extraction_config=config, parsing_timeout=None)
    if not pred:
        return unverifiable("no_prediction", "no choice letter could be extracted from the response", letter)
    return VerifyResult("math_verify", verify(gold, pred, timeout_seconds=None), letter, _shown(pred))


def choice_letter(reference: str) -> str | None:
    """The letter of a multiple-choice reference (``B``, ``(B)``, ``\\boxed{B}``, ``$\\text{B}$.``), else ``None``."""
    letter = _CHOICE_MARKUP.sub("", reference)
    return letter if letter in CHOICES else None


def _choice_text(answer: str) -> str:
    """The part of a response Math-Verify's letter extraction should see.

    Its patterns find ``Answer: B`` or a standalone ``B`` but neither ``\\boxed{B}`` nor ``(B)``: the last
    ``\\boxed{}`` is taken when there is one, parenthesised letters are unwrapped otherwise.
    """
    boxed = last_boxed(answer)
    if boxed is not None:
        match = _LEADING_CHOICE.match(boxed)
        return match.group(1) if match else boxed
    return _PARENTHESISED_CHOICE.sub(r" \1 ", answer).replace("：", ": ")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{…}`` (braces balanced), or ``None``."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for i in range(begin, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0:
                return text[begin:i]
            depth -= 1
    return None


def is_text_answer(reference: str) -> bool:
    """True when a reference is prose, not math: Math-Verify would read ``yes`` as ``E*s*y`` and every anagram
    of ``Paris`` as equal to it. Prose means two words of 3+ letters, one such word without any number
    (``72 apples`` is a number with a unit), or CJK text other than a unit after a number (``5厘米``)."""
    if _CJK.search(_CJK_UNIT.sub("", reference)):
        return True
    words = _WORD.findall(_LATEX_COMMAND.sub(" ", reference))
    return len(words) >= 2 or (len(words) == 1 and not any(c.isdigit() for c in reference))


def _delimited(reference: str) -> str:
    """A bare reference in ``$…$``: Math-Verify extracts LaTeX only inside math delimiters or ``\\boxed{}``
    (bare ``(0,1]`` or ``\\{1,2\\}`` extract nothing, ``3\\sqrt{2}`` extracts 3, ``1,2,3`` reads as 1.2)."""
    if any(mark in reference for mark in ("$", "\\boxed", "\\(", "\\[")):
        return reference
    return f"${reference}$"


def _has_math(parsed: list[Any]) -> bool:
    return any(not isinstance(x, str) for x in parsed)


def _shown(parsed: list[Any]) -> str | None:
    """The extracted text (Math-Verify appends it after the parsed value), else the value itself."""
    if not parsed:
        return None
    text = next((x for x in reversed(parsed) if isinstance(x, str)), None)
    return (text if text is not None else str(parsed[0]))[:_SHOWN_CHARS]


def quiet_math_verify() -> None:
    """Import Math-Verify (with a clear message when it is missing) and silence its per-call warnings."""
    try:
        import math_verify  # noqa: F401  (also imports latex2sympy2_extended, which checks the ANTLR runtime)
    except ImportError as err:
        raise UserError(f"verify needs math-verify: pip install 'math-verify[antlr4_13_2]==0.9.0' ({err})") from err
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _worker(conn: Connection) -> None:
    """Answer batches of ``(reference, answer)`` tasks, one result tuple per task as soon as it is known (the main
    process's deadline is per answer), until ``None``; says ``ready`` first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the main process decides
    warnings.simplefilter("ignore")
    quiet_math_verify()
    latex_cache.install()
    check_answer("\\frac{1}{2}", "\\boxed{0.5}")  # load the LaTeX parser before the first deadline starts
    conn.send("ready")
    while (batch := conn.recv()) is not None:
        for reference, answer in batch:
            try:
                result = check_answer(reference, answer)
            except Exception as err:  # Math-Verify swallows its own errors; anything else is reported, not fatal
                result = unverifiable("error", f"{type(err).__name__}: {err}"[:_SHOWN_CHARS])
            conn.send((result.method, result.verdict, result.gold, result.prediction, result.reason, result.detail))


# --- the worker pool: one batch per worker, a deadline per answer ---

Task = tuple[Any, str, str]  # (key, reference, answer): the key comes back with the answer's result


@dataclass(eq=False)
class _Slot:
    proc: multiprocessing.process.BaseProcess
    conn: Connection
    tasks: deque[Task] = field(default_factory=deque)  # sent and not answered yet; empty while starting or idle
    deadline: float = 0.0  # for tasks[0]


class Workers:
    """Worker processes that each check one batch of answers at a time; one that misses an answer's deadline is
    killed and replaced, and the rest of its batch goes to the next free worker. No helper threads and no
    ``multiprocessing.Pool``, so closing always stops every worker."""

    def __init__(self, n: int, timeout: float) -> None:
        self.timeout = timeout
        self.idle: list[_Slot] = []
        self._waiting: dict[Connection, _Slot] = {}  # starting (no tasks) or busy
        self._orphans: deque[Task] = deque()  # the rest of a batch whose worker was stopped
        for _ in range(n):
            self._start()

    def _start(self) -> None:
        conn, child = multiprocessing.Pipe()
        proc = multiprocessing.Process(target=_worker, args=(child,), daemon=True)
        proc.start()
        child.close()
        self._waiting[conn] = _Slot(proc, conn)

    @property
    def busy(self) -> bool:
        return bool(self._waiting or self._orphans)

    def submit(self, key: Any, reference: str, answer: str) -> None:
        self.submit_batch([(key, reference, answer)])

    def submit_batch(self, tasks: Sequence[Task]) -> None:
        """Send ``tasks`` to an idle worker in one message; answers with the same reference in a row share its
        parse (see ``_gold``)."""
        slot = self.idle.pop()
        slot.tasks.extend(tasks)
        slot.deadline = time.monotonic() + self.timeout
        slot.conn.send([(reference, answer) for _, reference, answer in tasks])
        self._waiting[slot.conn] = slot

    def collect(self) -> list[tuple[Any, VerifyResult]]:
        """Wait for the next replies or the next deadline; return the results, timeouts included."""
        deadlines = [s.deadline for s in self._waiting.values() if s.tasks]
        limit = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        results: list[tuple[Any, VerifyResult]] = []
        for conn in wait(list(self._waiting), timeout=limit):
            slot = self._waiting.pop(conn)  # type: ignore[call-overload]
            try:
                while True:  # every reply already there, then the next wait
                    message = slot.conn.recv()
                    if slot.tasks:
                        results.append((slot.tasks.popleft()[0], VerifyResult(*message)))
                        slot.deadline = time.monotonic() + self.timeout
                    if not slot.tasks or not slot.conn.poll():
                        break
            except (EOFError, OSError):
                if not slot.tasks:
                    self._stop(slot)
                    raise UserError(
                        f"a verify worker process died while starting (exit code "
                        f"{slot.proc.exitcode}); its error is printed above"
                    ) from None
                self._replace(slot, results, "crashed", "the worker process died (exit code {code})")
                continue
            if slot.tasks:
                self._waiting[conn] = slot
            else:
                self.idle.append(slot)
        now = time.monotonic()
        for slot in [s for s in self._waiting.values() if s.tasks and s.deadline <= now]:
            del self._waiting[slot.conn]
            self._replace(
                slot, results, "timeout", f"no result within {self.timeout:g} s; the worker was stopped and replaced"
            )
        while self._orphans and self.idle:
            self.submit_batch([self._orphans.popleft() for _ in range(len(self._orphans))])
        return results

    def _replace(self, slot: _Slot, results: list[tuple[Any, VerifyResult]], reason: str, detail: str) -> None:
        """Stop ``slot``'s worker: its current answer gets ``reason``, the rest of its batch waits for another."""
        self._stop(slot)
        key = slot.tasks.popleft()[0]
        results.append((key, unverifiable(reason, detail.format(code=slot.proc.exitcode))))
        self._orphans.extend(slot.tasks)
        self._start()

    @staticmethod
    def _stop(slot: _Slot) -> None:
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join()
        slot.conn.close()

    def close(self) -> None:
        for slot in [*self.idle, *self._waiting.values()]:
            self._stop(slot)
        self.idle.clear()
        self._waiting.clear()
        self._orphans.clear()


def check_answers(
    pairs: Sequence[tuple[str, str]], *, workers: int | None = None, timeout: float = 10.0
) -> list[VerifyResult]:
    """:func:`check_answer` for many ``(reference, answer)`` pairs in worker processes, each with a deadline
    (a pathological expression comes back as ``timeout``); results in input order."""
    results: list[VerifyResult | None] = [None] * len(pairs)
    if not pairs:
        return []
    pool = Workers(min(workers or os.cpu_count() or 1, len(pairs)), timeout)
    todo = iter(enumerate(pairs))
    remaining = len(pairs)
    try:
        while remaining:
            while pool.idle and (item := next(todo, None)) is not None:
                index, (reference, answer) = item
                pool.submit(index, reference, answer)
            for index, result in pool.collect():
                results[index] = result
                remaining -= 1
    finally:
        pool.close()
    return [r for r in results if r is not None]
