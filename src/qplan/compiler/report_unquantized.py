"""Pass: no weight left behind in silence (issue 9).

A float parameter of two or more dimensions whose name says it is a weight (``weight``,
``in_proj_weight``, ``weight_ih_l0``) that the plan leaves float, although the module config
governing an op that reads it asks for weights (its ``op_state_spec`` has a spec for
``weight``, directly or through ``"*"``), is an ``unquantized-weight`` warning (an error under
strict) naming the parameter, the reading module and op, and the reason: the op is outside the
op table, it is a known op no op config names, or it reads the parameter through an input
slot rather than a weight slot (``x @ self.weight.T``).

Weights a config declined (a null spec or op config, an explicit null module rule), and weights
another pass already reported (``missing-axis``, ``block-not-divisible``), are not reported.
One diagnostic per parameter, at its first reader.
"""

from __future__ import annotations

from qplan.compiler.inventory import Op
from qplan.compiler.ops import op_class, state_slots
from qplan.compiler.state import ModuleChoice, State, lookup_tensor_spec

__all__ = ["report_unquantized_weights"]


def report_unquantized_weights(state: State) -> State:
    """Report weight-like parameters the plan leaves float where the config asks for weights."""
    placed = {e.address for e in state.entries if e.role == "state"}
    considered = {
        fqn for op in state.inventory.ops for k, fqn in op.states.items() if (op.name, k) in state.state_opinion
    }
    seen: set[str] = set()
    for op in state.inventory.ops:
        for name, fqn in op.states.items():
            if fqn in seen or fqn in placed or fqn in considered or not _weight_like(state, fqn):
                continue
            asked = _asking_rule(state, op.module)
            if asked is None:
                continue
            seen.add(fqn)
            where = f"module `{op.module}`" if op.module else "the root module"
            state.report(
                "unquantized-weight",
                f"weight `{fqn}` stays float: {where} reads it through op `{op.name}` "
                f"(op type `{op.op_type}`), and {_reason(op, name)}",
                asked,
                help=_help(op),
            )
    return state


def _weight_like(state: State, fqn: str) -> bool:
    """A float parameter with 2+ dimensions whose attribute name says weight."""
    shape, _ = state.tensor.get(fqn, ((), ""))
    attr = fqn.rsplit(".", 1)[-1]
    return state.is_float(fqn) and len(shape) >= 2 and "weight" in attr.split("_")


def _asking_rule(state: State, module: str) -> tuple | None:
    """Config path of the `op_state_spec` entry that asks for weights in `module`, or None."""
    choice = _choice_for(state, module)
    rule = choice.rule if choice is not None else None
    if rule is None or rule.config is None:
        return None
    specs = rule.config.op_state_spec
    found = lookup_tensor_spec(specs, ("weight",)) if specs else None
    if found is None or found[1] is None:
        return None
    return (*rule.parts, "op_state_spec", found[0])


def _choice_for(state: State, module: str) -> ModuleChoice | None:
    path = module
    while True:
        choice = state.module_choice.get(path)
        if choice is not None or not path:
            return choice
        path = path.rpartition(".")[0]


def _reason(op: Op, name: str) -> str:
    cls = op_class(op.op_type)
    if cls is None:
        return "that op type is not in the op table, so qplan quantizes nothing of it"
    if cls == "known":
        return "that op type is a known op: it is quantized only when an op_type_config or op_name_config names it"
    if name not in state_slots(op.op_type):
        return (
            f"it reads the parameter as an input (state `{name}`), not through a weight slot; "
            "the default op_state_spec reaches only the op table's weight slots"
        )
    return f"op type `{op.op_type}` is never quantized"  # pragma: no cover - pass-through/ignore ops hold no states


def _help(op: Op) -> str:
    cls = op_class(op.op_type)
    if cls == "known":
        return (
            f"name it in op_type_config (`{op.op_type}: {{op_state_spec: {{weight: ...}}}}`), or decline it with null"
        )
    if cls is None:
        return "use a module qplan knows (nn.Linear, nn.Conv*, nn.Embedding) or decline the weight with null"
    return "give this op an op_name_config with an op_state_spec for this state, or decline it with null"
