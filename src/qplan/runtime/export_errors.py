"""Exporting a finalized model: torch's export failures as one clear :class:`QplanError`.

When `torch.export` cannot trace a model it logs pages of graph code on stderr and raises an
exception whose message is written for torch developers. :func:`exporting` keeps torch's loggers
quiet while exporting and turns a failure into a message that names the cause, the line of the
user's code that caused it, and what to do instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import traceback
from collections.abc import Iterator

import torch

from qplan.diagnostics import QplanError

__all__ = ["ExportFailedError", "exporting"]

_TORCH_DIR = os.path.dirname(torch.__file__)
_QPLAN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_OPTIONS = (
    'help: `finalize(format="module")` returns the quantized model as an `nn.Module` with integer weight '
    "storage (its state_dict saves and loads) without exporting it; or make the model exportable: replace "
    "Python control flow on tensor values with `torch.cond` or a condition known before the call, and return "
    "tensors (or containers torch can flatten) from `forward`"
)


class ExportFailedError(QplanError):
    """`torch.export` could not trace the finalized model; the message says why and what to do."""


def _cause(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if "data-dependent" in text or type(exc).__name__.startswith("GuardOnDataDependent"):
        return "the model branches on a tensor's value (data-dependent control flow), which export cannot trace"
    if "in output, which is not a known type" in text:
        found = first.split("Found ", 1)[-1].split(" in output", 1)[0]
        return f"the model returns {found}, a type export cannot flatten"
    return f"{type(exc).__name__}: {first}"


def _user_frame(exc: BaseException) -> str | None:
    """The innermost frame of the traceback outside torch and qplan, as `file:line: code`."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        name = os.path.abspath(frame.filename)
        if name.startswith((_TORCH_DIR, _QPLAN_DIR)) or name.startswith("<"):
            continue
        found = f"{frame.filename}:{frame.lineno}: {(frame.line or '').strip()}"
    return found


@contextlib.contextmanager
def exporting(what: str) -> Iterator[None]:
    """Run an export of `what`: torch's log records are dropped, what it prints on stderr is held
    back (and passed on only if the export succeeds), and a failure becomes :class:`ExportFailedError`."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            yield
    except QplanError:
        raise
    except Exception as exc:
        where = _user_frame(exc)
        at = f" at {where}" if where else ""
        raise ExportFailedError(f"cannot export {what}: {_cause(exc)}{at}; {_OPTIONS}") from None
    else:
        sys.stderr.write(held.getvalue())
    finally:
        logging.disable(previous)
