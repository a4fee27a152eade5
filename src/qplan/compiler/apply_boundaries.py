"""Pass: module boundary specs (see docs/config-language.md#module-configs-and-the-whole-config for the config, docs/config-language.md#placement-rules for placement).

``module_input_spec`` / ``module_output_spec`` / ``module_state_spec`` belong to the module the
winning rule matched itself (``ModuleChoice.owner``), and override the op-level decisions on
its boundary tensors:

* input ``i`` (the i-th tensor of the flattened positional forward arguments): every read of
  that value inside the module's subtree is served by one fake-quant at ``<module>:in<i>``;
* output ``j`` (the j-th tensor of the flattened forward output): every read outside the
  subtree (and a model output) is served by one fake-quant at ``<module>:out<j>``;
* a directly owned state: its one fake-quant takes this spec (``state_override``).

``null`` declines: those reads become float. Modules are visited in ``named_modules()`` order,
so a nested module's boundary overrides its ancestor's on the reads inside it.
"""

from __future__ import annotations

from qplan.compiler.plan import Decision
from qplan.compiler.state import Opinion, Read, State, concrete_spec, describe_spec, lookup_tensor_spec

__all__ = ["apply_boundaries"]


def apply_boundaries(state: State) -> State:
    """Let module_*_spec override the reads and states at module boundaries; returns the new state."""
    state = state.evolve(reads=dict(state.reads), state_override={})
    for m in state.inventory.modules:
        choice = state.module_choice.get(m.path)
        if choice is None or not choice.owner or choice.rule is None or choice.rule.config is None:
            continue
        cfg = choice.rule.config
        if not cfg.has_module_specs:
            continue
        parts = choice.rule.parts
        # an input spec serves the reads inside the module's subtree, an output spec those outside it
        for field, slot, values, inside in (
            ("module_input_spec", "in", m.inputs, True),
            ("module_output_spec", "out", m.outputs, False),
        ):
            for i, src in enumerate(values):
                found = lookup_tensor_spec(getattr(cfg, field), (str(i),))
                if found is None or src is None:
                    continue
                key, spec, _ = found
                r = state.root.get(src, src)
                readers = [
                    x
                    for x, mod in state.readers_of_root.get(r, ())
                    if (mod is not None and _inside(mod, m.path)) == inside
                ]
                op = Opinion(spec=concrete_spec(spec, "activation"), parts=(*parts, field, key), module=m.path)
                _override(state, f"{m.path}:{slot}{i}", r, readers, op)
        for name, fqn in m.states.items():
            found = lookup_tensor_spec(cfg.module_state_spec, (name,))
            if found is None or not state.is_float(fqn):
                continue
            key, spec = found[0], concrete_spec(found[1], "state")
            state.state_override[fqn] = Opinion(spec=spec, parts=(*parts, "module_state_spec", key), module=m.path)
            state.decisions.append(
                Decision(
                    kind="boundary",
                    subjects=(fqn,),
                    reason=f"`{state.path((*parts, 'module_state_spec', key))}` sets `{fqn}` to {describe_spec(spec)}",
                )
            )
    return state


def _inside(module: str, path: str) -> bool:
    return not path or module == path or module.startswith(path + ".")


def _order(state: State, reader: str) -> tuple[int, int]:
    name, _, slot = reader.rpartition(":")
    if not name:
        return (len(state.inventory.ops), int(slot.removeprefix("out")))
    return (state.op_index[name], int(slot.removeprefix("in")))


def _override(state: State, address: str, root: str, readers: list[str], op: Opinion) -> None:
    if not readers or not state.is_float(root):
        return
    for reader in readers:
        old = state.reads.pop(reader, None)
        if op.spec is None:
            continue
        state.reads[reader] = Read(
            reader=reader,
            root=root,
            opinion=op,
            order=_order(state, reader),
            boundary_address=address,
            extra_beaten=(old.opinion.parts,) if old is not None else (),
            sched_module=op.module,
            fallback_module=op.module,
        )
    what = "read float" if op.spec is None else f"share one {describe_spec(op.spec)} fake-quant at `{address}`"
    state.decisions.append(
        Decision(
            kind="boundary",
            subjects=(address, *readers),
            reason=f"`{state.path(op.parts)}` overrides op-level decisions: {len(readers)} read(s) of `{root}` {what}",
        )
    )
