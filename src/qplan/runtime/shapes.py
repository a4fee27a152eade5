"""Dynamic input dimensions for graph-mode prepare and for finalize.

``prepare`` exports the model with every input dimension of size 2 or more marked ``Dim.AUTO``
(torch.export keeps it symbolic where the model allows, fixes it where the model's code needs one
value), so calibration, training and the finalized program run at any batch size and sequence
length. An example batch of 1 is doubled for the export (torch.export fixes sizes 0 and 1); a user's
``dynamic_shapes`` (torch's convention) is used as given. Afterwards each *batch* dimension (dim 0
of every tensor input) and *sequence* dimension (dim 1 of an integer input of rank 2: token ids,
masks) that came out fixed gets a :class:`QplanShapeWarning` naming the input, the dimension and
the reason torch recorded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils import _pytree as pytree

__all__ = ["QplanShapeWarning", "ShapeSpec", "auto_spec", "user_spec", "dynamic_dims", "warn_fixed"]


class QplanShapeWarning(UserWarning):
    """An input dimension qplan wanted dynamic is fixed to the example's size."""


@dataclass
class ShapeSpec:
    """What to export with: the ``dynamic_shapes`` argument, the example, the dims that should stay dynamic."""

    dynamic_shapes: Any
    args: tuple  # the example to export with (a batch of 1 doubled)
    wanted: dict[tuple[int, int], str] = field(default_factory=dict)  # (flat input, dim) -> "batch"/"sequence"
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # the user's example sizes of `wanted`
    doubled: bool = False
    given: bool = False  # the user's dynamic_shapes


def _tensors(args: tuple) -> list[Any]:
    return pytree.tree_leaves(args)


def _kind(t: torch.Tensor, dim: int) -> str | None:
    if dim == 0:
        return "batch"
    if dim == 1 and t.dim() == 2 and not t.is_floating_point():
        return "sequence"
    return None


def auto_spec(args: tuple) -> ShapeSpec:
    """``Dim.AUTO`` on every dimension of size >= 2; a batch of 1 (every tensor input) is doubled."""
    from torch.export import Dim

    leaves = _tensors(args)
    tensors = [t for t in leaves if isinstance(t, torch.Tensor) and t.dim() > 0]
    double = bool(tensors) and all(t.shape[0] == 1 for t in tensors)
    if double:
        args = pytree.tree_map(lambda t: torch.cat([t, t]) if isinstance(t, torch.Tensor) and t.dim() > 0 else t, args)
    spec = ShapeSpec(dynamic_shapes=None, args=args, doubled=double)
    for k, t in enumerate(leaves):
        if isinstance(t, torch.Tensor):
            for d in range(t.dim()):
                kind = _kind(t, d)
                if kind is not None:
                    spec.wanted[(k, d)] = kind
                    spec.sizes[(k, d)] = int(t.shape[d])

    def dims(t: Any) -> Any:
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            return None
        return {d: Dim.AUTO for d in range(t.dim()) if t.shape[d] >= 2} or None

    spec.dynamic_shapes = tuple(pytree.tree_map(dims, a) for a in args)
    return spec


def user_spec(args: tuple, dynamic_shapes: Any) -> ShapeSpec:
    """The user's ``dynamic_shapes``, as ``torch.export`` takes it, with the example as given."""
    return ShapeSpec(dynamic_shapes=dynamic_shapes, args=args, given=True)


def _user_input_shapes(ep: Any) -> list[tuple[str, Any]]:
    """(name, shape or None) of each flat user input of an exported program, in order."""
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    out: list[tuple[str, Any]] = []
    for s in ep.graph_signature.input_specs:
        if s.kind.name != "USER_INPUT":
            continue
        name = getattr(s.arg, "name", None)
        node = placeholders.get(name) if isinstance(name, str) else None
        val = node.meta.get("val") if node is not None else None
        out.append((str(name), tuple(_concrete(d) for d in val.shape) if isinstance(val, torch.Tensor) else None))
    return out


def _concrete(size: Any) -> Any:
    """``size`` as an int when torch.export fixed it (a symbol replaced by a constant), else the SymInt."""
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    return int(size) if is_concrete_int(size) else size


def dynamic_dims(ep: Any) -> set[tuple[int, int]]:
    """(flat user input, dim) of every symbolic input dimension of an exported program."""
    found: set[tuple[int, int]] = set()
    for k, (_, shape) in enumerate(_user_input_shapes(ep)):
        for d, size in enumerate(shape or ()):
            if type(size) is not int:
                found.add((k, d))
    return found


def _reason(ep: Any, name: str, dim: int, size: int) -> str:
    """Where torch.export fixed ``name.size()[dim]``, from the shape environment's replacements."""
    env = None
    for n in ep.graph.nodes:
        val = n.meta.get("val")
        mode = getattr(val, "fake_mode", None)
        if mode is not None and mode.shape_env is not None:
            env = mode.shape_env
            break
    if env is None:
        return f"the model's code needs size {size}"
    for sym, sloc in getattr(env, "replacements_slocs", {}).items():
        for src in env.var_to_sources.get(sym, ()):
            base = getattr(src, "base", None)
            if getattr(src, "idx", None) == dim and getattr(base, "local_name", None) == name:
                return f"the model's code needs size {size} (torch.export fixed it at {sloc})"
    return f"the model's code needs size {size}"


def warn_fixed(ep: Any, spec: ShapeSpec, what: str, why: str | None = None, stacklevel: int = 4) -> list[str]:
    """Warn (:class:`QplanShapeWarning`) about every wanted dim that ``ep`` fixed; returns the messages.

    ``why`` replaces the reason read from ``ep`` (a static fallback export has none); ``stacklevel``
    points the warning at the user's ``prepare``/``finalize`` call."""
    shapes = _user_input_shapes(ep)
    messages = []
    for (k, d), kind in sorted(spec.wanted.items()):
        if k >= len(shapes) or shapes[k][1] is None or d >= len(shapes[k][1]):
            continue
        name, shape = shapes[k]
        if type(shape[d]) is not int:
            continue
        size = spec.sizes.get((k, d), shape[d])
        if why is not None:
            reason = why
        elif size in (0, 1) and not spec.doubled:
            reason = f"the example's size is {size} (torch.export fixes sizes 0 and 1); give an example with size >= 2"
        else:
            reason = _reason(ep, name, d, int(shape[d]))
        msg = f"{what}: the {kind} dimension of input `{name}` (dim {d}) is fixed to {shape[d]}: {reason}"
        warnings.warn(msg, QplanShapeWarning, stacklevel=stacklevel)
        messages.append(msg)
    return messages
