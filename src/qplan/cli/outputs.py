"""Writing a command's output file (``-o``): ``-`` is standard output, and a file is replaced
whole or not at all, so a failing command never leaves a user's existing file half-written."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from qplan.cli.exits import UsageError

__all__ = ["STDOUT", "is_stdout", "write_output", "check_not_input"]

STDOUT = "-"
"""The ``-o`` value that means standard output."""


def is_stdout(path: str | None) -> bool:
    return path == STDOUT


def write_output(path: str, data: str | bytes) -> None:
    """Write `data` to `path` (``-``: standard output), atomically: into a temporary file beside
    it, then renamed over it, keeping an existing file's permissions."""
    text = data if isinstance(data, str) else data.decode()
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write `{path}`: {e.strerror or e}") from None


def check_not_input(output: str | None, *inputs: str) -> None:
    """Refuse an `output` that is one of the `inputs` (a file is never overwritten by its own result)."""
    if not output or is_stdout(output):
        return
    for path in inputs:
        try:
            same = os.path.samefile(output, path)
        except OSError:  # either does not exist (yet): not the same file
            continue
        if same:
            raise UsageError(f"refusing to overwrite the input `{path}` with the output")
