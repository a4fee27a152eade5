"""The result of capture: the inventory and, in graph mode, the exported program and its node maps."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from qplan.compiler.capture.common import CaptureError
from qplan.compiler.inventory import Inventory


@dataclass
class Capture:
    """What capture found: the inventory, and in graph mode the exported program and node maps.

    Graph-mode maps (all keyed by docs/config-language.md#names-modules-ops-and-tensors addresses or op names):

    * ``nodes``: op name → the fx node that yields the op's result in ``exported.graph``;
    * ``op_nodes``: op name → all fx nodes of that torch-level call (several when export decomposed it);
    * ``value_nodes``: address (``op:out<j>``, parameter fqn, ``:in<i>``) → the node holding that value;
    * ``input_edges``: ``op:in<i>`` → ``(consumer node, input node)`` pairs: where that input enters
      the op's nodes (the input node may be a pass-through of the source value);
    * ``param_nodes``: parameter/buffer fqn → its placeholder.

    Ops inside ``torch.no_grad()``/``autocast`` blocks have their nodes in the wrapper's
    submodule graph (``node.graph`` is not ``exported.graph``); edges into such a body pass
    through the submodule's placeholders.

    ``param_aliases`` maps every name of a parameter/buffer (tied ones have several) to the fqn
    the inventory uses. ``rebind(gm)`` re-points all maps at ``exported.module()`` (or any
    graph module derived from it that keeps node names), where parameters are ``get_attr`` nodes.
    """

    inventory: Inventory
    mode: str
    exported: torch.export.ExportedProgram | None = None  # graph mode only
    nodes: dict[str, torch.fx.Node] = field(default_factory=dict)
    op_nodes: dict[str, tuple[torch.fx.Node, ...]] = field(default_factory=dict)
    value_nodes: dict[str, torch.fx.Node] = field(default_factory=dict)
    input_edges: dict[str, tuple[tuple[torch.fx.Node, torch.fx.Node], ...]] = field(default_factory=dict)
    param_nodes: dict[str, torch.fx.Node] = field(default_factory=dict)
    param_aliases: dict[str, str] = field(default_factory=dict)

    def rebind(self, gm: torch.fx.GraphModule) -> Capture:
        """A copy whose node maps point into `gm` (matched by node name; parameters by get_attr target)."""
        if self.exported is None:
            raise CaptureError("only a graph-mode capture has nodes to rebind")
        by_name = {n.name: n for n in gm.graph.nodes}
        params: dict[str, torch.fx.Node] = {}
        for n in gm.graph.nodes:
            if n.op == "get_attr" and str(n.target) in self.param_aliases:
                params.setdefault(self.param_aliases[str(n.target)], n)
        sig = self.exported.graph_signature
        lifted = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}  # placeholder name -> target

        def move(n: torch.fx.Node) -> torch.fx.Node:
            target = lifted.get(n.name) if n.op == "placeholder" else None
            if target is not None and self.param_aliases.get(target, target) in params:
                return params[self.param_aliases.get(target, target)]
            if n.name not in by_name:
                raise CaptureError(f"node `{n.name}` is not in the graph module")
            return by_name[n.name]

        return Capture(
            inventory=self.inventory,
            mode=self.mode,
            exported=self.exported,
            nodes={k: move(n) for k, n in self.nodes.items()},
            op_nodes={k: tuple(move(n) for n in ns) for k, ns in self.op_nodes.items()},
            value_nodes={k: move(n) for k, n in self.value_nodes.items()},
            input_edges={k: tuple((move(c), move(x)) for c, x in v) for k, v in self.input_edges.items()},
            param_nodes=params,
            param_aliases=dict(self.param_aliases),
        )
