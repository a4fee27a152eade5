"""One module per ``qplan`` subcommand, each with ``register(subparsers)`` and ``run(args) -> int``.

See :mod:`qplan.cli` for the interface; :data:`qplan.cli.main.SUBCOMMANDS` lists the modules.
"""
