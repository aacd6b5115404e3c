"""Two learners, two real Unix users, run the notebooks that start a stack at the same time: both pass.

As on a classroom's one-host JupyterHub: each learner has a home of their own (0700) with their own copy of the
lab, which their kernels import ``helpers`` from, and both share the lab's environment. CI runs as root, so the
test creates the two users (``useradd``) and drops to them (``setpriv``). One liberty: the lab's environment may
rest on an interpreter in a folder that ordinary users cannot enter (CI's Python lives under /root), so the
learners' processes keep one capability, ``CAP_DAC_READ_SEARCH`` (read any file). It does not change who owns
their processes and sockets, which is what their stacks check; ``tests/classroom/test_two_users.py`` tries the doors
with no capability at all.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from helpers.stack import nginx as nginx_module

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("10_production_proxy_redis", "11_production_heavy_sender", "09_production_deploys")
STACK_PROCESSES = {"nginx", "redis-server"}
RUNNER = """
import json, sys, time
from pathlib import Path
from helpers.notebook_runner import NOTEBOOKS, execute
import helpers
results = {"helpers": helpers.__file__, "runs": []}
for name in sys.argv[1:]:
    started = time.time()
    run = execute(NOTEBOOKS / f"{name}.ipynb", timeout=600, final_frames_only=True)
    results["runs"].append({"notebook": name, "failure": None if run.passed else str(run.failure),
                            "started": started, "ended": time.time()})
print(json.dumps(results))
"""

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the owner check reads Linux's socket tables"),
    pytest.mark.skipif(os.geteuid() != 0, reason="creating Unix users needs root (CI runs as root)"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("setpriv") is None,
                       reason="useradd and setpriv (Debian's passwd and util-linux) are needed"),
    pytest.mark.skipif(not nginx_module.available() and not os.environ.get("CI"),
                       reason="nginx is not installed (CI installs it)"),
    pytest.mark.timeout(900),
]


def copy_of_the_lab(home: Path) -> Path:
    """The learner's own clone: the repository's files (tracked and new, not ignored), without .git or .venv."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    clone = home / "ws-leak-lab"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    return clone


@pytest.fixture(scope="module")
def learners() -> Iterator[list[tuple[pwd.struct_passwd, Path]]]:
    made: list[tuple[pwd.struct_passwd, Path]] = []
    try:
        for _ in range(2):
            name = f"learner{uuid.uuid4().hex[:6]}"
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
            user = pwd.getpwnam(name)
            home = Path(user.pw_dir)
            home.chmod(0o700)
            clone = copy_of_the_lab(home)
            subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
            made.append((user, clone))
        yield made
    finally:
        for user, _ in made:
            subprocess.run(["userdel", "--remove", user.pw_name], check=False, capture_output=True)


def as_learner(user: pwd.struct_passwd, clone: Path, argv: list[str]) -> subprocess.Popen[str]:
    environment = {"HOME": user.pw_dir, "USER": user.pw_name, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "PYTHONPATH": str(clone), "LANG": "C.UTF-8"}
    return subprocess.Popen(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
         "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *argv],
        env=environment, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stack_owners() -> set[int]:
    """The users owning an nginx or redis-server process right now."""
    owners = set()
    for process in psutil.process_iter(["name", "uids"]):
        if process.info["name"] in STACK_PROCESSES and process.info["uids"] is not None:
            owners.add(process.info["uids"].real)
    return owners


def test_two_learners_run_the_stack_notebooks_at_the_same_time_and_both_pass(learners):
    most_owners_at_once: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            owners = stack_owners() & {user.pw_uid for user, _ in learners}
            if len(owners) > len(most_owners_at_once):
                most_owners_at_once.clear()
                most_owners_at_once.update(owners)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    runs = [as_learner(user, clone, [sys.executable, "-c", RUNNER, *NOTEBOOKS]) for user, clone in learners]
    try:
        outputs = [run.communicate(timeout=840) for run in runs]
    finally:
        done.set()
        for run in runs:
            run.kill()
        sampler.join()
    results = []
    for (user, clone), run, (out, err) in zip(learners, runs, outputs, strict=True):
        assert run.returncode == 0, f"{user.pw_name}'s runner failed: {err.strip().splitlines()[-3:]}"
        result = json.loads(out.strip().splitlines()[-1])
        assert result["helpers"] == str(clone / "helpers" / "__init__.py"), result["helpers"]
        results.append(result)
    failures = {f"learner {index + 1}, {run['notebook']}": run["failure"]
                for index, result in enumerate(results) for run in result["runs"] if run["failure"]}
    assert failures == {}
    first, second = (result["runs"] for result in results)
    assert first[0]["started"] < second[-1]["ended"] and second[0]["started"] < first[-1]["ended"]
    assert len(most_owners_at_once) == 2, "the two learners' stacks never ran at the same time"
    assert not any(process.info["uids"] is not None and process.info["uids"].real in most_owners_at_once
                   for process in psutil.process_iter(["uids"])), "a learner's process outlived the run"
