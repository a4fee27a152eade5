"""``qplan explain``: why a tensor got its spec (winning rule, rules it beat, decisions), from a plan file."""

from __future__ import annotations

import argparse
import sys

from qplan.cli.exits import EXIT_OK, UsageError, errors_in_default_format
from qplan.cli.inputs import decode_plan, is_plan, read_bytes

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("explain", help="why a tensor got its spec: winning rule, rules it beat, decisions")
    p.add_argument("plan", metavar="PLAN", help="plan JSON written by compile-plan")
    p.add_argument("address", metavar="ADDRESS", help="tensor or op address, e.g. fc1.weight or fc1.linear:in0")
    p.set_defaults(run=run)


@errors_in_default_format
def run(args: argparse.Namespace) -> int:
    from qplan.cli.render.plan import render_explanation
    from qplan.compiler.explain import explain

    if not args.address.strip():
        raise UsageError("ADDRESS is empty; give a tensor or op address, e.g. `fc1.weight` or `fc1.linear:in0`")
    data = read_bytes(args.plan)
    if not is_plan(data):
        raise UsageError(
            f"`{args.plan}` is not a plan; explain reads the JSON written by "
            "`qplan compile-plan CONFIG --model MODULE:FACTORY -o PLAN`"
        )
    plan = decode_plan(args.plan, data)
    sys.stdout.write(render_explanation(explain(plan, args.address), plan.config.sha256))
    return EXIT_OK
