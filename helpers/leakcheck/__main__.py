"""``python -m helpers.leakcheck``: the same as the ``ws-leakcheck`` command."""

import os
import sys

from helpers.leakcheck.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# Skip interpreter teardown: a frozen server thread (a handler that never yields) cannot be joined.
os._exit(code)
