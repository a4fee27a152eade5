"""Module- and op-name patterns matched in time linear in the name (RE2), with Python `re` meaning.

A config writes Python regex syntax; qplan matches it with RE2 (``google-re2``), whose automaton
never backtracks, so ``mods\\.(a+)+`` cannot hang on a long name. :func:`to_re2` rewrites the few
constructs whose meaning differs between the two so that ``compile_pattern(p).fullmatch(name)``
equals ``re.fullmatch(p, name)``:

* ``\\d \\w \\s`` (and ``\\D \\W \\S``) are Unicode classes in Python, ASCII in RE2: written out
  as Unicode classes (``\\p{Nd}``, ``[\\p{L}\\p{N}_]``, Python's whitespace list);
* ``\\Z`` (end of text) becomes ``\\z``; ``\\uXXXX`` / ``\\UXXXXXXXX`` become ``\\x{...}``;
* ``x{,n}`` (Python: ``x{0,n}``) becomes ``x{0,n}``; a ``[`` inside a class is a literal (as
  in Python), never a POSIX class such as ``[:alpha:]``.

Python-only syntax has no linear-time equivalent and is an error (:class:`PatternError`), raised
by the config validator and the struct constructors alike: lookarounds ``(?=`` ``(?!`` ``(?<=``
``(?<!``, backreferences ``\\1`` ``(?P=name)``, atomic groups and possessive quantifiers,
conditionals, verbose ``(?x)`` and comments ``(?#``, ``\\b`` / ``\\B`` (Unicode word boundaries),
``\\W`` / ``\\S`` inside a class, ``\\N{...}``, and repeat counts over 1000.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol

import re2

__all__ = ["PatternError", "Pattern", "compile_pattern", "to_re2"]


class PatternError(ValueError):
    """A Python regex that has no linear-time (RE2) equivalent."""


class Pattern(Protocol):
    def fullmatch(self, text: str) -> bool: ...


_WORD = r"\p{L}\p{N}_"
# Python's `\s` matches the str.isspace() characters (none lies above U+3000)
_SPACE = "".join(f"\\x{{{c:x}}}" for c in range(0x3001) if chr(c).isspace())
_OUTSIDE = {
    "d": r"\p{Nd}",
    "D": r"\P{Nd}",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
}
_INSIDE = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": _WORD, "s": _SPACE}
_HEX = {"u": 4, "U": 8}
_PY_ONLY_GROUPS = {
    "(?=": "a lookahead `(?=...)`",
    "(?!": "a negative lookahead `(?!...)`",
    "(?<=": "a lookbehind `(?<=...)`",
    "(?<!": "a negative lookbehind `(?<!...)`",
    "(?P=": "a backreference `(?P=name)`",
    "(?>": "an atomic group `(?>...)`",
    "(?(": "a conditional `(?(...)...)`",
    "(?#": "a comment `(?#...)`",
}
_REPEAT_MIN = re.compile(r"\{,(\d+)\}")


def to_re2(pattern: str) -> str:
    """The RE2 pattern that matches what Python's `re` matches with `pattern` (which `re` compiles).

    Raises :class:`PatternError` for Python-only syntax.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            text, i = _escape(pattern, i, in_class)
            out.append(text)
            continue
        if in_class:
            if c == "]" and not _class_start(pattern, i):
                in_class = False
            out.append("\\[" if c == "[" else c)
        elif c == "[":
            in_class = True
            out.append(c)
        elif c == "(":
            _check_group(pattern, i)
            out.append(c)
        elif c == "{" and (m := _REPEAT_MIN.match(pattern, i)):
            out.append(f"{{0,{m.group(1)}}}")
            i = m.end()
            continue
        elif c in "*+?" and i + 1 < n and pattern[i + 1] == "+":
            raise PatternError(f"a possessive quantifier `{c}+`")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _class_start(pattern: str, i: int) -> bool:
    """True when the `]` at `i` is the first character of its class (`[]...]`, `[^]...]`): a literal."""
    j = i - 1
    if pattern[j] == "^" and j > 0 and pattern[j - 1] == "[" and not _escaped(pattern, j - 1):
        return True
    return pattern[j] == "[" and not _escaped(pattern, j)


def _escaped(pattern: str, i: int) -> bool:
    k = i - 1
    while k >= 0 and pattern[k] == "\\":
        k -= 1
    return (i - 1 - k) % 2 == 1


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The RE2 text of the escape at `i`, and the index after it."""
    e = pattern[i + 1] if i + 1 < len(pattern) else ""
    if e in _OUTSIDE:
        if in_class and e not in _INSIDE:
            raise PatternError(f"`\\{e}` inside a character class")
        return (_INSIDE if in_class else _OUTSIDE)[e], i + 2
    if e in _HEX:
        digits = pattern[i + 2 : i + 2 + _HEX[e]]
        return f"\\x{{{digits}}}", i + 2 + _HEX[e]
    if e == "Z":
        return "\\z", i + 2
    if e == "b":
        if in_class:  # `[\b]` is a backspace
            return "\\x08", i + 2
        raise PatternError("a word boundary `\\b` (Unicode in Python)")
    if e == "B":
        raise PatternError("a word boundary `\\B` (Unicode in Python)")
    if e == "N":
        raise PatternError("a named character `\\N{...}`")
    if e.isdigit() and e != "0" and not in_class:
        raise PatternError(f"a backreference `\\{e}`")
    return pattern[i : i + 2], i + 2


def _check_group(pattern: str, i: int) -> None:
    for prefix, what in _PY_ONLY_GROUPS.items():
        if pattern.startswith(prefix, i):
            raise PatternError(what)
    flags = re.match(r"\(\?([a-zA-Z]+)[:)]", pattern[i:])
    if flags:
        bad = sorted(set(flags.group(1)) - set("ims-"))
        if bad:
            raise PatternError(f"the inline flag `{bad[0]}`")


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error comes back as an exception; RE2 must not print it too
_BOTH = re2._Anchor.ANCHOR_BOTH
_NO_MATCH = re2._NULL_SPAN


class _Matcher:
    """A compiled pattern whose :meth:`fullmatch` says only whether the whole text matches.

    It calls the compiled RE2 object directly: the public ``re2`` match API builds a match object
    with decoded group spans, which costs several times the match itself on short names.
    """

    __slots__ = ("pattern", "_match")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._match = compiled._regexp.Match

    def fullmatch(self, text: str) -> bool:
        data = text.encode("utf-8", "surrogatepass")
        return self._match(_BOTH, data, 0, len(data))[0] != _NO_MATCH


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Pattern:
    """The linear-time matcher of `pattern` (Python regex syntax); :class:`PatternError` when it
    has no RE2 equivalent. ``compile_pattern(p).fullmatch(name)`` is ``bool(re.fullmatch(p, name))``."""
    translated = to_re2(pattern)
    try:
        translated.encode("utf-8")
    except UnicodeEncodeError:
        raise PatternError("a lone surrogate character") from None
    try:
        return _Matcher(pattern, re2.compile(translated, _OPTIONS))
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise PatternError(reason) from None
