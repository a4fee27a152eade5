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
from qplan.runtime.fold import FOLD_META, materialize_folds
from qplan.runtime.match import EntryPlacement
from qplan.runtime.numerics import float_codes, float_round
from qplan.runtime.packing import pack_codes, packed_bits, unpack_codes
from qplan.runtime.program import load_program, record_imports
from qplan.runtime.shapes import ShapeSpec, dynamic_dims, warn_fixed

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


def _uses_registered_op(fq: FakeQuantize) -> bool:
    return not fq.is_float and not fq.use_minval and fq.granularity in ("per_tensor", "per_channel")


class QuantizedWeight(nn.Module):
    """Dequantizes a stored weight: ``forward(q) -> float weight`` (``q`` = the stored tensor).

    ``own`` holds the quantized tensor here instead, for a parameter that float readers still use.
    """

    scale: torch.Tensor
    zero_point: torch.Tensor | None
    minval: torch.Tensor | None
    q: torch.Tensor | None

    def __init__(
        self,
        fq: FakeQuantize,
        scale: torch.Tensor,
        offset: torch.Tensor | None,
        own: torch.Tensor | None,
        out_dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.out_dtype = out_dtype  # the float weight's dtype: fp16/bf16 models read their weights in it
        self.num, self.layout = fq.num, fq.layout  # the fake-quant's arithmetic, without its observer buffers
        self.registered = _uses_registered_op(fq)
        self.axis = fq.axis
        self.quant_min, self.quant_max = int(fq.quant_min), int(fq.quant_max)
        self.storage = fq.storage_dtype
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer(
            "zero_point" if not fq.use_minval else "minval", None if offset is None else offset.clone()
        )
        self.register_buffer("q", own)
        self.packing: tuple[int, int, bool] | None = None  # (bits, last dim, signed) when stored packed

    def forward(self, q: torch.Tensor | None = None) -> torch.Tensor:
        if self.q is not None:
            q = self.q
        assert q is not None, "a stored weight is read from its parameter or held in `q`"
        if self.packing is not None:
            q = unpack_codes(q, *self.packing)
        if self.registered:
            if self.axis is None:
                return _qd.dequantize_per_tensor.tensor(
                    q,
                    self.scale,
                    self.zero_point,
                    self.quant_min,
                    self.quant_max,
                    self.storage,
                    out_dtype=self.out_dtype,
                )
            return _qd.dequantize_per_channel(
                q,
                self.scale,
                self.zero_point,
                self.axis,
                self.quant_min,
                self.quant_max,
                self.storage,
                out_dtype=self.out_dtype,
            )
        offset = self.minval if self.num.use_minval else self.zero_point
        return self.num.dequantize(q, self.layout, self.scale, offset).to(self.out_dtype)


class QuantizeDequantize(nn.Module):
    """An activation's quantize + dequantize with frozen qparams (see the module docstring)."""

    def __init__(self, fq: FakeQuantize):
        super().__init__()
        self.kind = "fake_quant"
        if not fq.dynamic and fq.granularity == "per_tensor" and not fq.use_minval:
            scale, zp = fq.qparams()
            self.scale = float(scale)
            if zp is not None:
                self.kind = "int"
                self.zero_point = int(zp)
                self.quant_min, self.quant_max = int(fq.quant_min), int(fq.quant_max)
                self.storage = fq.storage_dtype
            elif fq.num.cast_dtype is not None and not fq.pow2_scale:
                self.kind = "float8"
                self.num = fq.num
                self.fmax = float(fq.quant_max)
        if self.kind == "fake_quant":
            self.fq = fq

    def hold_qparams_in_state_dict(self) -> None:
        """For ``finalize(format="module")``: the qparams baked in as constants also live in buffers
        (``qparam_scale``, ``qparam_zero_point``), so the state_dict carries them and loading one
        updates the constants `forward` uses. (Exported programs keep plain constants.)"""
        if self.kind == "fake_quant":
            return  # the frozen fake-quant's own buffers are in the state_dict already
        self.register_buffer("qparam_scale", torch.tensor(self.scale, dtype=torch.float64))
        if self.kind == "int":
            self.register_buffer("qparam_zero_point", torch.tensor(self.zero_point, dtype=torch.int64))
        self.register_load_state_dict_post_hook(_refresh_constants)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "int":
            q = _qd.quantize_per_tensor(x, self.scale, self.zero_point, self.quant_min, self.quant_max, self.storage)
            return _qd.dequantize_per_tensor(
                q, self.scale, self.zero_point, self.quant_min, self.quant_max, self.storage, out_dtype=x.dtype
            )
        if self.kind == "float8":  # the fake-quant's own arithmetic, with the scale a constant
            _, t = float_codes(x, self.scale, self.fmax)
            return self.num.dequantize_codes(float_round(t, self.num.cast_dtype), self.scale, None).to(x.dtype)
        return self.fq(x)


def _refresh_constants(module: nn.Module, incompatible_keys: Any) -> None:
    """After a state_dict load: the constants `forward` uses follow the loaded qparam buffers."""
    buffers = dict(module.named_buffers(recurse=False))
    setattr(module, "scale", float(buffers["qparam_scale"]))  # noqa: B010 - a plain float attribute, not a buffer
    if "qparam_zero_point" in buffers:
        setattr(module, "zero_point", int(buffers["qparam_zero_point"]))  # noqa: B010


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
        ep = _fold_eval_batch_norms(_export(module, quantizer))
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


_CONVS = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.conv3d.default)


