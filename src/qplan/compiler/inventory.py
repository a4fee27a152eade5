"""The op inventory: the one small IR both capture modes produce (see docs/compiler.md, docs/config-language.md#names-modules-ops-and-tensors).

Ops are listed in execution order. Every tensor an op reads names its *source*: the address
of the value it reads, which is one of

* an op output: ``"<op name>:out<j>"``;
* a parameter or buffer: its fully-qualified name (``"blocks.0.fc1.weight"``);
* a model input: ``":in<i>"`` (the root module's boundary, flattened positional inputs);
* ``None`` for a constant or anything else that is not a tracked tensor.

Pass-through ops (view, permute, ...) are not listed: capture connects sources through them
(a reader of ``linear``'s output through a ``view`` reads ``"linear:out0"``), so passes see
through them by construction (see :mod:`qplan.compiler.capture`). Facts found later go into side tables keyed by address, never
into these records (as torch.fx does with ``node.meta``).
"""

from __future__ import annotations

import hashlib

import msgspec

__all__ = ["TensorRef", "Op", "ModuleInfo", "Inventory", "InventoryError"]


class InventoryError(ValueError):
    """An inventory breaks an invariant (see :meth:`Inventory.lint`)."""


class TensorRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tensor an op reads or writes."""

    source: str | None  # address of the value (see module docstring); for outputs, the output's own address
    shape: tuple[int, ...] = ()
    dtype: str = "float32"  # torch dtype name without the `torch.` prefix


class Op(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One op call, as recorded by capture."""

    name: str  # "<module path>.<op type>[_k]"; root ops have no prefix
    op_type: str  # short name from the op table (compiler.ops), or the raw name when unknown
    module: str  # dotted path of the module that directly ran the op ("" = root)
    inputs: tuple[TensorRef, ...]  # tensor inputs by index (non-tensor args are skipped, see op table)
    states: dict[str, str] = {}  # state name ("weight", "bias", ...) -> parameter/buffer fqn
    outputs: tuple[TensorRef, ...] = ()  # source = "<name>:out<j>"
    target: str = ""  # what capture saw: aten overload ("aten.linear.default") or torch function name

    def input_address(self, i: int) -> str:
        """The address of input slot `i`: ``<op name>:in<i>``."""
        return f"{self.name}:in{i}"

    def output_address(self, j: int) -> str:
        """The address of output `j`: ``<op name>:out<j>``."""
        return f"{self.name}:out{j}"


class ModuleInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One module of the model, in ``named_modules()`` order."""

    path: str  # "" for the root
    cls: str  # fully-qualified class name, e.g. "torch.nn.modules.linear.Linear"
    qualname: str  # class __qualname__, e.g. "Linear"
    import_paths: tuple[str, ...] = ()  # other import paths of the class, e.g. ("torch.nn.Linear",)
    states: dict[str, str] = {}  # directly owned parameter/buffer name -> fqn
    inputs: tuple[str | None, ...] = ()  # sources of the flattened positional forward args (first call)
    outputs: tuple[str | None, ...] = ()  # sources of the flattened forward output (first call)
    called: bool = True  # False when the module never ran during capture


class Inventory(msgspec.Struct, kw_only=True):
    """Everything the compiler knows about a model: modules, parameters and ops in order."""

    model_class: str  # fully-qualified class name of the root module
    mode: str  # "graph" or "eager"
    modules: tuple[ModuleInfo, ...]
    parameters: dict[str, TensorRef]  # fqn -> shape/dtype (parameters and buffers); source = fqn
    ops: tuple[Op, ...]
    inputs: tuple[TensorRef, ...]  # model inputs, source ":in<i>"
    outputs: tuple[str | None, ...]  # sources of the flattened model outputs

    def __str__(self) -> str:
        """One line per op: name, type, input sources, states."""
        lines = [f"inventory of {self.model_class} ({self.mode}, {len(self.ops)} ops)"]
        for op in self.ops:
            ins = ", ".join(str(t.source) for t in op.inputs)
            st = "".join(f" {k}={v}" for k, v in op.states.items())
            lines.append(f"  {op.name:<40} {op.op_type:<12} ({ins}){st}")
        lines.append(f"  outputs: {', '.join(str(o) for o in self.outputs)}")
        return "\n".join(lines)

    def lint(self) -> None:
        """Check the invariants: unique op names, producers before consumers, known states."""
        seen: set[str] = {t.source for t in self.inputs if t.source}
        seen |= set(self.parameters)
        names: set[str] = set()
        for op in self.ops:
            if op.name in names:
                raise InventoryError(f"duplicate op name `{op.name}`")
            names.add(op.name)
            for i, t in enumerate(op.inputs):
                if t.source is not None and t.source not in seen:
                    raise InventoryError(f"`{op.name}:in{i}` reads `{t.source}` before it is produced")
            for state, fqn in op.states.items():
                if fqn not in self.parameters:
                    raise InventoryError(f"`{op.name}` state `{state}` names unknown parameter `{fqn}`")
            for j, t in enumerate(op.outputs):
                if t.source != op.output_address(j):
                    raise InventoryError(f"`{op.name}` output {j} has address `{t.source}`")
                seen.add(t.source)
        for src in self.outputs:
            if src is not None and src not in seen:
                raise InventoryError(f"model output reads unknown `{src}`")

    def fingerprint(self) -> str:
        """sha256 over addresses, op types, states and parameter shapes/dtypes (not activation shapes)."""
        h = hashlib.sha256()
        for op in self.ops:
            srcs = ",".join(str(t.source) for t in op.inputs)
            states = ",".join(f"{k}={v}" for k, v in sorted(op.states.items()))
            h.update(f"op {op.name} {op.op_type} ({srcs}) [{states}] {len(op.outputs)}\n".encode())
        for fqn in sorted(self.parameters):
            p = self.parameters[fqn]
            h.update(f"param {fqn} {list(p.shape)} {p.dtype}\n".encode())
        return "sha256:" + h.hexdigest()
