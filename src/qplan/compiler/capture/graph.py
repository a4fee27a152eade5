"""Graph capture: ``torch.export`` the model, then walk the exported graph into an inventory.

Aten nodes are grouped into torch-level calls by ``node.meta["torch_fn"]`` (:mod:`.nodes`), so a
call that export decomposes is still one op; the module path comes from
``node.meta["nn_module_stack"]``. Bodies of ``torch.no_grad()``/``autocast`` wrappers are walked
as if inline. Module boundaries come from hooks active during export (:mod:`.boundaries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from qplan.compiler.capture.boundaries import BoundaryTagger, read_boundaries
from qplan.compiler.capture.common import (
    CallArg,
    CaptureError,
    InventoryBuilder,
    class_path,
    classify_args,
    first_line,
    is_candidate,
    tensor_ref,
    through_source,
)
from qplan.compiler.capture.nodes import (
    call_groups,
    flat_nodes,
    group_op_type,
    is_getitem,
    is_tensor_node,
    module_of,
    node_value,
    wrapped_subgraph,
)
from qplan.compiler.capture.result import Capture
from qplan.compiler.gc_pause import gc_paused
from qplan.compiler.inventory import Op, TensorRef
from qplan.compiler.ops import OP_TABLE, normalize_op_type

__all__ = ["capture_graph"]

Node = torch.fx.Node
TensorOut = tuple[Node | None, Any]  # (the node holding an output tensor, or None; its fake value)


def capture_graph(model: nn.Module, args: tuple, dynamic_shapes: Any = None) -> Capture:
    """Graph capture with the cyclic GC paused: export and the walk allocate many objects, and each
    full collection over them and the model (~0.3 s at 1024 layers) would land in the middle; the
    cyclic garbage export leaves meanwhile is a few MB, collected once the GC is back on.
    ``dynamic_shapes`` is passed to ``torch.export`` (symbolic sizes are recorded as their hints)."""
    with gc_paused():
        builder = InventoryBuilder(model)
        exported = _export(model, args, BoundaryTagger(builder), dynamic_shapes)
        return _GraphWalk(builder, exported).run()


def _export(
    model: nn.Module, args: tuple, tagger: BoundaryTagger, dynamic_shapes: Any = None
) -> torch.export.ExportedProgram:
    """``torch.export`` (non-strict, global RNG restored) with the boundary hooks on; CaptureError on failure."""
    try:
        with torch.random.fork_rng(devices=[]), tagger.active(model):
            return torch.export.export(model, args, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as e:
        raise CaptureError(
            f"torch.export failed for `{class_path(type(model))}`: {_cause(e)}; "
            "help: fix the model for torch.export, or capture with mode `eager`"
        ) from e


def _cause(e: Exception) -> str:
    """What export's error means, in one line (transformers' KV caches get a fix of their own)."""
    text = first_line(e)
    if "Cache" in text and "in output" in text:
        kind = text.split("cache_utils.", 1)[-1].split("'", 1)[0] if "cache_utils." in text else "cache"
        return (
            f"the model returns its KV cache (`{kind}`), which torch.export cannot return; "
            "build the model with `use_cache=False` (`model.config.use_cache = False`)"
        )
    return text


@dataclass(frozen=True)
class _GroupCall:
    """One torch-level call of the exported graph: its nodes, the main and result nodes, its op type."""

    group: list[Node]
    main: Node  # the first node that is not a getitem
    result: Node  # the last node whose value escapes the group
    op_type: str
    target: str  # the main node's aten overload


def _describe_group(group: list[Node]) -> _GroupCall:
    """The :class:`_GroupCall` of a group of nodes (see :func:`~.nodes.call_groups`)."""
    op_type, target = group_op_type(group)
    main = next((n for n in group if not is_getitem(n)), group[0])
    matching = [n for n in group if not is_getitem(n) and normalize_op_type(str(n.target)) == op_type]
    if matching and matching[0] is not main:  # F.embedding_bag: arange, reshape, then embedding_bag
        main, target = matching[0], str(matching[0].target)
    members = set(group)
    result = main
    for n in group:
        if is_getitem(n):
            continue
        if n.op == "output" or _escapes(n, members) or not n.users:
            result = n
    return _GroupCall(group=group, main=main, result=result, op_type=op_type, target=target)


def _escapes(n: Node, members: set[Node]) -> bool:
    """Whether `n`'s value leaves its group, directly or through one of its getitem users."""
    return any(u not in members or (is_getitem(u) and any(v not in members for v in u.users)) for u in n.users)


