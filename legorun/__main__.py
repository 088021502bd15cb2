"""`python -m legorun` is the `legorun` command."""

import sys

from legorun.cli import main

sys.exit(main())
