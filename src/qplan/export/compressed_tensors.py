"""compressed-tensors export and import: the Hugging Face checkpoint format vLLM and llm-compressor read.

:func:`export_compressed_tensors` writes ``config.json`` (the model's own config, when it has one, plus a
``quantization_config`` built with compressed-tensors' ``QuantizationConfig``) and ``model.safetensors``.
Weights are stored by the library's own compressors: int8 as int8 (``int-quantized``), narrower integers
packed into int32 (``pack-quantized``), float8_e4m3fn as float8 (``float-quantized``), each with its scale
(and zero point when asymmetric). compressed-tensors quantizes Linear and Embedding modules: their weights,
inputs and outputs. Every other plan entry is reported by address with the reason.

:func:`config_from_compressed_tensors` (from :mod:`qplan.export.ct_import`) maps a ``quantization_config``
back to a qplan config and lists what it could not express.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from qplan.diagnostics import QplanError
from qplan.export.ct_args import Unsupported, activation_args, uint_shift, weight_args
from qplan.export.ct_import import config_from_compressed_tensors

if TYPE_CHECKING:
    from qplan.runtime.fake_quant import FakeQuantize
    from qplan.runtime.match import EntryPlacement
    from qplan.runtime.quantizer import Quantizer

__all__ = ["export_compressed_tensors", "config_from_compressed_tensors", "CompressedTensorsExport", "ExportError"]


def __dir__() -> list[str]:
    return __all__


class ExportError(QplanError):
    """The plan holds something the target format cannot express (the message names the tensor)."""


@dataclass
class CompressedTensorsExport:
    """What :func:`export_compressed_tensors` wrote: the directory, the config, and what it left out."""

    out_dir: Path
    quantization_config: dict[str, Any]
    modules: dict[str, str] = field(default_factory=dict)  # module path -> config group name
    skipped: list[str] = field(default_factory=list)  # "<address>: <reason>" for entries left in float


@dataclass
class _Module:
    """One Linear/Embedding with the plan entries that quantize it."""

    path: str
    op: str  # plan op name (reader prefix), e.g. "fc1.linear"
    weight: EntryPlacement
    inputs: EntryPlacement | None = None
    outputs: EntryPlacement | None = None


_COMPRESSIBLE = (nn.Linear, nn.Embedding)


def _require_library() -> Any:
    try:
        import compressed_tensors
    except ImportError:
        raise QplanError(
            "the compressed-tensors export needs the `compressed-tensors` package; "
            "help: pip install 'qplan[compressed-tensors]'"
        ) from None
    return compressed_tensors


def _resolve(prepared_or_quantizer: Any) -> Quantizer:
    from qplan.runtime.quantizer import Quantizer

    if isinstance(prepared_or_quantizer, Quantizer):
        if prepared_or_quantizer.prepared is None:
            raise QplanError("call `prepare(example_inputs)` before exporting")
        return prepared_or_quantizer
    q = getattr(prepared_or_quantizer, "qplan_quantizer", None)
    if isinstance(q, Quantizer):
        return q
    raise TypeError(f"expected a prepared qplan Quantizer, got `{type(prepared_or_quantizer).__name__}`")


# ------------------------------------------------------------------------------------------- mapping


def _modules(quantizer: Quantizer, skipped: list[str]) -> list[_Module]:
    """Match plan entries to Linear/Embedding modules; every entry left over goes to ``skipped``."""
    model = quantizer.model
    found: list[_Module] = []
    by_op: dict[str, _Module] = {}
    used: set[int] = set()
    for p in quantizer.placements:
        e = p.entry
        if e.role != "state":
            continue
        owner, _, attr = e.source.rpartition(".")
        mod = model.get_submodule(owner) if owner else model
        if attr != "weight" or not isinstance(mod, _COMPRESSIBLE):
            skipped.append(f"{e.address}: compressed-tensors quantizes Linear/Embedding weights, not `{e.source}`")
            used.add(id(p))
            continue
        for r in p.readers:
            if r.kind == "state" and r.op not in by_op:
                m = _Module(path=owner, op=r.op, weight=p)
                by_op[r.op] = m
                found.append(m)
        used.add(id(p))
    for p in quantizer.placements:
        if id(p) in used:
            continue
        _attach_activation(p, by_op, skipped)
    return found


def _attach_activation(p: EntryPlacement, by_op: dict[str, _Module], skipped: list[str]) -> None:
    e = p.entry
    src = p.source
    if src.kind == "op" and src.op in by_op and src.index == 0:
        by_op[src.op].outputs = p
        return
    inputs = [r for r in p.readers if r.kind == "input"]
    if inputs and all(r.op in by_op and r.index == 0 for r in inputs) and len(inputs) == len(p.readers):
        for r in inputs:
            by_op[r.op].inputs = p
        return
    others = [r for r in p.readers if not (r.kind == "input" and r.op in by_op and r.index == 0)]
    what = ", ".join(f"`{r.op}:in{r.index}`" if r.kind == "input" else f"model output {r.index}" for r in others[:3])
    skipped.append(
        f"{e.address}: compressed-tensors quantizes only the inputs and outputs of Linear/Embedding modules; "
        f"this value is read by {what or 'nothing'}" + (f" (and {len(others) - 3} more)" if len(others) > 3 else "")
    )


def _args(kind: str, p: EntryPlacement, spec: Any) -> dict[str, Any]:
    try:
        if kind == "weights":
            return weight_args(spec, tuple(p.entry.shape))
        return activation_args(spec, tuple(p.entry.shape))
    except Unsupported as e:
        raise ExportError(f"`{p.entry.address}` ({kind}): {e}") from None


def _scheme_fields(quantizer: Quantizer, m: _Module) -> dict[str, Any]:
    plan = quantizer.plan
    assert plan is not None
    out: dict[str, Any] = {"weights": _args("weights", m.weight, plan.specs[m.weight.entry.spec])}
    for kind, p in (("input_activations", m.inputs), ("output_activations", m.outputs)):
        if p is not None:
            out[kind] = _args(kind, p, plan.specs[p.entry.spec])
    return out


def _format_name(scheme: Any) -> str:
    return str(getattr(scheme.format, "value", scheme.format))


def _format(weights: dict[str, Any]) -> str:
    if weights["type"] == "float":
        return "float-quantized"
    return "int-quantized" if weights["num_bits"] == 8 else "pack-quantized"


# ------------------------------------------------------------------------------------------ tensors


def _frozen_fq(quantizer: Quantizer, p: EntryPlacement, w: torch.Tensor | None = None) -> FakeQuantize:
    from qplan.runtime.fake_quant import FakeQuantize

    fq = copy.deepcopy(quantizer.fake_quants[p.name])
    if not isinstance(fq, FakeQuantize):
        raise ExportError(f"`{p.entry.address}`: expected a qplan FakeQuantize, got `{type(fq).__name__}`")
    fq.enable_observer(False)
    if w is not None and not fq.dynamic and not fq._observed:  # a weight never observed: observe it now
        with torch.no_grad():
            fq.enable_observer(True)
            fq.enable_fake_quant(False)
            fq(w.detach())
            fq.enable_observer(False)
    fq.enable_fake_quant(True)
    return fq


def _current_weight(quantizer: Quantizer, fqn: str) -> torch.Tensor:
    """The weight as trained (the prepared copy when it still holds the parameter), else the original."""
    for root in (quantizer.prepared, quantizer.model):
        assert root is not None
        try:
            return root.get_parameter(fqn).detach()
        except AttributeError:
            continue
    raise ExportError(f"parameter `{fqn}` is in neither the prepared nor the original model")


def _qparam_tensors(fq: FakeQuantize, scale: torch.Tensor, zp: torch.Tensor | None, prefix: str, rows: bool):
    """``{prefix}_scale`` (and ``{prefix}_zero_point`` when asymmetric) in compressed-tensors' shapes."""
    shape = (-1, 1) if rows and fq.granularity == "per_channel" else None
    s = scale.float().reshape(shape or (scale.shape if scale.dim() else (1,)))
    out = {f"{prefix}_scale": s.contiguous()}
    if not fq.symmetric and zp is not None:
        z = zp.to(torch.int32) - uint_shift(fq.spec.dtype)
        out[f"{prefix}_zero_point"] = z.to(torch.int8).reshape(s.shape).contiguous()
    return out


