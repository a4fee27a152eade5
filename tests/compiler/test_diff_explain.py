"""diff and explain as data (compiler/diff.py, compiler/explain.py)."""

from __future__ import annotations

import msgspec
import pytest
from inventories import attn, nested

from qplan.compiler import compile_inventory
from qplan.compiler.diff import diff_plans
from qplan.compiler.explain import ExplainError, explain
from qplan.schema.loader import load_config

W4_ENC = """\
quantization_spec:
  w4: &w4 {dtype: int4, granularity: {type: per_channel}}
quantization_config:
  module_name_configs:
    enc: {op_state_spec: {weight: *w4}}
"""


def _plan(text: str, inv=None):
    return compile_inventory(inv or nested(), load_config(text, name="c.yaml"))


def test_renumbered_ids_are_not_changes():
    a = _plan(W4_ENC)
    # rename every spec id and quantizer id, and reverse the spec table order
    ren = {sid: f"x{n}" for n, sid in enumerate(reversed(list(a.specs)))}
    b = msgspec.structs.replace(
        a,
        specs={ren[k]: v for k, v in reversed(list(a.specs.items()))},
        quantizers=tuple(msgspec.structs.replace(q, spec=ren[q.spec], id=f"z{q.id}") for q in a.quantizers),
    )
    d = diff_plans(a, b)
    assert d.equal and d.summary() == "plans are equal"


def test_changes_are_per_address_and_field_by_field():
    a = _plan("quantization_config: {}\n")
    b = _plan(W4_ENC)
    d = diff_plans(a, b)
    assert not d.equal
    changed = {e.address: {c.field: (c.a, c.b) for c in e.changes} for e in d.entries if e.kind == "changed"}
    assert changed["enc.l0.weight"]["spec.dtype"] == ("int8", "int4")
    assert changed["enc.l0.weight"]["rule"] == (
        "quantization_config.global_config.op_state_spec.weight",
        "quantization_config.module_name_configs.enc.op_state_spec.weight",
    )
    assert "dec.l0.weight" not in changed
    assert d.config and d.config[0].field == "config.sha256"
    assert "changed" in d.summary()


def test_added_and_removed():
    a = _plan("quantization_config: {}\n")
    b = _plan("quantization_config:\n  module_name_configs:\n    dec: {op_input_spec: {'*': {dtype: int4}}}\n")
    d = diff_plans(a, b)
    kinds = {e.address: e.kind for e in d.entries}
    assert kinds["dec.l0.linear:in0"] == "added"
    assert kinds["enc.l1.linear:out0"] == "removed"
    assert d.count("added") == 1 and d.count("removed") == 1
    assert d.decisions_added  # the edge override


def test_explain_a_weight():
    plan = _plan(W4_ENC)
    x = explain(plan, "enc.l0.weight")
    assert x.quantized and [q.address for q in x.entries] == ["enc.l0.weight"]
    q = x.entries[0]
    assert q.provenance.rule == "quantization_config.module_name_configs.enc.op_state_spec.weight"
    assert q.provenance.source == "c.yaml:5"
    assert q.provenance.beaten == ("quantization_config.global_config",)
    assert x.specs[q.spec].dtype == "int4"


def test_explain_a_reader_an_op_and_decisions():
    plan = _plan("quantization_config:\n  module_name_configs:\n    dec: {op_input_spec: {'*': {dtype: int4}}}\n")
    x = explain(plan, "dec.l0.linear:in0")
    assert [q.address for q in x.entries] == ["dec.l0.linear:in0"]
    assert [d.kind for d in x.decisions] == ["edge-override"]
    op = explain(plan, "dec.l0.linear")
    assert {q.address for q in op.entries} == {"dec.l0.linear:in0", "dec.l0.weight", "dec.l0.linear:out0"}


def test_explain_an_unquantized_but_known_address():
    plan = compile_inventory(attn(), load_config("quantization_config: {}\n"))
    x = explain(plan, "attn.softmax:in0")  # reads matmul's output fake-quant
    assert x.quantized and x.entries[0].address == "attn.matmul:out0"


def test_explain_unknown_address_suggests():
    plan = _plan(W4_ENC)
    with pytest.raises(ExplainError, match=r"`enc\.l0\.wieght` is not in the plan; did you mean `enc\.l0\.weight`\?"):
        explain(plan, "enc.l0.wieght")
