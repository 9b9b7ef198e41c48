"""One LaTeX parse for every answer string that reads as the same tokens (installed in the answer-check workers).

Math-Verify turns each distinct extracted string into sympy with latex2sympy's ANTLR parser, a few milliseconds
a string, most of a verify run; its own cache keeps the last 20 strings. The generations of one problem often
write the same answer with other spacing (``x = 5`` and ``x=5``, ``(0, 1]``, ``2 \\sqrt{3}``): the lexer skips
whitespace, so they are the same token stream and the parser builds the same tree from it. This cache keys
latex2sympy's result by that stream (and the arguments), so such a string costs a lexer pass instead of a parse.

It gives exactly what Math-Verify gives: the raw text decides three things besides the tokens, none shared
through the cache. Math-Verify picks real or complex symbols from it (``2i`` but not ``2 i``): that choice is part
of the key. latex2sympy reads ``1,000`` against ``1, 000`` (a number or a set) with a regex on it: such strings
are not cached, nor is a derivative (``\\frac{d…}{dx}``, ``\\partial``), whose numerator it re-parses from a raw
slice. A string that fails to parse is not cached: Math-Verify's fallback and messages see the original. Calls
other than Math-Verify's own (with a normalisation or variables) pass straight through.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from antlr4 import InputStream
from antlr4.error.ErrorListener import ErrorListener

# Respaced answers are short; a long string is parsed as before. Bounded so: ~11 MB a worker for 35-character
# answers, ~45 MB at the limit.
_MAX_CHARS = 200
_MAX_ENTRIES = 4096
_KEYED = ("convert_degrees", "normalization_config", "conversion_config")  # the keyword arguments Math-Verify passes

_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def install() -> None:
    """Route Math-Verify's LaTeX parses through the cache (idempotent; nothing when its layout is unknown)."""
    import math_verify.parser as parser

    if getattr(parser.latex2sympy, "token_cached", False):
        return
    if _lexer_class() is None or not hasattr(parser, "parse_latex_cached"):
        return  # another Math-Verify layout: it still works, only without this cache
    parser.latex2sympy = cached(parser.latex2sympy)
    parser.parse_latex_cached.cache_clear()


def cached(latex2sympy: Any) -> Any:
    """``latex2sympy`` with its results kept per token stream (see the module's docstring)."""
    from latex2sympy2_extended.latex2sympy2 import comma_number_regex

    def cached_latex2sympy(latex_str: str, variable_values: Any = None, is_real: Any = None, **kwargs: Any) -> Any:
        plain = variable_values is None and set(kwargs) <= set(_KEYED) and len(latex_str) <= _MAX_CHARS
        plain = plain and kwargs.get("normalization_config", True) is None and not comma_number_regex.match(latex_str)
        tokens = _tokens(latex_str) if plain else None
        if tokens is None:
            return latex2sympy(latex_str, variable_values, is_real, **kwargs)
        key = (tokens, is_real, kwargs.get("convert_degrees"), kwargs.get("conversion_config"))
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        result = latex2sympy(latex_str, variable_values, is_real, **kwargs)  # when it raises, nothing is cached
        _cache[key] = result
        if len(_cache) > _MAX_ENTRIES:
            _cache.popitem(last=False)
        return result

    cached_latex2sympy.token_cached = True  # type: ignore[attr-defined]
    return cached_latex2sympy


class _Recorder(ErrorListener):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def syntaxError(self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any) -> None:
        self.failed = True


def _tokens(latex_str: str) -> tuple[tuple[int, str], ...] | None:
    """The token stream the parser would read, or ``None`` where its result may depend on the raw text (a
    derivative) or the lexer fails (the parse then fails too, uncached)."""
    lexer_class = _lexer_class()
    lexer = lexer_class(InputStream(latex_str))
    lexer.removeErrorListeners()
    recorder = _Recorder()
    lexer.addErrorListener(recorder)
    tokens = tuple((token.type, token.text) for token in lexer.getAllTokens())
    if recorder.failed or any(kind == lexer_class.DIFFERENTIAL or text == "\\partial" for kind, text in tokens):
        return None
    return tokens


def _lexer_class() -> Any:
    try:
        from latex2sympy2_extended.latex2sympy2 import PSLexer
    except ImportError:
        return None
    return PSLexer if hasattr(PSLexer, "DIFFERENTIAL") else None
