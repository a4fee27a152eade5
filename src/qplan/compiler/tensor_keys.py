"""Every tensor key accounted for: ``unknown-tensor-key`` and ``dead-rule`` (see docs/config-language.md#how-a-config-is-resolved-against-a-model step 3).

A tensor key of an op config (``op_input_spec`` / ``op_output_spec`` / ``op_state_spec`` of a
module config, of an ``op_type_config`` or of an ``op_name_config`` entry) must name a tensor of
some op the config *reaches* (matches, winning or not): an input or output index below the op's
count, an input or output name of the op table (``input``, ``other``, ``output``), or a state the
op reads (the table's slots, or a custom state such as ``scale`` of ``x * self.scale``). Anything
else is ``unknown-tensor-key``, with a did-you-mean. Fields equal to the library default are not
checked: the default ``{weight: ...}`` reaches ops without weights.

``dead-rule`` reports what wins somewhere yet decides no tensor: a module rule whose modules run
no tensor its configs quantize or decline, an op config that wins ops but gives no tensor an
opinion, and a valid tensor key that no tensor looks up, such as ``bias`` on bias-free linears or
a ``"*"`` that explicit keys beat everywhere. Selectors that match nothing or never win are
``unmatched-selector`` / ``shadowed-rule`` instead.

:func:`static_tensor_key_diagnostics` is the model-free part, for ``qplan validate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache

from qplan.compiler.codes import diagnostic
from qplan.compiler.inventory import Op
from qplan.compiler.ops import OP_TABLE, state_slots, suggest, table_op_type
from qplan.compiler.state import Parts, State
from qplan.diagnostics import Diagnostic, Span
from qplan.schema.paths import config_path
from qplan.schema.types import ModuleQuantizerConfig, OpQuantizerConfig, QuantizerConfig
from qplan.suggest import did_you_mean

__all__ = ["KeyReach", "output_name", "report_tensor_keys", "static_tensor_key_diagnostics"]

_FIELDS = ("op_input_spec", "op_output_spec", "op_state_spec")
_DEFAULT_OP = OpQuantizerConfig()
_QC = "quantization_config"


@cache
def output_name(op_type: str, j: int) -> str | None:
    """The op table's name for output `j` of `op_type` (``output`` for most ops), or None."""
    info = OP_TABLE.get(table_op_type(op_type) or "")
    return info.outputs[j] if info is not None and j < len(info.outputs) else None


def _table_names(op_types: Iterable[str], kind: str) -> set[str]:
    return {n for t in op_types for n in getattr(OP_TABLE[t], kind)}


@dataclass
class _Reached:
    """What the ops one op config reaches offer its tensor keys."""

    config: OpQuantizerConfig
    inputs: int = 0  # the largest input count
    outputs: int = 0
    input_names: set[str] = field(default_factory=set)
    output_names: set[str] = field(default_factory=set)
    states: set[str] = field(default_factory=set)
    op_types: set[str] = field(default_factory=set)


@dataclass
class KeyReach:
    """The ops each op config reaches, filled by ``resolve_ops`` (config parts -> what they offer)."""

    reached: dict[Parts, _Reached] = field(default_factory=dict)

    def add(self, parts: Parts, config: OpQuantizerConfig, op: Op) -> None:
        r = self.reached.get(parts)
        if r is None:
            r = self.reached[parts] = _Reached(config)
        if op.op_type not in r.op_types:
            r.op_types.add(op.op_type)
            r.states.update(state_slots(op.op_type))
            info = OP_TABLE.get(table_op_type(op.op_type) or "")
            if info is not None:
                r.input_names.update(info.inputs)
                r.output_names.update(info.outputs[: len(op.outputs)])
        r.inputs = max(r.inputs, len(op.inputs))
        r.outputs = max(r.outputs, len(op.outputs))
        r.states.update(op.states)


def report_tensor_keys(state: State, reach: KeyReach) -> None:
    """Report ``unknown-tensor-key`` and ``dead-rule`` once ``resolve_ops`` has filled the opinions."""
    used = _used_parts(state)
    prefixes = _prefixes(used)
    won = {r.parts for r in state.op_rule.values()}
    for parts, r in reach.reached.items():
        for fname in _FIELDS:
            specs = getattr(r.config, fname)
            if specs == getattr(_DEFAULT_OP, fname):
                continue  # the library default (`weight` on ops without weights, say) is not the user's key
            for key in specs:
                kparts = (*parts, fname, key)
                problem = _unknown(fname, key, r)
                if problem is not None:
                    state.report("unknown-tensor-key", problem[0], kparts, help=problem[1])
                elif parts in won and kparts not in used:
                    state.report(
                        "dead-rule",
                        f"{fname} key `{key}` decides no tensor: {_why_dead(key, r)}",
                        kparts,
                        help="remove the key, or check which tensors the ops it reaches have",
                    )
        if parts in won and parts not in prefixes and parts[-2] in ("op_type_config", "op_name_config"):
            state.report(
                "dead-rule",
                f"op config `{state.path(parts)}` wins ops ({_types(r)}) but decides no tensor of them",
                parts,
                help="remove it, or give it tensor keys that name tensors of these ops",
            )
    _report_dead_module_rules(state, prefixes)


def _report_dead_module_rules(state: State, prefixes: set[Parts]) -> None:
    seen: set[Parts] = set()
    for choice in state.module_choice.values():
        rule = choice.rule
        if rule is None or rule.level == "global" or rule.parts in seen:
            continue
        seen.add(rule.parts)
        cfg = rule.config
        if cfg is None or cfg.has_module_specs or rule.parts in prefixes:
            continue  # null rules decline weights later; boundary specs are placed later
        state.report(
            "dead-rule",
            f"`{state.path(rule.parts)}` governs modules but decides no tensor: they run no op its "
            "configs quantize or decline",
            rule.parts,
            help="remove the rule, or point it at the modules that run the ops meant",
        )


