"""The inventory cache: hits give the same inventory and plan, every key part invalidates,
damaged entries are recaptured."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch

from qplan.compiler import compile_plan
from qplan.compiler.inventory_cache import InventoryCache, default_cache_dir, inventory_key
from qplan.compiler.plan import encode_plan
from qplan.models import TinyLM, mlp, transformer
from qplan.schema.types import QuantizerConfig

W4 = QuantizerConfig.from_dict(
    {"quantization_config": {"module_name_configs": {"layers\\.0": {"op_state_spec": {"weight": {"dtype": "int4"}}}}}}
)


@pytest.fixture
def cache(tmp_path):
    return InventoryCache(tmp_path / "cache")


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_hit_gives_an_equal_inventory_and_identical_plan(cache, mode):
    model, x = mlp()
    first = compile_plan(model, W4, x, mode, cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    second = compile_plan(model, W4, x, mode, cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert encode_plan(first) == encode_plan(second)
    assert encode_plan(compile_plan(model, W4, x, mode)) == encode_plan(second)  # as without a cache
    key = inventory_key(model, x, mode)
    from qplan.compiler.capture import capture

    assert cache.get(key) == capture(model, x, mode).inventory


def test_a_fresh_model_from_the_same_factory_hits(cache):
    model, x = mlp()
    compile_plan(model, W4, x, "eager", cache=cache)
    model2, x2 = mlp()
    compile_plan(model2, QuantizerConfig(), x2, "eager", cache=cache)
    assert cache.hits == 1


def _key(model_inputs, mode="eager", extra=()):
    key = inventory_key(*model_inputs, mode, extra)
    assert key is not None
    return key


def test_key_changes_with_each_part():
    base = _key(mlp())
    assert _key(mlp()) == base
    assert _key(mlp(4, 32)) != base  # parameter shapes
    assert _key(mlp(5)) != base  # structure
    model, x = mlp()
    assert _key((model, (torch.randn(4, 16),))) != base  # input shape
    assert _key((model, (x[0].double(),))) != base  # input dtype
    assert _key((model, x), mode="graph") != base  # capture mode
    assert _key((model.half(), x)) != base  # parameter dtypes
    assert _key((mlp()[0].train(), x)) != base  # training flag


def test_key_sees_plain_attributes_and_integer_input_values():
    a = (TinyLM(heads=4).eval(), transformer()[1])
    b = (TinyLM(heads=2).eval(), transformer()[1])  # same parameter shapes, other head count
    assert _key(a) != _key(b)
    ids = transformer()[1][0]
    assert _key((a[0], (ids,))) != _key((a[0], (ids.flip(1),)))  # token ids drive control flow
    m, x = mlp()
    assert _key((m, x)) == _key((m, (torch.randn(8, 16),)))  # float values do not


def test_key_changes_with_the_model_source(tmp_path, monkeypatch):
    pkg = tmp_path / "src"
    pkg.mkdir()
    monkeypatch.syspath_prepend(str(pkg))
    code = """\
        import torch
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(4, 4)
            def forward(self, x):
                return {body}
    """
    (pkg / "cachemodel.py").write_text(textwrap.dedent(code.format(body="self.fc(x)")))
    mod = importlib.import_module("cachemodel")
    try:
        x = (torch.randn(2, 4),)
        before = _key((mod.Net(), x))
        (pkg / "cachemodel.py").write_text(textwrap.dedent(code.format(body="torch.relu(self.fc(x))")))
        after = _key((importlib.reload(mod).Net(), x))
        assert before != after
        # an extra module (the CLI's factory module) joins the key
        assert _key((mod.Net(), x), extra=("qplan.models",)) != after
    finally:
        sys.modules.pop("cachemodel", None)


def test_model_without_source_file_is_not_cached(cache):
    cls = type("Anon", (torch.nn.Linear,), {"__module__": "no_such_module_qplan"})
    model = cls(4, 4)
    assert inventory_key(model, (torch.randn(2, 4),), "eager") is None
    compile_plan(model, QuantizerConfig(), (torch.randn(2, 4),), "eager", cache=cache)
    assert not cache.directory.exists() or not list(cache.directory.glob("*.bin"))
    assert cache.misses == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b"garbage",
        lambda b: b[:-5] + bytes([b[-5] ^ 0xFF]) + b[-4:],  # one flipped byte: fails the checksum
        lambda b: b"",
    ],
)
def test_damaged_entry_is_recaptured(cache, damage):
    model, x = mlp()
    good = encode_plan(compile_plan(model, W4, x, "eager", cache=cache))
    (path,) = cache.directory.glob("inventory-*.bin")
    intact = path.read_bytes()
    path.write_bytes(damage(intact))
    assert encode_plan(compile_plan(model, W4, x, "eager", cache=cache)) == good
    assert (cache.hits, cache.misses) == (0, 2)
    assert path.read_bytes() == intact  # rewritten
    compile_plan(model, W4, x, "eager", cache=cache)
    assert cache.hits == 1


def test_unwritable_directory_is_skipped(tmp_path):
    (tmp_path / "file").write_text("")
    cache = InventoryCache(tmp_path / "file" / "cache")  # a directory under a file: cannot be made
    model, x = mlp()
    assert compile_plan(model, W4, x, "eager", cache=cache).quantizers
    assert cache.misses == 1


def test_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("QPLAN_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("QPLAN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "qplan"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "qplan"
