"""Name patterns: RE2 matching with Python `re.fullmatch` meaning, linear time, Python-only syntax refused."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qplan.schema import ModuleQuantizerConfig, QuantizerConfig
from qplan.schema.loader import load_config
from qplan.schema.patterns import PatternError, compile_pattern, to_re2
from qplan.schema.rules import check_regex

# names: ASCII identifiers and digits, dots, and the characters where RE2 and Python classes differ
_NAME_CHARS = "ab.A_09 \t\x0b\x1céß٣模\u212a\u2003"
_ATOMS = [
    "a", "b", "A", r"\.", ".", "_", "0", "é", r"\d", r"\D", r"\w", r"\W", r"\s", r"\S", "[a-c]", r"[^\d.]",
    r"[\w.]", r"[\s_]", "[]a]", "[^]b]", r"\u00e9", r"\x41", "٣", "模",
]  # fmt: skip
_QUANTIFIERS = ["", "", "*", "+", "?", "*?", "+?", "{2}", "{1,3}", "{,2}", "{2,}"]


def _regex() -> st.SearchStrategy[str]:
    atom = st.sampled_from(_ATOMS)
    quantified = st.builds(lambda a, q: a + q, atom, st.sampled_from(_QUANTIFIERS))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        seq = st.lists(inner, min_size=1, max_size=4).map("".join)
        group = st.builds(lambda s, q: f"({s}){q}", seq, st.sampled_from(_QUANTIFIERS))
        alt = st.builds(lambda a, b: f"(?:{a}|{b})", seq, seq)
        return st.one_of(seq, group, alt)

    body = st.recursive(quantified, extend, max_leaves=8)
    return st.builds(lambda flag, b, end: flag + b + end, st.sampled_from(["", "(?i)", "^"]), body,
                     st.sampled_from(["", r"\Z", "$"]))  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_regex(), st.lists(st.text(alphabet=_NAME_CHARS, max_size=8), min_size=1, max_size=8))
def test_re2_matches_like_python_fullmatch(pattern: str, names: list[str]) -> None:
    rx = compile_pattern(pattern)
    for name in names:
        assert rx.fullmatch(name) == bool(re.fullmatch(pattern, name)), (pattern, to_re2(pattern), name)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        (r"blocks\.\d+\.attn", "blocks.12.attn", True),
        (r"blocks\.\d+", "blocks.٣", True),  # Python's \d is Unicode
        (r"\w+", "模块", True),
        (r"a\Z", "a", True),
        (r"a{,2}", "aa", True),  # Python: {0,2}
        (r"a{,2}", "a{,2}", False),
        ("[[:alpha:]]+", "a", False),  # a literal `[` in a class, not a POSIX class
        ("[[:alpha:]]", ":]", True),
        (r"(?i)LAYERS\.0", "layers.0", True),
    ],
)
def test_meaning_of_python_constructs(pattern: str, name: str, expected: bool) -> None:
    with pytest.warns(FutureWarning) if "[[" in pattern else _nothing():
        assert bool(re.fullmatch(pattern, name)) is expected
    assert compile_pattern(pattern).fullmatch(name) is expected


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_catastrophic_pattern_matches_in_linear_time() -> None:
    # `re` backtracks exponentially on this (34 `a`s did not finish in 120 s); RE2 cannot
    names = [f"mods.{'a' * (40 + i % 60)}b" for i in range(10_000)]
    rx = compile_pattern(r"mods\.(a+)+")
    start = time.perf_counter()
    hits = sum(rx.fullmatch(n) for n in names)
    elapsed = time.perf_counter() - start
    assert hits == 0
    # linear time: about a microsecond per name; 1 s for 10,000 names leaves room for a loaded machine
    assert elapsed < 1.0, elapsed
    assert rx.fullmatch("mods." + "a" * 10_000)


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        ("(?!lm_head).*", "negative lookahead"),
        ("(?=blocks).*", "lookahead"),
        (r".*(?<=proj)", "lookbehind"),
        (r".*(?<!proj)", "negative lookbehind"),
        (r"(a)\1", "backreference"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("(?>a)", "atomic group"),
        ("a++", "possessive"),
        (r"\bproj", "word boundary"),
        (r"[\W.]", r"`\W` inside a character class"),
        ("(?x)a b", "inline flag `x`"),
        ("a{1001}", "repetition"),
        ("lay\udc80ers", "lone surrogate"),
    ],
)
def test_python_only_syntax_is_an_error(pattern: str, what: str) -> None:
    re.compile(pattern)  # Python accepts it
    with pytest.raises(PatternError, match=re.escape(what)):
        compile_pattern(pattern)
    with pytest.raises(ValueError, match="not supported; qplan matches names in linear time"):
        check_regex(pattern, "module_name_configs")
    with pytest.raises(ValueError, match="linear time"):
        QuantizerConfig(module_name_configs={pattern: None})
    with pytest.raises(ValueError, match="linear time"):
        ModuleQuantizerConfig(op_name_config={pattern: None})


def test_validator_reports_python_only_regex_with_position() -> None:
    text = "quantization_config:\n  module_name_configs:\n    '(?!lm_head).*': null\n"
    with pytest.raises(Exception) as info:
        load_config(text, name="c.yaml")
    diags = info.value.diagnostics  # type: ignore[attr-defined]
    assert [d.code for d in diags] == ["invalid-regex"]
    assert "negative lookahead" in diags[0].message and "linear time" in diags[0].message
    assert diags[0].span is not None and diags[0].span.line == 3


def test_to_re2_rejects_nothing_re2_compiles_differently() -> None:
    with pytest.raises(PatternError):
        compile_pattern(r"\N{DIGIT ONE}")


def test_lone_surrogate_regex_key_is_an_invalid_value_not_a_crash() -> None:
    text = '{"quantization_config": {"module_name_configs": {"lay\\udc80ers": null}}}'
    with pytest.raises(Exception) as info:
        load_config(text, name="s.json")
    # the loader refuses the key before it is read as a regex: one error, at its position
    assert [d.code for d in info.value.diagnostics] == ["invalid-value"]  # type: ignore[attr-defined]
    assert "surrogate" in str(info.value)
    assert compile_pattern("x").fullmatch("lay\udc80ers") is False  # a name that cannot be UTF-8
