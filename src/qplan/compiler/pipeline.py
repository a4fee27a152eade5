"""The compiler pipeline: a tuple of passes and the loop that runs them (see docs/config-language.md#how-a-config-is-resolved-against-a-model).

Each pass is a plain function ``State -> State`` in its own module, wrapped in a :class:`Pass`
record that says, as data, which side tables of :class:`~qplan.compiler.state.State` it
``reads`` and which it ``writes``. The contract:

* a pass returns a **new** state (``state.evolve(table=...)``) holding the tables it wrote,
  built fresh or copied from its input before being changed; the state it was given keeps
  its tables as they were, so data flows one way, from pass to pass;
* it writes only the tables it names in ``writes`` (:func:`run_passes` checks that every other
  table is the same object as before, and that the input's tables did not change size);
* the inputs (``inventory``, ``config``, ``spans``) and the lookups derived from the
  inventory are shared and never written; the ``decisions`` and ``diagnostics`` logs are
  append-only and shared by all states of one compile; ``cache`` is a memo table.

Order matters; what each pass reads and writes:

==================  ==========================================  =====================================
pass                reads                                       writes
==================  ==========================================  =====================================
resolve_configs     inventory, config                           module_choice
resolve_ops         module_choice                               op_rule, in/out/state_opinion
fuse                in/out/state_opinion                        fused, in/out/state_opinion
resolve_edges       in_opinion, out_opinion                     root, readers_of_root, reads, dangling
apply_boundaries    module_choice, root, readers_of_root,       reads, state_override
                    reads
assign_schedules    module_choice, reads                        reads (``Read.schedule``)
share_weights       module_choice, state_opinion,               entries (weights)
                    state_override
place_quantizers    module_choice, reads, out_opinion,          entries (+ activations)
                    dangling, entries
resolve_axes        entries                                     entries (axis, block size)
share_qparams       fused, entries                              entries (qparams groups)
report_unquantized  module_choice, state_opinion, entries       (diagnostics only)
intern_specs        entries                                     specs, quantizers
==================  ==========================================  =====================================
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from qplan.compiler.apply_boundaries import apply_boundaries
from qplan.compiler.assign_schedules import assign_schedules
from qplan.compiler.codes import strictify
from qplan.compiler.fuse import fuse
from qplan.compiler.gc_pause import gc_paused
from qplan.compiler.intern_specs import intern_specs
from qplan.compiler.inventory import Inventory
from qplan.compiler.place_quantizers import place_quantizers
from qplan.compiler.plan import ConfigInfo, ModelInfo, Plan
from qplan.compiler.report_unquantized import report_unquantized_weights
from qplan.compiler.resolve_axes import resolve_axes
from qplan.compiler.resolve_configs import resolve_configs
from qplan.compiler.resolve_edges import resolve_edges
from qplan.compiler.resolve_ops import resolve_ops
from qplan.compiler.share_qparams import share_qparams
from qplan.compiler.share_weights import share_weights
from qplan.compiler.state import TABLES, State
from qplan.diagnostics import CompileError, Diagnostic, sort_key
from qplan.schema.types import ExecutionMode, QuantizerConfig

if TYPE_CHECKING:
    from qplan.compiler.inventory_cache import InventoryCache

__all__ = ["PASSES", "Pass", "run_passes", "compile_inventory", "compile_plan", "config_source"]

_OPINIONS = ("in_opinion", "out_opinion", "state_opinion")


@dataclass(frozen=True)
class Pass:
    """One compiler pass and its contract: the side tables it reads and the ones it writes."""

    run: Callable[[State], State]
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.run.__name__

    def __post_init__(self) -> None:
        unknown = sorted(set(self.reads + self.writes) - TABLES - _INPUTS)
        if unknown:
            raise ValueError(f"pass `{self.name}` names unknown table `{unknown[0]}`")


_INPUTS = frozenset({"inventory", "config"})

PASSES: tuple[Pass, ...] = (
    Pass(resolve_configs, reads=("inventory", "config"), writes=("module_choice",)),
    Pass(resolve_ops, reads=("module_choice",), writes=("op_rule", *_OPINIONS)),
    Pass(fuse, reads=_OPINIONS, writes=("fused", *_OPINIONS)),
    Pass(resolve_edges, reads=("in_opinion", "out_opinion"), writes=("root", "readers_of_root", "reads", "dangling")),
    Pass(
        apply_boundaries,
        reads=("module_choice", "root", "readers_of_root", "reads"),
        writes=("reads", "state_override"),
    ),
    Pass(assign_schedules, reads=("module_choice", "reads"), writes=("reads",)),
    Pass(share_weights, reads=("module_choice", "state_opinion", "state_override"), writes=("entries",)),
    Pass(
        place_quantizers,
        reads=("module_choice", "reads", "out_opinion", "dangling", "entries"),
        writes=("entries",),
    ),
    Pass(resolve_axes, reads=("entries",), writes=("entries",)),
    Pass(share_qparams, reads=("fused", "entries"), writes=("entries",)),
    Pass(report_unquantized_weights, reads=("module_choice", "state_opinion", "entries"), writes=()),
    Pass(intern_specs, reads=("entries",), writes=("specs", "quantizers")),
)


def run_passes(state: State, passes: Sequence[Pass] = PASSES, *, check: Callable[[State], None] | None = None) -> State:
    """Run `passes` in order, checking each one's contract and calling `check` (e.g.
    ``State.lint``) after each one."""
    with gc_paused():
        for p in passes:
            before = {t: getattr(state, t) for t in TABLES}
            sizes = {t: len(v) for t, v in before.items()}
            state = p.run(state)
            _check_contract(p, before, sizes, state)
            if check is not None:
                try:
                    check(state)
                except AssertionError as e:
                    raise AssertionError(f"after pass `{p.name}`: {e}") from e
    return state


def _check_contract(p: Pass, before: dict[str, Any], sizes: dict[str, int], after: State) -> None:
    """`p` replaced only the tables it names in ``writes`` and left its input's tables unchanged."""
    for table, old in before.items():
        if len(old) != sizes[table]:
            raise AssertionError(f"pass `{p.name}` changed its input's `{table}` in place")
        if table not in p.writes and getattr(after, table) is not old:
            raise AssertionError(f"pass `{p.name}` wrote `{table}`, which its contract does not list")


