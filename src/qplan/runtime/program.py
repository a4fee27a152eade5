"""Self-contained programs: record the Python modules a program needs, import them on load.

A saved ``ExportedProgram`` names pytree node types (transformers' ``ModelOutput`` classes, cache
classes) and custom ops (``quantized_decomposed``, ``torchao``) that ``torch.export.load`` can
only resolve once the module that registers them is imported. :func:`record_imports` lists those
modules in the program itself (the ``custom`` metadata of its first op node, which
``torch.export.save`` keeps); :func:`load_program` reads the list from the archive, imports the
modules, then loads. ``finalize`` records them; :func:`save_program` records them again at save
time, for a program lowered further after finalize.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from qplan.compiler.capture.output_types import register_output_types
from qplan.diagnostics import QplanError

__all__ = ["IMPORTS_META", "needed_modules", "record_imports", "save_program", "load_program", "recorded_imports"]

IMPORTS_META = "qplan_imports"  # key in a node's meta["custom"]: the modules to import before loading

_BUILTIN_NAMESPACES = frozenset({"aten", "prims", "_operator", "higher_order"})
_REGISTERED_AT = re.compile(r"registered at (\S+?\.py):\d+")


def _spec_types(spec: Any) -> list[type]:
    """The node types of a pytree spec, depth first."""
    if spec is None:
        return []
    out: list[type] = []
    stack = [spec]
    while stack:
        s = stack.pop()
        t = getattr(s, "type", None)
        if isinstance(t, type):
            out.append(t)
        children = s.children() if callable(getattr(s, "children", None)) else getattr(s, "children_specs", ())
        stack.extend(children or ())
    return out


def _module_of_file(path: str) -> str | None:
    """The imported module whose source file is ``path``."""
    real = os.path.realpath(path)
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and os.path.realpath(f) == real:
            return name
    return None


def _op_module(op: Any) -> str | None:
    """The Python module that registered ``op`` (from the dispatcher's record), if any."""
    try:
        dump = torch._C._dispatch_dump(op.name())
    except Exception:
        return None
    m = _REGISTERED_AT.search(dump)
    return _module_of_file(m.group(1)) if m else None


def needed_modules(ep: torch.export.ExportedProgram) -> list[str]:
    """Modules that must be imported before ``ep`` can be loaded, sorted."""
    found: set[str] = set()
    for spec in (ep.call_spec.in_spec, ep.call_spec.out_spec):
        for t in _spec_types(spec):
            mod = t.__module__
            if mod not in ("builtins", "collections") and not mod.startswith("torch."):
                found.add(mod)
    for gm in ep.graph_module.modules():
        if not isinstance(gm, torch.fx.GraphModule):
            continue
        for node in gm.graph.nodes:
            target = node.target
            if node.op == "call_function" and isinstance(target, torch._ops.OpOverload):
                if target.namespace not in _BUILTIN_NAMESPACES:
                    registered = _op_module(target)
                    if registered is not None:
                        found.add(registered)
    return sorted(found)


def record_imports(ep: torch.export.ExportedProgram) -> list[str]:
    """Write :func:`needed_modules` into the program (its first op node's custom metadata)."""
    mods = needed_modules(ep)
    node = next((n for n in ep.graph.nodes if n.op == "call_function"), None)
    if node is not None:
        node.meta.setdefault("custom", {})[IMPORTS_META] = mods
    return mods


def save_program(ep: torch.export.ExportedProgram, path: str | Path) -> None:
    """``torch.export.save`` after recording the modules the program needs (see the module docstring)."""
    record_imports(ep)
    torch.export.save(ep, str(path))


def _find_imports(obj: Any, out: list[str]) -> None:
    if isinstance(obj, dict):
        custom = obj.get("custom")
        if isinstance(custom, str) and IMPORTS_META in custom:
            try:
                out.extend(json.loads(custom).get(IMPORTS_META, ()))
            except (ValueError, AttributeError):
                pass
        for v in obj.values():
            _find_imports(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _find_imports(v, out)


def recorded_imports(path: str | Path) -> list[str]:
    """The modules recorded in a saved program (empty for a program qplan did not record)."""
    found: list[str] = []
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if "/models/" in name and name.endswith(".json"):
                    data = z.read(name)
                    if IMPORTS_META.encode() in data:
                        _find_imports(json.loads(data), found)
    except (OSError, zipfile.BadZipFile, ValueError):
        return []
    return sorted(set(found))


def load_program(path: str | Path) -> torch.export.ExportedProgram:
    """``torch.export.load`` after importing the modules the program records (and torch's
    ``quantized_decomposed`` op library, which every qplan program may use)."""
    import torch.ao.quantization.fx._decomposed

    modules = recorded_imports(path)
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise QplanError(
                f"`{path}` needs module `{mod}` to load ({type(e).__name__}: {e}); help: install the package providing it"
            ) from e
    # output containers (transformers' caches) flatten the way they did when the program was exported
    register_output_types(sorted({m.partition(".")[0] for m in modules}))
    return torch.export.load(str(path))
