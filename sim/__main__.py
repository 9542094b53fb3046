"""``python -m sim`` is the ``qsim`` command."""

import sys

from sim.cli import main

sys.exit(main())
