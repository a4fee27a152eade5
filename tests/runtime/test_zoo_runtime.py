"""The model zoo, runtime half (issue 9): every model of the compile zoo (tests/compiler/
test_zoo_compile.py: transformers architectures with default sdpa attention and caches on, and the
own models) is prepared in both modes,
calibrated at other batch sizes, trained for two QAT steps, finalized, saved, and loaded in a
fresh process with `load_program` alone, where it runs at another batch size and sequence length.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compiler"))

import test_zoo_compile as zoo

from qplan import Quantizer, QuantizerConfig

MODES = ("graph", "eager")
CASES = [(name, mode) for name in zoo.ZOO for mode in MODES]


def _resized(args: tuple, batch: int, seq: int | None = None, seed: int = 1) -> tuple:
    """The example inputs at another batch size (and, for token ids, another sequence length)."""
    g = torch.Generator().manual_seed(seed)
    out: list[Any] = []
    for a in args:
        if a is None:
            out.append(None)
            continue
        shape = [batch, *a.shape[1:]]
        if a.is_floating_point():
            out.append(torch.randn(shape, generator=g))
        else:
            if seq is not None and a.dim() == 2:
                shape[1] = seq
            out.append(torch.randint(3, 100, shape, generator=g))
    return tuple(out)


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    return out.logits if hasattr(out, "logits") else out[0]


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo-programs")


@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_prepare_calibrate_train_finalize(name: str, mode: str, programs: Path) -> None:
    model, args = zoo.build(name)
    q = Quantizer(model, QuantizerConfig().set_execution_mode(mode))
    prepared = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        prepared(*_resized(args, 2))
        prepared(*args)
    q.training_mode()
    opt = torch.optim.SGD(prepared.parameters(), lr=1e-3)
    for step in range(2):
        _logits(prepared(*_resized(args, 3, seed=10 + step))).square().mean().backward()
        opt.step()
        opt.zero_grad()
        q.step()
    q.inference_mode()
    with torch.no_grad():
        expected = _logits(prepared(*args))
    program = q.finalize()
    with torch.no_grad():
        torch.testing.assert_close(_logits(program.module()(*args)), expected, rtol=0, atol=1e-6)
    torch.export.save(program, programs / f"{name}-{mode}.pt2")
    torch.save(_resized(args, 3, seq=5, seed=7), programs / f"{name}-{mode}.inputs.pt")


_LOAD = """
import sys, torch
from qplan.runtime import load_program
for path in sys.argv[1:]:
    args = torch.load(path.replace(".pt2", ".inputs.pt"))
    with torch.no_grad():
        out = load_program(path).module()(*args)
    logits = out if isinstance(out, torch.Tensor) else out.logits if hasattr(out, "logits") else out[0]
    assert logits.shape[0] == 3 and torch.isfinite(logits).all(), (path, tuple(logits.shape))
    print("ran", path.rsplit("/", 1)[-1], tuple(logits.shape))
"""


def test_saved_programs_load_in_a_fresh_process_and_run_at_other_shapes(programs: Path) -> None:
    paths = sorted(str(p) for p in programs.glob("*.pt2"))
    assert paths, "run with the preparing tests (each writes its program here)"
    run = subprocess.run([sys.executable, "-c", _LOAD, *paths], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("ran ") == len(paths)
