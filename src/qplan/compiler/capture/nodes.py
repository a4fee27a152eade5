"""fx node helpers of graph capture: node values, torch-level call groups, wrappers, module paths."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import torch

from qplan.compiler.capture.common import InventoryBuilder
from qplan.compiler.ops import normalize_op_type


def node_value(node: Any) -> Any:
    """The (fake) value export recorded for an fx node; None for anything else."""
    return node.meta.get("val") if isinstance(node, torch.fx.Node) else None


def is_tensor_node(node: Any) -> bool:
    """Whether `node` is an fx node holding a tensor."""
    return isinstance(node_value(node), torch.Tensor)


def flat_nodes(x: Any) -> Iterator[Any]:
    """The leaves of a node argument (nested lists/tuples flattened)."""
    if isinstance(x, (list, tuple)):
        for y in x:
            yield from flat_nodes(y)
    else:
        yield x


def _group_key(node: torch.fx.Node) -> Any:
    """The torch function that emitted `node` (nodes with one key form one call), or None."""
    fn = node.meta.get("torch_fn")
    return tuple(fn) if fn else None


def call_groups(graph: torch.fx.Graph) -> list[list[torch.fx.Node]]:
    """call_function nodes grouped into torch-level calls (consecutive nodes with one torch_fn)."""
    groups: list[list[torch.fx.Node]] = []
    owner: dict[torch.fx.Node, list[torch.fx.Node]] = {}
    last_key: Any = None
    for node in graph.nodes:
        if node.op != "call_function":
            last_key = None
            continue
        if node.target is operator.getitem and node.args and node.args[0] in owner:
            owner[node.args[0]].append(node)
            owner[node] = owner[node.args[0]]
            continue
        key = _group_key(node) if wrapped_subgraph(node) is None else object()
        if key is not None and key == last_key and groups:
            groups[-1].append(node)
        else:
            groups.append([node])
        owner[node] = groups[-1]
        last_key = key
    return groups


_WRAPPERS = ("wrap_with_set_grad_enabled", "wrap_with_autocast")


def wrapped_subgraph(node: torch.fx.Node) -> tuple[int, str] | None:
    """(operand start, submodule name) for export's grad-mode/autocast wrappers, else None.

    ``with torch.no_grad():`` and ``with torch.autocast(...):`` blocks become higher-order ops
    whose body is a submodule (``wrap_with_set_grad_enabled(False, submod_1, *operands)``).
    """
    if node.op != "call_function" or not isinstance(node.target, torch._ops.HigherOrderOperator):
        return None
    if getattr(node.target, "__name__", str(node.target)) not in _WRAPPERS:
        return None
    for i, a in enumerate(node.args):
        if isinstance(a, torch.fx.Node) and a.op == "get_attr":
            return i + 1, str(a.target)
    return None


def module_of(node: torch.fx.Node, builder: InventoryBuilder) -> str:
    """The canonical path of the innermost module that emitted `node` ("" = root)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    fqn = list(stack.values())[-1][0]
    fqn = fqn.replace("L['self'].", "").replace("L__self__.", "")
    if fqn in ("L['self']", "L__self__"):
        fqn = ""
    return builder.alias_path.get(fqn, fqn)


def group_op_type(group: list[torch.fx.Node]) -> tuple[str, str]:
    """(op type, target) of a group: the torch function's name, else the aten overload's."""
    fn = group[0].meta.get("torch_fn")
    main = next((n for n in group if not is_getitem(n)), group[0])
    aten = str(main.target)
    if fn and not fn[1].startswith("OpOverload"):  # OpOverload: an aten op called directly
        raw = fn[1].rsplit(".", 1)[-1]
        return normalize_op_type(raw) or raw, aten
    return normalize_op_type(aten) or aten, aten


def is_getitem(node: torch.fx.Node) -> bool:
    """Whether `node` picks one result of a multi-output node."""
    return node.target is operator.getitem