def _used_parts(state: State) -> set[Parts]:
    used: set[Parts] = set()
    for table in (state.in_opinion, state.out_opinion, state.state_opinion):
        used.update(o.parts for o in table.values())
    return used


def _prefixes(used: set[Parts]) -> set[Parts]:
    out: set[Parts] = set()
    for p in used:
        for n in range(2, len(p) + 1):
            out.add(p[:n])
    return out


def _types(r: _Reached) -> str:
    return ", ".join(f"`{t}`" for t in sorted(r.op_types)[:4]) + (", ..." if len(r.op_types) > 4 else "")


def _unknown(fname: str, key: str, r: _Reached) -> tuple[str, str | None] | None:
    """(message, help) when `key` names no tensor of the ops `r` reaches, else None."""
    if key == "*":
        return None
    if fname == "op_state_spec":
        if key in r.states:
            return None
        choices = sorted(r.states)
        return (
            f"op_state_spec key `{key}` names no state of the ops this config reaches ({_types(r)})",
            did_you_mean(key, choices) or _listing("states", choices),
        )
    count = r.inputs if fname == "op_input_spec" else r.outputs
    what = "input" if fname == "op_input_spec" else "output"
    if key.isdigit():
        index = _index(key)
        if index is None:
            return (
                f"{fname} key `{_clip(key)}` is not an index as qplan writes them",
                f"write indices in ASCII digits without leading zeros, e.g. `{count - 1 if count else 0}`",
            )
        if index < count:
            return None
        return (
            f"{fname} key `{_clip(key)}` is out of range: the ops this config reaches ({_types(r)}) have "
            f"at most {count} {what}{'s' if count != 1 else ''}",
            f"{what} indices run from 0 to {count - 1}" if count else None,
        )
    names = r.input_names if fname == "op_input_spec" else r.output_names
    if key in names:
        return None
    hint = did_you_mean(key, sorted(names)) or _listing(f"{what} names", sorted(names))
    return (f"{fname} key `{_clip(key)}` names no {what} of the ops this config reaches ({_types(r)})", hint)


def _index(key: str) -> int | None:
    """The index a digit key names (a huge one is simply large), or None when no tensor is looked up
    under it: lookups use ``str(i)``, so ``07`` or non-ASCII digits never match."""
    if not key.isascii() or (key.startswith("0") and key != "0"):
        return None
    return int(key) if len(key) < 19 else 1 << 62


def _why_dead(key: str, r: _Reached) -> str:
    if key == "*":
        return "explicit keys beat it for every tensor of the ops it wins"
    return "no op this config wins has such a (floating-point, non-parameter) tensor"


def _listing(what: str, choices: list[str]) -> str:
    return f"the {what} here: " + ", ".join(f"`{c}`" for c in choices) if choices else f"these ops have no {what}"


def _clip(key: str, limit: int = 20) -> str:
    return key if len(key) <= limit else key[: limit - 3] + "..."


# -- model-free checks, for `qplan validate` ---------------------------------------------------------


def static_tensor_key_diagnostics(config: QuantizerConfig, span_of: Callable[[Parts], Span | None]) -> list[Diagnostic]:
    """``unknown-op-type`` for op_type_config keys outside the op table, and ``unknown-tensor-key``
    for tensor keys no op could have, whatever the model: an input or output name the op table
    does not give the op types a config can reach. Indices and state names depend on the model
    (input counts, custom states), so the compiler checks those."""
    out: list[Diagnostic] = []

    def report(code: str, message: str, parts: Parts, hint: str | None) -> None:
        out.append(diagnostic(code, message, path=config_path(parts), span=span_of(parts), help=hint))

    module_types = [k for k, v in OP_TABLE.items() if v.cls in ("compute", "value_preserving")]
    all_types = [k for k, v in OP_TABLE.items() if v.cls != "ignore"]
    for parts, mcfg in _module_configs(config):
        if mcfg is None:
            continue
        _static_keys(parts, mcfg, module_types, report)
        for key, ocfg in mcfg.op_type_config.items():
            oparts = (*parts, "op_type_config", key)
            norm = table_op_type(key)
            if norm is None:
                report("unknown-op-type", f"op type `{key}` is not in the op table", oparts, suggest(key))
            elif ocfg is not None:
                _static_keys(oparts, ocfg, [norm], report)
        for key, ocfg in mcfg.op_name_config.items():
            if ocfg is not None:
                _static_keys((*parts, "op_name_config", key), ocfg, all_types, report)
    return out


def _module_configs(config: QuantizerConfig) -> Iterator[tuple[Parts, ModuleQuantizerConfig | None]]:
    yield (_QC, "global_config"), config.global_config
    for level in ("module_type_configs", "module_name_configs"):
        for k, v in getattr(config, level).items():
            yield (_QC, level, k), v


def _static_keys(parts: Parts, cfg: OpQuantizerConfig, op_types: list[str], report: Callable) -> None:
    for fname, kind in (("op_input_spec", "inputs"), ("op_output_spec", "outputs")):
        names = _table_names(op_types, kind)
        what = kind[:-1]
        for key in getattr(cfg, fname) or ():
            if key != "*" and not key.isdigit() and key not in names:
                report(
                    "unknown-tensor-key",
                    f"{fname} key `{_clip(key)}` is not an {what} name of any op this config can reach",
                    (*parts, fname, key),
                    did_you_mean(key, sorted(names)) or f"{what} keys are indices or the op table's {what} names",
                )
