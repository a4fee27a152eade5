"""Graph mode: insert a plan's fake-quants into the GraphModule of a ``torch.export`` capture.

The prepared model is ``capture.exported.module()`` edited through fx's API only. One
``call_module`` node per plan entry is placed right after the value it fake-quantizes (an op
output, the ``get_attr`` of a parameter, or a model input placeholder), and each reader edge is
rewired through it (``Node.replace_input_with`` / ``Node.update_arg``). The capture's
``input_edges`` say where each op input enters the graph; when a reader reads the value through
pass-through nodes (view, reshape, getitem of a split, ...), those nodes are copied onto the
fake-quantized value with ``Graph.node_copy`` so that readers outside the plan keep reading float.
Entries of one qparams group share one module instance, registered under each entry's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from qplan.runtime.match import EntryPlacement, PlanMismatchError

__all__ = ["insert_fake_quants", "fake_quant_nodes", "sink_fake_quants", "bind_training_flags", "ENTRY_META"]

ENTRY_META = "qplan_entry"  # node.meta key holding the plan entry id of a fake-quant node


class _Graph:
    """Maps the capture's (exported-program) nodes and addresses onto the unlifted GraphModule."""

    def __init__(self, gm: fx.GraphModule, cap: Any):
        self.gm = gm
        self.graph = gm.graph
        self.cap = cap
        self.by_name = {n.name: n for n in self.graph.nodes}
        sig = cap.exported.graph_signature
        self.ep_attr: dict[str, str] = {
            **sig.inputs_to_parameters,
            **sig.inputs_to_buffers,
            **getattr(sig, "inputs_to_lifted_tensor_constants", {}),
        }
        self.ep_user = {name: i for i, name in enumerate(sig.user_inputs)}
        self.placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        self.output = next(n for n in reversed(self.graph.nodes) if n.op == "output")
        # get_attr nodes by every name of their tensor (tied parameters have several names, and
        # export may pick another one than capture's canonical first name)
        names: dict[int, list[str]] = {}
        for fqn, held in [*gm.named_parameters(remove_duplicate=False), *gm.named_buffers(remove_duplicate=False)]:
            names.setdefault(id(held), []).append(fqn)
        self.attrs: dict[str, fx.Node] = {}
        self.aliases: dict[fx.Node, list[fx.Node]] = {}  # get_attr node -> all get_attr nodes of its tensor
        by_tensor: dict[int, list[fx.Node]] = {}
        for n in self.graph.nodes:
            if n.op == "get_attr":
                target = str(n.target)
                t: Any
                try:
                    t = gm.get_parameter(target)
                except AttributeError:
                    t = getattr(gm, target, None) if "." not in target else None
                    if t is None:
                        try:
                            t = gm.get_buffer(target)
                        except AttributeError:
                            t = None
                for alias in names.get(id(t), [target]) if t is not None else [target]:
                    self.attrs.setdefault(alias, n)
                by_tensor.setdefault(id(t) if t is not None else id(n), []).append(n)
        for nodes in by_tensor.values():
            for n in nodes:
                self.aliases[n] = nodes

    def node(self, ep_node: fx.Node) -> fx.Node:
        """The GraphModule node of an exported-program node."""
        fqn = self.ep_attr.get(ep_node.name)
        if fqn is not None:
            n = self.attrs.get(fqn)
        elif ep_node.name in self.ep_user:
            n = self.placeholders[self.ep_user[ep_node.name]]
        else:
            n = self.by_name.get(ep_node.name)
        if n is None:
            raise PlanMismatchError(f"node `{ep_node.name}` of the capture is not in the prepared graph")
        return n

    def value(self, address: str) -> fx.Node:
        ep_node = self.cap.value_nodes.get(address)
        if ep_node is None:
            raise PlanMismatchError(f"`{address}` has no node in the exported graph")
        return self.node(ep_node)


def _leaves(node: fx.Node) -> list[Any]:
    out: list[Any] = []
    fx.node.map_aggregate((node.args, node.kwargs), lambda a: out.append(a))
    return out


def _positions(node: fx.Node, old: fx.Node) -> list[int]:
    """Flat positions (args then kwargs) where ``node`` reads ``old``."""
    return [i for i, a in enumerate(_leaves(node)) if a is old]


