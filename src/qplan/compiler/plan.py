"""The plan: a flat, canonical, per-tensor list of resolved quantization specs (SPEC §3).

A plan is what the compiler writes and the runtime reads. It is encoded as canonical JSON
(sorted keys, lists in execution or address order, trailing newline), so the same config and
model always give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from qplan.diagnostics import Diagnostic
from qplan.plan_format import PLAN_FORMAT, PLAN_VERSION
from qplan.schema.types import QATSchedule

__all__ = [
    "PLAN_FORMAT",
    "PLAN_VERSION",
    "ResolvedSpec",
    "Provenance",
    "QuantizerEntry",
    "Decision",
    "ModelInfo",
    "ConfigInfo",
    "Plan",
    "encode_plan",
    "decode_plan",
    "load_plan",
]


Role = Literal["input", "output", "state", "boundary"]


class ResolvedSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A spec with every default filled in: axis resolved, calculator concrete, schedule attached."""

    dtype: str  # canonical dtype name (SPEC §1.2)
    qscheme: str  # symmetric | asymmetric | symmetric_with_clipping
    qformulation: str  # zp | minval
    granularity: str  # per_tensor | per_channel | per_block
    axis: int | None = None  # resolved, non-negative; None for per_tensor
    block_size: int | tuple[int, ...] | None = None  # per_block only
    qparam_calculator: str  # static | moving_average | global_minmax | dynamic (never "default")
    range_calculator: str = "minmax"
    fake_quantize: str = "default"
    float_range: tuple[float | None, float | None] = (None, None)
    scale_dtype: str | None = None
    schedule: QATSchedule | None = None


class Provenance(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why a tensor got its spec: the winning rule and the candidates it beat."""

    rule: str  # config path of the winning tensor spec, e.g.
    # 'quantization_config.module_name_configs["enc.*"].op_state_spec.weight'
    source: str | None = None  # "file:line" of that rule, when loaded from a file
    beaten: tuple[str, ...] = ()  # config paths of matching rules that lost, most specific first
    defaulted: bool = False  # True when the winning value is a library default (field omitted)


class QuantizerEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One fake-quant to insert.

    Roles and addresses (as the compiler writes them):

    * ``output``: the producer's own output fake-quant, ``address == source == "<op>:out<j>"``;
      ``readers`` are the op inputs (and ``":out<j>"`` model outputs) that read it, possibly
      with no readers at all (an output nobody reads);
    * ``input``: a consumer reads ``source`` with a spec of its own; ``address`` is its first
      reader ``"<op>:in<i>"``; ``source`` may be a model input ``":in<i>"``;
    * ``state``: ``address == source ==`` the parameter fqn; ``readers`` are
      ``"<op name>:<state name>"`` (``"fc1.linear:weight"``), several for tied weights;
    * ``boundary``: a module boundary spec, ``address = "<module>:in<i>"`` / ``":out<j>"``,
      ``readers`` are the op inputs it serves.

    ``source`` is the value before any pass-through op (view, permute, ...): a reader may
    reach it through such ops, which then apply to the fake-quantized value. Each reader
    appears in at most one entry (never two fake-quants between a producer and a consumer).
    """

    id: str  # stable id, e.g. "q0007"
    address: str  # tensor address named per role: "fc1.linear:in0", "fc1.linear:out0", "fc1.weight", "blk:in0"
    role: Role
    source: str  # address of the value being fake-quantized (op output, parameter fqn, or ":in<i>")
    spec: str  # key into Plan.specs
    shape: tuple[int, ...]
    dtype: str = "float32"
    readers: tuple[str, ...] = ()  # op input addresses that read the fake-quantized value; ":out<j>" = model output
    group: str | None = None  # qparams-sharing group id (value-preserving ops), if any
    provenance: Provenance


class Decision(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A placement decision the compiler made, with its reason."""

    kind: str  # fusion | bn-fold | edge-override | shared-weight | shared-qparams | skipped | boundary | ...
    subjects: tuple[str, ...]  # addresses (ops or tensors) the decision is about
    reason: str
    group: str | None = None  # a group id when the decision defines one


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The model a plan was compiled for: its class name and op-inventory fingerprint."""

    class_name: str
    fingerprint: str  # Inventory.fingerprint()


class ConfigInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The config a plan was compiled from: its name and the sha256 of its content."""

    source: str  # file name as given (never an absolute path) or "<python>"
    sha256: str


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """The compiled plan."""

    format: str = PLAN_FORMAT
    version: int = PLAN_VERSION
    mode: str  # graph | eager
    model: ModelInfo
    config: ConfigInfo
    specs: dict[str, ResolvedSpec]
    quantizers: tuple[QuantizerEntry, ...]
    decisions: tuple[Decision, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()

    def by_address(self) -> dict[str, QuantizerEntry]:
        """The quantizer entries keyed by their address."""
        return {q.address: q for q in self.quantizers}


_encoder = msgspec.json.Encoder(order="sorted")


def encode_plan(plan: Plan) -> bytes:
    """Canonical JSON bytes: sorted keys, two-space indent, trailing newline."""
    return msgspec.json.format(_encoder.encode(plan), indent=2) + b"\n"


def decode_plan(data: bytes | str) -> Plan:
    """Decode and check plan JSON; raises ``msgspec.ValidationError`` / ``msgspec.DecodeError``
    for malformed JSON or fields, ``ValueError`` for a foreign format, an unsupported version or
    a quantizer naming a spec id the plan does not define."""
    plan = msgspec.json.decode(data, type=Plan)
    if plan.format != PLAN_FORMAT:
        raise ValueError(f"not a qplan plan (format `{plan.format}`)")
    if plan.version != PLAN_VERSION:
        raise ValueError(f"plan version {plan.version} is not supported (expected {PLAN_VERSION})")
    for q in plan.quantizers:
        if q.spec not in plan.specs:
            raise ValueError(
                f"quantizer `{q.id}` at `{q.address}` names spec `{q.spec}`, which `specs` does not define"
            )
    return plan


def load_plan(path: str | Path) -> Plan:
    """Read a plan file written by ``qplan compile-plan -o``."""
    return decode_plan(Path(path).read_bytes())