def _compress_module(quantizer: Quantizer, m: _Module, scheme: Any) -> dict[str, torch.Tensor]:
    from compressed_tensors.compressors.base import BaseCompressor

    w = _current_weight(quantizer, m.weight.entry.source)
    fq = _frozen_fq(quantizer, m.weight, w)
    q, scale, offset = fq.quantize_for_storage(w)
    deq = fq.dequantize(q, scale, offset)
    state = {"weight": deq, **_qparam_tensors(fq, scale, offset, "weight", rows=True)}
    for prefix, p in (("input", m.inputs), ("output", m.outputs)):
        if p is None:
            continue
        afq = _frozen_fq(quantizer, p)
        if afq.dynamic:
            continue
        a_scale, a_zp = afq.qparams()
        state.update(_qparam_tensors(afq, a_scale, a_zp, prefix, rows=False))
    compressor = BaseCompressor.get_value_from_registry(_format_name(scheme))
    packed = compressor.compress(state, scheme)
    return {f"{m.path}.{k}": v.contiguous() for k, v in packed.items()}


# ------------------------------------------------------------------------------------------- export


def export_compressed_tensors(
    prepared_or_quantizer: Any,
    out_dir: str | Path,
    *,
    skip_unsupported: bool = False,
    model_config: dict[str, Any] | None = None,
) -> CompressedTensorsExport:
    """Write ``out_dir/config.json`` and ``out_dir/model.safetensors`` in the compressed-tensors format.

    Parameters
    ----------
    prepared_or_quantizer:
        A prepared (and calibrated) :class:`~qplan.runtime.Quantizer`.
    out_dir:
        Created if missing; existing ``config.json`` / ``model.safetensors`` are overwritten.
    skip_unsupported:
        False (default): a plan entry the format cannot express raises :class:`ExportError` naming it.
        True: such entries are left in float and listed in the result's ``skipped``.
    model_config:
        The model's config dict; default: ``model.config.to_dict()`` when the model has one (transformers).
    """
    _require_library()
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme

    quantizer = _resolve(prepared_or_quantizer)
    skipped: list[str] = []
    modules = _modules(quantizer, skipped)
    if skipped and not skip_unsupported:
        raise ExportError(
            f"{len(skipped)} plan entr{'y' if len(skipped) == 1 else 'ies'} cannot be written as compressed-tensors:\n  "
            + "\n  ".join(skipped)
            + "\nhelp: pass skip_unsupported=True to leave them in float"
        )
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    keys: dict[str, str] = {}
    for m in modules:
        fields = _scheme_fields(quantizer, m)
        key = json.dumps(fields, sort_keys=True)
        if key not in keys:
            keys[key] = f"group_{len(keys)}"
            groups[keys[key]] = (fields, [])
        groups[keys[key]][1].append(m.path)
    schemes = {
        name: QuantizationScheme(targets=targets, format=_format(fields["weights"]), **fields)
        for name, (fields, targets) in groups.items()
    }
    formats = {_format_name(s) for s in schemes.values()}
    qconfig = QuantizationConfig(
        config_groups=schemes,
        format=formats.pop() if len(formats) == 1 else "mixed-precision",
        quantization_status="compressed",
    )
    tensors = _float_state(quantizer, {m.path for m in modules})
    for m in modules:
        tensors.update(_compress_module(quantizer, m, schemes[_group_of(m, groups)]))
    return _write(out_dir, quantizer, qconfig, tensors, modules, groups, skipped, model_config)