def _replace_at(node: fx.Node, pos: int, new: fx.Node) -> None:
    """Make ``node`` read ``new`` at flat argument position ``pos``."""
    count = -1

    def sub(a: Any) -> Any:
        nonlocal count
        count += 1
        return new if count == pos else a

    for i, a in enumerate(node.args):
        b = fx.node.map_aggregate(a, sub)
        if b is not a and b != a:
            node.update_arg(i, b)
    for key, a in node.kwargs.items():
        b = fx.node.map_aggregate(a, sub)
        if b is not a and b != a:
            node.update_kwarg(key, b)


def _path(start: fx.Node, src: fx.Node, where: str) -> list[fx.Node]:
    """Nodes from just after ``src`` to ``start``, following each node's first argument."""
    path: list[fx.Node] = []
    cur = start
    while cur is not src:
        path.append(cur)
        first = cur.args[0] if cur.args else None
        if not isinstance(first, fx.Node) or len(path) > 256:
            raise PlanMismatchError(f"`{where}` does not read the plan's source through pass-through ops")
        cur = first
    path.reverse()
    return path


def _swap(old: fx.Node, new: fx.Node) -> Callable[[fx.Node], fx.Node]:
    """An argument transform for ``Graph.node_copy``: ``old`` read as ``new``."""
    return lambda n: new if n is old else n


def _through(
    graph: fx.Graph, fq: fx.Node, src: fx.Node, path: list[fx.Node], copies: dict[fx.Node, fx.Node]
) -> fx.Node:
    """Copy the pass-through ``path`` onto the fake-quantized value (each node once per entry)."""
    prev_orig, prev_new = src, fq
    for orig in path:
        new = copies.get(orig)
        if new is None:
            with graph.inserting_after(orig):
                new = graph.node_copy(orig, _swap(prev_orig, prev_new))
            copies[orig] = new
        prev_orig, prev_new = orig, new
    return prev_new


def _edge_positions(g: _Graph, cap: Any) -> dict[str, list[tuple[fx.Node, fx.Node, int]]]:
    """Op input address -> (consumer, input node, flat argument position); the k-th input of an op
    that enters a consumer from one node takes that node's k-th position in the consumer."""
    edge_at: dict[str, list[tuple[fx.Node, fx.Node, int]]] = {}
    seen: dict[tuple[fx.Node, fx.Node], int] = {}
    for addr, edges in cap.input_edges.items():
        for consumer, inp in edges:
            c, n = g.node(consumer), g.node(inp)
            k = seen.get((c, n), 0)
            seen[(c, n)] = k + 1
            pos = _positions(c, n)
            edge_at.setdefault(addr, []).append((c, n, pos[min(k, len(pos) - 1)]))
    return edge_at


def insert_fake_quants(
    gm: fx.GraphModule, placements: list[EntryPlacement], modules: Mapping[str, nn.Module], cap: Any
) -> fx.GraphModule:
    """Edit ``gm`` (``cap.exported.module()``) in place and return it.

    ``modules`` maps placement names to fake-quant modules; ``cap`` is the graph-mode
    :class:`~qplan.compiler.capture.Capture` the placements were resolved against.
    """
    g = _Graph(gm, cap)
    graph = g.graph
    last_placeholder = g.placeholders[-1] if g.placeholders else None
    edge_at = _edge_positions(g, cap)
    for p in placements:
        gm.add_submodule(p.name, modules[p.name])
    copied: set[fx.Node] = set()
    for p in placements:
        src = g.value(p.entry.source)
        alias = g.aliases.get(src, [src])
        after = last_placeholder if src.op == "placeholder" else alias[-1]
        with graph.inserting_after(after):
            fq = graph.call_module(p.name, (src,))
        fq.meta = {k: v for k, v in src.meta.items() if k in ("val", "tensor_meta")}
        fq.meta[ENTRY_META] = p.entry.id
        copies: dict[fx.Node, fx.Node] = {}
        for r, address in zip(p.readers, p.entry.readers, strict=True):
            if r.kind == "state":
                users = [g.node(n) for n in cap.op_nodes.get(r.op, ())]
                hit = False
                for consumer in users:
                    for a in alias:
                        if a in consumer.all_input_nodes:
                            consumer.replace_input_with(a, fq)
                            hit = True
                if not hit:
                    raise PlanMismatchError(f"`{r.op}` does not read `{p.entry.source}` in the exported graph")
            elif r.kind == "output":
                leaves = _leaves(g.output)
                at = [i for i, a in enumerate(leaves) if isinstance(a, fx.Node)][r.index]
                old = leaves[at]
                new = fq if old in alias else _through(graph, fq, src, _path(old, src, address), copies)
                _replace_at(g.output, at, new)
            else:
                edges = edge_at.get(address)
                if not edges:
                    raise PlanMismatchError(f"`{address}` has no edge in the exported graph")
                for consumer, inp, at in edges:
                    new = fq if inp in alias else _through(graph, fq, src, _path(inp, src, address), copies)
                    _replace_at(consumer, at, new)
        copied.update(copies)
    # originals of copied pass-through nodes left without users are erased, last first
    order = {n: k for k, n in enumerate(graph.nodes)}
    for orig in sorted(copied, key=order.__getitem__, reverse=True):
        if not orig.users:
            graph.erase_node(orig)
    graph.lint()
    gm.recompile()
    return gm


