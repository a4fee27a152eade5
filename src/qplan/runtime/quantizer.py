"""`Quantizer`: apply a plan to a model for calibration, QAT and export (see docs/runtime.md).

::

    q = Quantizer(model, plan_or_config)
    prepared = q.prepare(example_inputs)     # GraphModule (graph mode) or nn.Module (eager mode)
    q.calibration_mode(); prepared(x) ...     # observers on, fake-quant off
    q.training_mode(); loss.backward(); opt.step(); q.step()
    ep = q.finalize()                         # torch.export.ExportedProgram with quantized weights

The user's model is never modified: prepare works on a deep copy. Mode switches only flip the
fake-quants' uint8 flag buffers; the graph is never rewritten after prepare.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import torch
from torch import nn

from qplan.compiler.capture import CaptureError, capture
from qplan.compiler.plan import Plan, decode_plan, load_plan
from qplan.diagnostics import QplanError
from qplan.runtime.eager import attach
from qplan.runtime.fake_quant import FakeQuantize, UncalibratedError, make_fake_quantize
from qplan.runtime.fold import fold_batch_norms
from qplan.runtime.graph import bind_training_flags, insert_fake_quants, sink_fake_quants
from qplan.runtime.match import EntryPlacement, check_fingerprint, place_entries
from qplan.runtime.shapes import ShapeSpec, auto_spec, dynamic_dims, user_spec, warn_fixed
from qplan.schema.types import QATSchedule, QuantizerConfig

__all__ = ["Quantizer", "ScheduleError", "ModeError", "UncalibratedError", "load_plan"]


class ScheduleError(QplanError):
    """A manual observer/fake-quant switch was used while the plan carries QAT schedules."""


class ModeError(QplanError):
    """A call that needs another mode: ``step()`` outside training mode."""


def _capture_mode(mode: object) -> Literal["graph", "eager"]:
    if mode not in ("graph", "eager"):
        raise QplanError(f"execution mode `{mode}` is not `graph` or `eager`")
    return "graph" if mode == "graph" else "eager"


def _as_tuple(example_inputs: Any) -> tuple:
    if isinstance(example_inputs, tuple):
        return example_inputs
    if isinstance(example_inputs, list):
        return tuple(example_inputs)
    return (example_inputs,)


def _as_plan_or_config(obj: Any) -> Any:
    """A Plan, or a config as ``compile_plan`` takes it (QuantizerConfig or LoadedConfig)."""
    if isinstance(obj, (Plan, QuantizerConfig)) or type(obj).__name__ == "LoadedConfig":
        return obj
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        data = path.read_bytes()
        if path.suffix == ".json" and b'"qplan.plan"' in data:
            return decode_plan(data, str(path))
        from qplan.schema.loader import load_config

        return load_config(path)  # keeps file positions for the plan's provenance
    raise TypeError(f"expected a Plan, a QuantizerConfig or a path, got `{type(obj).__name__}`")


class Quantizer:
    """Applies one plan (or a config compiled on the fly) to one model."""

    def __init__(
        self, model: nn.Module, plan_or_config: Plan | QuantizerConfig | str | Path, *, mode: str | None = None
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected an nn.Module, got `{type(model).__name__}`")
        self.model = model
        source = _as_plan_or_config(plan_or_config)
        self.plan: Plan | None = source if isinstance(source, Plan) else None
        self.config: Any = None if isinstance(source, Plan) else source
        if mode is not None and mode not in ("graph", "eager"):
            raise ValueError(f"mode `{mode}` is not `graph` or `eager`")
        if self.plan is not None and mode is not None and mode != self.plan.mode:
            raise QplanError(f"the plan was compiled for `{self.plan.mode}` mode, not `{mode}`")
        self.mode = mode
        self.prepared: nn.Module | None = None
        self.example_inputs: tuple = ()
        self.placements: list[EntryPlacement] = []
        self.fake_quants: dict[str, FakeQuantize] = {}  # submodule name -> module (one per plan entry)
        self._unique: list[FakeQuantize] = []  # distinct modules (qparams groups share one)
        self._schedules: list[tuple[FakeQuantize, QATSchedule]] = []
        self._unscheduled: list[FakeQuantize] = []
        self.step_count = 0
        self.folded: list[str] = []  # batch-norm ops folded into weights (graph mode)
        self.dynamic_batch = False  # graph mode: the prepared model accepts any batch size
        self.dynamic_dims: set[tuple[int, int]] = set()  # graph mode: (flat input, dim) left dynamic
        self.shape_spec: ShapeSpec = ShapeSpec(None, ())

    # ----------------------------------------------------------------------------------- prepare
    def prepare(self, example_inputs: Any, *, dynamic_shapes: Any = None) -> nn.Module:
        """Capture a copy of the model, check it against the plan, insert the plan's fake-quants.

        Graph mode exports with every input dimension the model allows dynamic (``Dim.AUTO``), or
        with ``dynamic_shapes`` in ``torch.export``'s convention; a batch or sequence dimension the
        export fixes is a :class:`~qplan.runtime.shapes.QplanShapeWarning`. :meth:`finalize` keeps
        the same dimensions dynamic.
        """
        if self.prepared is not None:
            raise QplanError("this Quantizer is already prepared; create a new one to prepare again")
        args = _as_tuple(example_inputs)
        try:
            work = copy.deepcopy(self.model)  # the user's model is never modified
        except Exception as e:
            raise QplanError(
                f"cannot copy `{type(self.model).__name__}` to prepare it ({type(e).__name__}: {e}); "
                "help: make the model deep-copyable (prepare never modifies the original)"
            ) from e
        cfg = getattr(self.config, "config", self.config)  # a LoadedConfig holds the QuantizerConfig
        mode = _capture_mode(self.plan.mode if self.plan is not None else self.mode or cfg.execution_mode)
        self.shape_spec = user_spec(args, dynamic_shapes) if dynamic_shapes is not None else auto_spec(args)
        cap, graph_cap = self._capture(work, args, mode)
        if self.plan is None:  # compile from this very capture (the model is captured once)
            from qplan.compiler import compile_inventory

            self.plan = compile_inventory(cap.inventory, self.config)
        plan = self.plan
        check_fingerprint(plan, cap.inventory)
        if graph_cap is not cap and graph_cap.inventory.fingerprint() != cap.inventory.fingerprint():
            why = "the export with dynamic sizes lists other ops than the plan's model"
            warn_fixed(cap.exported, self.shape_spec, "prepare", why=why, stacklevel=3)
            graph_cap = cap
            self.dynamic_dims = set()
        self.placements = place_entries(plan, graph_cap.inventory)
        self._build_modules(plan)
        if plan.mode == "graph":
            prepared = self._prepare_graph(graph_cap, plan)
        else:
            prepared = attach(work, self.placements, self.fake_quants, cap.inventory)
        self._preserve_attributes(prepared)
        self.prepared = prepared
        self.example_inputs = args
        if self.model.training:
            self.training_mode()
        else:
            self.inference_mode()  # nothing observed yet: running it raises until calibrated
        return prepared

    def _capture(self, work: nn.Module, args: tuple, mode: Literal["graph", "eager"]) -> tuple[Any, Any]:
        """(the capture the plan is checked against, the capture the prepared graph is built from).

        Graph mode captures once with dynamic shapes; a second, static capture at the example's own
        shapes is needed when the dynamic one used a doubled batch, or when it failed.
        """
        spec = self.shape_spec
        if mode == "eager":
            return (cap := capture(work, args, "eager")), cap
        try:
            dyn = capture(work, spec.args, "graph", dynamic_shapes=spec.dynamic_shapes)
        except CaptureError as e:
            if spec.given:
                raise CaptureError(f"{e} (with the given `dynamic_shapes`)") from e
            static = capture(work, args, "graph")
            warn_fixed(static.exported, spec, "prepare", why=f"the export with dynamic sizes failed ({e})")
            return static, static
        warn_fixed(dyn.exported, spec, "prepare")
        self.dynamic_dims = dynamic_dims(dyn.exported)
        return (capture(work, args, "graph") if spec.doubled else dyn), dyn

    def _prepare_graph(self, cap: Any, plan: Plan) -> nn.Module:
        self.dynamic_batch = any(d == 0 for _, d in self.dynamic_dims)
        gm = cap.exported.module()
        # the unlifted module refuses train()/eval(); the prepared model needs them (fake-quants,
        # and the dropout / batch-norm nodes bound below)
        for attr in ("train", "eval"):
            gm.__dict__.pop(attr, None)
        insert_fake_quants(gm, self.placements, self.fake_quants, cap)
        self.folded = fold_batch_norms(gm, cap, plan)
        bind_training_flags(gm)
        sink_fake_quants(gm)
        # the unlifted module re-checks the input pytree structure in a pre-hook on every call;
        # its own flatten and shape guards (`_guards_fn`) still run, so skip the extra check
        if hasattr(gm, "validate_inputs"):
            gm.validate_inputs = False
            # with that check off, export's three hooks on the unlifted module only (de)register
            # nn.Module-typed graph inputs; without such inputs they do nothing but still put every
            # call on nn.Module's slow hook path
            from torch.utils import _pytree as pytree

            if not any(isinstance(a, nn.Module) for a in pytree.tree_leaves(self.shape_spec.args)):
                for table in (
                    "_forward_pre_hooks",
                    "_forward_pre_hooks_with_kwargs",
                    "_forward_hooks",
                    "_forward_hooks_with_kwargs",
                    "_forward_hooks_always_called",
                ):
                    getattr(gm, table).clear()
        return gm

    def _build_modules(self, plan: Plan) -> None:
        by_group: dict[str, FakeQuantize] = {}
        for p in self.placements:
            e = p.entry
            mod = by_group.get(e.group) if e.group is not None else None
            if mod is None:
                spec = plan.specs.get(e.spec)
                if spec is None:
                    raise QplanError(f"quantizer `{e.id}` names spec `{e.spec}`, which the plan does not define")
                mod = make_fake_quantize(spec, tuple(e.shape), name=e.address, role=e.role)
                self._unique.append(mod)
                sched = spec.schedule
                if sched is None:
                    self._unscheduled.append(mod)
                else:
                    self._schedules.append((mod, sched))
                if e.group is not None:
                    by_group[e.group] = mod
            self.fake_quants[p.name] = mod

    def _preserve_attributes(self, prepared: nn.Module) -> None:
        cfg = getattr(self.config, "config", self.config)  # a LoadedConfig holds the QuantizerConfig
        names = getattr(cfg, "preserved_attributes", None) or ()
        for name in names:
            if hasattr(self.model, name) and not hasattr(prepared, name):
                setattr(prepared, name, getattr(self.model, name))

    def _require_prepared(self) -> nn.Module:
        if self.prepared is None:
            raise QplanError("call `prepare(example_inputs)` first")
        return self.prepared

    # ------------------------------------------------------------------------------------- modes
    @staticmethod
    def _set(mods: Sequence[FakeQuantize], observer: bool, fake_quant: bool) -> None:
        for m in mods:
            m.enable_observer(observer)
            m.enable_fake_quant(fake_quant)

    def _allow_uncalibrated(self, allow: bool) -> None:
        for m in self._unique:
            m.allow_uncalibrated = allow

    def calibration_mode(self) -> nn.Module:
        """Eval mode, observers on, fake-quant off."""
        prepared = self._require_prepared()
        prepared.eval()
        self._set(self._unique, True, False)
        self._allow_uncalibrated(False)
        return prepared

    def training_mode(self) -> nn.Module:
        """Train mode, each fake-quant in the state its schedule gives at the current step."""
        prepared = self._require_prepared()
        prepared.train()
        self._set(self._unscheduled, True, True)
        self._apply_schedules()
        self._allow_uncalibrated(False)
        return prepared

    def inference_mode(self, *, allow_uncalibrated: bool = False) -> nn.Module:
        """Eval mode, observers off, fake-quant on: what :meth:`finalize` reproduces.

        Running the prepared model then raises :class:`UncalibratedError` at the first activation
        fake-quant that never observed a value (weights observe themselves), unless
        ``allow_uncalibrated`` (quantize with the default qparams, scale 1, on purpose)."""
        prepared = self._require_prepared()
        prepared.eval()
        self._set(self._unique, False, True)
        self._allow_uncalibrated(allow_uncalibrated)
        return prepared

    eval_mode = inference_mode

    def step(self) -> int:
        """Advance the QAT step counter, then apply every schedule at the new step; returns the step.

        Only in training mode: in calibration or inference mode it raises :class:`ModeError` (a
        schedule would switch fake-quant or observers back on behind the mode's back)."""
        prepared = self._require_prepared()
        if not prepared.training:
            raise ModeError(
                "`step()` advances the QAT schedules and is only allowed in training mode, but the prepared "
                "model is in eval mode (`calibration_mode()` or `inference_mode()`); help: call "
                "`q.training_mode()` before the training loop that calls `step()`"
            )
        self.step_count += 1
        self._apply_schedules()
        return self.step_count

    def _apply_schedules(self) -> None:
        s = self.step_count
        for m, sch in self._schedules:
            m.enable_observer(sch.observer_on(s))
            m.enable_fake_quant(sch.fake_quant_on(s))

    def _manual(self, what: str, observer: bool | None, fake_quant: bool | None) -> None:
        self._require_prepared()
        if self._schedules:
            raise ScheduleError(
                f"`{what}()` is not allowed: the plan gives {len(self._schedules)} fake-quant(s) a QAT schedule; "
                "help: drive them with `step()`, or compile a plan without `qat_schedule`"
            )
        for m in self._unique:
            if observer is not None:
                m.enable_observer(observer)
            if fake_quant is not None:
                m.enable_fake_quant(fake_quant)

    def enable_observer(self) -> None:
        self._manual("enable_observer", True, None)

    def disable_observer(self) -> None:
        self._manual("disable_observer", False, None)

    def enable_fake_quant(self) -> None:
        self._manual("enable_fake_quant", None, True)

    def disable_fake_quant(self) -> None:
        self._manual("disable_fake_quant", None, False)

    # ---------------------------------------------------------------------------------- finalize
    @overload
    def finalize(
        self, *, format: Literal["program"] = "program", allow_uncalibrated: bool = False
    ) -> torch.export.ExportedProgram: ...
    @overload
    def finalize(self, *, format: Literal["module"], allow_uncalibrated: bool = False) -> nn.Module: ...

    def finalize(
        self, *, format: str = "program", allow_uncalibrated: bool = False
    ) -> torch.export.ExportedProgram | nn.Module:
        """The model with weights stored quantized and (de)quantize ops: an exported program, or with
        ``format="module"`` an ``nn.Module`` (for models `torch.export` cannot trace; see `finalize`).

        Raises :class:`UncalibratedError` naming every activation fake-quant that never observed a
        value, unless ``allow_uncalibrated`` (bake the default qparams, scale 1, in on purpose)."""
        from qplan.runtime.finalize import finalize  # loads torch's quantized_decomposed ops: only when used

        self._require_prepared()
        return finalize(self, format=format, allow_uncalibrated=allow_uncalibrated)
