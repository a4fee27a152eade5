"""``qplan presets``: list the config presets with their YAML."""

from __future__ import annotations

import argparse

from qplan.cli.exits import EXIT_OK

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("presets", help="list the config presets with their YAML")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qplan.schema.presets import PRESETS

    for i, preset in enumerate(PRESETS.values()):
        if i:
            print()
        print(f"# {preset.name}{preset.signature}: {preset.summary}")
        print(preset.yaml(), end="")
    return EXIT_OK