def _tensor_outputs(result: Node) -> list[TensorOut]:
    """The result's output tensors with the nodes holding them (getitem users for multi-output nodes)."""
    val = node_value(result)
    if isinstance(val, (list, tuple)):
        by_index = {u.args[1]: u for u in result.users if is_getitem(u)}
        pairs: list[TensorOut] = [(by_index.get(j), v) for j, v in enumerate(val)]
    else:
        pairs = [(result, val)]
    return [(nd, v) for nd, v in pairs if isinstance(v, torch.Tensor)]


class _GraphWalk:
    """One walk over an exported program: the source of every node's value, the inventory's op
    records (into the builder) and the capture's node maps."""

    def __init__(self, builder: InventoryBuilder, exported: torch.export.ExportedProgram) -> None:
        self.builder = builder
        self.exported = exported
        self.sources: dict[Node, str | None] = {}
        self.nodes: dict[str, Node] = {}
        self.op_nodes: dict[str, tuple[Node, ...]] = {}
        self.value_nodes: dict[str, Node] = {}
        self.input_edges: dict[str, list[tuple[Node, Node]]] = {}
        self.param_nodes: dict[str, Node] = {}

    def run(self) -> Capture:
        """Walk the whole program (wrapper bodies included) and return the capture."""
        user_inputs = self._read_inputs()
        self._walk(self.exported.graph, self.exported.graph_module)
        read_boundaries(self.builder, self.exported, self._src)
        outputs = self._read_outputs()
        return Capture(
            inventory=self.builder.inventory("graph", tuple(user_inputs), tuple(outputs)),
            mode="graph",
            exported=self.exported,
            nodes=self.nodes,
            op_nodes=self.op_nodes,
            value_nodes=self.value_nodes,
            input_edges={k: tuple(v) for k, v in self.input_edges.items()},
            param_nodes=self.param_nodes,
            param_aliases=dict(self.builder.all_param_names),
        )

    def _src(self, n: Any) -> str | None:
        """The source of the value an argument holds (None for constants and untracked values)."""
        return self.sources.get(n) if isinstance(n, torch.fx.Node) else None

    def _read_inputs(self) -> list[TensorRef]:
        """Sources of the placeholders: parameters/buffers by canonical fqn, tensor user inputs as
        ``:in<i>``; the user inputs' refs in order."""
        placeholders = {n.name: n for n in self.exported.graph.nodes if n.op == "placeholder"}
        user_inputs: list[TensorRef] = []
        for spec in self.exported.graph_signature.input_specs:
            node = _node_of(spec.arg, placeholders)
            if node is None:
                continue
            kind = spec.kind.name
            if kind in ("PARAMETER", "BUFFER") and spec.target is not None:
                fqn = self.builder.all_param_names.get(spec.target, spec.target)
                self.sources[node] = fqn
                if fqn == spec.target or fqn not in self.param_nodes:  # tied: prefer the canonical name
                    self.param_nodes[fqn] = node
                self.value_nodes.setdefault(fqn, node)
            elif kind == "USER_INPUT" and is_tensor_node(node):
                addr = f":in{len(user_inputs)}"
                self.sources[node] = addr
                self.value_nodes[addr] = node
                user_inputs.append(tensor_ref(addr, node_value(node)))
            else:
                self.sources[node] = None
        return user_inputs

    def _read_outputs(self) -> list[str | None]:
        """Sources of the program's tensor user outputs, in order."""
        out_node = next(n for n in self.exported.graph.nodes if n.op == "output")
        out_by_name = {n.name: n for n in flat_nodes(out_node.args[0]) if isinstance(n, torch.fx.Node)}
        outputs: list[str | None] = []
        for spec in self.exported.graph_signature.output_specs:
            if spec.kind.name != "USER_OUTPUT":
                continue
            n = _node_of(spec.arg, out_by_name)
            if n is not None and is_tensor_node(n):
                outputs.append(self._src(n))
        return outputs

    def _walk(self, graph: torch.fx.Graph, owner: torch.fx.GraphModule) -> None:
        """Visit the torch-level calls of `graph` in order, entering wrapper bodies."""
        for group in call_groups(graph):
            wrapped = wrapped_subgraph(group[0])
            if wrapped is not None:
                self._enter(group, owner, *wrapped)
            else:
                self._visit(_describe_group(group))

    def _enter(self, group: list[Node], owner: torch.fx.GraphModule, start: int, target: str) -> None:
        """Walk a wrapper's body as if it were inline: its placeholders alias the operands, the
        wrapper's getitem users alias the body's results."""
        hop = group[0]
        sub = getattr(owner, target)
        placeholders = [n for n in sub.graph.nodes if n.op == "placeholder"]
        for ph, x in zip(placeholders, hop.args[start:]):
            self.sources[ph] = self._src(x)
        self._walk(sub.graph, sub)
        out = next(n for n in sub.graph.nodes if n.op == "output")
        results = list(flat_nodes(out.args[0]))
        for u in group[1:]:
            if is_getitem(u) and isinstance(u.args[1], int) and u.args[1] < len(results):
                self.sources[u] = self._src(results[u.args[1]])

    def _visit(self, call: _GroupCall) -> None:
        """One torch-level call: a pass-through forwards its data input's source to its nodes; a
        candidate with tensor outputs takes the next name and, with a float output, is listed."""
        args = self._call_args(call)
        tensor_outs = _tensor_outputs(call.result)
        info = OP_TABLE.get(call.op_type)
        if info is not None and info.trim_outputs:  # aten's extra results the torch function drops
            tensor_outs = tensor_outs[: len(info.outputs)]
        if info is not None and info.cls == "pass_through":
            for n in call.group:
                if is_tensor_node(n):
                    self.sources[n] = through_source(args[0] if args else None, node_value(n))
            return
        module = module_of(call.main, self.builder)
        if not is_candidate(call.op_type, args) or not tensor_outs:
            return
        name = self.builder.peek_name(module, call.op_type)
        self.builder.commit_name(module, call.op_type)
        if any(v.is_floating_point() for _, v in tensor_outs):
            self._record(call, name, module, args, tensor_outs)

    def _call_args(self, call: _GroupCall) -> list[CallArg]:
        """The call's tensor arguments: named by the schema when the call is one aten node, else
        every tensor entering the group from outside, once and unnamed."""
        main = call.main
        members = set(call.group)
        single = sum(1 for n in call.group if not is_getitem(n)) == 1
        named_main = single or normalize_op_type(str(main.target)) == call.op_type
        if named_main and isinstance(main.target, torch._ops.OpOverload):
            schema = main.target._schema.arguments
            named: list[CallArg] = []
            for i, a in enumerate(main.args):
                named += self._tensor_args(schema[i].name if i < len(schema) else None, a, main, members)
            for key, a in main.kwargs.items():
                named += self._tensor_args(key, a, main, members)
            return named
        seen: set[Node] = set()
        found: list[CallArg] = []
        for n in call.group:
            for x in n.all_input_nodes:
                if x not in members and x not in seen and is_tensor_node(x):
                    seen.add(x)
                    found.append(CallArg(None, self._src(x), node_value(x), (n, x)))
        return found

    def _tensor_args(self, name: str | None, arg: Any, consumer: Node, members: set[Node]) -> list[CallArg]:
        """The tensor nodes of one (possibly list) argument of `consumer`, all under `name`. An
        argument computed inside the call's group (``F.embedding_bag`` flattens 2-D indices with
        ``reshape``) stands for the one tensor entering the group it derives from; one derived from
        none (``arange``) is a value the call made itself, not an argument."""
        found = []
        for x in flat_nodes(arg):
            if not is_tensor_node(x):
                continue
            user = consumer
            if x in members:
                outside = _entering(x, members)
                if len(outside) != 1:
                    continue
                user, x = outside[0]
            found.append(CallArg(name, self._src(x), node_value(x), (user, x)))
        return found

    def _record(self, call: _GroupCall, name: str, module: str, args: list[CallArg], outs: list[TensorOut]) -> None:
        """List the call as op `name`: its outputs' addresses, input edges, node maps and Op record."""
        inputs, states = classify_args(call.op_type, args, self.builder.is_param, self.builder.param_order)
        outputs = []
        for j, (nd, v) in enumerate(outs):
            addr = f"{name}:out{j}"
            outputs.append(tensor_ref(addr, v))
            if nd is not None:
                self.sources[nd] = addr
                self.value_nodes[addr] = nd
        for i, a in enumerate(inputs):
            self.input_edges.setdefault(f"{name}:in{i}", []).append(a.loc)
        self.nodes[name] = call.result
        self.op_nodes[name] = tuple(call.group)
        self.builder.ops.append(
            Op(
                name=name,
                op_type=call.op_type,
                module=module,
                inputs=tuple(tensor_ref(a.source, a.value) for a in inputs),
                states={k: a.source for k, a in states.items() if a.source is not None},
                outputs=tuple(outputs),
                target=call.target,
            )
        )


def _entering(node: Node, members: set[Node]) -> list[tuple[Node, Node]]:
    """(member consuming it, node) for each tensor node from outside `members` that `node` (a
    member) is computed from: the edges where those values enter the group."""
    found: list[tuple[Node, Node]] = []
    stack, seen = [node], {node}
    while stack:
        user = stack.pop()
        for x in user.all_input_nodes:
            if x in seen:
                continue
            seen.add(x)
            if x in members:
                stack.append(x)
            elif is_tensor_node(x):
                found.append((user, x))
    return found


def _node_of(arg: Any, by_name: dict[str, Node]) -> Node | None:
    """The node an export signature argument names, if any."""
    name = getattr(arg, "name", None)
    return by_name.get(name) if isinstance(name, str) else None
