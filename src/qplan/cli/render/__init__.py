"""Every renderer of the ``qplan`` command line, side by side; each returns or prints text, none decides exit codes.

- :mod:`~qplan.cli.render.diagnostics`: diagnostics as ``full`` / ``concise`` / ``json`` / ``github``, and summaries;
- :mod:`~qplan.cli.render.plan`: the ``compile-plan`` summary tables, ``diff`` and ``explain`` text;
- :mod:`~qplan.cli.render.demo`: ``qplan demo``'s progress reporter, result table and outcome lines.

Import the module you need: this package imports none of them, so ``qplan validate`` loads no
more than the diagnostics renderer.
"""
