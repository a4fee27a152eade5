"""The compiler's working state: the inventory and config plus side tables the passes fill in.

Passes are plain functions ``state -> state`` (see :mod:`qplan.compiler.pipeline`): each reads
the tables earlier passes wrote and returns a new state (:meth:`State.evolve`) holding the tables
it produced, leaving its input's tables as they were; the only shared writes are the append-only
``decisions`` / ``diagnostics`` logs and the memo ``cache``. Nothing here prints.

Side tables, by the pass that writes them:

* ``resolve_configs``: ``module_choice`` (module path -> winning module rule);
* ``resolve_ops``: ``op_rule`` (op name -> winning op rule) and the per-tensor opinions
  ``in_opinion`` / ``out_opinion`` (by address) and ``state_opinion`` (by ``(op name, state name)``);
* ``fuse``: ``fused`` (op name -> fusion group id), rewritten opinions;
* ``resolve_edges``: ``root`` (value address seen through pass-through ops), ``readers_of_root``
  and ``reads`` (reader address -> :class:`Read`), ``dangling`` (output-only values);
* ``apply_boundaries``: rewritten ``reads`` (``Read.boundary_address``), ``state_override``;
* ``assign_schedules``: ``Read.schedule``;
* ``share_weights`` / ``place_quantizers``: ``entries``;
* ``resolve_axes``: ``Entry.axis`` / ``Entry.block_size``; ``share_qparams``: ``Entry.group``.
"""

from __future__ import annotations

from copy import copy as _copy
from dataclasses import dataclass, field
from typing import Any

from msgspec.structs import replace as _replace

from qplan.compiler.codes import diagnostic
from qplan.compiler.inventory import Inventory, Op
from qplan.compiler.plan import Decision, Role
from qplan.diagnostics import Diagnostic, Span
from qplan.schema.paths import config_path
from qplan.schema.types import (
    ModuleQuantizerConfig,
    OpQuantizerConfig,
    QATSchedule,
    QuantizationSpec,
    QuantizerConfig,
)

__all__ = [
    "Rule",
    "ModuleChoice",
    "OpRule",
    "Opinion",
    "Read",
    "Entry",
    "State",
    "TABLES",
    "FLOAT_DTYPES",
    "describe_spec",
    "concrete_spec",
    "lookup_tensor_spec",
]

FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})
"""Tensor dtypes that can be fake-quantized; integer tensors (indices, masks) never are."""

Parts = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """A module-level rule: a module_name_configs / module_type_configs key, or global_config."""

    level: str  # "name" | "type" | "global"
    key: str | None
    index: int  # declaration order within its level
    parts: Parts  # config path parts of the rule
    config: ModuleQuantizerConfig | None


@dataclass(frozen=True, slots=True)
class ModuleChoice:
    """The module config that governs one module, and the rules it beat."""

    rule: Rule | None  # None only when there is no global config and nothing matched
    beaten: tuple[Rule, ...]  # most specific first
    owner: bool  # the winning rule matched this module itself (its module_*_spec applies here)


@dataclass(frozen=True, slots=True)
class OpRule:
    """The op config that governs one op: where it came from and what it beat."""

    config: OpQuantizerConfig | None  # None: declines everything (a null op config)
    parts: Parts  # config path parts of the op config (the module rule for its own op_*_spec)
    level: str  # "op_name" | "op_type" | "module"
    beaten: tuple[Parts, ...]  # op-level and module-level rules that matched and lost
    module: str  # module path of the op (whose module config governs it)


@dataclass(frozen=True, slots=True)
class Opinion:
    """One rule's say on one tensor: quantize with `spec`, or decline (`spec is None`)."""

    spec: QuantizationSpec | None
    parts: Parts  # config path parts of the tensor entry that decided
    beaten: tuple[Parts, ...] = ()
    defaulted: bool = False
    module: str = ""  # module whose config's qat_schedule applies


@dataclass(frozen=True, slots=True)
class Read:
    """One op input (or model output) reading a quantized value."""

    reader: str  # "op:in<i>" or ":out<j>"
    root: str  # value read, seen through pass-through ops
    opinion: Opinion  # the rule that decided the read's spec
    order: tuple[int, int]  # (op index, input index); model outputs sort last
    boundary_address: str | None = None  # `<module>:in<i>` / `:out<j>` when a module boundary spec decided
    extra_beaten: tuple[Parts, ...] = ()  # e.g. the producer's output rule the consumer overrode
    sched_module: str = ""  # module whose schedule applies (set by resolve_edges / apply_boundaries)
    fallback_module: str = ""  # used when `sched_module` has no module config
    schedule: QATSchedule | None = None


