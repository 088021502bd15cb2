"""For every test: a failure inside legorun shows its whole traceback (cli.main prints one
line otherwise), so that the tests that look for tracebacks see them."""

import os

os.environ["LEGORUN_TRACEBACK"] = "1"