def sink_fake_quants(gm: fx.GraphModule) -> int:
    """Move every fake-quant node down to just before its first user; returns how many moved.

    Export puts every parameter's ``get_attr`` at the top of the graph, so the weight fake-quants
    inserted after them would all run before the first layer and keep every quantized weight alive
    at once. Run just before their consumer, each is computed while its input and output are still
    in cache. Moving a node later, but before all its users, keeps the graph topologically sorted.
    Nodes of a shared module (a qparams group) stay put: their observers see the calls in order.
    """
    order = {n: k for k, n in enumerate(gm.graph.nodes)}
    nodes = fake_quant_nodes(gm)
    calls: dict[int, int] = {}
    for node in nodes:
        key = id(gm.get_submodule(str(node.target)))
        calls[key] = calls.get(key, 0) + 1
    moved = 0
    for node in nodes:
        if not node.users or calls[id(gm.get_submodule(str(node.target)))] > 1:
            continue
        first = min(node.users, key=order.__getitem__)
        if node.next is not first:
            first.prepend(node)
            moved += 1
    if moved:
        gm.graph.lint()
        gm.recompile()
    return moved


def fake_quant_nodes(gm: fx.GraphModule) -> list[fx.Node]:
    """The fake-quant ``call_module`` nodes of a prepared GraphModule, in graph order."""
    return [n for n in gm.graph.nodes if n.op == "call_module" and ENTRY_META in n.meta]


class TrainEvalDropout(nn.Module):
    """A captured dropout that follows the prepared model's ``train()``/``eval()`` state."""

    def __init__(self, fn: Any, p: float):
        super().__init__()
        self.fn = fn
        self.p = p

    def forward(self, x: Any) -> Any:
        return self.fn(x, self.p, self.training)


class TrainEvalBatchNorm(nn.Module):
    """A captured (not folded) batch norm that follows ``train()``/``eval()``."""

    def __init__(self, momentum: float, eps: float):
        super().__init__()
        self.momentum = momentum
        self.eps = eps

    def forward(self, x: Any, weight: Any, bias: Any, mean: Any, var: Any) -> Any:
        return F.batch_norm(x, mean, var, weight, bias, self.training, self.momentum, self.eps)


def bind_training_flags(gm: fx.GraphModule) -> int:
    """Make the captured dropout and batch-norm nodes follow ``gm.train()``/``gm.eval()``.

    ``torch.export`` records the training flag of these ops as a constant; each node is replaced,
    once at prepare, by a ``call_module`` to a parameter-free module that reads ``self.training``,
    so mode switches stay a flag flip. Returns the number of nodes replaced.
    """
    aten = torch.ops.aten
    dropouts = {
        aten.dropout.default: F.dropout,
        aten.feature_dropout.default: F.dropout2d,
        aten.alpha_dropout.default: F.alpha_dropout,
    }
    graph = gm.graph
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in dropouts and len(node.args) >= 2:
            mod: nn.Module = TrainEvalDropout(dropouts[node.target], float(node.args[1]))
            args: tuple = (node.args[0],)
        elif node.target is aten.batch_norm.default and len(node.args) >= 8:
            x, w, b, mean, var, _, momentum, eps = node.args[:8]
            if not isinstance(mean, fx.Node) or not isinstance(var, fx.Node):
                continue
            mod, args = TrainEvalBatchNorm(float(momentum), float(eps)), (x, w, b, mean, var)
        else:
            continue
        name = f"qplan_mode_{node.name}"
        gm.add_submodule(name, mod)
        with graph.inserting_before(node):
            new = graph.call_module(name, args)
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        count += 1
    if count:
        graph.lint()
        gm.recompile()
    return count
