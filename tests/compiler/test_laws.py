"""Laws of the compiler, checked with hypothesis on random configs over hand-built models.

* determinism: the same inputs give byte-identical plans;
* a rule that matches nothing changes nothing but its own `unmatched-selector` diagnostic;
* adding a module_name_configs entry changes only tensors inside the matched subtrees;
* diff(p, p) is empty, and diff is antisymmetric (added <-> removed).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inventories import concat, nested, views

from qplan.compiler import compile_inventory
from qplan.compiler.diff import diff_plans
from qplan.compiler.plan import encode_plan
from qplan.compiler.state import State
from qplan.schema.types import (
    ModuleQuantizerConfig,
    PerChannelGranularity,
    QATSchedule,
    QuantizationSpec,
    QuantizerConfig,
)

MODELS = {"nested": nested(), "views": views(), "concat": concat()}
REGEXES = ["enc", "enc\\..*", "dec.*", "enc\\.l0", ".*l1", "dec\\.l0", "fc[02]", "a|c", "b", ".*"]

act_specs = st.sampled_from(
    [QuantizationSpec(), QuantizationSpec(dtype="int4"), QuantizationSpec(dtype="uint8", qscheme="asymmetric")]
)
weight_specs = st.sampled_from([QuantizationSpec(granularity=PerChannelGranularity()), QuantizationSpec(dtype="int4")])


def tensor_dict(specs):
    return st.one_of(
        st.just(None), st.just({}), st.builds(lambda s: {"*": s}, specs), st.builds(lambda s: {"0": s}, specs)
    )


@st.composite
def module_configs(draw):
    kwargs = {}
    if draw(st.booleans()):
        kwargs["op_input_spec"] = draw(tensor_dict(act_specs))
    if draw(st.booleans()):
        kwargs["op_output_spec"] = draw(tensor_dict(act_specs))
    if draw(st.booleans()):
        kwargs["op_state_spec"] = draw(st.one_of(st.just(None), st.builds(lambda s: {"weight": s}, weight_specs)))
    if draw(st.booleans()):
        kwargs["qat_schedule"] = QATSchedule(enable_fake_quant=draw(st.integers(0, 3)))
    if draw(st.integers(0, 3)) == 0:
        kwargs["op_type_config"] = {draw(st.sampled_from(["linear", "add", "cat"])): None}
    return ModuleQuantizerConfig(**kwargs)


@st.composite
def configs(draw):
    glob = draw(st.one_of(st.none(), module_configs()))
    names = draw(st.dictionaries(st.sampled_from(REGEXES), st.one_of(st.none(), module_configs()), max_size=3))
    return QuantizerConfig(global_config=glob, module_name_configs=names)


def rebuilt(cfg: QuantizerConfig) -> QuantizerConfig:
    return QuantizerConfig.from_dict(cfg.to_dict())


def compile_or_none(model, cfg):
    from qplan.diagnostics import CompileError

    try:
        return compile_inventory(MODELS[model], cfg, check=State.lint)
    except CompileError:
        return None


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(model=st.sampled_from(sorted(MODELS)), cfg=configs())
def test_determinism(model, cfg):
    a = compile_or_none(model, cfg)
    b = compile_or_none(model, rebuilt(cfg))
    if a is None:
        assert b is None
        return
    assert encode_plan(a) == encode_plan(b)
    assert diff_plans(a, b).equal and not diff_plans(a, b).entries


@SETTINGS
@given(model=st.sampled_from(sorted(MODELS)), cfg=configs(), position=st.integers(0, 3), nothing=module_configs())
def test_rule_matching_nothing_changes_nothing(model, cfg, position, nothing):
    before = compile_or_none(model, cfg)
    items = list(cfg.module_name_configs.items())
    items.insert(min(position, len(items)), ("zzz\\.nothing", nothing))
    after = compile_or_none(model, QuantizerConfig(global_config=cfg.global_config, module_name_configs=dict(items)))
    if before is None:
        assert after is None
        return
    assert after.quantizers == before.quantizers
    assert after.specs == before.specs
    assert after.decisions == before.decisions
    extra = [d for d in after.diagnostics if d not in before.diagnostics]
    assert [d.code for d in extra] == ["unmatched-selector"]
    assert len(after.diagnostics) == len(before.diagnostics) + 1


def _inside(module: str, roots: set[str]) -> bool:
    return any(not r or module == r or module.startswith(r + ".") for r in roots)


def _touches(inv, entry: dict | None, address: str, roots: set[str]) -> bool:
    """Does a fake-quant concern a tensor that the subtrees `roots` produce, read or own?

    A tensor is the fake-quant's source value: an op output, a parameter or a model input;
    it is inside when its producer, its owner, or any op reading it is inside."""
    ops = {op.name: op for op in inv.ops}
    owner = {fqn: m.path for m in inv.modules for fqn in m.states.values()}
    readers: dict[str, list[str]] = {}
    for op in inv.ops:
        for t in op.inputs:
            if t.source:
                readers.setdefault(t.source, []).append(op.module)
        for fqn in op.states.values():
            readers.setdefault(fqn, []).append(op.module)
    source = (entry or {}).get("source") or address
    modules = list(readers.get(source, ()))
    producer = ops.get(source.rpartition(":")[0]) if ":" in source else None
    if producer is not None:
        modules.append(producer.module)
    if source in owner:
        modules.append(owner[source])
    return any(_inside(m, roots) for m in modules)


@SETTINGS
@given(model=st.sampled_from(["nested", "views"]), cfg=configs(), key=st.sampled_from(REGEXES), new=module_configs())
def test_adding_a_name_rule_changes_only_its_subtrees(model, cfg, key, new):
    inv = MODELS[model]
    names = {k: v for k, v in cfg.module_name_configs.items() if k != key}
    base = QuantizerConfig(global_config=cfg.global_config, module_name_configs=names)
    before = compile_or_none(model, base)
    after = compile_or_none(
        model, QuantizerConfig(global_config=cfg.global_config, module_name_configs={**names, key: new})
    )
    if before is None or after is None:
        return
    rx = re.compile(key)
    roots = {m.path for m in inv.modules if rx.fullmatch(m.path)}
    d = diff_plans(before, after)
    if not roots:
        assert d.equal
    for e in d.entries:
        if e.kind == "changed":
            old = {q.address: q for q in before.quantizers}[e.address]
            flat = {"source": old.source, "readers": old.readers}
        else:
            flat = e.entry
        assert _touches(inv, flat, e.address, roots), (e.address, e.kind, e.changes, roots)


@SETTINGS
@given(model=st.sampled_from(sorted(MODELS)), a=configs(), b=configs())
def test_diff_laws(model, a, b):
    pa, pb = compile_or_none(model, a), compile_or_none(model, b)
    if pa is None or pb is None:
        return
    assert diff_plans(pa, pa).equal and not diff_plans(pa, pa).entries
    ab, ba = diff_plans(pa, pb), diff_plans(pb, pa)
    assert sorted(e.address for e in ab.entries if e.kind == "added") == sorted(
        e.address for e in ba.entries if e.kind == "removed"
    )
    assert ab.equal == ba.equal
    if pa.quantizers == pb.quantizers and pa.specs == pb.specs and pa.decisions == pb.decisions:
        assert ab.equal
    if not ab.equal:
        assert encode_plan(pa) != encode_plan(pb)