@dataclass(slots=True)
class Entry:
    """One fake-quant being placed (becomes a QuantizerEntry).

    A pass that refines entries (``resolve_axes``, ``share_qparams``) works on copies
    (:func:`dataclasses.replace`), never on the entries of the state it was given.
    """

    address: str
    role: Role
    source: str
    spec: QuantizationSpec
    schedule: QATSchedule | None
    readers: list[str]
    opinion: Opinion
    order: tuple[int, int]
    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    extra_beaten: tuple[Parts, ...] = ()
    axis_op: str | None = None  # op type whose weight-axis defaults apply (weights)
    axis: int | None = None
    block_size: int | tuple[int, ...] | None = None
    group: str | None = None
    dropped: bool = False


@dataclass
class State:
    """Everything the passes share."""

    inventory: Inventory
    config: QuantizerConfig
    source_name: str = "<python>"
    sha256: str = ""
    spans: dict[str, Span] = field(default_factory=dict)
    strict: bool = False

    # resolve_configs
    module_choice: dict[str, ModuleChoice] = field(default_factory=dict)
    op_rule: dict[str, OpRule] = field(default_factory=dict)
    in_opinion: dict[str, Opinion] = field(default_factory=dict)
    out_opinion: dict[str, Opinion] = field(default_factory=dict)
    state_opinion: dict[tuple[str, str], Opinion] = field(default_factory=dict)
    # fuse
    fused: dict[str, str] = field(default_factory=dict)
    # resolve_edges
    root: dict[str, str] = field(default_factory=dict)
    readers_of_root: dict[str, list[tuple[str, str | None]]] = field(
        default_factory=dict
    )  # root -> [(reader, module or None for a model output)]
    reads: dict[str, Read] = field(default_factory=dict)
    dangling: list[str] = field(default_factory=list)
    # apply_boundaries
    state_override: dict[str, Opinion] = field(default_factory=dict)
    # share_weights / place_quantizers
    entries: list[Entry] = field(default_factory=list)

    # intern_specs
    specs: dict[str, Any] = field(default_factory=dict)
    quantizers: list[Any] = field(default_factory=list)

    decisions: list[Decision] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    # -- derived lookups, built once ------------------------------------------------------
    def __post_init__(self) -> None:
        inv = self.inventory
        self.op_index: dict[str, int] = {op.name: i for i, op in enumerate(inv.ops)}
        self.producer: dict[str, Op] = {}
        self.direct_readers: dict[str, list[tuple[int, int]]] = {}  # value -> [(op index, input index)]
        self.tensor: dict[str, tuple[tuple[int, ...], str]] = {}
        for t in inv.inputs:
            if t.source:
                self.tensor[t.source] = (tuple(t.shape), t.dtype)
        for fqn, t in inv.parameters.items():
            self.tensor[fqn] = (tuple(t.shape), t.dtype)
        for k, op in enumerate(inv.ops):
            for i, t in enumerate(op.inputs):
                if t.source is not None:
                    self.direct_readers.setdefault(t.source, []).append((k, i))
            for t in op.outputs:
                if t.source:
                    self.producer[t.source] = op
                    self.tensor[t.source] = (tuple(t.shape), t.dtype)
        self.model_outputs: set[str] = {s for s in inv.outputs if s}
        self.module_order: dict[str, int] = {m.path: i for i, m in enumerate(inv.modules)}
        self.module_info = {m.path: m for m in inv.modules}
        self._paths: dict[Parts, str] = {}
        self.cache: dict[Any, Any] = {}  # per-pass memo tables (keys start with the pass's own tag)

    # -- helpers ---------------------------------------------------------------------------
    def evolve(self, **tables: Any) -> State:
        """A new state sharing this one's inputs and derived lookups, with `tables` replaced.

        A pass returns ``state.evolve(<table>=<the new table>, ...)``; the tables it was given
        stay as they were.
        """
        unknown = sorted(set(tables) - TABLES)
        if unknown:
            raise TypeError(f"`{unknown[0]}` is not a State table")
        new = _copy(self)
        for name, value in tables.items():
            setattr(new, name, value)
        return new

    def path(self, parts: Parts) -> str:
        """The config path text of `parts` (memoised: the same rules come up for many tensors)."""
        text = self._paths.get(parts)
        if text is None:
            text = self._paths[parts] = config_path(parts)
        return text

    def span(self, parts: Parts) -> Span | None:
        """Span of a config path, or of its nearest ancestor that has one."""
        if not self.spans:
            return None
        while parts:
            span = self.spans.get(self.path(parts))
            if span is not None:
                return span
            parts = parts[:-1]
        return None

    def report(self, code: str, message: str, parts: Parts, *, help: str | None = None) -> None:
        """Append a diagnostic `code` at the config path `parts` (its span: see :meth:`span`)."""
        self.diagnostics.append(diagnostic(code, message, path=self.path(parts), span=self.span(parts), help=help))

    def schedule_of(self, module: str) -> tuple[bool, QATSchedule | None]:
        """(has a module config, its qat_schedule) for the module config governing `module`."""
        choice = self.module_choice.get(module)
        cfg = choice.rule.config if choice is not None and choice.rule is not None else None
        return (cfg is not None, cfg.qat_schedule if cfg is not None else None)

    def lint(self) -> None:
        """Check the invariants the passes keep (tests run this after every pass).

        The inventory is well formed; every read names a known value; no reader is served by
        two fake-quants; fake-quant addresses and quantizer ids are unique; spec ids resolve.
        """
        self.inventory.lint()
        for reader, read in self.reads.items():
            if read.reader != reader or read.root not in self.tensor:
                raise AssertionError(f"read `{reader}` of unknown value `{read.root}`")
        served: dict[str, str] = {}
        addresses: set[str] = set()
        for e in self.entries:
            if e.dropped:
                continue
            if e.address in addresses:
                raise AssertionError(f"two fake-quants at `{e.address}`")
            addresses.add(e.address)
            for r in e.readers:
                if r in served:
                    raise AssertionError(f"`{r}` is served by `{served[r]}` and `{e.address}`")
                served[r] = e.address
        ids = [q.id for q in self.quantizers]
        if len(set(ids)) != len(ids):
            raise AssertionError("duplicate quantizer ids")
        for q in self.quantizers:
            if q.spec not in self.specs:
                raise AssertionError(f"`{q.address}` names unknown spec `{q.spec}`")

    def is_float(self, address: str) -> bool:
        """Whether the value at `address` is a known floating-point tensor (only those are quantized)."""
        info = self.tensor.get(address)
        return info is not None and info[1] in FLOAT_DTYPES


