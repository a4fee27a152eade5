"""Model capture (SPEC §2.1-2.2): one forward of the model becomes an :class:`Inventory`.

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
  table's input slots (``cat``: one input per list element). A parameter/buffer in a state slot
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

**Contract for the runtime (eager).** :class:`EagerOpNamer` is the single implementation of
eager naming. ``with namer.session(args): out = model(*args)`` runs one forward; for every
torch-level call it builds an :class:`OpCall` (tentative name, op type, module, inputs with
their sources and locations in ``(args, kwargs)``, states with their locations) and calls
:meth:`EagerOpNamer.intercept`, which a subclass may override to rewrite arguments
(:meth:`OpCall.replace_inputs`, :meth:`OpCall.replace_states`) and wrap the result; the
returned tensors get the call's output addresses. Tensors created elsewhere (e.g. a module
pre-hook) take a source with :meth:`EagerOpNamer.set_source`. Names and sources are exactly
those :func:`capture` writes into the inventory.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.utils._pytree as pytree
from torch import nn
from torch.overrides import TorchFunctionMode, resolve_name

from qplan.compiler.inventory import Inventory, ModuleInfo, Op, TensorRef
from qplan.compiler.ops import ARG_ALIASES, OP_TABLE, normalize_op_type
from qplan.diagnostics import QplanError

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

Mode = Literal["graph", "eager"]
_UNLISTED = ("pass_through", "ignore")


class CaptureError(QplanError, ValueError):
    """The model cannot be captured in the requested mode (the message says why)."""


# --------------------------------------------------------------------------- shared helpers


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _shape(t: Any) -> tuple[int, ...]:
    shape = tuple(t.shape)
    if all(type(s) is int for s in shape):
        return shape
    out = []
    for s in shape:
        try:
            out.append(int(s))
        except TypeError:  # unbacked symbolic size
            out.append(-1)
    return tuple(out)


def _tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of a call's result, flattened (fast paths for the common shapes)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if out is None:
        return []
    if type(out) in (tuple, list) and all(isinstance(t, torch.Tensor) for t in out):
        return list(out)
    return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def _ref(source: str | None, t: Any) -> TensorRef:
    return TensorRef(source=source, shape=_shape(t), dtype=_dtype(t))


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _import_paths(cls: type) -> tuple[str, ...]:
    """Other public import paths of `cls`: ``torch.nn.modules.linear.Linear`` → ``torch.nn.Linear``."""
    import sys

    parts = cls.__module__.split(".")
    found = []
    for k in range(len(parts) - 1, 0, -1):
        mod = sys.modules.get(".".join(parts[:k]))
        if mod is not None and getattr(mod, cls.__qualname__, None) is cls:
            found.append(f"{'.'.join(parts[:k])}.{cls.__qualname__}")
    return tuple(found)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _attr_name(fqn: str) -> str:
    return fqn.rsplit(".", 1)[-1]


@dataclass
class _Arg:
    """One tensor argument of a call: its signature name, source, value and where it sits."""

    name: str | None
    source: str | None
    value: Any  # a tensor (eager) or a FakeTensor (graph)
    loc: Any  # eager: ("args", i[, k]) / ("kwargs", key[, k]); graph: (consumer node, input node)


def _classify(
    op_type: str, args: Sequence[_Arg], params: Callable[[str | None], bool], order: Mapping[str, int]
) -> tuple[list[_Arg], dict[str, _Arg]]:
    """Order a call's tensor arguments into (inputs, states) by the op table (module docstring)."""
    info = OP_TABLE.get(op_type)
    states: dict[str, _Arg] = {}
    if info is not None and any(a.name is not None for a in args):
        slotted: dict[str, list[_Arg]] = {}
        extras: list[_Arg] = []
        for a in args:
            name = ARG_ALIASES.get(a.name, a.name) if a.name else None
            if name in info.states and params(a.source):
                states[name] = a
            elif name in info.inputs:
                slotted.setdefault(name, []).append(a)
            else:
                extras.append(a)
        inputs = [a for slot in info.inputs for a in slotted.get(slot, [])] + extras
    else:
        inputs = list(args)
    if info is None:  # unknown ops: distinct values, activations then parameters (module docstring)
        seen: set[str] = set()
        inputs = [a for a in inputs if a.source is None or not (a.source in seen or seen.add(a.source))]
        acts = [a for a in inputs if not params(a.source)]
        inputs = acts + sorted((a for a in inputs if params(a.source)), key=lambda a: order[a.source])
    for a in inputs:
        if params(a.source) and a.value.is_floating_point():
            key = _attr_name(a.source)  # type: ignore[arg-type]
            if key in states and states[key].source != a.source:
                key = a.source  # type: ignore[assignment]
            states.setdefault(key, a)
    return inputs, states


def _is_candidate(op_type: str, args: Sequence[_Arg]) -> bool:
    info = OP_TABLE.get(op_type)
    if info is not None and info.cls in _UNLISTED:
        return False
    return any(a.source is not None and a.value.is_floating_point() for a in args)


