"""Saved programs load in a fresh process with ``load_program`` alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from tiny_llama import ids, tiny_llama

from qplan import models
from qplan.runtime.program import recorded_imports, save_program
from qplan.runtime.quantizer import Quantizer
from qplan.schema.types import QuantizerConfig

# a module that registers its own op library, as torchao does for the q/dq ops of lowered programs
OP_LIBRARY = """
import torch

lib = torch.library.Library("qplan_test_ops", "DEF")
lib.define("twice(Tensor x) -> Tensor")
lib.impl("twice", lambda x: x * 2, "CompositeExplicitAutograd")
"""

FRESH = """
import json, sys
import torch
from qplan.runtime import load_program

out = {}
for name, path, shape, needs in json.loads(sys.argv[1]):
    before = sorted(m for m in needs if m in sys.modules)  # what the program needs is not imported yet
    program = load_program(path).module()
    y = program(torch.randint(0, 100, shape) if name == "llama" else torch.randn(shape))
    y = getattr(y, "logits", y)
    out[name] = {"before": before, "shape": list(y.shape)}
print(json.dumps(out))
"""


def _finalize(model: torch.nn.Module, args: tuple, config: QuantizerConfig) -> torch.export.ExportedProgram:
    q = Quantizer(model, config.set_execution_mode("graph"))
    prepared = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        prepared(*args)
    q.inference_mode()
    return q.finalize()


class UsesLibrary(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.qplan_test_ops.twice(x) + 1


def test_programs_load_in_a_fresh_process(tmp_path: Path) -> None:
    # a transformers model returning its ModelOutput (a pytree node transformers registers)
    llama = _finalize(tiny_llama(), (ids(2, 8),), QuantizerConfig.presets.w8())
    torch.export.save(llama, tmp_path / "llama.pt2")  # plain torch.export.save: finalize recorded the imports
    assert "transformers.modeling_outputs" in recorded_imports(tmp_path / "llama.pt2")

    # q/dq ops from torch's quantized_decomposed library
    model, args = models.mlp()
    mlp = _finalize(model, args, QuantizerConfig.presets.w8a8())
    torch.export.save(mlp, tmp_path / "mlp.pt2")
    assert recorded_imports(tmp_path / "mlp.pt2") == ["torch.ao.quantization.fx._decomposed"]

    # a program whose ops come from another library (lowered downstream): recorded at save time
    (tmp_path / "qplan_test_oplib.py").write_text(textwrap.dedent(OP_LIBRARY))
    sys.path.insert(0, str(tmp_path))
    try:
        import qplan_test_oplib  # noqa: F401

        lowered = torch.export.export(UsesLibrary(), (torch.randn(2, 3),), strict=False)
        save_program(lowered, tmp_path / "lowered.pt2")
    finally:
        sys.path.remove(str(tmp_path))
    assert recorded_imports(tmp_path / "lowered.pt2") == ["qplan_test_oplib"]

    cases = [
        ["mlp", str(tmp_path / "mlp.pt2"), [5, 16], ["torchao", "torch.ao.quantization.fx._decomposed"]],
        ["lowered", str(tmp_path / "lowered.pt2"), [2, 3], ["qplan_test_oplib"]],
        ["llama", str(tmp_path / "llama.pt2"), [3, 5], ["transformers"]],
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FRESH, json.dumps(cases)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["mlp"] == {"before": [], "shape": [5, 10]}  # torchao never imported
    assert got["lowered"] == {"before": [], "shape": [2, 3]}
    assert got["llama"]["before"] == [] and got["llama"]["shape"] == [3, 5, 100]
