"""``qplan diff``: compare two plans (or two configs compiled with ``--model``); exit 1 when different."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from qplan.cli.exits import EXIT_FAIL, EXIT_OK, UsageError, errors_in_default_format
from qplan.cli.inputs import decode_plan, is_plan, load_factory, read_bytes

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("diff", help="compare two plans (or two configs with --model); exit 1 when different")
    p.add_argument("a", metavar="A", help="plan JSON, or a config with --model")
    p.add_argument("b", metavar="B", help="plan JSON, or a config with --model")
    p.add_argument("--model", metavar="MODULE:FACTORY", help="compile config arguments against this model")
    p.add_argument("--mode", choices=("graph", "eager"), default=None, help="capture mode for configs")
    p.add_argument("--format", choices=("text", "json", "markdown", "github"), default="text")
    p.set_defaults(run=run)


@errors_in_default_format
def run(args: argparse.Namespace) -> int:
    from qplan.cli.render.plan import render_diff
    from qplan.compiler.diff import diff_plans

    cache: dict = {}
    a = _load_plan_or_compile(args.a, args.model, args.mode, cache)
    b = _load_plan_or_compile(args.b, args.model, args.mode, cache)
    d = diff_plans(a, b)
    sys.stdout.write(render_diff(d, args.format, args.a, args.b, (a, b)))
    return EXIT_OK if d.equal else EXIT_FAIL


def _load_plan_or_compile(path: str, model_spec: str | None, mode: str | None, cache: dict) -> Any:
    """The plan at `path`, or the config at `path` compiled against `model_spec` (loaded once into `cache`)."""
    data = read_bytes(path)
    if is_plan(data):
        return decode_plan(path, data)
    if model_spec is None:
        raise UsageError(f"`{path}` is not a plan; to compare configs pass --model MODULE:FACTORY")
    from qplan.compiler import compile_plan
    from qplan.schema.loader import load_config

    if "model" not in cache:
        cache["model"] = load_factory(model_spec)
    model, example_inputs = cache["model"]
    return compile_plan(model, load_config(path), example_inputs, mode)
