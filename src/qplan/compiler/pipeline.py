"""The compiler pipeline: a tuple of passes and the loop that runs them (SPEC §2).

Each pass is a plain function ``State -> State`` in its own module; order matters:

1. ``resolve_configs``  module config per module (name > type > global)
2. ``resolve_ops``      op config per op, tensor opinions (needs 1)
3. ``fuse``             fusion groups rewrite opinions (needs 2)
4. ``resolve_edges``    the edge rule: what each consumer reads (needs 3)
5. ``apply_boundaries`` module_*_spec override reads and states (needs 4)
6. ``assign_schedules`` schedule of every read (needs 5)
7. ``share_weights``    one fake-quant per parameter (needs 2, 5)
8. ``place_quantizers`` reads grouped into fake-quants (needs 6)
9. ``resolve_axes``     axis defaults, block checks (needs 7, 8)
10. ``share_qparams``   union-find groups on value-preserving ops (needs 9)
11. ``intern_specs``    spec table and quantizer entries (needs 10)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any

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
from qplan.compiler.resolve_axes import resolve_axes
from qplan.compiler.resolve_configs import resolve_configs
from qplan.compiler.resolve_edges import resolve_edges
from qplan.compiler.resolve_ops import resolve_ops
from qplan.compiler.share_qparams import share_qparams
from qplan.compiler.share_weights import share_weights
from qplan.compiler.state import State
from qplan.diagnostics import CompileError, Diagnostic, sort_key
from qplan.schema.types import ExecutionMode, QuantizerConfig

__all__ = ["PASSES", "Pass", "run_passes", "compile_inventory", "compile_plan", "config_source"]

Pass = Callable[[State], State]

PASSES: tuple[Pass, ...] = (
    resolve_configs,
    resolve_ops,
    fuse,
    resolve_edges,
    apply_boundaries,
    assign_schedules,
    share_weights,
    place_quantizers,
    resolve_axes,
    share_qparams,
    intern_specs,
)


def run_passes(state: State, passes: Sequence[Pass] = PASSES, *, check: Callable[[State], None] | None = None) -> State:
    """Run `passes` in order, calling `check` (e.g. ``State.lint``) after each one."""
    with gc_paused():
        for p in passes:
            state = p(state)
            if check is not None:
                try:
                    check(state)
                except AssertionError as e:
                    raise AssertionError(f"after pass `{p.__name__}`: {e}") from e
    return state


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


def compile_plan(model: Any, config: Any, example_inputs: Any, mode: Any = None, *, strict: bool = False) -> Plan:
    """Capture `model` on `example_inputs` (never modifying it) and compile `config` into a plan.

    `config` is a :class:`QuantizerConfig`, a ``LoadedConfig`` (``qplan.schema.loader.load_config``),
    a path or YAML/JSON text; `mode` defaults to the config's ``execution_mode``.
    """
    from qplan.compiler.capture import capture

    if isinstance(config, (str, bytes, os.PathLike)):
        config = _load(config)
    cfg = config_source(config)[0]
    mode = str(ExecutionMode.parse(mode if mode is not None else cfg.execution_mode))
    inventory = capture(model, example_inputs, mode).inventory
    return compile_inventory(inventory, config, strict=strict)


def _load(path: Any) -> Any:
    from qplan.schema.loader import load_config

    return load_config(path)
