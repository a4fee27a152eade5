"""The inventory cache: captured op inventories on disk, so recompiling an edited config skips capture.

Capture (``torch.export`` or one eager forward) is most of a compile; the passes after it are a
few percent. An inventory depends only on the model and its example inputs, never on the config,
so :class:`InventoryCache` stores each one under a key computed **without capturing**, from:

* the model's code: the source files of every class in the MRO of every module of the model
  (and of any extra module named, such as the ``--model`` factory's), plus the version of each
  such class's top-level package (``transformers.__version__``), which covers its helper modules;
* the model's structure: each module's path, class, training flag and public plain attributes
  (``in_features``, ``heads``, a transformers ``config`` as its dict), every parameter and
  buffer name with shape, dtype, device and which names are tied;
* the example inputs: structure, and shape, dtype and device of every tensor; the values of
  non-floating tensors (token ids, masks: models branch on them), never of float ones;
* the capture mode, Python, torch and qplan versions, and the source of qplan's capture code.

A model whose code cannot be located (a class defined in ``__main__`` without a file, or in a
notebook) or an input qplan cannot describe is captured without the cache. Entries are written
atomically (a temporary file, then a rename); an entry that is unreadable, truncated, fails its
checksum or does not decode is ignored and recaptured, never an error. What the key does not
see: code a forward calls in modules that define none of its classes and belong to no versioned
package, monkeypatched methods and hooks; use ``--no-cache`` (or clear the directory) there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from qplan.compiler.inventory import Inventory

__all__ = ["CACHE_DIR_ENV", "InventoryCache", "default_cache_dir", "inventory_key"]

CACHE_DIR_ENV = "QPLAN_CACHE_DIR"
_MAGIC = b"qplan-inventory-cache 1\n"
_CAPTURE_FILES = ("capture", "inventory.py", "ops.py")  # qplan code an inventory depends on
_MAX_ENTRIES = 64


def default_cache_dir() -> Path:
    """``$QPLAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/qplan``, else ``~/.cache/qplan``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "qplan"