def config_source(config: Any) -> tuple[QuantizerConfig, str, str, dict]:
    """(config, source name, sha256, spans) from a QuantizerConfig, a LoadedConfig or a path."""
    if isinstance(config, QuantizerConfig):
        data = msgspec.json.encode(msgspec.to_builtins(config.to_dict()), order="sorted")
        return config, "<python>", hashlib.sha256(data).hexdigest(), {}
    if hasattr(config, "config") and hasattr(config, "spans"):
        return config.config, _relative_name(config.name), config.sha256, dict(config.spans)
    if isinstance(config, (str, bytes, os.PathLike)):
        from qplan.schema.loader import load_config

        return config_source(load_config(config))
    raise TypeError(
        f"config must be a QuantizerConfig, a LoadedConfig, a path or YAML text, got `{type(config).__name__}`"
    )


def _relative_name(name: str) -> str:
    """Plans never hold absolute paths: keep a name as given unless it is absolute."""
    return os.path.basename(name) if os.path.isabs(name) else name


def compile_inventory(
    inventory: Inventory, config: Any, *, strict: bool = False, check: Callable[[State], None] | None = None
) -> Plan:
    """Compile a captured (or hand-built) op inventory and a config into a plan.

    Raises :class:`CompileError` when any diagnostic is an error (with ``strict``, any warning).
    `check` runs after every pass (tests pass ``State.lint``).
    """
    cfg, name, sha, spans = config_source(config)
    with gc_paused():
        state = State(inventory=inventory, config=cfg, source_name=name, sha256=sha, spans=spans, strict=strict)
        state = run_passes(state, check=check)
        diagnostics = strictify(state.diagnostics) if strict else list(state.diagnostics)
        diagnostics.sort(key=sort_key)
        if any(d.level == "error" for d in diagnostics):
            raise CompileError(diagnostics)
        return Plan(
            mode=inventory.mode,
            model=ModelInfo(class_name=inventory.model_class, fingerprint=inventory.fingerprint()),
            config=ConfigInfo(source=name, sha256=sha),
            specs=state.specs,
            quantizers=tuple(state.quantizers),
            decisions=tuple(state.decisions),
            diagnostics=tuple(_named_as(d, name) for d in diagnostics),
        )


def _named_as(d: Diagnostic, name: str) -> Diagnostic:
    """`d` with its span naming the config as the plan does (a config loaded by absolute path
    has its spans under that path; plans hold no absolute paths)."""
    if d.span is None or d.span.file == name or _relative_name(d.span.file) != name:
        return d
    return msgspec.structs.replace(d, span=msgspec.structs.replace(d.span, file=name))


def compile_plan(
    model: Any,
    config: Any,
    example_inputs: Any,
    mode: Any = None,
    *,
    strict: bool = False,
    cache: InventoryCache | None = None,
) -> Plan:
    """Capture `model` on `example_inputs` (never modifying it) and compile `config` into a plan.

    `config` is a :class:`QuantizerConfig`, a ``LoadedConfig`` (``qplan.schema.loader.load_config``),
    a path or YAML/JSON text; `mode` defaults to the config's ``execution_mode``. With `cache`
    (an :class:`~qplan.compiler.inventory_cache.InventoryCache`), a model captured before is
    read from it instead of captured again.
    """
    from qplan.compiler.capture import capture

    if isinstance(config, (str, bytes, os.PathLike)):
        config = _load(config)
    cfg = config_source(config)[0]
    mode = str(ExecutionMode.parse(mode if mode is not None else cfg.execution_mode))
    if cache is not None:
        inventory = cache.capture(model, example_inputs, mode)
    else:
        inventory = capture(model, example_inputs, mode).inventory
    return compile_inventory(inventory, config, strict=strict)


def _load(path: Any) -> Any:
    from qplan.schema.loader import load_config

    return load_config(path)
