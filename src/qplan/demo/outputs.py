"""The demo's output folder: claiming it, saving exported programs, and loading them back to measure."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from qplan.demo.data import Digits
from qplan.demo.options import DemoError
from qplan.demo.training import evaluate

__all__ = ["MARKER", "prepare_out", "save_program", "exported_accuracy", "quiet_export"]

MARKER = ".qplan-demo"  # marks a folder as the demo's own, so reruns may replace its files


def prepare_out(out: Path) -> None:
    """Create ``out``, refusing a non-empty folder that the demo did not make."""
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"output path `{out}` exists and is not a folder; choose another with --out")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DemoError(
                f"output folder `{out}` is not empty and was not made by `qplan demo`;"
                " choose another with --out (the demo only replaces its own outputs)"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `qplan demo`; its files here are replaced on each run\n", encoding="utf-8")
    (out / ".gitignore").write_text("# outputs of `qplan demo`\n*\n", encoding="utf-8")


def save_program(program: torch.export.ExportedProgram, path: Path) -> tuple[int, int]:
    """Save ``program``; return (file bytes, parameter + buffer + constant bytes)."""
    torch.export.save(program, str(path))
    tensors = list(program.state_dict.values()) + list(program.constants.values())
    weight_bytes = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    return path.stat().st_size, weight_bytes


def exported_accuracy(path: Path, data: Digits, batch_size: int) -> float:
    """Test accuracy of the program saved at ``path``, loaded back from disk."""
    from qplan.runtime.finalize import load_program  # torch.export.load with qplan's ops registered

    module = load_program(path).module()
    return evaluate(module, data.x_test, data.y_test, batch_size)


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """Hide a FutureWarning that torch's own export save/load code raises (not actionable here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        yield