TABLES = frozenset(
    {
        "module_choice", "op_rule", "in_opinion", "out_opinion", "state_opinion", "fused", "root",
        "readers_of_root", "reads", "dangling", "state_override", "entries", "specs", "quantizers",
    }
)  # fmt: skip
"""The side tables the passes produce (each written by the passes ``pipeline.PASSES`` names)."""


def lookup_tensor_spec(specs: dict, keys: tuple[str | None, ...]) -> tuple[str, QuantizationSpec | None, bool] | None:
    """A tensor dict lookup (see docs/config-language.md#how-a-config-is-resolved-against-a-model step 3): ``(key, spec, star_beaten)`` for the first of `keys`
    present, else for `"*"`, else None (no opinion). `star_beaten`: an explicit key beat a `"*"`."""
    for k in keys:
        if k is not None and k in specs:
            return k, specs[k], "*" in specs
    if "*" in specs:
        return "*", specs["*"], False
    return None


_CALC = {"activation": "moving_average", "state": "static"}


def concrete_spec(spec: QuantizationSpec | None, kind: str) -> QuantizationSpec | None:
    """`spec` with qparam_calculator_cls `default` made concrete for `kind` (`activation` or
    `state`), so that specs that quantize the same way compare equal."""
    if spec is None or spec.qparam_calculator_cls != "default":
        return spec
    key = (spec, kind)
    out = _CONCRETE.get(key)
    if out is None:
        out = _CONCRETE[key] = _replace(spec, qparam_calculator_cls=_CALC[kind])
    return out


_CONCRETE: dict[tuple[QuantizationSpec, str], QuantizationSpec] = {}


def describe_spec(spec: QuantizationSpec | None) -> str:
    """A short human form of a spec (`int8 per_tensor`), or `float` for a decline."""
    if spec is None:
        return "float"
    g = spec.granularity
    kind = type(g).__name__.removeprefix("Per").removesuffix("Granularity").lower()
    kind = {"tensor": "per_tensor", "channel": "per_channel", "block": "per_block"}.get(kind, kind)
    block = getattr(g, "block_size", None)
    extra = f" block {block}" if kind == "per_block" else ""
    axis = getattr(g, "axis", None)
    extra += f" axis {axis}" if axis is not None else ""
    return f"{spec.dtype} {spec.qscheme} {kind}{extra}"
