"""``qplan export``: prepare a model with a config (or plan), calibrate it, and write a deployable format.

Today the one format is ``compressed-tensors`` (a Hugging Face model directory, see
:mod:`qplan.export.compressed_tensors`). Calibration runs the prepared model on the factory's example
inputs, or on every batch that ``--calibration MODULE:FUNC`` returns (an iterable of input tuples or
tensors). Exit 0 when written, 1 when the plan holds entries the format cannot express (nothing is
written unless ``--skip-unsupported``), 2 for bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qplan.cli.exits import EXIT_OK, UsageError, errors_in_default_format
from qplan.cli.inputs import load_factory

__all__ = ["register", "run"]

FORMATS = ("compressed-tensors",)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="prepare, calibrate and write a model in a deployable format (compressed-tensors)",
        description="Prepare the model with CONFIG (a YAML/JSON config or a plan written by compile-plan),"
        " calibrate it on the factory's example inputs (or on --calibration's batches), and write it to"
        " DIR in --format.",
    )
    p.add_argument("config", metavar="PLAN_OR_CONFIG", help="YAML or JSON config file, or a plan JSON")
    p.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="factory returning (model, example_inputs), e.g. qplan.models:mlp",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="output format")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument(
        "--mode", choices=("graph", "eager"), default=None, help="capture mode (default: the config's execution_mode)"
    )
    p.add_argument(
        "--calibration",
        metavar="MODULE:FUNC",
        help="function returning an iterable of calibration batches (each a tuple of inputs or one tensor);"
        " default: the factory's example inputs, once",
    )
    p.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave entries the format cannot express in float (listed) instead of failing",
    )
    p.set_defaults(run=run)


@errors_in_default_format
def run(args: argparse.Namespace) -> int:
    import torch

    from qplan.export.compressed_tensors import export_compressed_tensors
    from qplan.runtime import Quantizer

    model, example_inputs = load_factory(args.model)
    batches = _calibration_batches(args.calibration) if args.calibration else [example_inputs]
    source = _plan_or_config(args.config)
    quantizer = Quantizer(model, source, mode=args.mode)
    prepared = quantizer.prepare(example_inputs)
    quantizer.calibration_mode()
    count = 0
    with torch.no_grad():
        for batch in batches:
            prepared(*(batch if isinstance(batch, tuple) else (batch,)))
            count += 1
    if count == 0:
        raise UsageError(f"`{args.calibration}` returned no calibration batches")
    quantizer.inference_mode()
    result = export_compressed_tensors(quantizer, args.output, skip_unsupported=args.skip_unsupported)
    for line in result.skipped:
        print(f"qplan: left in float: {line}", file=sys.stderr)
    print(
        f"wrote {result.out_dir / 'config.json'} and {result.out_dir / 'model.safetensors'}:"
        f" {len(result.modules)} quantized modules, {len(result.skipped)} entries left in float,"
        f" calibrated on {count} batch{'es' if count != 1 else ''}"
    )
    return EXIT_OK


def _plan_or_config(path: str) -> Any:
    """The plan in `path` when it is one, else its config (loaded with file positions)."""
    from qplan.cli.inputs import decode_plan, is_plan, read_bytes
    from qplan.schema.loader import load_config

    data = read_bytes(path)
    if is_plan(data):
        return decode_plan(path, data)
    return load_config(Path(path))


def _calibration_batches(spec: str) -> Iterable[Any]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--calibration must be MODULE:FUNC, got `{spec}`")
    try:
        func = getattr(importlib.import_module(module_name), attr, None)
    except ImportError as e:
        raise UsageError(f"cannot import `{module_name}`: {e}") from None
    if not callable(func):
        raise UsageError(f"`{module_name}` has no function `{attr}`")
    try:
        batches = func()
    except Exception as e:  # the user's code failed, not qplan
        raise UsageError(f"`{spec}` raised {type(e).__name__}: {e}") from None
    if not isinstance(batches, Iterable):
        raise UsageError(f"`{spec}` must return an iterable of batches, got `{type(batches).__name__}`")
    return batches
