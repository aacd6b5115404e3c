"""Two real Unix users on one host, as on a classroom's JupyterHub: one learner's stack is closed to the other.

CI runs as root, so these tests create a second user (``useradd``) and run a standard-library script as that
user (``setpriv``) that tries every door of a stack the test started: Redis over TCP (no password, a guessed
one, ``CONFIG SET dir``), Redis's Unix socket, the stack's folders, nginx, a worker and the tap, a worker's
report socket and its environment (where the Redis password is). The same script run by the stack's owner
shows that each door is real.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from helpers import stack
from helpers.servers import serve, stop_current
from helpers.stack import nginx as nginx_module
from helpers.stack.processes import running_children

DOORS = Path(__file__).parents[1] / "support" / "doors.py"
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the owner check reads Linux's socket tables"),
    pytest.mark.skipif(os.geteuid() != 0, reason="creating a second Unix user needs root (CI runs as root)"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("setpriv") is None,
                       reason="useradd and setpriv (Debian's passwd and util-linux) are needed"),
    pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason="the stranger's script runs on /usr/bin/python3"),
    pytest.mark.skipif(not nginx_module.available() and not os.environ.get("CI"),
                       reason="nginx is not installed (CI installs it)"),
]


@pytest.fixture(scope="module")
def stranger() -> Iterator[pwd.struct_passwd]:
    name = f"labstranger{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture(scope="module")
def lab() -> Iterator[stack.Stack]:
    started = stack.start("helpers.apps.production:app", ["uvicorn"], redis=True, tap=True)
    try:
        yield started
    finally:
        stack.stop_current()
        assert running_children() == []


def stack_doors(lab: stack.Stack) -> dict[str, object]:
    assert lab.redis is not None and lab.nginx is not None
    worker = lab.workers[0]
    return {"redis_port": lab.redis.port, "redis_socket": str(lab.redis.unix_socket), "redis_dir": str(lab.redis.dir),
            "redis_conf": str(lab.redis.dir / "redis.conf"), "nginx_port": lab.nginx.port, "path": "/ws/echo",
            "worker_port": worker.port, "tap_port": lab.taps["direct"].port,
            "report_socket": str(worker.report_socket), "worker_pid": worker.pid}


def try_doors(doors: dict[str, object], user: pwd.struct_passwd | None) -> dict[str, str]:
    """What ``tests/support/doors.py`` got at each door, run as ``user`` (None: as the owner, this process's user)."""
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        script = folder / "doors.py"
        shutil.copy(DOORS, script)
        script.chmod(0o644)
        command = [SYSTEM_PYTHON, "-I", str(script), json.dumps(doors)]
        if user is not None:
            command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=folder)
    finally:
        shutil.rmtree(folder)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_another_user_gets_nothing_from_redis(lab, stranger):
    doors = try_doors(stack_doors(lab), stranger)
    assert doors["redis tcp PING"].startswith("-NOAUTH"), doors
    assert doors["redis tcp AUTH guessed"].startswith(("-WRONGPASS", "-ERR invalid password")), doors
    assert doors["redis tcp CONFIG SET dir"].startswith(("-NOAUTH", "-ERR unknown command")), doors
    assert doors["redis tcp PUBLISH"].startswith("-NOAUTH"), doors
    assert doors["redis unix socket"] == "PermissionError", doors


def test_another_user_cannot_enter_the_stacks_folders_or_read_its_secrets(lab, stranger):
    doors = try_doors(stack_doors(lab), stranger)
    assert doors["redis folder"] == "PermissionError", doors
    assert doors["redis.conf"] == "PermissionError", doors
    assert doors["worker report socket"] == "PermissionError", doors
    assert doors["worker environment"] == "PermissionError", doors


def test_another_users_websocket_is_refused_by_nginx_the_worker_and_the_tap(lab, stranger):
    doors = try_doors(stack_doors(lab), stranger)
    assert doors["nginx websocket"] == "403", doors
    assert doors["worker websocket"] == "403", doors
    assert doors["worker http"] == "403", doors
    assert doors["tap websocket"] in ("ConnectionResetError", "closed"), doors
    assert lab.workers[0].handlers() == 0


def test_every_door_opens_to_the_stacks_owner(lab):
    assert lab.redis is not None
    doors = try_doors(stack_doors(lab), None)
    with lab.redis.client() as client:
        assert client.ping() is True
    assert doors["redis unix socket"] == "connected", doors
    assert doors["redis folder"] == "listed", doors
    assert doors["nginx websocket"] == "101", doors
    assert doors["worker websocket"] == "101", doors
    assert doors["tap websocket"] == "101", doors
    assert doors["worker report socket"] == "connected", doors
    assert doors["worker environment"] == "read", doors


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("a learner's page")


SMALL_APP = Starlette(routes=[WebSocketRoute("/ws", echo), Route("/page", page)])


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn", "granian", "daphne"])
def test_a_lab_server_in_the_kernel_refuses_another_user_and_serves_its_owner(server, stranger):
    served = serve(SMALL_APP, server=server)
    try:
        doors = {"worker_port": served.port, "path": "/ws", "http_path": "/page"}
        theirs, ours = try_doors(doors, stranger), try_doors(doors, None)
    finally:
        stop_current()
    assert (theirs["worker websocket"], theirs["worker http"]) == ("403", "403"), theirs
    assert (ours["worker websocket"], ours["worker http"]) == ("101", "200"), ours


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_the_leak_checkers_server_refuses_another_user_so_they_cannot_change_its_count(server, stranger):
    """A new user's trial: root's connections to a check running as another user reached the app and were
    counted ("6 of 5 handler coroutines"). The checker's agent serves the app to its owner's processes only."""
    from ws_leakcheck.agent import Agent

    agent = Agent()
    started = agent.handle({"op": "start", "app": SMALL_APP, "paths": ["/ws"], "server": server})
    try:
        assert "error" not in started, started
        doors = {"worker_port": started["port"], "path": "/ws", "http_path": "/page"}
        theirs, ours = try_doors(doors, stranger), try_doors(doors, None)
    finally:
        agent.handle({"op": "stop"})
    assert (theirs["worker websocket"], theirs["worker http"]) == ("403", "403"), theirs
    assert (ours["worker websocket"], ours["worker http"]) == ("101", "200"), ours
