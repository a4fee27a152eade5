"""``qplan import compressed-tensors``: turn a compressed-tensors ``quantization_config`` into a qplan config.

Reads a Hugging Face ``config.json`` (its ``quantization_config`` section) or a bare
``quantization_config`` JSON, prints the qplan config as YAML (or writes it with ``-o``), and lists on
stderr everything it could not express (see :func:`qplan.export.ct_import.config_from_compressed_tensors`).
Exit 0 when everything mapped, 1 when something was left out (the config is still written), 2 for
bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qplan.cli.exits import EXIT_FAIL, EXIT_OK, UsageError
from qplan.cli.inputs import read_bytes

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import",
        help="turn another tool's quantization config into a qplan config",
        description="Map a compressed-tensors `quantization_config` (in a Hugging Face config.json) to a qplan"
        " config; print it as YAML (or write it with -o) and report what it cannot express.",
    )
    p.add_argument("source_format", metavar="FORMAT", choices=("compressed-tensors",), help="compressed-tensors")
    p.add_argument("config", metavar="CONFIG_JSON", help="config.json with a quantization_config section")
    p.add_argument("-o", "--output", metavar="YAML", help="write the qplan config to YAML instead of stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qplan.export.ct_import import config_from_compressed_tensors

    data = read_bytes(args.config)
    try:
        document = json.loads(data)
    except ValueError as e:
        raise UsageError(f"`{args.config}` is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise UsageError(f"`{args.config}` must hold a JSON object, got `{type(document).__name__}`")
    qconfig = document.get("quantization_config", document if "config_groups" in document else None)
    if not isinstance(qconfig, dict):
        raise UsageError(f"`{args.config}` has no `quantization_config` object (nor `config_groups` at the top)")
    config, problems = config_from_compressed_tensors(qconfig)
    text = config.to_yaml()
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as e:
            raise UsageError(f"cannot write `{args.output}`: {e.strerror or e}") from None
    else:
        sys.stdout.write(text)
    for problem in problems:
        print(f"qplan: not expressible: {problem}", file=sys.stderr)
    if args.output:
        print(f"wrote {args.output}; {len(problems)} item(s) not expressible", file=sys.stderr)
    return EXIT_FAIL if problems else EXIT_OK
