"""yamldoc's two composers: libyaml's events (ruamel.yaml.clib) and ruamel's pure-Python composer
give the same values, spans, empties, warnings and errors; the fast one declines what it would
read differently."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qplan.diagnostics import ConfigError, Span
from qplan.schema import yamldoc

EXAMPLES = sorted((Path(yamldoc.__file__).parents[1] / "examples").glob("*.yaml"))
needs_clib = pytest.mark.skipif(yamldoc._CParser is None, reason="ruamel.yaml.clib is not installed")

# Each line is a case where libyaml (YAML 1.1) and ruamel (YAML 1.2) disagree, or where their marks
# differ, followed by ordinary content the fast path must read exactly like the pure one.
TRICKY = [
    "a: &r [*r:]\n",  # libyaml ends the alias name at `:`, ruamel reads `r:`
    "a: |\n  x\nb: >#-\n  f\n",  # block scalar header libyaml accepts and ruamel refuses
    "a: >-\n  f\n  g\nb: |+\n  x\n\n",  # folded and literal block scalars
    "a:\u2028b: 1\n",
    "a: b\x85c: d\n",  # line breaks only in YAML 1.1
    "a: 1",  # no final newline: libyaml's end mark is on a line that does not exist
    "quantization_con\tfig: {}\n",  # tabs
    "%YAML 1.1\n---\na: yes\nb: 017\n",  # directives change resolution
    "x: !!python/object/app!ly:os.system [a]\n",  # tags libyaml accepts and ruamel refuses
    "a: !!str 1\nb: !!int '2'\n",
    "a: &x 1\nb: &x 2\nc: *x\n",  # reused anchor: a warning, not an error
    "a: *nope\n",
    "op: {*: 1}\n",
    "--- 1\n--- 2\n",
    "",
    "---\n",
    "a: [\n",
    "- \n- x\n-\n",  # empty sequence items
    "a: &e\nb: *e\n",  # anchored empty value
    "x: {a: 1}\ny:\n  <<:\n  b: 2\n",  # empty merge value
    "x: &a {p: 1, q: [2, 3]}\ny:\n  <<: [*a, {r: 4}]\n  q: 5\nz: *a\n",
    "? [k]\n: v\n? a\n: \n",
    "a:\nb: null\nc: ~\nd: ''\ne:\n  f:\n",
    "t: [true, False, 0x1F, 0o17, 017, 1_000, .inf, -.NaN, 1e3, 2001-12-14, =, <<, yes, ~]\n",
    "é😀: 'ü'\nk: \"\\u00e9\\t\"\n# comment\nz: [1, 2]  # c\n",
    "a: 1\r\nb:\r\n  - x\r\n",
    '{"quantization_config": {"global_config": {"op_input_spec": {"0": null}}}}\n',
]


def _parse(text: str) -> tuple:
    try:
        d = yamldoc.parse_document(text, "f.yaml")
    except ConfigError as e:
        return ("error", repr(e.diagnostics))
    return (
        "ok",
        repr(d.value),
        sorted(map(repr, d.key_spans.items())),
        sorted(map(repr, d.value_spans.items())),
        sorted(map(repr, d.empty)),
        repr(d.warnings),
    )


def _both(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple, tuple]:
    fast = _parse(text)
    with monkeypatch.context() as m:
        m.setattr(yamldoc, "_CParser", None)
        pure = _parse(text)
    return fast, pure


@needs_clib
@pytest.mark.parametrize("text", TRICKY)
def test_fast_and_pure_composers_agree(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, pure = _both(text, monkeypatch)
    assert fast == pure


@needs_clib
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_bundled_examples_take_the_fast_path_with_the_same_result(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(encoding="utf-8")
    assert yamldoc._compose_fast(text) is not None
    fast, pure = _both(text, monkeypatch)
    assert fast == pure and fast[0] == "ok"


def test_folded_scalars_are_plain_text(composer: str) -> None:
    # ruamel's round-trip composer left a `\a` where a folded line break was; configs get the text.
    assert yamldoc.parse_document("a: >-\n  enc\n  dec\n", "f").value == {"a": "enc dec"}


def test_deep_nesting_is_an_error_with_the_same_span(composer: str) -> None:
    depth = 500  # past ruamel's pure composer; libyaml's own (recursive, C) composer is never used
    with pytest.raises(ConfigError) as info:
        yamldoc.parse_document("a: " + "[" * depth + "]" * depth + "\n", "f")
    (d,) = info.value.diagnostics
    assert (d.message, d.span) == ("document is nested too deeply", Span(file="f", line=1, col=1))


# -- property: random YAML texts read the same through both composers ---------------------------
_SCALARS = [
    "",
    "''",
    "null",
    "~",
    "0x1F",
    "0o17",
    "017",
    "1e3",
    ".inf",
    "-.5",
    "yes",
    "True",
    "2001-12-14",
    "=",
    "<<",
    "a:b",
    "x #y",
    "'it''s'",
    '"\\u00e9"',
    "é😀",
    "a b",
    '"*"',
    "[]",
    "{}",
    "12:30",
    "int8",
    "enc\\..*",
    "*a",
    "*b:",
    "&b",
]
_KEYS = ["a", "'0'", "0", "weight", '"*"', "<<", "null", "1.5", "? k", "[1]", "''"]


@st.composite
def _yaml_node(draw: st.DrawFn, indent: int = 0, depth: int = 0, flow: bool = False) -> str:
    anchor = draw(st.sampled_from(["", "", "", "&a ", "&b "]))
    kind = draw(st.sampled_from(["scalar", "scalar", "flow", "block"] if depth < 3 else ["scalar"]))
    if kind == "scalar":
        return anchor + draw(st.sampled_from(_SCALARS))
    if kind == "flow" or flow:
        items = draw(st.lists(_yaml_node(0, depth + 1, True), max_size=3))
        if draw(st.booleans()):
            return anchor + "[" + ", ".join(items) + "]"
        keys = draw(st.lists(st.sampled_from(_KEYS), min_size=len(items), max_size=len(items)))
        return anchor + "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items)) + "}"
    pad = " " * (indent + 2)
    items = draw(st.lists(_yaml_node(indent + 4, depth + 1), min_size=1, max_size=3))
    if draw(st.booleans()):
        lines = [f"{pad}- {item}" for item in items]
    else:
        lines = [f"{pad}{draw(st.sampled_from(_KEYS))}: {item}" for item in items]
    return anchor.strip() + "\n" + "\n".join(lines)


_yaml_text = st.lists(st.tuples(st.sampled_from(_KEYS), _yaml_node()), min_size=1, max_size=3).map(
    lambda entries: "".join(f"{k}: {v}\n" for k, v in entries)
)


@needs_clib
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_yaml_text)
def test_random_documents_read_the_same_through_both_composers(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, pure = _both(text, monkeypatch)
    assert fast == pure
