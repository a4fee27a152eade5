"""Graph mode: insert a plan's fake-quants into the GraphModule of a ``torch.export`` capture.

One ``call_module`` node per plan entry, placed right after the value it fake-quantizes
(an op output, the ``get_attr`` of a parameter, or a model input placeholder); each reader edge is
rewired through it with ``Node.replace_input_with``. Pass-through ops between the value and a
reader (view, reshape, ...) are copied onto the fake-quantized value with ``Graph.node_copy`` so
that readers outside the plan keep reading float. Entries of one qparams group share one module
instance, registered under each entry's name.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping

from torch import fx, nn

from qplan.compiler.inventory import Inventory
from qplan.runtime.match import EntryPlacement, PlanMismatchError

__all__ = ["insert_fake_quants"]


def _flat_outputs(out_node: fx.Node) -> list:
    (vals,) = out_node.args
    return list(vals) if isinstance(vals, (tuple, list)) else [vals]


class _Graph:
    def __init__(self, gm: fx.GraphModule, op_nodes: Mapping[str, str], inv: Inventory):
        self.gm = gm
        self.graph = gm.graph
        self.by_name = {n.name: n for n in self.graph.nodes}
        self.op_nodes = op_nodes  # op name -> node name
        self.inv_ops = {op.name: op for op in inv.ops}
        self.placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        self.output = next(n for n in reversed(self.graph.nodes) if n.op == "output")
        self.attrs: dict[str, list[fx.Node]] = {}
        for n in self.graph.nodes:
            if n.op == "get_attr":
                self.attrs.setdefault(str(n.target), []).append(n)

    def op_node(self, op: str) -> fx.Node:
        name = self.op_nodes.get(op)
        node = self.by_name.get(name) if name is not None else None
        if node is None:
            raise PlanMismatchError(f"op `{op}` has no node in the exported graph")
        return node

    def value(self, address: str | None) -> fx.Node:
        """The node holding the value at ``address`` (op output, parameter, model input)."""
        if address is None:
            raise PlanMismatchError("a plan edge reads an untracked value")
        op, sep, tail = address.rpartition(":")
        if not sep:
            nodes = self.attrs.get(address)
            if not nodes:
                raise PlanMismatchError(f"parameter `{address}` is not read in the exported graph")
            return nodes[0]
        if op == "":
            return self.placeholders[int(tail[2:])]
        node = self.op_node(op)
        j = int(tail[3:])
        getitems = [u for u in node.users if u.op == "call_function" and u.target is operator.getitem]
        if getitems:
            for u in getitems:
                if u.args[1] == j:
                    return u
            raise PlanMismatchError(f"`{address}` has no node in the exported graph")
        if j != 0:
            raise PlanMismatchError(f"`{address}`: op `{op}` has a single output")
        return node


def _replace_occurrence(node: fx.Node, old: fx.Node, new: fx.Node, k: int) -> None:
    """Replace the ``k``-th occurrence of ``old`` among ``node``'s inputs (args then kwargs, flattened)."""
    count = -1

    def sub(a):
        nonlocal count
        if a is old:
            count += 1
            if count == k:
                return new
        return a

    node.args = fx.node.map_aggregate(node.args, sub)
    node.kwargs = fx.node.map_aggregate(node.kwargs, sub)


def insert_fake_quants(
    gm: fx.GraphModule,
    placements: list[EntryPlacement],
    modules: Mapping[str, nn.Module],
    op_nodes: Mapping[str, str],
    inv: Inventory,
) -> fx.GraphModule:
    """Edit ``gm`` in place and return it; ``modules`` maps placement names to fake-quant modules."""
    g = _Graph(gm, op_nodes, inv)
    graph = g.graph
    last_placeholder = g.placeholders[-1] if g.placeholders else None
    for p in placements:
        gm.add_submodule(p.name, modules[p.name])
    copied: list[fx.Node] = []
    for p in placements:
        src = p.entry.source
        src_node = g.value(src)
        after = last_placeholder if src_node.op == "placeholder" else src_node
        with graph.inserting_after(after):
            fq = graph.call_module(p.name, (src_node,))
        fq.meta = dict(src_node.meta)
        fq.meta.pop("nn_module_stack", None)
        fq.meta["qplan_entry"] = p.entry.id
        copies: dict[str, fx.Node] = {}  # pass-through node name -> copy reading the fake-quantized value
        for i, r in enumerate(p.readers):
            if r.kind == "state":
                consumer = g.op_node(r.op)
                olds = [a for a in consumer.all_input_nodes if a.op == "get_attr" and a.target == src]
                if not olds:
                    raise PlanMismatchError(f"`{r.op}` does not read `{src}` in the exported graph")
                for old in olds:
                    consumer.replace_input_with(old, fq)
                continue
            new = _through_chain(g, fq, src_node, p.chains[i], copies)
            old = g.value(inv.outputs[r.index]) if r.kind == "output" else None
            if r.kind == "output":
                vals = _flat_outputs(g.output)
                if vals[r.index] is not old:
                    raise PlanMismatchError(f"model output {r.index} is not `{inv.outputs[r.index]}` in the graph")
                _replace_occurrence(g.output, old, new, sum(1 for v in vals[: r.index] if v is old))
                continue
            consumer = g.op_node(r.op)
            op = g.inv_ops[r.op]
            read_from = op.inputs[r.index].source
            old = g.value(read_from)
            same = [k for k, t in enumerate(op.inputs) if t.source == read_from]
            _replace_occurrence(consumer, old, new, same.index(r.index))
        copied.extend(g.by_name[name] for name in copies)
    # originals of copied pass-through ops left without users are erased, last first
    order = {n: k for k, n in enumerate(graph.nodes)}
    for orig in sorted(set(copied), key=order.__getitem__, reverse=True):
        if not orig.users:
            graph.erase_node(orig)
    graph.lint()
    gm.recompile()
    return gm


def _through_chain(
    g: _Graph, fq: fx.Node, src_node: fx.Node, chain: tuple[str, ...], copies: dict[str, fx.Node]
) -> fx.Node:
    """Apply ``chain``'s pass-through ops to the fake-quantized value, copying each node once.

    ``copies`` maps original node names to their copies; a multi-output op (split, chunk) is copied
    with the ``getitem`` that selects the chain's output.
    """
    prev_orig, prev_new = src_node, fq
    for address in chain:
        op_node = g.op_node(address.rpartition(":")[0])
        value = g.value(address)
        for orig in (op_node, value) if value is not op_node else (op_node,):
            new = copies.get(orig.name)
            if new is None:
                with g.graph.inserting_after(orig):
                    new = g.graph.node_copy(orig, lambda n, a=prev_orig, b=prev_new: b if n is a else n)
                copies[orig.name] = new
            prev_orig, prev_new = orig, new
    return prev_new


def fake_quant_nodes(gm: fx.GraphModule) -> list[fx.Node]:
    """The fake-quant ``call_module`` nodes of a prepared GraphModule, in graph order."""
    return [n for n in gm.graph.nodes if n.op == "call_module" and "qplan_entry" in n.meta]

