"""Plans are a validated format: the shipped JSON Schema, and load_plan's checks (types, spec rules,
unique entries, references), with errors naming the file, the line and the JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qplan.cli import main
from qplan.compiler.diff import diff_plans
from qplan.compiler.jsonpos import locate, parse_path
from qplan.compiler.plan import PlanError, decode_plan, encode_plan, load_plan
from qplan.compiler.plan_schema import (
    FIELD_DOCS,
    REGENERATE_PLAN_SCHEMA,
    plan_schema,
    plan_schema_text,
    shipped_plan_schema,
)
from qplan.diagnostics import ConfigError
from qplan.plan_format import PLAN_FORMAT, PLAN_VERSION
from qplan.schema.loader import load_config

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))
SCHEMA = plan_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _golden() -> dict:
    return json.loads(GOLDEN[0].read_text())


def _write(tmp_path: Path, doc: dict | str, name: str = "p.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


def _error(path: Path) -> PlanError:
    with pytest.raises(PlanError) as info:
        load_plan(path)
    return info.value


# -- the schema -------------------------------------------------------------------------------


def test_shipped_plan_schema_is_current() -> None:
    assert shipped_plan_schema() == plan_schema_text(), (
        f"plan.schema.json is stale; regenerate it: {REGENERATE_PLAN_SCHEMA}"
    )


def test_plan_schema_is_valid_carries_its_version_and_describes_every_field() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["format"]["const"] == PLAN_FORMAT
    assert SCHEMA["properties"]["version"]["const"] == PLAN_VERSION
    assert str(PLAN_VERSION) in SCHEMA["title"]
    for name, d in [("Plan", SCHEMA), *SCHEMA["$defs"].items()]:
        for field, prop in d.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    assert set(FIELD_DOCS) <= {"Plan", *SCHEMA["$defs"]}


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_plans_follow_the_schema_and_load(path: Path) -> None:
    assert list(VALIDATOR.iter_errors(json.loads(path.read_text()))) == []
    assert encode_plan(load_plan(path)) == path.read_bytes()


def test_schema_and_loader_refuse_the_same_field_mistakes(tmp_path: Path) -> None:
    for mutate in (
        lambda d: d["specs"]["s0"].update(float_range=[5.0, 1.0]),
        lambda d: d["specs"]["s0"].update(dtype="int9"),
        lambda d: d["specs"]["s0"].update(qparam_calculator="default"),
        lambda d: d["specs"]["s0"].update(flaot_range=[None, None]),
        lambda d: d["quantizers"][0].update(shape=[-1]),
        lambda d: d.update(mode="pt2e"),
        lambda d: d.update(version=PLAN_VERSION + 1),
    ):
        doc = _golden()
        mutate(doc)
        assert list(VALIDATOR.iter_errors(doc)), doc
        with pytest.raises(PlanError):
            load_plan(_write(tmp_path, doc))


def test_cli_schema_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--plan"]) == 0
    assert capsys.readouterr().out == plan_schema_text()
    assert main(["schema", "--plan", "-o", str(tmp_path / "plan.schema.json")]) == 0
    assert json.loads((tmp_path / "plan.schema.json").read_text())["properties"]["format"]["const"] == PLAN_FORMAT


# -- the inputs -------------------------------------------------------------------------


def test_inverted_float_range_is_refused_with_the_config_languages_message(tmp_path: Path) -> None:
    doc = _golden()
    doc["specs"]["s0"]["float_range"] = [5.0, 1.0]
    path = _write(tmp_path, doc)
    e = _error(path)
    d = next(d for d in e.diagnostics if "must be < max" in d.message)
    assert d.code == "invalid-plan" and d.path == "$.specs.s0.float_range" and d.span and d.span.file == str(path)
    assert (d.span.line, d.span.col) == locate(path.read_text(), ("specs", "s0", "float_range"))
    # the same words `qplan validate` gives for the same spec in a config
    with pytest.raises(ConfigError) as config_error:
        load_config("quantization_config: {global_config: {op_input_spec: {'*': {float_range: [5.0, 1.0]}}}}\n")
    assert d.message in str(config_error.value)


def test_duplicated_entry_is_refused_and_diff_reports_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _golden()
    doc["quantizers"].append(copy.deepcopy(doc["quantizers"][1]))
    path = _write(tmp_path, doc, "dup.json")
    e = _error(path)
    q = doc["quantizers"][1]
    n = len(doc["quantizers"]) - 1
    paths = {d.path for d in e.diagnostics}
    assert {f"$.quantizers[{n}].address", f"$.quantizers[{n}].id"} <= paths
    assert f"duplicate quantizer address `{q['address']}`" in str(e)
    # the CLI refuses it too, with the same lines (exit 2), instead of "plans are equal"
    original = _write(tmp_path, _golden(), "a.json")
    assert main(["diff", str(original), str(path)]) == 2
    captured = capsys.readouterr()
    assert "plans are equal" not in captured.out and captured.err == str(e) + "\n"
    # a plan built in Python with a duplicate: diff says so and the plans differ
    plan = decode_plan(original.read_bytes())
    twice = msgspec.structs.replace(plan, quantizers=(*plan.quantizers, plan.quantizers[1]))
    for d in (diff_plans(plan, twice), diff_plans(twice, plan), diff_plans(twice, twice)):
        assert not d.equal and d.duplicates and "plans are equal" not in d.summary()
        assert any(f"address `{q['address']}` is in 2 entries" in x for x in d.duplicates)


def test_edited_format_is_an_unsupported_plan_not_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _golden()
    doc["format"] = "qplan.plan2"
    path = _write(tmp_path, doc)
    e = _error(path)
    assert [d.code for d in e.diagnostics] == ["unsupported-plan"]
    assert "unsupported format `qplan.plan2`" in str(e) and e.diagnostics[0].path == "$.format"
    for argv in (["explain", str(path), "x"], ["diff", str(path), str(path)]):
        assert main(argv) == 2
        assert capsys.readouterr().err == str(e) + "\n"
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().out
    assert "this is a qplan plan" in err and "unknown key" not in err


def test_truncated_plan_names_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = GOLDEN[0].read_text()
    path = _write(tmp_path, text[:500])
    e = _error(path)
    line = text[:500].count("\n") + 1
    assert e.diagnostics[0].code == "plan-syntax" and str(e).startswith(f"{path}:{line}:")
    assert "truncated" in str(e)
    assert main(["explain", str(path), "x"]) == 2
    assert capsys.readouterr().err == str(e) + "\n"
    # the runtime, given the path of a plan cut after its `format`, names the file as well
    from qplan.models import cnn
    from qplan.runtime import Quantizer

    cut = _write(tmp_path, text[: text.index('"quantizers"') + 40], "cut.json")
    with pytest.raises(PlanError, match=r"cut\.json:\d+:\d+: error\[plan-syntax\]"):
        Quantizer(cnn()[0], cut)
    # bytes given to decode_plan name their source too
    with pytest.raises(PlanError, match=r"^plan\.json:3:"):
        decode_plan(b'{\n  "format":\n  }', "plan.json")


# -- the other rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d["quantizers"][0].update(spec="s9"), "$.quantizers[0].spec", "spec id `s9` is not in `specs`"),
        (lambda d: d["quantizers"][0].update(group="g9"), "$.quantizers[0].group", "group `g9` is defined by no"),
        (lambda d: d["quantizers"][0].update(shape=[]), "$.quantizers[0].shape", "out of range for shape []"),
        (lambda d: d["quantizers"][0]["readers"].append("fc"), "$.quantizers[0].readers[2]", "reader `fc` is not"),
        (lambda d: d["quantizers"][0].update(shape=["x"]), "$.quantizers[0].shape[0]", "Expected `int`"),
        (lambda d: d["specs"]["s1"].update(axis="x"), "$.specs.s1.axis", "Expected `int | null`"),
        (lambda d: d["specs"]["s1"].update(dtype="int9"), "$.specs.s1.dtype", "unknown dtype `int9`"),
        (lambda d: d["specs"]["s0"].update(axis=None), "$.specs.s0.axis", "per_channel` needs a resolved axis"),
        (lambda d: d["specs"]["s0"].update(block_size=4), "$.specs.s0.block_size", "takes no block_size"),
        (lambda d: d["specs"]["s1"].update(extra=1), "$.specs.s1", "unknown field `extra`"),
        (lambda d: d.update(mode="pt2e"), "$.mode", "unknown mode `pt2e`"),
        (lambda d: d.update(version=99), "$.version", "plan version `99` is not supported"),
        (lambda d: d.pop("format"), "$", "expected an object with `format"),
        (lambda d: d.pop("version"), "$.version", "plan version `None` is not supported"),
        (
            lambda d: d["specs"]["s1"].update(schedule={"enable_observer": 5, "enable_fake_quant": 1}),
            "$.specs.s1.schedule",
            "enable_fake_quant (1) must be >= enable_observer (5)",
        ),
    ],
)
def test_plan_rules(tmp_path: Path, mutate, path: str, words: str) -> None:
    doc = json.loads((Path(__file__).parent / "golden" / "tied_w4_head.json").read_text())
    mutate(doc)
    e = _error(_write(tmp_path, doc))
    assert any(d.path == path and words in d.message for d in e.diagnostics), str(e)


def test_not_an_object_and_not_json(tmp_path: Path) -> None:
    assert "got a JSON list" in str(_error(_write(tmp_path, "[1, 2]")))
    assert _error(_write(tmp_path, "{'a': 1}")).diagnostics[0].code == "plan-syntax"
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00")
    assert _error(tmp_path / "b.json").diagnostics[0].code == "plan-syntax"


def test_json_paths_and_positions() -> None:
    assert parse_path("$.quantizers[3].spec") == ("quantizers", 3, "spec")
    assert parse_path('$.specs["a b"].axis') == ("specs", "a b", "axis")
    assert parse_path("$.specs[...].axis") is None
    text = '{"a": [1, {"b": 2}],\n "c": {"d": [3]}}'
    assert locate(text, ("a", 1, "b")) == (1, 17)
    assert locate(text, ("c", "d", 0)) == (2, 14)
    assert locate(text, ("c", "missing")) == (2, 7)  # the nearest value that exists


def test_diff_compares_every_field() -> None:
    plan = decode_plan(GOLDEN[0].read_bytes())
    q = plan.quantizers[0]
    prov = msgspec.structs.replace(
        q.provenance, beaten=("quantization_config.x",), defaulted=not q.provenance.defaulted
    )
    other = msgspec.structs.replace(
        plan,
        quantizers=(msgspec.structs.replace(q, provenance=prov), *plan.quantizers[1:]),
        model=msgspec.structs.replace(plan.model, class_name="Other"),
    )
    d = diff_plans(plan, other)
    changed = {c.field for e in d.entries for c in e.changes}
    assert {"provenance.beaten", "provenance.defaulted"} <= changed
    assert [c.field for c in d.plan] == ["model.class_name"]
    # line numbers and ids move with every edit: not differences
    moved = msgspec.structs.replace(
        plan,
        quantizers=tuple(
            msgspec.structs.replace(
                x,
                id=f"z{i}",
                provenance=msgspec.structs.replace(x.provenance, source=(x.provenance.source or "") + "0"),
            )
            for i, x in enumerate(plan.quantizers)
        ),
    )
    assert diff_plans(plan, moved).equal


# -- mutations of real plans: accepted, or PlanError, never another exception ------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _containers(doc):
    yield doc
    for v in doc.values() if isinstance(doc, dict) else doc if isinstance(doc, list) else ():
        yield from _containers(v)


@st.composite
def _mutated(draw) -> bytes:
    doc = json.loads(draw(st.sampled_from(GOLDEN)).read_text())
    for _ in range(draw(st.integers(1, 3))):
        nodes = [v for v in _containers(doc) if isinstance(v, (dict, list)) and v]
        node = draw(st.sampled_from(nodes))
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        action = draw(st.sampled_from(["replace", "delete", "duplicate", "add"]))
        if action == "replace":
            node[key] = draw(_JSON)
        elif action == "delete":
            del node[key]
        elif action == "duplicate" and isinstance(node, list):
            node.append(copy.deepcopy(node[key]))
        elif action == "add" and isinstance(node, dict):
            node[draw(st.text(max_size=6))] = draw(_JSON)
    data = json.dumps(doc, indent=draw(st.sampled_from([None, 2]))).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=4))
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_plans_load_or_raise_plan_error(data: bytes) -> None:
    try:
        plan = decode_plan(data, "mutated.json")
    except PlanError as e:
        assert e.diagnostics and all(d.span and d.span.file == "mutated.json" for d in e.diagnostics)
        return
    assert encode_plan(decode_plan(encode_plan(plan))) == encode_plan(plan)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_random_input_raises_plan_error(data: bytes | str) -> None:
    with pytest.raises(PlanError):
        decode_plan(data)


def test_what_counts_as_a_plan() -> None:
    from qplan.plan_format import looks_like_plan

    assert looks_like_plan({"format": "other"}) and looks_like_plan({"specs": {}, "quantizers": []})
    assert not looks_like_plan({"mode": "graph", "config": {}})  # a config with top-level typos
    assert not looks_like_plan({"format": PLAN_FORMAT, "quantization_config": {}})
    assert not looks_like_plan([PLAN_FORMAT])
