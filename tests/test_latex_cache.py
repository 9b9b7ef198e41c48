"""The answer-check workers' LaTeX cache (``lf_reasoning.latex_cache``): one parse for strings that read as the
same tokens, and never a result latex2sympy would not give for the string itself."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import math_verify.parser
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from lf_reasoning import answer_check, latex_cache
from lf_reasoning.answer_check import quiet_math_verify

# Answers as lists of LaTeX pieces: numbers (also the ``1,000`` a comma regex reads on the raw text), fractions,
# roots, powers, intervals, sets, equations, degrees, percentages, units, and derivatives (re-parsed from the raw
# text); and random runs of pieces, mostly not LaTeX at all.
ATOMS = ["1", "2", "12", "0.5", "1,000", "x", "y", "a", "\\pi", "\\infty"]
PIECES = [
    *ATOMS, ",", "000", ".", "=", "+", "-", "<", "\\leq", "\\cdot", "\\frac", "\\dfrac", "{", "}", "\\sqrt", "(", ")",
    "[", "]", "\\{", "\\}", "\\left(", "\\right]", "^", "\\circ", "\\%", "\\cup", "\\text{ cm}", "d", "dx",
    "\\partial", "\\mid", "!",
]  # fmt: skip
Pieces = list[str]


def _compound(inner: st.SearchStrategy[Pieces]) -> st.SearchStrategy[Pieces]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        st.builds(lambda ab, op: [*ab[0], op, *ab[1]], pair, st.sampled_from(["+", "-", "\\cdot", ","])),
        st.builds(lambda ab: ["\\frac", "{", *ab[0], "}", "{", *ab[1], "}"], pair),
        st.builds(lambda a: ["\\sqrt", "{", *a, "}"], inner),
        st.builds(lambda a: ["(", *a, ")"], inner),
        st.builds(lambda a, b: [*a, "^", "{", b, "}"], inner, st.sampled_from(ATOMS)),
        st.builds(lambda a: ["-", *a], inner),
    )


EXPRESSIONS = st.recursive(st.sampled_from(ATOMS).map(lambda atom: [atom]), _compound, max_leaves=6)
ANSWERS = st.one_of(
    EXPRESSIONS,
    st.builds(lambda a, b: [*a, "=", *b], EXPRESSIONS, EXPRESSIONS),
    st.builds(lambda a, b: ["(", *a, ",", *b, "]"], EXPRESSIONS, EXPRESSIONS),
    st.builds(lambda a, b: ["\\{", *a, ",", *b, "\\}"], EXPRESSIONS, EXPRESSIONS),
    st.builds(lambda a, unit: [*a, *unit], EXPRESSIONS, st.sampled_from([["^", "\\circ"], ["\\%"], ["\\text{ cm}"]])),
    st.builds(lambda a: ["\\frac", "{", "d", *a, "}", "{", "dx", "}"], EXPRESSIONS),
    st.sampled_from([["1", ",", "000"], ["-", "12", ",", "345", ",", "678", ".", "5"]]),  # spaced: sets
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=9),
)
SPACES = ["", "", " ", "  ", "\t", "\n"]


@pytest.fixture(autouse=True)
def plain(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Math-Verify's parse routed through the cache for one test, every cache empty before and after; yields the
    plain latex2sympy."""
    warnings.simplefilter("ignore")
    quiet_math_verify()
    plain = math_verify.parser.latex2sympy
    monkeypatch.setattr(math_verify.parser, "latex2sympy", latex_cache.cached(plain))
    clear = [
        math_verify.parser.parse_latex_cached.cache_clear,
        answer_check._gold.cache_clear,
        latex_cache._cache.clear,
    ]
    for step in clear:
        step()
    yield plain
    for step in clear:
        step()


def _real(latex: str) -> str:
    """What latex2sympy itself gives for ``latex`` as Math-Verify calls it: the tree (``srepr``) or ``raises``."""
    from latex2sympy2_extended.latex2sympy2 import latex2sympy

    try:
        return sympy.srepr(latex2sympy(latex, is_real=True, convert_degrees=False, normalization_config=None))
    except Exception:
        return "raises"


def _cached(latex: str) -> str:
    try:
        return sympy.srepr(
            math_verify.parser.latex2sympy(latex, is_real=True, convert_degrees=False, normalization_config=None)
        )
    except Exception:
        return "raises"


def _spaced(pieces: list[str], gaps: list[str]) -> str:
    return "".join(piece + gap for piece, gap in zip(pieces, gaps, strict=False)) + "".join(pieces[len(gaps) :])


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_a_respaced_string_gets_what_latex2sympy_gives_for_it(data: st.DataObject) -> None:
    pieces = data.draw(ANSWERS)
    first, second = (data.draw(st.lists(st.sampled_from(SPACES), max_size=len(pieces))) for _ in range(2))
    a, b = _spaced(pieces, first), _spaced(pieces, second)
    assert _cached(a) == _real(a), a  # parsed and kept
    assert _cached(b) == _real(b), (a, b)  # possibly served from what ``a`` left


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("x=5", "x = 5"),
        ("(0,1]", "( 0 , 1 ]"),
        ("2\\sqrt{3}", "2 \\sqrt {3}"),
        ("\\frac{1}{2}", "\\frac { 1 } { 2 }"),
    ],
)
def test_the_same_tokens_are_parsed_once(first: str, second: str) -> None:
    before = _cached(first)
    assert before != "raises"
    calls: list[str] = []

    def counting(latex: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(latex)
        raise AssertionError("not cached")

    cached_again = latex_cache.cached(counting)  # the cache is the module's: ``first`` is in it
    assert sympy.srepr(cached_again(second, is_real=True, convert_degrees=False, normalization_config=None)) == before
    assert calls == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("1,000", "1, 000"),  # a number, then a set: the comma regex reads the raw text
        ("\\frac{d(x^2)}{dx}", "\\frac{d (x^2)}{dx}"),  # a derivative's numerator is re-parsed from the raw text
        ("\\frac{\\partial y}{\\partial x}", "\\frac{\\partial  y}{\\partial x}"),
    ],
)
def test_strings_whose_raw_text_matters_are_never_cached(first: str, second: str) -> None:
    _cached(first)

    def real(latex: str, *args: Any, **kwargs: Any) -> str:
        return f"parsed {latex}"

    assert latex_cache.cached(real)(second, is_real=True, convert_degrees=False, normalization_config=None) == (
        f"parsed {second}"
    )


@pytest.mark.parametrize(("first", "second"), [("x+2i", "x + 2 i"), ("3i", "3 i"), ("1,000", "1, 000")])
def test_math_verify_parses_what_it_parses_without_the_cache(
    first: str, second: str, plain: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Math-Verify's own parse: it decides real or complex symbols from the raw text (``2i`` but not
    ``2 i``), which the cache keys on."""
    from math_verify import LatexExtractionConfig, parse

    def parsed(text: str) -> str:
        return sympy.srepr(parse(f"${text}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=None)[0])

    cached = [parsed(first), parsed(second)]
    monkeypatch.setattr(math_verify.parser, "latex2sympy", plain)
    math_verify.parser.parse_latex_cached.cache_clear()
    assert cached == [parsed(first), parsed(second)]


def test_install_routes_math_verify_through_the_cache_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(math_verify.parser, "latex2sympy", lambda latex, **kwargs: sympy.Integer(7))
    latex_cache.install()
    installed = math_verify.parser.latex2sympy
    assert installed.token_cached
    latex_cache.install()
    assert math_verify.parser.latex2sympy is installed
