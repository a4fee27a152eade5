"""Fuzzing the CLI in process: generated YAML and JSON configs, random bytes and mutated real plans
given to `validate`, `compile-plan`, `diff` and `explain` never give an internal error or a
traceback, and exit with a documented code (0 ok, 1 problems, 2 only for a usage error).

Bounded (few examples, no deadline) so that the whole file runs in well under a minute;
``QPLAN_FUZZ_SCALE=20`` runs twenty times as many examples for a deeper search.
"""

from __future__ import annotations

import copy
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from qplan.cli import main

sys.path.insert(0, str(Path(__file__).parent / "schema"))
from schema_strategies import document

GOLDEN = sorted((Path(__file__).parent / "compiler" / "golden").glob("*.json"))
SCALE = int(os.environ.get("QPLAN_FUZZ_SCALE", "1"))
FUZZ = settings(
    max_examples=40 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> int:
    """Run ``qplan ARGS`` in process and check the invariants every input must keep."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    text = out + err
    assert "internal error" not in text, (args, err)
    assert "Traceback" not in text, (args, err)
    assert code in (0, 1, 2), (args, code)
    if code == 2:  # a usage error, said in a documented form (argparse's for bad arguments)
        documented = ("error[unreadable-file]", *(f"error[{c}]" for c in PLAN_CODES))  # a plan that does not load
        assert err.startswith(("qplan: error:", "usage: qplan")) or any(d in err for d in documented), (args, err)
    return code


PLAN_CODES = ("plan-syntax", "unsupported-plan", "invalid-plan")


# -- generated documents --------------------------------------------------------------------------

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(st.characters(codec=None), max_size=12),  # lone surrogates included
)
_junk = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _mutated_document(draw: st.DrawFn) -> Any:
    """A config document from the schema tests' generator, with a random value swapped for junk."""
    doc = copy.deepcopy(draw(document))  # the strategy shares some values between examples
    node, key = _pick(draw, doc)
    if node is not None:
        node[key] = draw(_junk)
    return doc


def _pick(draw: st.DrawFn, doc: Any) -> tuple[Any, Any]:
    """A random (container, key) inside `doc`, or (None, None) when it has none."""
    places: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            places.append((node, k))
            walk(v)

    walk(doc)
    return draw(st.sampled_from(places)) if places else (None, None)


def _yaml(doc: Any) -> str | None:
    out = io.StringIO()
    try:
        YAML(typ="safe", pure=True).dump(doc, out)
    except Exception:  # a value YAML cannot represent (e.g. a lone surrogate): JSON only
        return None
    return out.getvalue()


_text_edit = st.tuples(
    st.integers(0, 10_000), st.integers(0, 8), st.text("{}[]:,-&*!|>'\"#%@`?/ \n\t\\0aZ", max_size=6)
)


def _edit(text: str, edit: tuple[int, int, str]) -> str:
    at, cut, insert = edit
    at %= len(text) + 1
    return text[:at] + insert + text[at + cut :]


@FUZZ
@given(doc=document | _mutated_document() | _junk, edits=st.lists(_text_edit, max_size=2), ascii=st.booleans())
def test_validate_generated_configs(tmp_path: Path, capsys, doc, edits, ascii) -> None:
    texts = [json.dumps(doc, ensure_ascii=ascii)]
    if (y := _yaml(doc)) is not None:
        texts.append(y)
    for i, text in enumerate(texts):
        for edit in edits:
            text = _edit(text, edit)
        path = tmp_path / f"c{i}.{'json' if i == 0 else 'yaml'}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        assert run(capsys, "validate", str(path)) in (0, 1)
        assert run(capsys, "validate", "--strict", "--format", "json", str(path)) in (0, 1)


@settings(FUZZ, max_examples=12 * SCALE)
@given(doc=document | _mutated_document())
def test_compile_plan_generated_configs(tmp_path: Path, capsys, doc) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "p.json"
    out.unlink(missing_ok=True)
    code = run(capsys, "compile-plan", str(path), "--model", "qplan.models:mlp", "-o", str(out))
    assert code in (0, 1)
    assert out.exists() == (code == 0)


# -- random bytes ---------------------------------------------------------------------------------

_bytes = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=100).map(lambda b: b'{"format": "qplan.plan", ' + b),
    st.binary(max_size=100).map(lambda b: b"quantization_config:\n  " + b),
)


@FUZZ
@given(data=_bytes, address=st.text(max_size=10))
def test_random_bytes(tmp_path: Path, capsys, data: bytes, address: str) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(data)
    assert run(capsys, "validate", str(path)) in (0, 1)
    run(capsys, "explain", str(path), address or "x")
    run(capsys, "diff", str(path), str(GOLDEN[0]))


# -- mutated real plans ---------------------------------------------------------------------------


@st.composite
def _mutated_plan(draw: st.DrawFn) -> tuple[Path, bytes]:
    golden = draw(st.sampled_from(GOLDEN))
    data = golden.read_bytes()
    how = draw(st.sampled_from(["value", "delete", "duplicate", "truncate", "bytes"]))
    if how == "truncate":
        return golden, data[: draw(st.integers(0, len(data) - 1))]
    if how == "bytes":
        at = draw(st.integers(0, len(data) - 1))
        return golden, data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 1 :]
    plan = json.loads(data)
    node, key = _pick(draw, plan)
    if how == "value":
        node[key] = draw(_junk)
    elif how == "delete":
        del node[key]
    elif isinstance(node, list):
        node.insert(key, json.loads(json.dumps(node[key])))
    return golden, json.dumps(plan, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@FUZZ
@given(mutated=_mutated_plan(), address=st.sampled_from(["fc1.weight", "conv.conv2d", "lm_head.weight", "x:out0"]))
def test_mutated_plans(tmp_path: Path, capsys, mutated: tuple[Path, bytes], address: str) -> None:
    golden, data = mutated
    path = tmp_path / "plan.json"
    path.write_bytes(data)
    run(capsys, "explain", str(path), address)
    run(capsys, "diff", str(golden), str(path))
    run(capsys, "diff", str(path), str(path), "--format", "json")