def _through(data: _Arg | None, out: Any) -> str | None:
    """Source of a pass-through output: its data input's, except for integer → float conversions."""
    if data is None or (not data.value.is_floating_point() and out.is_floating_point()):
        return None
    return data.source


class _Builder:
    """The mode-independent part: module paths, parameter names, counters, op records."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.module_path: dict[int, str] = {}
        for path, mod in model.named_modules():
            self.module_path.setdefault(id(mod), path)
        self.alias_path: dict[str, str] = {}
        for path, mod in model.named_modules(remove_duplicate=False):
            self.alias_path[path] = self.module_path[id(mod)]
        self.param_fqn: dict[int, str] = {}
        self.parameters: dict[str, TensorRef] = {}
        for fqn, t in [*model.named_parameters(), *model.named_buffers()]:
            if id(t) not in self.param_fqn:
                self.param_fqn[id(t)] = fqn
                self.parameters[fqn] = TensorRef(source=fqn, shape=_shape(t), dtype=_dtype(t))
        self.param_order = {fqn: k for k, fqn in enumerate(self.parameters)}
        self.all_param_names: dict[str, str] = {}  # any (aliased) name -> canonical fqn
        for fqn, t in [
            *model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False),
        ]:
            self.all_param_names[fqn] = self.param_fqn[id(t)]
        self.counters: dict[tuple[str, str], int] = {}
        self.ops: list[Op] = []
        self.first_call: dict[str, tuple[tuple[str | None, ...], tuple[str | None, ...]]] = {}

    def is_param(self, source: str | None) -> bool:
        return source is not None and source in self.parameters

    def peek_name(self, module: str, op_type: str) -> str:
        k = self.counters.get((module, op_type), 0)
        base = f"{module}.{op_type}" if module else op_type
        return base if k == 0 else f"{base}_{k}"

    def commit_name(self, module: str, op_type: str) -> None:
        key = (module, op_type)
        self.counters[key] = self.counters.get(key, 0) + 1

    def module_infos(self) -> tuple[ModuleInfo, ...]:
        infos = []
        for path, mod in self.model.named_modules():
            cls = type(mod)
            states = {}
            for name, t in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]:
                if t is not None and id(t) in self.param_fqn:
                    states[name] = self.param_fqn[id(t)]
            ins, outs = self.first_call.get(path, ((), ()))
            infos.append(
                ModuleInfo(
                    path=path,
                    cls=_class_path(cls),
                    qualname=cls.__qualname__,
                    import_paths=_import_paths(cls),
                    states=states,
                    inputs=ins,
                    outputs=outs,
                    called=path in self.first_call,
                )
            )
        return tuple(infos)

    def inventory(self, mode: str, inputs: tuple[TensorRef, ...], outputs: tuple[str | None, ...]) -> Inventory:
        return Inventory(
            model_class=_class_path(type(self.model)),
            mode=mode,
            modules=self.module_infos(),
            parameters=dict(self.parameters),
            ops=tuple(self.ops),
            inputs=inputs,
            outputs=outputs,
        )


# --------------------------------------------------------------------------- eager mode


@dataclass(frozen=True)
class InputSlot:
    """Input `index` of an op call: its source address and where the tensor sits in (args, kwargs)."""

    index: int
    source: str | None
    loc: tuple[Any, ...]  # ("args", i) / ("args", i, k) / ("kwargs", key) / ("kwargs", key, k)
    tensor: torch.Tensor


@dataclass
class OpCall:
    """One torch-level call seen by :class:`EagerOpNamer`.

    `name` is the op name the call gets if it is listed (``None`` for pass-through, ignored and
    non-candidate calls); it is final once the call returns a tensor.
    """

    func: Any
    target: str  # resolve_name(func), e.g. "torch.nn.functional.linear"
    op_type: str
    module: str
    name: str | None
    inputs: tuple[InputSlot, ...] = ()
    states: dict[str, str] = field(default_factory=dict)  # state name -> parameter fqn
    state_locs: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # state name -> where it sits

    def replace_states(self, args: tuple, kwargs: dict, new: dict[str, torch.Tensor]) -> tuple[tuple, dict]:
        """Copies of (args, kwargs) with state `name` (``"weight"``) replaced by ``new[name]``."""
        return _replace(args, kwargs, [(self.state_locs[k], v) for k, v in new.items()])

    def replace_inputs(self, args: tuple, kwargs: dict, new: dict[int, torch.Tensor]) -> tuple[tuple, dict]:
        """Copies of (args, kwargs) with input `i` replaced by ``new[i]``."""
        return _replace(args, kwargs, [(s.loc, new[s.index]) for s in self.inputs if s.index in new])


def _replace(args: tuple, kwargs: dict, edits: list[tuple[tuple[Any, ...], Any]]) -> tuple[tuple, dict]:
    out_args, out_kwargs = list(args), dict(kwargs)
    for (where, key, *rest), value in edits:
        box: Any = out_args if where == "args" else out_kwargs
        if rest:
            seq = list(box[key])
            seq[rest[0]] = value
            box[key] = tuple(seq) if isinstance(box[key], tuple) else seq
        else:
            box[key] = value
    return tuple(out_args), out_kwargs


def _first_tensor(args: tuple, kwargs: dict) -> tuple[tuple[Any, ...], torch.Tensor] | None:
    """(location, tensor) of the first tensor argument, lists included, args before kwargs."""
    for where, items in (("args", enumerate(args)), ("kwargs", kwargs.items())):
        for key, a in items:
            if isinstance(a, torch.Tensor):
                return (where, key), a
            if isinstance(a, (list, tuple)):
                for k, v in enumerate(a):
                    if isinstance(v, torch.Tensor):
                        return (where, key, k), v
    return None


_SIG_CACHE: dict[Any, tuple[tuple[str, ...], str | None]] = {}
_TARGET_CACHE: dict[Any, tuple[str, str]] = {}


def _target(func: Any) -> tuple[str, str]:
    """(qualified torch name, op type) of a function seen by the mode, cached."""
    try:
        return _TARGET_CACHE[func]
    except (KeyError, TypeError):
        pass
    try:
        target = resolve_name(func) or getattr(func, "__name__", repr(func))
    except Exception:  # pragma: no cover - exotic callables
        target = getattr(func, "__name__", repr(func))
    hit = (target, normalize_op_type(target) or target)
    try:
        _TARGET_CACHE[func] = hit
    except TypeError:  # unhashable callable
        pass
    return hit


def op_type_of(func: Any) -> str:
    """The op type of a function seen by :class:`EagerOpNamer` (``torch.nn.functional.linear`` → ``linear``)."""
    return _target(func)[1]


def has_tracked_float(source_of: Callable[[Any], str | None], args: tuple, kwargs: dict) -> bool:
    """Whether a call has a floating-point tensor argument with a source (lists one level deep, as
    :meth:`EagerOpNamer.describe` reads them): the condition for a listed op's call to get a name."""
    for a in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(a, torch.Tensor):
            if source_of(a) is not None and a.is_floating_point():
                return True
        elif isinstance(a, (list, tuple)):
            for v in a:
                if isinstance(v, torch.Tensor) and source_of(v) is not None and v.is_floating_point():
                    return True
    return False


