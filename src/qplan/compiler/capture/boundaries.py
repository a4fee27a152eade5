"""Module boundaries in graph capture: forward hooks active during export tag the traced fx nodes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import get_proxy_mode, get_proxy_slot

from qplan.compiler.capture.common import InventoryBuilder, tensor_leaves


class BoundaryTagger:
    """Forward (pre-)hooks active during export: tag the trace-time fx nodes of module boundaries."""

    KEY = "qplan_boundary"

    def __init__(self, builder: InventoryBuilder) -> None:
        self.builder = builder
        self.seen: set[str] = set()
        self._pending: set[str] = set()
        self.handles: list[Any] = []

    def _tag(self, values: Any, path: str, kind: str) -> int:
        """Tag the traced nodes of `values`' tensors with (path, kind, index); the number of tensors."""
        mode = get_proxy_mode()
        tensors = tensor_leaves(values)
        if mode is None:
            return len(tensors)
        for i, t in enumerate(tensors):
            try:
                node = get_proxy_slot(t, mode.tracer).proxy.node
            except Exception:  # not traced (constant): the source stays None
                continue
            node.meta.setdefault(self.KEY, []).append((path, kind, i))
        return len(tensors)

    def pre(self, path: str, args: tuple) -> None:
        """Module `path` starts its first call: tag its inputs."""
        if path in self.seen:
            return
        self.seen.add(path)
        n = self._tag(args, path, "in")
        self.builder.first_call[path] = ((None,) * n, ())
        self._pending.add(path)

    def post(self, path: str, out: Any) -> None:
        """Module `path` ends its first call: tag its outputs."""
        if path not in self._pending:
            return
        self._pending.discard(path)
        n = self._tag(out, path, "out")
        self.builder.first_call[path] = (self.builder.first_call[path][0], (None,) * n)

    @contextlib.contextmanager
    def active(self, model: nn.Module) -> Iterator[None]:
        """The hooks on every module of `model` for the duration of the block."""

        # Plain closures that know their module's path: export may deep-copy the model (it does
        # when a module is registered under two names); a copied hook must still report to us.
        def hooks(path: str) -> tuple[Callable[..., None], Callable[..., None]]:
            def pre(mod: nn.Module, args: tuple) -> None:
                self.pre(path, args)

            def post(mod: nn.Module, args: tuple, out: Any) -> None:
                self.post(path, out)

            return pre, post

        try:
            for mod in model.modules():
                pre, post = hooks(self.builder.module_path[id(mod)])
                self.handles.append(mod.register_forward_pre_hook(pre))
                self.handles.append(mod.register_forward_hook(post))
            yield
        finally:
            for h in self.handles:
                h.remove()
            self.handles.clear()


def read_boundaries(
    builder: InventoryBuilder, exported: torch.export.ExportedProgram, source_of: Callable[[Any], str | None]
) -> None:
    """Set each called module's boundary sources from the tags the hooks left (the tags are removed)."""
    bound: dict[str, tuple[list[str | None], list[str | None]]] = {
        p: (list(i), list(o)) for p, (i, o) in builder.first_call.items()
    }
    all_nodes = [
        n for gm in exported.graph_module.modules() if isinstance(gm, torch.fx.GraphModule) for n in gm.graph.nodes
    ]
    for node in all_nodes:
        for path, kind, i in node.meta.pop(BoundaryTagger.KEY, ()):
            slots = bound[path][0 if kind == "in" else 1]
            if i < len(slots):
                slots[i] = source_of(node)
    builder.first_call = {p: (tuple(i), tuple(o)) for p, (i, o) in bound.items()}
