"""Pass: pick the op config of every op and each tensor's opinion (see docs/config-language.md#how-a-config-is-resolved-against-a-model steps 2-3).

Inside the module config of the module that directly runs the op: ``op_name_config`` (regex
``fullmatch`` against the **full** op name, e.g. ``blocks\\.0\\.attn\\.matmul_1`` or
``.*attn\\.matmul_1``, matched with RE2 in time linear in the name; last declared wins) >
``op_type_config`` (keys normalised through the op table; last declared wins) > the module
config's own ``op_*_spec``. The module's own specs reach only compute and value-preserving ops; known ops (softmax, layer_norm, activations...) are
quantized only when an op name/type entry names them; pass-through ops and ops outside the table
never are. A null module config has no opinion here (``share_weights`` treats an explicit null
rule as declining its weights); a null op config declines every
tensor of the op. Inside the op config, tensor keys resolve explicit key > ``"*"`` > no opinion;
``null`` declines. Integer tensors are never quantized.

States are the op table's state slots (``linear`` ``weight``/``bias``) plus *custom states*:
parameters an op reads through an input slot, named after their attribute (``x * self.scale``
is state ``scale`` of ``mul``; a Llama RMSNorm's ``self.weight * x`` is state ``weight`` of
``mul``). An ``op_state_spec`` equal to the library default (``{"weight": default_weight_spec()}``,
whether omitted or written out) reaches only the table's slots; any other ``op_state_spec``
reaches custom states too. The rule looks at the value only, so a config gives the same plan
whether it comes from a file or from Python.

Reports ``unknown-op-type`` (for every module config), ``reset-to-default`` (an op config that
omits a tensor field its module config changed), for op-level selectors ``unmatched-selector``
and ``shadowed-rule``, and through :mod:`qplan.compiler.tensor_keys` ``unknown-tensor-key`` and
``dead-rule``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qplan.compiler.ops import input_name, is_int_input, op_class, state_slots, suggest, table_op_type
from qplan.compiler.state import (
    FLOAT_DTYPES,
    ModuleChoice,
    Opinion,
    OpRule,
    Parts,
    Rule,
    State,
    concrete_spec,
    lookup_tensor_spec,
)
from qplan.compiler.tensor_keys import KeyReach, output_name, report_tensor_keys
from qplan.schema.patterns import Pattern, compile_pattern
from qplan.schema.types import ModuleQuantizerConfig, OpQuantizerConfig
from qplan.suggest import did_you_mean

__all__ = ["resolve_ops"]

_QUANTIZABLE_BY_MODULE = ("compute", "value_preserving")
_DEFAULT_OP = OpQuantizerConfig()
_FIELDS = ("op_input_spec", "op_output_spec", "op_state_spec")


@dataclass
class _RuleTable:
    """The op-level selectors of one module config, compiled once."""

    names: list[tuple[int, str, Pattern, OpQuantizerConfig | None]]
    types: dict[str, list[tuple[int, str, OpQuantizerConfig | None]]]
    type_keys: list[tuple[int, str, str | None]]  # (index, key, normalised type or None)
    matched: set[tuple[str, int]] = field(default_factory=set)
    won: set[tuple[str, int]] = field(default_factory=set)
    governed_ops: int = 0
    op_names: list[str] = field(default_factory=list)


def resolve_ops(state: State) -> State:
    """Fill ``state.op_rule`` and the per-tensor opinions of every op; returns the new state."""
    state = state.evolve(op_rule={}, in_opinion={}, out_opinion={}, state_opinion={})
    tables: dict[Parts, _RuleTable] = {}
    rules: dict[Parts, Rule] = {}
    reset_checked: set[tuple[Parts, str]] = set()
    reach = KeyReach()
    for op in state.inventory.ops:
        cls = op_class(op.op_type)
        choice = _choice_for(state, op.module)
        if choice.rule is None or choice.rule.config is None:
            continue
        mrule = choice.rule
        table = tables.get(mrule.parts)
        if table is None:
            table = tables[mrule.parts] = _compile(mrule)
            rules[mrule.parts] = mrule
        table.governed_ops += 1
        if len(table.op_names) < 2000:
            table.op_names.append(op.name)
        if cls in (None, "ignore", "pass_through"):
            continue

        matches: list[tuple[str, int, Parts, OpQuantizerConfig | None]] = []
        for i, key, rx, ocfg in reversed(table.names):
            if rx.fullmatch(op.name):
                matches.append(("op_name", i, (*mrule.parts, "op_name_config", key), ocfg))
                table.matched.add(("op_name", i))
        for i, key, ocfg in reversed(table.types.get(op.op_type, ())):
            matches.append(("op_type", i, (*mrule.parts, "op_type_config", key), ocfg))
            table.matched.add(("op_type", i))
        if cls in _QUANTIZABLE_BY_MODULE:
            matches.append(("module", 0, mrule.parts, mrule.config))
        if not matches:
            continue
        for _, _, mparts, mcfg in matches:
            if mcfg is not None:
                reach.add(mparts, mcfg, op)
        level, index, parts, ocfg = matches[0]
        if level != "module":
            table.won.add((level, index))
        beaten = tuple(p for _, _, p, _ in matches[1:]) + tuple(r.parts for r in choice.beaten)
        orule = OpRule(config=ocfg, parts=parts, level=level, beaten=beaten, module=op.module)
        state.op_rule[op.name] = orule
        if level != "module" and ocfg is not None and (parts, level) not in reset_checked:
            reset_checked.add((parts, level))
            _report_resets(state, mrule, orule)
        _tensor_opinions(state, op, orule)

    for parts, table in tables.items():
        _report(state, rules[parts], table)
    _report_unknown_op_types(state)
    report_tensor_keys(state, reach)
    return state


def _report_resets(state: State, mrule: Rule, orule: OpRule) -> None:
    """An op config omitting a tensor field the module config changed restores the default."""
    defaulted = _defaults(state, orule)
    for f in _FIELDS:
        if defaulted[f] and getattr(mrule.config, f) != getattr(_DEFAULT_OP, f):
            # `f` is not written, so the span of (*orule.parts, f) is the op config's own
            state.report(
                "reset-to-default",
                f"`{state.path(orule.parts)}` omits `{f}`, so the ops it matches take the library default "
                f"instead of the value set by `{state.path(mrule.parts)}`",
                (*orule.parts, f),
                help=f"repeat `{f}` in this op config if the module config's value should apply",
            )


def _report_unknown_op_types(state: State) -> None:
    cfg = state.config
    rules: list[tuple[Parts, ModuleQuantizerConfig | None]] = [
        (("quantization_config", "global_config"), cfg.global_config)
    ]
    for level in ("module_type_configs", "module_name_configs"):
        rules += [(("quantization_config", level, k), v) for k, v in getattr(cfg, level).items()]
    for parts, mcfg in rules:
        for key in mcfg.op_type_config if mcfg is not None else ():
            if table_op_type(key) is None:
                state.report(
                    "unknown-op-type",
                    f"op type `{key}` is not in the op table",
                    (*parts, "op_type_config", key),
                    help=suggest(key),
                )


def _choice_for(state: State, module: str) -> ModuleChoice:
    path = module
    while True:
        choice = state.module_choice.get(path)
        if choice is not None:
            return choice
        if not path:
            return ModuleChoice(rule=None, beaten=(), owner=False)
        path = path.rpartition(".")[0]


def _compile(mrule: Rule) -> _RuleTable:
    cfg = mrule.config
    assert cfg is not None, "a null module config has no op-level selectors"
    names = [(i, k, compile_pattern(k), v) for i, (k, v) in enumerate(cfg.op_name_config.items())]
    types: dict[str, list] = {}
    type_keys = []
    for i, (k, v) in enumerate(cfg.op_type_config.items()):
        norm = table_op_type(k)
        type_keys.append((i, k, norm))
        if norm is not None:
            types.setdefault(norm, []).append((i, k, v))
    return _RuleTable(names=names, types=types, type_keys=type_keys)


def _tensor_opinions(state: State, op, orule: OpRule) -> None:
    cfg = orule.config
    if cfg is None:  # a null op config declines every tensor of the op
        decline = Opinion(spec=None, parts=orule.parts, beaten=orule.beaten, module=op.module)
        for i in range(len(op.inputs)):
            state.in_opinion[op.input_address(i)] = decline
        for j, _ in enumerate(op.outputs):
            state.out_opinion[op.output_address(j)] = decline
        for name in op.states:
            state.state_opinion[(op.name, name)] = decline
        return
    defaulted = _defaults(state, orule)
    state_fqns = op.states.values() if op.states else ()
    for i, t in enumerate(op.inputs):
        if t.source is None or t.dtype not in FLOAT_DTYPES or t.source in state_fqns:
            continue
        if is_int_input(op.op_type, i):
            continue
        o = _opinion(cfg, orule, defaulted, op.module, "op_input_spec", (str(i), input_name(op.op_type, i)))
        if o is not None:
            state.in_opinion[op.input_address(i)] = o
    for j, t in enumerate(op.outputs):
        if t.dtype not in FLOAT_DTYPES:
            continue
        o = _opinion(cfg, orule, defaulted, op.module, "op_output_spec", (str(j), output_name(op.op_type, j)))
        if o is not None:
            state.out_opinion[op.output_address(j)] = o
    slots = state_slots(op.op_type)
    for name, fqn in op.states.items():
        if not state.is_float(fqn):
            continue
        if name not in slots and cfg.op_state_spec == _DEFAULT_OP.op_state_spec:
            continue  # custom state (`x * self.scale`, RMSNorm's `weight * x`): the default spec does not reach it
        o = _opinion(cfg, orule, defaulted, op.module, "op_state_spec", (name,))
        if o is not None:
            state.state_opinion[(op.name, name)] = o


def _opinion(cfg, orule: OpRule, defaulted, module: str, fieldname: str, keys) -> Opinion | None:
    """The opinion of the op config `cfg` on one tensor (explicit key > "*" > None)."""
    found = lookup_tensor_spec(getattr(cfg, fieldname), keys)
    if found is None:
        return None
    key, spec, star_beaten = found
    spec = concrete_spec(spec, "state" if fieldname == "op_state_spec" else "activation")
    parts = (*orule.parts, fieldname, key)
    beaten = ((*orule.parts, fieldname, "*"),) + orule.beaten if star_beaten else orule.beaten
    return Opinion(spec=spec, parts=parts, beaten=beaten, defaulted=defaulted[fieldname], module=module)


def _defaults(state: State, orule: OpRule) -> dict[str, bool]:
    """Per tensor field: is it the library default, not written in the file? (once per op config)"""
    key = ("resolve_ops.defaults", orule.parts)
    found = state.cache.get(key)
    if found is None:
        cfg = orule.config
        found = state.cache[key] = {
            f: getattr(cfg, f) == getattr(_DEFAULT_OP, f) and state.spans.get(state.path((*orule.parts, f))) is None
            for f in _FIELDS
        }
    return found


def _report(state: State, mrule: Rule, table: _RuleTable) -> None:
    for i, key, norm in table.type_keys:
        parts = (*mrule.parts, "op_type_config", key)
        if norm is not None:  # unknown op types are reported for every config, governing or not
            _report_one(state, parts, table, "op_type", i, f"op type `{key}`", None)
    for i, key, _, _ in table.names:
        parts = (*mrule.parts, "op_name_config", key)
        hint = did_you_mean(key.replace("\\", ""), table.op_names)
        if hint is None:
            hint = "op names are matched in full (e.g. `blocks.0.attn.matmul_1`); prefix `.*` to match any module"
        _report_one(state, parts, table, "op_name", i, f"op name regex `{key}`", hint)


def _report_one(state: State, parts: Parts, table: _RuleTable, level: str, i: int, what: str, hint) -> None:
    if table.governed_ops == 0:
        return  # the module rule itself governs nothing; module-level diagnostics say so
    if (level, i) not in table.matched:
        state.report(
            "unmatched-selector", f"{what} matched no op governed by `{state.path(parts[:-2])}`", parts, help=hint
        )
    elif (level, i) not in table.won:
        state.report(
            "shadowed-rule",
            f"{what} matches ops but never wins: a later op_name_config/op_type_config entry beats it",
            parts,
            help="remove it, or declare it after the entries that beat it",
        )
