"""``python -m qplan.cli``: the ``qplan`` command."""

import sys

from qplan.cli.main import main

sys.exit(main())