class InventoryCache:
    """Captured inventories under `directory` (default :func:`default_cache_dir`).

    `extra_modules` names modules whose source joins every key (the CLI passes the ``--model``
    factory's module). ``hits`` / ``misses`` count lookups, for tests and benchmarks.
    """

    def __init__(self, directory: str | os.PathLike | None = None, extra_modules: Iterable[str] = ()) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.extra_modules = tuple(extra_modules)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.directory / f"inventory-{key}.bin"

    def get(self, key: str) -> Inventory | None:
        """The inventory stored under `key`, or None when there is none or it is unusable."""
        try:
            data = self.path(key).read_bytes()
        except OSError:
            return None
        return _decode(data)

    def put(self, key: str, inventory: Inventory) -> None:
        """Store `inventory` under `key` atomically; a directory that cannot be written is skipped."""
        payload = msgspec.msgpack.encode(inventory)
        data = _MAGIC + hashlib.sha256(payload).digest() + payload
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".bin")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.path(key))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._prune()
        except OSError:
            return

    def capture(self, model: Any, example_inputs: Any, mode: str) -> Inventory:
        """The inventory of `model` on `example_inputs` in `mode`: from the cache when its key is
        there, else captured (and stored when the key can be computed)."""
        from qplan.compiler.capture import capture

        key = inventory_key(model, example_inputs, mode, self.extra_modules)
        if key is not None:
            cached = self.get(key)
            if cached is not None and cached.mode == mode:
                self.hits += 1
                return cached
        self.misses += 1
        inventory = capture(model, example_inputs, mode).inventory  # type: ignore[arg-type]
        if key is not None:
            self.put(key, inventory)
        return inventory

    def _prune(self) -> None:
        """Keep the newest `_MAX_ENTRIES` entries."""
        entries = sorted(self.directory.glob("inventory-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[_MAX_ENTRIES:]:
            with contextlib.suppress(OSError):
                old.unlink()


_DECODER = msgspec.msgpack.Decoder(Inventory)


def _decode(data: bytes) -> Inventory | None:
    """The inventory in a cache file, or None when the file is not an intact entry."""
    head = len(_MAGIC) + 32
    if len(data) < head or not data.startswith(_MAGIC):
        return None
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(_MAGIC) : head]:
        return None
    try:
        inventory = _DECODER.decode(payload)
        inventory.lint()
    except (msgspec.DecodeError, ValueError):
        return None
    return inventory


# -- the key -----------------------------------------------------------------------------------


class _Uncacheable(Exception):
    """The model or its inputs cannot be described for a key: capture without the cache."""


def inventory_key(model: Any, example_inputs: Any, mode: str, extra_modules: Iterable[str] = ()) -> str | None:
    """The cache key of (model, inputs, mode), computed without capturing; None when some part
    cannot be described (then the inventory is not cached)."""
    import torch

    import qplan

    h = hashlib.sha256()

    def add(*parts: Any) -> None:
        h.update(("\x1f".join(map(str, parts)) + "\n").encode("utf-8", "surrogatepass"))

    try:
        add("versions", sys.version_info[:2], torch.__version__, qplan.__version__, _capture_code_digest(), mode)
        _add_code(add, model, extra_modules)
        _add_structure(add, model)
        _add_inputs(add, "in", example_inputs)
    except (_Uncacheable, RecursionError):  # RecursionError: an attribute that contains itself
        return None
    return h.hexdigest()


def _add_code(add: Any, model: Any, extra_modules: Iterable[str]) -> None:
    classes: set[type] = set()
    for m in model.modules():
        classes.update(c for c in type(m).__mro__ if c is not object)
    modules = {c.__module__ for c in classes} | set(extra_modules)
    for name in sorted(modules):
        if name == "builtins":
            continue
        mod = sys.modules.get(name)
        file = getattr(mod, "__file__", None)
        if not file:
            raise _Uncacheable(name)
        top = sys.modules.get(name.partition(".")[0])
        add("code", name, _file_digest(file), getattr(top, "__version__", ""))


def _add_structure(add: Any, model: Any) -> None:
    for path, m in model.named_modules(remove_duplicate=False):
        add("module", path, type(m).__module__, type(m).__qualname__)
        for k, v in sorted(vars(m).items()):
            if not k.startswith("_"):
                add("attr", k, _describe_value(v))
    first: dict[int, str] = {}
    for kind, named in (("param", model.named_parameters), ("buffer", model.named_buffers)):
        for fqn, t in named(remove_duplicate=False):
            tied = first.setdefault(id(t), fqn)
            add(kind, fqn, tuple(t.shape), t.dtype, t.device, tied)


def _describe_value(v: Any) -> str:
    """A module attribute in a few words that change when it does (for the key)."""
    import torch

    if v is None or isinstance(v, (bool, int, float, str, torch.dtype, torch.device)):
        return repr(v)
    if isinstance(v, (tuple, list, frozenset, set)):
        items = [_describe_value(x) for x in v]
        return f"{type(v).__name__}({', '.join(sorted(items) if isinstance(v, (set, frozenset)) else items)})"
    if isinstance(v, dict):
        return (
            "{"
            + ", ".join(f"{k!r}: {_describe_value(x)}" for k, x in sorted(v.items(), key=lambda kv: repr(kv[0])))
            + "}"
        )
    if isinstance(v, torch.Tensor):
        return f"tensor{tuple(v.shape)}:{v.dtype}"
    to_dict = getattr(v, "to_dict", None)
    if callable(to_dict):  # a transformers PretrainedConfig and the like
        try:
            return json.dumps(to_dict(), sort_keys=True, default=repr)
        except Exception:
            raise _Uncacheable(type(v).__qualname__) from None
    return f"<{type(v).__module__}.{type(v).__qualname__}>"


def _add_inputs(add: Any, where: str, x: Any) -> None:
    import torch

    if isinstance(x, torch.Tensor):
        add(where, "tensor", tuple(x.shape), x.dtype, x.device, x.layout)
        if not (x.is_floating_point() or x.is_complex()):
            t = x.detach().to("cpu").contiguous().reshape(-1)
            add(
                where, "values", hashlib.sha256(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"").hexdigest()
            )
    elif x is None or isinstance(x, (bool, int, float, str)):
        add(where, repr(x))
    elif isinstance(x, (tuple, list)):
        add(where, type(x).__name__, len(x))
        for i, y in enumerate(x):
            _add_inputs(add, f"{where}.{i}", y)
    elif isinstance(x, dict):
        add(where, "dict", len(x))
        for k in sorted(x, key=repr):
            _add_inputs(add, f"{where}[{k!r}]", x[k])
    else:
        raise _Uncacheable(type(x).__qualname__)


_FILE_DIGESTS: dict[str, tuple[int, int, str]] = {}


def _file_digest(file: str) -> str:
    """sha256 of a source file, memoized per (mtime, size)."""
    try:
        st = os.stat(file)
        memo = _FILE_DIGESTS.get(file)
        if memo is not None and memo[:2] == (st.st_mtime_ns, st.st_size):
            return memo[2]
        digest = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    except OSError:
        raise _Uncacheable(file) from None
    _FILE_DIGESTS[file] = (st.st_mtime_ns, st.st_size, digest)
    return digest


def _capture_code_digest() -> str:
    """sha256 over qplan's capture code, the inventory types and the op table."""
    here = Path(__file__).parent
    files: list[Path] = []
    for name in _CAPTURE_FILES:
        p = here / name
        files += sorted(p.glob("*.py")) if p.is_dir() else [p]
    return hashlib.sha256("".join(f"{f.name}:{_file_digest(str(f))}" for f in files).encode()).hexdigest()
