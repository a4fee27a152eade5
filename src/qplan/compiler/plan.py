"""The plan: a flat, canonical, per-tensor list of resolved quantization specs (see docs/compiler.md).

A plan is what the compiler writes and the runtime reads. It is encoded as canonical JSON
(sorted keys, lists in execution or address order, trailing newline), so the same config and
model always give byte-identical files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from qplan.compiler.jsonpos import line_col, locate, parse_path
from qplan.compiler.plan_check import PlanError, json_path, plan_diagnostic, plan_problems
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
    "PlanError",
    "encode_plan",
    "decode_plan",
    "load_plan",
]


Role = Literal["input", "output", "state", "boundary"]


class ResolvedSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A spec with every default filled in: axis resolved, calculator concrete, schedule attached."""

    dtype: str  # canonical dtype name (see docs/config-language.md#quantizationspec-how-one-tensor-is-quantized)
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


class Provenance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Why a tensor got its spec: the winning rule and the candidates it beat."""

    rule: str  # config path of the winning tensor spec, e.g.
    # 'quantization_config.module_name_configs["enc.*"].op_state_spec.weight'
    source: str | None = None  # "file:line" of that rule, when loaded from a file
    beaten: tuple[str, ...] = ()  # config paths of matching rules that lost, most specific first
    defaulted: bool = False  # True when the winning value is a library default (field omitted)


class QuantizerEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
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
    shape: tuple[Annotated[int, msgspec.Meta(ge=0)], ...]
    dtype: str = "float32"
    readers: tuple[str, ...] = ()  # op input addresses that read the fake-quantized value; ":out<j>" = model output
    group: str | None = None  # qparams-sharing group id (value-preserving ops), if any
    provenance: Provenance


class Decision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A placement decision the compiler made, with its reason."""

    kind: str  # fusion | bn-fold | edge-override | shared-weight | shared-qparams | skipped | boundary | ...
    subjects: tuple[str, ...]  # addresses (ops or tensors) the decision is about
    reason: str
    group: str | None = None  # a group id when the decision defines one


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The model a plan was compiled for: its class name and op-inventory fingerprint."""

    class_name: str
    fingerprint: str  # Inventory.fingerprint()


class ConfigInfo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The config a plan was compiled from: its name and the sha256 of its content."""

    source: str  # file name as given (never an absolute path) or "<python>"
    sha256: str


class Plan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
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
_decoder = msgspec.json.Decoder(Plan)
_head_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])  # the top level only: cheap
_MSGSPEC_AT = re.compile(r"^(.*) - at `(\$[^`]*)`$", re.S)
_BYTE = re.compile(r"\(byte (\d+)\)")


def encode_plan(plan: Plan) -> bytes:
    """Canonical JSON bytes: sorted keys, two-space indent, trailing newline."""
    return msgspec.json.format(_encoder.encode(plan), indent=2) + b"\n"


def decode_plan(data: bytes | str, name: str = "<plan>") -> Plan:
    """Decode plan JSON and check it (:mod:`qplan.compiler.plan_check`).

    Raises :class:`PlanError` naming `name` (the file), the JSON path and what was expected:
    ``plan-syntax`` for text that is not JSON (with its line and column), ``unsupported-plan`` for
    another format or version, ``invalid-plan`` for a field of the wrong type or a broken plan rule.
    """
    try:
        _check_identity(_head(data, name), name, data)
        plan = _decoder.decode(data)
    except msgspec.ValidationError as e:
        raise PlanError(_type_error(str(e), _decode_json(data, name), name, data)) from None
    except msgspec.DecodeError as e:
        raise PlanError(_syntax_error(str(e), name, data)) from None
    except (UnicodeError, RecursionError) as e:
        raise PlanError(plan_diagnostic("plan-syntax", f"not valid JSON: {e}", name)) from None
    problems = plan_problems(plan)
    if problems:
        raise PlanError([_at("invalid-plan", m, name, p, data) for p, m in problems])
    return plan


def load_plan(path: str | Path) -> Plan:
    """Read a plan file written by ``qplan compile-plan -o``; raises :class:`PlanError` (see
    :func:`decode_plan`) when it is not a valid plan, ``OSError`` when it cannot be read."""
    return decode_plan(Path(path).read_bytes(), str(path))


def _text(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _at(code: str, message: str, name: str, path: str, data: bytes | str) -> Diagnostic:
    parts = parse_path(path)
    at = locate(_text(data), parts) if parts is not None else None
    return plan_diagnostic(code, message, name, path, at)


def _decode_json(data: bytes | str, name: str) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise PlanError(_syntax_error(str(e), name, data)) from None


def _syntax_error(message: str, name: str, data: bytes | str) -> Diagnostic:
    m = _BYTE.search(message)
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else data
    offset = int(m.group(1)) if m else len(raw)
    text = raw[:offset].decode("utf-8", errors="replace")
    where = line_col(text, len(text))
    what = "it ends early (truncated?)" if "truncated" in message else message.removeprefix("JSON is malformed: ")
    what = _BYTE.sub("", what).rstrip()
    return plan_diagnostic("plan-syntax", f"not valid JSON: {what}", name, None, where)


def _head(data: bytes | str, name: str) -> Any:
    """The top-level object with `format` and `version` decoded, or the document when it is no object."""
    try:
        head: dict[str, Any] = dict(_head_decoder.decode(data))
    except msgspec.ValidationError:
        return _decode_json(data, name)
    for key in ("format", "version"):
        if key in head:
            head[key] = msgspec.json.decode(head[key])
    return head


def _check_identity(raw: Any, name: str, data: bytes | str) -> None:
    """Raise `unsupported-plan` unless `raw` says it is a qplan plan of this version."""
    if not isinstance(raw, dict) or "format" not in raw:
        found = "an object without `format`" if isinstance(raw, dict) else f"a JSON {type(raw).__name__}"
        message = f"not a qplan plan: expected an object with `format: {PLAN_FORMAT}`, got {found}"
        raise PlanError(_at("unsupported-plan", message, name, "$", data))
    if raw["format"] != PLAN_FORMAT:
        message = f"not a qplan plan: unsupported format `{raw['format']}` (expected `{PLAN_FORMAT}`)"
        raise PlanError(_at("unsupported-plan", message, name, "$.format", data))
    if raw.get("version") != PLAN_VERSION:
        message = f"plan version `{raw.get('version')}` is not supported (this qplan reads version {PLAN_VERSION})"
        raise PlanError(_at("unsupported-plan", message, name, "$.version", data))


def _type_error(message: str, raw: Any, name: str, data: bytes | str) -> Diagnostic:
    """The diagnostic for msgspec's first type error; a path under a spec id names the id."""
    m = _MSGSPEC_AT.match(message)
    what, path = (m.group(1), m.group(2)) if m else (message, "$")
    if path.startswith("$.specs[...]") and isinstance(raw.get("specs"), dict):
        for sid, spec in raw["specs"].items():
            try:
                msgspec.convert(spec, ResolvedSpec)
            except msgspec.ValidationError as e:
                inner = _MSGSPEC_AT.match(str(e))
                what, rest = (inner.group(1), inner.group(2)[1:]) if inner else (str(e), "")
                path = json_path("specs", sid) + rest
                break
    return _at("invalid-plan", what, name, path, data)