def _fold_eval_batch_norms(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Fold each eval-mode BatchNorm that alone reads a conv with a per-channel (axis 0) dequantized
    weight into that weight's scale and the conv's bias: ``conv(x, (q-zp)·s)·k + c = conv(x, (q-zp)·s·k) + c``
    per output channel (``k = γ/√(σ²+ε)``), so the stored codes are unchanged and backends (XNNPACK) see
    a quantized conv. Eager-mode programs have these (graph mode folds BatchNorm before quantizing).
    Skipped when a ``k`` is not positive (a negative scale) or the conv has no bias."""
    sig = ep.graph_signature
    fqn = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
    state = ep.state_dict
    changed = False
    for bn in list(ep.graph.nodes):
        if bn.target != torch.ops.aten.batch_norm.default or bn.args[5]:  # training-mode batch norm
            continue
        conv = bn.args[0]
        if not (isinstance(conv, fx.Node) and conv.target in _CONVS and len(conv.users) == 1):
            continue
        dq, bias = conv.args[1], conv.args[2] if len(conv.args) > 2 else None
        if not (isinstance(dq, fx.Node) and dq.target == _qd.dequantize_per_channel.default and dq.args[3] == 0):
            continue
        nodes = [a for a in (dq.args[1], bias, *bn.args[1:5]) if isinstance(a, fx.Node)]
        names = [fqn.get(n.name) for n in nodes]  # scale, conv bias, gamma, beta, mean, var
        if len(nodes) != 6 or len(set(names)) != 6 or not all(n in state for n in names):
            continue
        scale, b, gamma, beta, mean, var = (state[str(n)].detach() for n in names)
        k = gamma / torch.sqrt(var + float(bn.args[7]))
        if not bool((k > 0).all()):
            continue
        new_bias = (b - mean) * k + beta
        old = state[str(names[1])]
        state[str(names[0])] = scale * k
        state[str(names[1])] = (
            nn.Parameter(new_bias, requires_grad=False) if isinstance(old, nn.Parameter) else new_bias
        )
        bn.replace_all_uses_with(conv)
        ep.graph.erase_node(bn)
        changed = True
    if changed:
        ep.graph.lint()
        ep.graph_module.recompile()
    return ep


def _positional(shapes: Any, quantizer: Prepared) -> Any:
    """A ``dynamic_shapes`` dict keyed by the model's argument names, as a tuple in argument order."""
    if not isinstance(shapes, dict):
        return shapes
    import inspect

    names = list(inspect.signature(quantizer.model.forward).parameters)
    return tuple(shapes.get(n) for n in names if n in shapes)
