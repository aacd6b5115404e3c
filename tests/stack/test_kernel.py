"""A kernel that dies, even by SIGKILL, takes the whole production stack with it."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from helpers.stack import nginx as nginx_module
from tests.support.notebook_kernel import kernel
from tests.support.polling import eventually

START_STACK = """
import json, os
from helpers import stack
lab = stack.start("helpers.apps.production:app", ["uvicorn", "hypercorn"], redis=True)
print(json.dumps({"kernel": os.getpid(), "stack": lab.pids()}))
"""


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(not nginx_module.available() and not os.environ.get("CI"),
                    reason="nginx is not installed (CI installs it)")
def test_no_nginx_redis_or_worker_process_survives_a_sigkilled_kernel():
    with kernel() as k:
        started = json.loads(k.run_ok(START_STACK, timeout=120).strip().splitlines()[-1])
        processes = [psutil.Process(pid) for pid in started["stack"]]
        names = sorted(p.name() for p in processes)
        assert sum(name.startswith("python") for name in names) == 2  # the uvicorn and hypercorn workers
        assert sum(name == "nginx" for name in names) == 2  # master and worker
        assert sum(name == "redis-server" for name in names) == 1
        os.kill(started["kernel"], signal.SIGKILL)
        assert eventually(lambda: all(_gone(p.pid) for p in processes), timeout=30.0), [
            p for p in processes if not _gone(p.pid)
        ]