def _positional_names(func: Any, op_type: str) -> tuple[tuple[str, ...], str | None]:
    """Positional argument names of a torch function (Python signature, else the aten schema)."""
    key = func
    try:
        hit = _SIG_CACHE.get(key)
    except TypeError:
        hit, key = None, None
    if hit is not None:
        return hit
    names: tuple[str, ...] = ()
    var: str | None = None
    try:
        sig = inspect.signature(func)
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = tuple(p.name for p in sig.parameters.values() if p.kind in kinds)
        var = next((p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    except (TypeError, ValueError):
        packet = None if op_type.startswith("__") else getattr(torch.ops.aten, op_type, None)
        if isinstance(packet, torch._ops.OpOverloadPacket):
            overloads = packet.overloads()
            if overloads:
                ovl = getattr(packet, "default" if "default" in overloads else overloads[0])
                names = tuple(a.name for a in ovl._schema.arguments if not a.kwarg_only)
    if key is not None:
        _SIG_CACHE[key] = (names, var)
    return names, var


class EagerOpNamer(TorchFunctionMode):
    """Names every torch-level call of one forward exactly as :func:`capture` does (eager mode).

    Use ``with namer.session(args): model(*args)``. Subclasses override :meth:`intercept` (and
    may call :meth:`set_source` for tensors they create). One namer serves many forwards; each
    session starts from fresh counters. With ``record=True`` the namer also builds the
    inventory's op records (what :func:`capture` uses); the runtime does not need them.
    """

    def __init__(self, model: nn.Module, *, record: bool = False) -> None:
        super().__init__()
        self.model = model
        self.record = record  # build the inventory's Op records (capture does; the runtime need not)
        self._builder = _Builder(model)
        self._stack: list[str] = []
        self._sources: dict[int, tuple[Any, str | None]] = {}
        self._internal = 0
        self._pending_out: set[str] = set()

    # -- sources
    def source_of(self, t: Any) -> str | None:
        """The address of the value `t` holds, or None when it is not tracked."""
        if not isinstance(t, torch.Tensor):
            return None
        hit = self._sources.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        return self._builder.param_fqn.get(id(t))

    def set_source(self, t: Any, source: str | None) -> None:
        """Record that tensor `t` holds the value at address `source`."""
        if isinstance(t, torch.Tensor):
            self._sources[id(t)] = (t, source)

    def parameter_fqns(self) -> dict[int, str]:
        """``id(tensor) -> canonical fqn`` of the parameters and buffers the namer recognises (a copy)."""
        return dict(self._builder.param_fqn)

    def rebind_parameters(self, pairs: Iterable[tuple[torch.Tensor, str]]) -> None:
        """Recognise exactly these tensors as the parameters/buffers of these fqns (the first fqn of a
        tensor wins): for a model whose modules now hold other tensor objects (``.to()``, export)."""
        table = self._builder.param_fqn
        table.clear()
        for t, fqn in pairs:
            table.setdefault(id(t), fqn)

    @property
    def module(self) -> str:
        """Path of the innermost module running now ("" = root)."""
        return self._stack[-1] if self._stack else ""

    # -- session
    @contextlib.contextmanager
    def session(self, args: Sequence[Any]) -> Iterator[EagerOpNamer]:
        """One forward: fresh counters, model inputs named ``:in<i>``, hooks on, mode on."""
        b = self._builder
        b.counters.clear()
        b.ops.clear()
        b.first_call.clear()
        self._sources.clear()
        self._stack.clear()
        self._pending_out.clear()
        for i, t in enumerate(t for t in pytree.tree_leaves(tuple(args)) if isinstance(t, torch.Tensor)):
            self.set_source(t, f":in{i}")
        handles = []
        try:
            for mod in self.model.modules():
                handles.append(mod.register_forward_pre_hook(self._pre_hook))
                handles.append(mod.register_forward_hook(self._post_hook, always_call=True))
            with self:
                yield self
        finally:
            for h in handles:
                h.remove()
            self._stack.clear()

    def _pre_hook(self, mod: nn.Module, args: tuple) -> None:
        path = self._builder.module_path.get(id(mod))
        if path is None:
            return
        self._stack.append(path)
        if path not in self._builder.first_call:
            ins = tuple(self.source_of(t) for t in pytree.tree_leaves(args) if isinstance(t, torch.Tensor))
            self._builder.first_call[path] = (ins, ())
            self._pending_out.add(path)

    def _post_hook(self, mod: nn.Module, args: tuple, out: Any) -> None:
        path = self._builder.module_path.get(id(mod))
        if path is None:
            return
        if self._stack and self._stack[-1] == path:
            self._stack.pop()
        if path in self._pending_out:
            self._pending_out.discard(path)
            outs = tuple(self.source_of(t) for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor))
            self._builder.first_call[path] = (self._builder.first_call[path][0], outs)

    # -- calls
    def _named_args(self, func: Any, op_type: str, args: tuple, kwargs: dict) -> list[_Arg]:
        names, var = _positional_names(func, op_type)
        out: list[_Arg] = []

        def add(name: str | None, value: Any, loc: tuple) -> None:
            if isinstance(value, torch.Tensor):
                out.append(_Arg(name, self.source_of(value), value, loc))
            elif isinstance(value, (list, tuple)):
                for k, v in enumerate(value):
                    if isinstance(v, torch.Tensor):
                        out.append(_Arg(name, self.source_of(v), v, (*loc, k)))

        for i, a in enumerate(args):
            add(names[i] if i < len(names) else var, a, ("args", i))
        for key, a in kwargs.items():
            add(key, a, ("kwargs", key))
        return out

    def describe(self, func: Any, args: tuple, kwargs: dict) -> tuple[OpCall, list[_Arg]]:
        """The :class:`OpCall` for a call about to run (does not advance the counters)."""
        target, op_type = _target(func)
        module = self.module
        info = OP_TABLE.get(op_type)
        if info is not None and info.cls in _UNLISTED:  # fast path: only the first tensor matters
            call = OpCall(func=func, target=target, op_type=op_type, module=module, name=None)
            first = _first_tensor(args, kwargs)
            if first is not None:
                loc, t = first
                call.inputs = (InputSlot(0, self.source_of(t), loc, t),)
            return call, []
        named = self._named_args(func, op_type, args, kwargs)
        name = self._builder.peek_name(module, op_type) if _is_candidate(op_type, named) else None
        call = OpCall(func=func, target=target, op_type=op_type, module=module, name=name)
        if name is not None:
            inputs, states = _classify(op_type, named, self._builder.is_param, self._builder.param_order)
            call.inputs = tuple(InputSlot(i, a.source, a.loc, a.value) for i, a in enumerate(inputs))
            call.states = {k: a.source for k, a in states.items()}  # type: ignore[misc]
            call.state_locs = {k: a.loc for k, a in states.items()}
        elif named:
            call.inputs = (InputSlot(0, named[0].source, named[0].loc, named[0].value),)
        return call, named

    def intercept(self, call: OpCall, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run one call; override to insert fake-quants. Default: ``func(*args, **kwargs)``."""
        return func(*args, **kwargs)

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if self._internal:
            return func(*args, **kwargs)
        self._internal += 1
        try:
            with torch._C.DisableTorchFunction():
                call, _ = self.describe(func, args, kwargs)
        finally:
            self._internal -= 1
        out = self.intercept(call, func, args, kwargs)
        self._internal += 1
        try:
            with torch._C.DisableTorchFunction():
                self._finish(call, out)
        finally:
            self._internal -= 1
        return out

    def name_outputs(self, call: OpCall, leaves: list[torch.Tensor]) -> bool:
        """Commit `call`'s name and track its output tensors as ``<name>:out<j>``; False (and the
        outputs untracked) when none of them is a float tensor."""
        self._builder.commit_name(call.module, call.op_type)
        if not any(t.is_floating_point() for t in leaves):
            for t in leaves:
                self.set_source(t, None)
            return False
        for j, t in enumerate(leaves):
            self.set_source(t, f"{call.name}:out{j}")
        return True

    def _finish(self, call: OpCall, out: Any) -> None:
        leaves = _tensors(out)
        info = OP_TABLE.get(call.op_type)
        if call.name is None:
            if info is not None and info.cls == "pass_through" and call.inputs:
                data = call.inputs[0]
                arg = _Arg(None, data.source, data.tensor, data.loc)
                for t in leaves:
                    self.set_source(t, _through(arg, t))
            else:
                for t in leaves:
                    if id(t) not in self._builder.param_fqn:
                        self.set_source(t, None)
            return
        if not leaves:
            return
        if not self.name_outputs(call, leaves) or not self.record:
            return
        outputs = [_ref(f"{call.name}:out{j}", t) for j, t in enumerate(leaves)]
        self._builder.ops.append(
            Op(
                name=call.name,
                op_type=call.op_type,
                module=call.module,
                inputs=tuple(_ref(s.source, s.tensor) for s in call.inputs),
                states=dict(call.states),
                outputs=tuple(outputs),
                target=call.target,
            )
        )


def _capture_eager(model: nn.Module, args: tuple) -> Capture:
    namer = EagerOpNamer(model, record=True)
    args = pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, args)
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), namer.session(args):
            out = model(*args)
            outputs = tuple(namer.source_of(t) for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor))
    except Exception as e:
        raise CaptureError(f"the forward of `{_class_path(type(model))}` failed: {_first_line(e)}") from e
    finally:
        with torch.no_grad():
            for k, v in model.named_buffers():
                if k in buffers:
                    v.copy_(buffers[k])
    b = namer._builder
    inputs = tuple(
        _ref(f":in{i}", t) for i, t in enumerate(t for t in pytree.tree_leaves(args) if isinstance(t, torch.Tensor))
    )
    return Capture(inventory=b.inventory("eager", inputs, outputs), mode="eager")


# --------------------------------------------------------------------------- graph mode


def _val(node: Any) -> Any:
    return node.meta.get("val") if isinstance(node, torch.fx.Node) else None


def _is_tensor_node(node: Any) -> bool:
    return isinstance(_val(node), torch.Tensor)


def _flat_nodes(x: Any) -> Iterator[Any]:
    if isinstance(x, (list, tuple)):
        for y in x:
            yield from _flat_nodes(y)
    else:
        yield x


from torch.fx.experimental.proxy_tensor import (  # noqa: E402 - graph mode only; loaded by `import torch`
    get_proxy_mode as _get_proxy_mode,
)
from torch.fx.experimental.proxy_tensor import (  # noqa: E402
    get_proxy_slot as _get_proxy_slot,
)


class _BoundaryTagger:
    """Forward (pre-)hooks active during export: tag the trace-time fx nodes of module boundaries."""

    KEY = "qplan_boundary"

    def __init__(self, builder: _Builder) -> None:
        self.builder = builder
        self.seen: set[str] = set()
        self._pending: set[str] = set()
        self.handles: list[Any] = []

    def _tag(self, values: Any, path: str, kind: str) -> int:
        mode = _get_proxy_mode()
        tensors = _tensors(values)
        if mode is None:
            return len(tensors)
        for i, t in enumerate(tensors):
            try:
                node = _get_proxy_slot(t, mode.tracer).proxy.node
            except Exception:  # not traced (constant): the source stays None
                continue
            node.meta.setdefault(self.KEY, []).append((path, kind, i))
        return len(tensors)

    def pre(self, path: str, args: tuple) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        n = self._tag(args, path, "in")
        self.builder.first_call[path] = ((None,) * n, ())
        self._pending.add(path)

    def post(self, path: str, out: Any) -> None:
        if path not in self._pending:
            return
        self._pending.discard(path)
        n = self._tag(out, path, "out")
        self.builder.first_call[path] = (self.builder.first_call[path][0], (None,) * n)

    @contextlib.contextmanager
    def active(self, model: nn.Module) -> Iterator[None]:
        # Plain closures that know their module's path: export may deep-copy the model (it does
        # when a module is registered under two names); a copied hook must still report to us.
        def hooks(path: str) -> tuple[Callable[..., None], Callable[..., None]]:
            def pre(mod: nn.Module, args: tuple) -> None:
                self.pre(path, args)

            def post(mod: nn.Module, args: tuple, out: Any) -> None:
                self.post(path, out)

            return pre, post

        try:
            for mod in model.modules():
                pre, post = hooks(self.builder.module_path[id(mod)])
                self.handles.append(mod.register_forward_pre_hook(pre))
                self.handles.append(mod.register_forward_hook(post))
            yield
        finally:
            for h in self.handles:
                h.remove()
            self.handles.clear()


def _group_key(node: torch.fx.Node) -> Any:
    fn = node.meta.get("torch_fn")
    return tuple(fn) if fn else None


def _groups(graph: torch.fx.Graph) -> list[list[torch.fx.Node]]:
    """call_function nodes grouped into torch-level calls (consecutive nodes with one torch_fn)."""
    import operator

    groups: list[list[torch.fx.Node]] = []
    owner: dict[torch.fx.Node, list[torch.fx.Node]] = {}
    last_key: Any = None
    for node in graph.nodes:
        if node.op != "call_function":
            last_key = None
            continue
        if node.target is operator.getitem and node.args and node.args[0] in owner:
            owner[node.args[0]].append(node)
            owner[node] = owner[node.args[0]]
            continue
        key = _group_key(node) if _wrapped_subgraph(node) is None else object()
        if key is not None and key == last_key and groups:
            groups[-1].append(node)
        else:
            groups.append([node])
        owner[node] = groups[-1]
        last_key = key
    return groups


_WRAPPERS = ("wrap_with_set_grad_enabled", "wrap_with_autocast")


def _wrapped_subgraph(node: torch.fx.Node) -> tuple[int, str] | None:
    """(operand start, submodule name) for export's grad-mode/autocast wrappers, else None.

    ``with torch.no_grad():`` and ``with torch.autocast(...):`` blocks become higher-order ops
    whose body is a submodule (``wrap_with_set_grad_enabled(False, submod_1, *operands)``).
    """
    if node.op != "call_function" or not isinstance(node.target, torch._ops.HigherOrderOperator):
        return None
    if getattr(node.target, "__name__", str(node.target)) not in _WRAPPERS:
        return None
    for i, a in enumerate(node.args):
        if isinstance(a, torch.fx.Node) and a.op == "get_attr":
            return i + 1, str(a.target)
    return None


def _module_of(node: torch.fx.Node, builder: _Builder) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    fqn = list(stack.values())[-1][0]
    fqn = fqn.replace("L['self'].", "").replace("L__self__.", "")
    if fqn in ("L['self']", "L__self__"):
        fqn = ""
    return builder.alias_path.get(fqn, fqn)


def _group_op_type(group: list[torch.fx.Node]) -> tuple[str, str]:
    """(op type, target) of a group: the torch function's name, else the aten overload's."""
    fn = group[0].meta.get("torch_fn")
    main = next((n for n in group if not _is_getitem(n)), group[0])
    aten = str(main.target)
    if fn and not fn[1].startswith("OpOverload"):  # OpOverload: an aten op called directly
        raw = fn[1].rsplit(".", 1)[-1]
        return normalize_op_type(raw) or raw, aten
    return normalize_op_type(aten) or aten, aten


def _is_getitem(node: torch.fx.Node) -> bool:
    import operator

    return node.target is operator.getitem


def _capture_graph(model: nn.Module, args: tuple) -> Capture:
    """Graph capture with the cyclic GC paused: export and the walk allocate many objects, and each
    full collection over them and the model (~0.3 s at 1024 layers) would land in the middle; the
    cyclic garbage export leaves meanwhile is a few MB, collected once the GC is back on."""
    from qplan.compiler.gc_pause import gc_paused

    with gc_paused():
        return _export_and_walk(model, args)


def _export_and_walk(model: nn.Module, args: tuple) -> Capture:
    builder = _Builder(model)
    tagger = _BoundaryTagger(builder)
    try:
        with torch.random.fork_rng(devices=[]), tagger.active(model):
            ep = torch.export.export(model, args, strict=False)
    except Exception as e:
        raise CaptureError(
            f"torch.export failed for `{_class_path(type(model))}`: {_first_line(e)}; "
            "help: fix the model for torch.export, or capture with mode `eager`"
        ) from e
    graph = ep.graph
    sig = ep.graph_signature
    sources: dict[torch.fx.Node, str | None] = {}
    cap = Capture(inventory=None, mode="graph", exported=ep)  # type: ignore[arg-type]

    placeholders = {n.name: n for n in graph.nodes if n.op == "placeholder"}
    user_inputs: list[TensorRef] = []
    for spec in sig.input_specs:
        node = placeholders.get(getattr(spec.arg, "name", None))
        if node is None:
            continue
        kind = spec.kind.name
        if kind in ("PARAMETER", "BUFFER") and spec.target is not None:
            fqn = builder.all_param_names.get(spec.target, spec.target)
            sources[node] = fqn
            if fqn == spec.target or fqn not in cap.param_nodes:  # tied: prefer the canonical name
                cap.param_nodes[fqn] = node
            cap.value_nodes.setdefault(fqn, node)
        elif kind == "USER_INPUT" and _is_tensor_node(node):
            addr = f":in{len(user_inputs)}"
            sources[node] = addr
            cap.value_nodes[addr] = node
            user_inputs.append(_ref(addr, _val(node)))
        else:
            sources[node] = None

    def src(n: Any) -> str | None:
        return sources.get(n) if isinstance(n, torch.fx.Node) else None

    def walk(graph: torch.fx.Graph, owner: torch.fx.GraphModule) -> None:
        for group in _groups(graph):
            wrapped = _wrapped_subgraph(group[0])
            if wrapped is not None:
                enter(group, owner, *wrapped)
            else:
                visit(group)

    def enter(group: list[torch.fx.Node], owner: torch.fx.GraphModule, start: int, target: str) -> None:
        """Walk a wrapper's body as if it were inline: its placeholders alias the operands."""
        hop = group[0]
        sub = getattr(owner, target)
        placeholders = [n for n in sub.graph.nodes if n.op == "placeholder"]
        for ph, x in zip(placeholders, hop.args[start:]):
            sources[ph] = src(x)
        walk(sub.graph, sub)
        out = next(n for n in sub.graph.nodes if n.op == "output")
        results = list(_flat_nodes(out.args[0]))
        for u in group[1:]:
            if _is_getitem(u) and isinstance(u.args[1], int) and u.args[1] < len(results):
                sources[u] = src(results[u.args[1]])

    def visit(group: list[torch.fx.Node]) -> None:
        members = set(group)
        op_type, aten = _group_op_type(group)
        main = next((n for n in group if not _is_getitem(n)), group[0])
        named: list[_Arg] = []
        if len([n for n in group if not _is_getitem(n)]) == 1 and isinstance(main.target, torch._ops.OpOverload):
            schema = main.target._schema.arguments
            for i, a in enumerate(main.args):
                name = schema[i].name if i < len(schema) else None
                for x in _flat_nodes(a):
                    if _is_tensor_node(x):
                        named.append(_Arg(name, src(x), _val(x), (main, x)))
            for key, a in main.kwargs.items():
                for x in _flat_nodes(a):
                    if _is_tensor_node(x):
                        named.append(_Arg(key, src(x), _val(x), (main, x)))
        else:
            seen: set[torch.fx.Node] = set()
            for n in group:
                for x in n.all_input_nodes:
                    if x not in members and x not in seen and _is_tensor_node(x):
                        seen.add(x)
                        named.append(_Arg(None, src(x), _val(x), (n, x)))
        # the group's result: the last node whose value escapes the group
        result = main
        for n in group:
            if _is_getitem(n):
                continue
            if n.op == "output" or any(u not in members for u in n.users) or not n.users:
                result = n
        val = _val(result)
        leaves = list(val) if isinstance(val, (list, tuple)) else [val]
        out_nodes: list[torch.fx.Node | None] = []
        if isinstance(val, (list, tuple)):
            by_index = {u.args[1]: u for u in result.users if _is_getitem(u)}
            out_nodes = [by_index.get(j) for j in range(len(leaves))]
        else:
            out_nodes = [result]
        tensor_outs = [(nd, v) for nd, v in zip(out_nodes, leaves) if isinstance(v, torch.Tensor)]
        info = OP_TABLE.get(op_type)
        if info is not None and info.cls == "pass_through":
            for n in group:
                if _is_tensor_node(n):
                    sources[n] = _through(named[0] if named else None, _val(n))
            return
        module = _module_of(main, builder)
        if not _is_candidate(op_type, named) or not tensor_outs:
            return
        name = builder.peek_name(module, op_type)
        builder.commit_name(module, op_type)
        if not any(v.is_floating_point() for _, v in tensor_outs):
            return
        inputs, states = _classify(op_type, named, builder.is_param, builder.param_order)
        outputs = []
        for j, (nd, v) in enumerate(tensor_outs):
            addr = f"{name}:out{j}"
            outputs.append(_ref(addr, v))
            if nd is not None:
                sources[nd] = addr
                cap.value_nodes[addr] = nd
        for i, a in enumerate(inputs):
            cap.input_edges.setdefault(f"{name}:in{i}", []).append(a.loc)
        cap.nodes[name] = result
        cap.op_nodes[name] = tuple(group)
        builder.ops.append(
            Op(
                name=name,
                op_type=op_type,
                module=module,
                inputs=tuple(_ref(a.source, a.value) for a in inputs),
                states={k: a.source for k, a in states.items()},  # type: ignore[misc]
                outputs=tuple(outputs),
                target=aten,
            )
        )

    walk(graph, ep.graph_module)

    # module boundaries from the tags left by the hooks
    bound: dict[str, tuple[list[str | None], list[str | None]]] = {
        p: (list(i), list(o)) for p, (i, o) in builder.first_call.items()
    }
    all_nodes = [n for gm in ep.graph_module.modules() if isinstance(gm, torch.fx.GraphModule) for n in gm.graph.nodes]
    for node in all_nodes:
        for path, kind, i in node.meta.pop(_BoundaryTagger.KEY, ()):
            slots = bound[path][0 if kind == "in" else 1]
            if i < len(slots):
                slots[i] = src(node)
    builder.first_call = {p: (tuple(i), tuple(o)) for p, (i, o) in bound.items()}

    out_node = next(n for n in graph.nodes if n.op == "output")
    out_by_name = {n.name: n for n in _flat_nodes(out_node.args[0]) if isinstance(n, torch.fx.Node)}
    outputs: list[str | None] = []
    for spec in sig.output_specs:
        if spec.kind.name != "USER_OUTPUT":
            continue
        n = out_by_name.get(getattr(spec.arg, "name", None))
        if n is not None and _is_tensor_node(n):
            outputs.append(src(n))
    cap.inventory = builder.inventory("graph", tuple(user_inputs), tuple(outputs))
    cap.input_edges = {k: tuple(v) for k, v in cap.input_edges.items()}  # type: ignore[misc]
    cap.param_aliases = dict(builder.all_param_names)
    return cap


# --------------------------------------------------------------------------- entry point


@dataclass
class Capture:
    """What capture found: the inventory, and in graph mode the exported program and node maps.

    Graph-mode maps (all keyed by SPEC §2.2 addresses or op names):

    * ``nodes``: op name → the fx node that yields the op's result in ``exported.graph``;
    * ``op_nodes``: op name → all fx nodes of that torch-level call (several when export decomposed it);
    * ``value_nodes``: address (``op:out<j>``, parameter fqn, ``:in<i>``) → the node holding that value;
    * ``input_edges``: ``op:in<i>`` → ``(consumer node, input node)`` pairs: where that input enters
      the op's nodes (the input node may be a pass-through of the source value);
    * ``param_nodes``: parameter/buffer fqn → its placeholder.

    Ops inside ``torch.no_grad()``/``autocast`` blocks have their nodes in the wrapper's
    submodule graph (``node.graph`` is not ``exported.graph``); edges into such a body pass
    through the submodule's placeholders.

    ``param_aliases`` maps every name of a parameter/buffer (tied ones have several) to the fqn
    the inventory uses. ``rebind(gm)`` re-points all maps at ``exported.module()`` (or any
    graph module derived from it that keeps node names), where parameters are ``get_attr`` nodes.
    """

    inventory: Inventory
    mode: str
    exported: Any = None  # torch.export.ExportedProgram in graph mode
    nodes: dict[str, torch.fx.Node] = field(default_factory=dict)
    op_nodes: dict[str, tuple[torch.fx.Node, ...]] = field(default_factory=dict)
    value_nodes: dict[str, torch.fx.Node] = field(default_factory=dict)
    input_edges: dict[str, Any] = field(default_factory=dict)
    param_nodes: dict[str, torch.fx.Node] = field(default_factory=dict)
    param_aliases: dict[str, str] = field(default_factory=dict)

    def rebind(self, gm: torch.fx.GraphModule) -> Capture:
        """A copy whose node maps point into `gm` (matched by node name; parameters by get_attr target)."""
        by_name = {n.name: n for n in gm.graph.nodes}
        params: dict[str, torch.fx.Node] = {}
        for n in gm.graph.nodes:
            if n.op == "get_attr" and str(n.target) in self.param_aliases:
                params.setdefault(self.param_aliases[str(n.target)], n)
        sig = self.exported.graph_signature
        lifted = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}  # placeholder name -> target

        def move(n: torch.fx.Node) -> torch.fx.Node:
            target = lifted.get(n.name) if n.op == "placeholder" else None
            if target is not None and self.param_aliases.get(target, target) in params:
                return params[self.param_aliases.get(target, target)]
            if n.name not in by_name:
                raise CaptureError(f"node `{n.name}` is not in the graph module")
            return by_name[n.name]

        return Capture(
            inventory=self.inventory,
            mode=self.mode,
            exported=self.exported,
            nodes={k: move(n) for k, n in self.nodes.items()},
            op_nodes={k: tuple(move(n) for n in ns) for k, ns in self.op_nodes.items()},
            value_nodes={k: move(n) for k, n in self.value_nodes.items()},
            input_edges={k: tuple((move(c), move(x)) for c, x in v) for k, v in self.input_edges.items()},
            param_nodes=params,
            param_aliases=dict(self.param_aliases),
        )


def _state_fingerprint(model: nn.Module) -> tuple[bool, dict[str, torch.Tensor]]:
    return model.training, {k: v.detach().clone() for k, v in model.state_dict().items()}


def capture(model: nn.Module, example_inputs: Any, mode: Mode = "graph") -> Capture:
    """Capture `model` on `example_inputs` (a tuple of positional args) in `mode`.

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
    if mode == "graph":
        return _capture_graph(model, args)
    if mode == "eager":
        return _capture_eager(model, args)
    raise CaptureError(f"unknown capture mode `{mode}`; expected `graph` or `eager`")