def _group_of(m: _Module, groups: dict[str, tuple[dict[str, Any], list[str]]]) -> str:
    return next(name for name, (_, targets) in groups.items() if m.path in targets)


def _float_state(quantizer: Quantizer, quantized: set[str]) -> dict[str, torch.Tensor]:
    """Every other parameter and buffer of the model, as trained, each its own contiguous copy."""
    out: dict[str, torch.Tensor] = {}
    for name, t in quantizer.model.state_dict().items():
        owner, _, attr = name.rpartition(".")
        if owner in quantized and attr == "weight":
            continue
        try:
            t = _current_weight(quantizer, name)
        except ExportError:
            pass
        out[name] = t.detach().contiguous().clone()
    return out


def _write(
    out_dir: str | Path,
    quantizer: Quantizer,
    qconfig: Any,
    tensors: dict[str, torch.Tensor],
    modules: Sequence[_Module],
    groups: dict[str, tuple[dict[str, Any], list[str]]],
    skipped: list[str],
    model_config: dict[str, Any] | None,
) -> CompressedTensorsExport:
    from compressed_tensors.compressors import ModelCompressor
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model_config is None:
        to_dict = getattr(getattr(quantizer.model, "config", None), "to_dict", None)
        model_config = to_dict() if callable(to_dict) else {}
    config_path = out / "config.json"
    config_path.write_text(json.dumps(model_config, indent=2, sort_keys=True, default=str) + "\n")
    ModelCompressor(quantization_config=qconfig).update_config(str(out))  # the library writes its own section
    qdict = json.loads(config_path.read_text())["quantization_config"]
    save_file(dict(sorted(tensors.items())), str(out / "model.safetensors"), metadata={"format": "pt"})
    return CompressedTensorsExport(
        out_dir=out,
        quantization_config=qdict,
        modules={m.path: _group_of(m, groups) for m in modules},
        skipped=skipped,
    )
