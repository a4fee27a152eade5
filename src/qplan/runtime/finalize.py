"""Finalize: turn a prepared model into a ``torch.export.ExportedProgram`` with quantized storage.

Each fake-quant of the prepared model is replaced by a module that does the same arithmetic with
the frozen qparams, then the model is exported again:

* **Weights** (plan role ``state``) are quantized once with :meth:`FakeQuantize.quantize_for_storage`
  and stored in place of the float parameter, under the parameter's own name, in their quantized
  dtype: ``int8`` for int8, ``uint8`` for uint8, and packed ``uint8`` for int4/uint4 (two codes per
  byte) and int2/uint2 (four per byte; :mod:`qplan.runtime.packing`), unpacked in the graph by integer
  ops before the dequantize, ``torch.float8_e4m3fn``/``float8_e5m2`` for fp8 and packed
  ``uint8`` (two e2m1 codes per byte) for fp4. The graph reads them through a dequantize op:
  ``quantized_decomposed.dequantize_per_tensor`` / ``dequantize_per_channel`` for integer per-tensor
  and per-channel weights in the ``zp`` formulation; plain arithmetic ops
  (``(q - zp)·s``, ``(q - qmin)·s + m``, ``q.float()·s``, with per-block scales broadcast) for the
  formats no registered op covers (per-block, ``minval``, fp8, fp4).
* **Activations** get ``quantized_decomposed.quantize_per_tensor`` + ``dequantize_per_tensor``
  (integer, per-tensor, ``zp``, static qparams baked in as constants) or a cast through the float8
  dtype (fp8 per-tensor); any other activation format (dynamic qparams, per-channel or per-block
  activations, ``minval``, fp4) keeps the fake-quant arithmetic with its observer off, traced into
  plain ops.

The finalized program computes bit for bit what the prepared model computes in inference mode: the
plain-op paths are :mod:`qplan.runtime.numerics`, and the ``quantized_decomposed`` ops compute the same
operations in the same order (``round(x·(1/s)) + zp``, clamp, ``(q - zp)·s``); see
``tests/runtime/test_bit_identity.py``.

Loading a saved program needs the ``quantized_decomposed`` ops registered, and the modules of its
pytree types imported: use :func:`~qplan.runtime.program.load_program`, which imports what the
program records (:mod:`qplan.runtime.program`).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from typing import Any, Protocol

import torch
import torch.ao.quantization.fx._decomposed
from torch import fx, nn

from qplan.diagnostics import QplanError
from qplan.runtime.eager import FAKE_QUANTS, consumers, rebuild
from qplan.runtime.export_errors import exporting
from qplan.runtime.fake_quant import FakeQuantize, UncalibratedError, uncalibrated_message
from qplan.runtime.fold import FOLD_META, fold_eval_batch_norms, materialize_folds
from qplan.runtime.match import EntryPlacement
from qplan.runtime.packing import pack_codes, packed_bits
from qplan.runtime.program import load_program, record_imports
from qplan.runtime.shapes import ShapeSpec, dynamic_dims, warn_fixed
from qplan.runtime.stored import QuantizeDequantize, QuantizedWeight

__all__ = ["finalize", "load_program", "QuantizedWeight", "QuantizeDequantize", "unobserved_activations"]

_qd = torch.ops.quantized_decomposed


class Prepared(Protocol):
    """What finalize reads of a prepared :class:`~qplan.runtime.quantizer.Quantizer`."""

    plan: Any
    model: nn.Module
    prepared: nn.Module | None
    placements: list[EntryPlacement]
    fake_quants: dict[str, FakeQuantize]
    example_inputs: tuple
    dynamic_dims: set[tuple[int, int]]
    shape_spec: ShapeSpec


def _as_fake_quant(mod: nn.Module) -> FakeQuantize:
    if not isinstance(mod, FakeQuantize):
        raise QplanError(f"expected a qplan FakeQuantize in the prepared model, found `{type(mod).__name__}`")
    return mod


def _frozen(fq: FakeQuantize) -> FakeQuantize:
    fq = copy.deepcopy(fq)
    fq.enable_observer(False)
    fq.enable_fake_quant(True)
    fq.allow_uncalibrated = True  # checked (or allowed) once, up front, by `finalize`
    fq.eval()
    return fq


def _weight_module(fq: FakeQuantize, w: torch.Tensor, own: bool, name: str) -> tuple[QuantizedWeight, torch.Tensor]:
    fq = _frozen(fq)
    if not fq.dynamic and not fq._observed:
        with torch.no_grad():  # a weight never seen by its observer: observe it now
            fq.enable_observer(True)
            fq(w.detach())
            fq.enable_observer(False)
    q, scale, offset = fq.quantize_for_storage(w)
    q, packing = _packed_storage(fq, q)
    mod = QuantizedWeight(fq, scale, offset, q if own else None, w.dtype)
    mod.packing = packing
    return mod, q


def _packed_storage(fq: FakeQuantize, q: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, bool] | None]:
    """2- and 4-bit integer codes packed into bytes (:mod:`qplan.runtime.packing`), and how to unpack them."""
    bits = None if fq.is_float or q.dim() == 0 else packed_bits(fq.spec.dtype)
    if bits is None:
        return q, None
    return pack_codes(q, bits), (bits, q.shape[-1], q.dtype == torch.int8)


def _activation_module(fq: FakeQuantize, name: str) -> QuantizeDequantize:
    return QuantizeDequantize(_frozen(fq))


def unobserved_activations(quantizer: Prepared) -> list[str]:
    """Plan addresses of the activation fake-quants with stored qparams that never observed a value."""
    out: list[str] = []
    for p in quantizer.placements:
        fq = quantizer.fake_quants.get(p.name)
        if p.entry.role != "state" and fq is not None and not fq.dynamic and not fq._observed:
            out.append(p.entry.address)
    return list(dict.fromkeys(out))


def _aliases(root: nn.Module, t: torch.Tensor) -> list[tuple[nn.Module, str]]:
    """Every (module, attribute) holding ``t`` as a parameter or buffer (tied weights have several)."""
    out: list[tuple[nn.Module, str]] = []
    for mod in root.modules():
        for table in (mod._parameters, mod._buffers):
            out.extend((mod, name) for name, v in table.items() if v is t)
    return out


def _replace_param(root: nn.Module, fqn: str, q: torch.Tensor | None) -> None:
    """Replace the tensor at ``fqn`` and all its aliases: by the buffer ``q`` at ``fqn`` itself,
    the aliases dropped (graph mode), or by an empty float placeholder everywhere (``q=None``,
    eager mode: the module code still reads the attribute, the interceptor substitutes it)."""
    t = root.get_parameter(fqn) if fqn in dict(root.named_parameters()) else root.get_buffer(fqn)
    owner_path, _, attr = fqn.rpartition(".")
    owner = root.get_submodule(owner_path) if owner_path else root
    placeholder = torch.empty(0, dtype=t.dtype, device=t.device)
    for mod, name in _aliases(root, t):
        delattr(mod, name)
        if q is None:
            mod.register_buffer(name, placeholder, persistent=False)
    if q is not None:
        owner.register_buffer(attr, q)


def _finalize_graph(quantizer: Prepared) -> nn.Module:
    with warnings.catch_warnings():  # torch's own pytree deprecation, raised while copying the GraphModule
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        gm: fx.GraphModule = copy.deepcopy(quantizer.prepared)  # type: ignore[assignment]
    read_before = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    folds = materialize_folds(gm)
    for node, value in folds.items():  # folded biases become constant buffers
        if node.meta[FOLD_META] == "bias":
            weight = next(iter(node.users)).args[1]  # the conv/linear reading the folded bias
            stem = str(weight.target) if isinstance(weight, fx.Node) and weight.op == "call_module" else node.name
            name = f"{stem}_folded_bias"
            gm.register_buffer(name, value.clone())
            with gm.graph.inserting_before(node):
                node.replace_all_uses_with(gm.graph.get_attr(name))
    entries = {p.entry.id: p for p in quantizer.placements}
    done: dict[int, tuple[nn.Module, torch.Tensor]] = {}  # id(shared fq) -> weight module (tied weights)
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or "qplan_entry" not in node.meta:
            continue
        p = entries[node.meta["qplan_entry"]]
        fq = _as_fake_quant(gm.get_submodule(node.target))
        src = node.args[0]
        if p.entry.role == "state" and src in folds:  # a BatchNorm-folded weight
            mod, _ = _weight_module(fq, folds[src], True, p.name)
            gm.add_submodule(str(node.target), mod)
            node.args = ()
        elif p.entry.role == "state" and src.op == "get_attr":
            fqn = str(src.target)
            if id(fq) not in done:
                w = gm.get_parameter(fqn) if fqn in dict(gm.named_parameters()) else getattr(gm, fqn)
                readers = [u for n in gm.graph.nodes if n.op == "get_attr" and n.target == fqn for u in n.users]
                keep_float = any(not (u.op == "call_module" and "qplan_entry" in u.meta) for u in readers)
                mod, q = _weight_module(fq, w, keep_float, p.name)
                if not keep_float:
                    _replace_param(gm, fqn, q)
                done[id(fq)] = (mod, q)
            gm.add_submodule(str(node.target), done[id(fq)][0])
        else:
            gm.add_submodule(str(node.target), _activation_module(fq, p.name))
    _drop_dead(gm, read_before)
    return gm


def _finalize_eager(prepared: nn.Module) -> nn.Module:
    """A copy of the prepared eager model with fake-quants swapped for storage/qdq modules."""
    work = copy.deepcopy(prepared)
    holder: nn.ModuleDict = getattr(work, FAKE_QUANTS)
    placements, inv = work.__dict__["_qplan_placements"]
    done: dict[int, nn.Module] = {}
    new: dict[str, nn.Module] = {}
    for p in placements:
        fq = _as_fake_quant(holder[p.name])
        if p.source.kind == "param":
            if id(fq) not in done:
                fqn = p.source.fqn
                w = work.get_parameter(fqn) if fqn in dict(work.named_parameters()) else work.get_buffer(fqn)
                keep_float = bool(consumers(inv, fqn) - set(p.entry.readers))
                weight, _ = _weight_module(fq, w, True, p.name)  # the quantized weight lives in `weight.q`
                if not keep_float:
                    _replace_param(work, fqn, None)
                done[id(fq)] = weight
            new[p.name] = done[id(fq)]
        else:
            new[p.name] = _activation_module(fq, p.name)
    for name, mod in new.items():
        holder[name] = mod
    rebuild(work)
    return work


def _drop_dead(gm: fx.GraphModule, read_before: set[str]) -> None:
    """Erase nodes left without users by the fold materialisation and unused get_attrs, then the
    parameters and buffers the graph read before but no longer reads (so they are not exported)."""
    graph = gm.graph
    for n in reversed(list(graph.nodes)):
        if not n.users and (n.op == "get_attr" or FOLD_META in n.meta):
            graph.erase_node(n)
    still = {str(n.target) for n in graph.nodes if n.op == "get_attr"}
    for target in sorted(read_before - still):
        owner_path, _, attr = target.rpartition(".")
        owner = gm.get_submodule(owner_path) if owner_path else gm
        owner._parameters.pop(attr, None)
        owner._buffers.pop(attr, None)
    graph.lint()
    gm.recompile()


FORMATS = ("program", "module")


def finalize(quantizer: Prepared, *, format: str = "program", allow_uncalibrated: bool = False) -> Any:
    """The prepared model with quantized weights and (de)quantize ops (module docstring).

    ``format="program"`` exports it to a ``torch.export.ExportedProgram``; ``format="module"``
    returns the ``nn.Module`` itself (no export: for models export cannot trace), whose state_dict
    holds the weights in their quantized dtypes. Activation fake-quants that never observed a value
    raise :class:`UncalibratedError` (all named at once) unless ``allow_uncalibrated``; weights never
    observed are observed here.
    """
    if format not in FORMATS:
        raise QplanError(f"unknown finalize format `{format}`; expected one of: {', '.join(FORMATS)}")
    if quantizer.plan is None or quantizer.prepared is None:
        raise QplanError("call `prepare(example_inputs)` first")
    missing = unobserved_activations(quantizer)
    if missing and not allow_uncalibrated:
        raise UncalibratedError(uncalibrated_message(missing, "q.finalize(allow_uncalibrated=True)"))
    if quantizer.plan.mode == "graph":
        module = _finalize_graph(quantizer)
    else:
        module = _finalize_eager(quantizer.prepared)
    module.eval()
    if format == "module":
        for m in module.modules():
            if isinstance(m, QuantizeDequantize):
                m.hold_qparams_in_state_dict()
        return module
    with exporting(f"the finalized `{type(quantizer.model).__name__}`"):
        ep = fold_eval_batch_norms(_export(module, quantizer))
    record_imports(ep)  # a saved program names the modules load_program imports
    return ep


def _export(module: nn.Module, quantizer: Prepared) -> torch.export.ExportedProgram:
    """Export the finalized module with the prepared model's dynamic dimensions (eager mode: the
    dimensions ``prepare`` would have asked for); a dimension that comes out fixed is a warning."""
    spec = quantizer.shape_spec
    args = spec.args or quantizer.example_inputs
    eager = quantizer.plan.mode == "eager"
    with torch.no_grad():
        if eager or quantizer.dynamic_dims:
            shapes = spec.dynamic_shapes
            if eager:  # the prepared eager forward is `forward(*args, **kwargs)`
                shapes = (_positional(shapes, quantizer),)
            try:
                ep = torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
            except Exception as e:
                why = f"the export with dynamic sizes failed ({type(e).__name__}: {str(e).strip().splitlines()[0]})"
                ep = torch.export.export(module, quantizer.example_inputs, strict=False)
                warn_fixed(ep, spec, "finalize", why=why, stacklevel=5)
                return ep
            if eager:
                warn_fixed(ep, spec, "finalize", stacklevel=5)
            else:
                lost = set(quantizer.dynamic_dims) - dynamic_dims(ep)
                if lost:
                    warn_fixed(
                        ep,
                        replace(spec, wanted={k: spec.wanted.get(k, "dynamic") for k in lost}),
                        "finalize",
                        stacklevel=5,
                    )
            return ep
        return torch.export.export(module, quantizer.example_inputs, strict=False)


def _positional(shapes: Any, quantizer: Prepared) -> Any:
    """A ``dynamic_shapes`` dict keyed by the model's argument names, as a tuple in argument order."""
    if not isinstance(shapes, dict):
        return shapes
    import inspect

    names = list(inspect.signature(quantizer.model.forward).parameters)
    return tuple(shapes.get(n) for n in names if n in shapes)
