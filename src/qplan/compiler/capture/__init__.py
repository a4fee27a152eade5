"""Model capture (see docs/compiler.md, docs/config-language.md#names-modules-ops-and-tensors): one forward of the model becomes an :class:`Inventory`.

``capture(model, example_inputs, mode)`` works in two modes that give the **same inventory**
(same op names, op types, input sources, states, outputs and module infos):

* ``"graph"``: ``torch.export.export(model, args, strict=False)``. Aten nodes are grouped into
  *torch-level calls* by ``node.meta["torch_fn"]`` (the torch function that emitted them), so a
  call that export decomposes (``2 / x`` → reciprocal + mul, ``F.normalize`` → 4 nodes) is
  still one op; the module path comes from ``node.meta["nn_module_stack"]``. Export wraps
  ``with torch.no_grad():`` / ``torch.autocast`` blocks into higher-order ops with a submodule
  body; capture walks those bodies as if inline (their nodes live in the submodule's graph).
  Module boundaries come from forward hooks active during export, which tag the traced nodes.
* ``"eager"``: one real forward under :class:`EagerOpNamer`, a ``TorchFunctionMode`` that sees
  the outermost torch-level calls, plus forward (pre-)hooks that keep the module stack.

Rules (both modes):

* **op type** = :func:`~qplan.compiler.ops.normalize_op_type` of the torch function's name
  (``Tensor.add_``/``__iadd__`` → ``add``, ``x.T`` → ``getattr``).
* **listing.** A call is a *candidate* when its class is not ``pass_through``/``ignore`` and it
  reads at least one tracked floating-point tensor (an op output, a parameter/buffer or a model
  input; so mask arithmetic on constants and integer inputs is not listed). A candidate that
  returns a tensor takes the next name ``<module>.<op type>[_k]`` (one counter per (module, op
  type), execution order; a module called twice continues its counters) and is listed when one
  of its outputs is floating (``gt``, ``argmax`` are not).
* **pass-through ops are not listed**: they are transparent links whose outputs carry the
  source of their first tensor argument (``linear:out0`` read through ``view``/``permute`` is
  still ``linear:out0``); an integer → float conversion starts an untracked value. Export
  removes some of them (``contiguous``) and renames others (``x.T`` → ``numpy_T``), so listing
  them could not give equal inventories.
* ``ignore`` ops (``arange``, ``zeros_like``, ``torch.tensor``, ``x[i] = y``) and non-candidates
  produce untracked values: a reader of one has source ``None``.
* **inputs** are the tensor arguments, named by the op's signature and ordered by the op
  table's input slots (``cat``: one input per list element). When export splits a call into
  several aten nodes and one of them is the op itself (``F.embedding_bag`` on 2-D indices:
  ``arange``, ``reshape``, ``embedding_bag``), that node's schema names the arguments, and an
  argument computed inside the call stands for the one tensor it comes from. A parameter/buffer in a state slot
  (``linear`` ``weight``/``bias``) is a state, not an input; a float parameter read by any other
  slot stays an input (source = its fqn) and is also a state named after its attribute
  (``x * self.scale`` → ``states={"scale": "blk.scale"}``). Tied parameters have one fqn, the
  first in ``named_parameters()``. Ops outside the table list each tracked value once:
  activations in first-use order, then parameters in ``named_parameters()`` order (export
  decomposes such composites, e.g. ``F.multi_head_attention_forward``, and loses their argument
  order); they are never quantized at op level.
* **modules**: ``ModuleInfo.inputs``/``outputs`` are the sources of the flattened positional
  arguments / flattened output of a module's first call.

The model is captured **as it is** (training flag untouched; in training mode export records
``batch_norm(training=True)``, the same op). It is never modified: eager mode restores buffers
(BatchNorm statistics) and the global RNG and clones the example inputs; hooks are removed
afterwards. BatchNorm folding is the compiler's business, not capture's.

Known differences: in-place writes into views are not tracked in either mode. Models that
branch on tracing run different code in the two modes and their inventories differ where the
code differs: transformers skips an all-ones attention mask and takes ``is_causal``/GQA
shortcuts in SDPA attention in eager, not under export (pass a padding mask and use
``attn_implementation="eager"`` to compare).

Modules: :mod:`.common` (parts both modes share), :mod:`.eager` (:class:`EagerOpNamer`, the
runtime's eager naming, with :mod:`.calls`: :class:`OpCall` and op typing; neither imports the
graph-mode code), :mod:`.graph` (the ``torch.export`` walk, with :mod:`.nodes` and
:mod:`.boundaries`), :mod:`.result` (:class:`Capture`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from qplan.compiler.capture.common import CaptureError, Mode
from qplan.compiler.capture.eager import EagerOpNamer, InputSlot, OpCall, capture_eager, has_tracked_float, op_type_of
from qplan.compiler.capture.output_types import libraries_of, register_output_types
from qplan.compiler.capture.result import Capture

__all__ = [
    "Capture",
    "capture",
    "EagerOpNamer",
    "OpCall",
    "InputSlot",
    "CaptureError",
    "op_type_of",
    "has_tracked_float",
]


def capture(model: nn.Module, example_inputs: Any, mode: Mode = "graph", *, dynamic_shapes: Any = None) -> Capture:
    """Capture `model` on `example_inputs` (a tuple of positional args) in `mode`.

    ``dynamic_shapes`` (graph mode; ``torch.export``'s convention) exports with symbolic sizes; the
    inventory records each size as the example's, so the plan is the same as a static capture's.

    The model is not modified (parameters, buffers, training flag and hooks are as before).
    Raises :class:`CaptureError` for a bad mode, bad inputs or a model export cannot trace.
    """
    if not isinstance(model, nn.Module):
        raise CaptureError(f"expected a `torch.nn.Module`, got `{type(model).__name__}`")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if not isinstance(example_inputs, (tuple, list)):
        raise CaptureError(
            f"example inputs must be a tuple of positional arguments, got `{type(example_inputs).__name__}`"
        )
    args = tuple(example_inputs)
    register_output_types(libraries_of(model))
    if mode == "graph":
        from qplan.compiler.capture.graph import capture_graph  # keeps `.eager` free of the graph code

        return capture_graph(model, args, dynamic_shapes)
    if mode == "eager":
        return capture_eager(model, args)
    raise CaptureError(f"unknown capture mode `{mode}`; expected `graph` or `eager`")
