"""``python -m ws_leakcheck``: the same as the ``ws-leakcheck`` command."""

import os
import sys

from ws_leakcheck.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# Skip interpreter teardown: a frozen server thread (a handler that never yields) cannot be joined.
os._exit(code)
