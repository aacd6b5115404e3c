"""Run docs/jupyterhub_config_one_host.py for real, with two throwaway Unix users, and print what holds.

    python -m benchmarks.hub_run --venv /srv/lab/venv --chp /srv/lab/chp/node_modules/.bin/configurable-http-proxy

As root, on a machine where nobody else uses the user names (``--users``, default ``hublearner1 hublearner2``):

1. creates the two users (``useradd -m -K HOME_MODE=0700``, a random password each) and gives each a
   ``git clone --no-hardlinks`` of this repository (its committed HEAD) in ``~/ws-leak-lab``;
2. starts the hub from ``--venv`` (a venv of Debian's /usr/bin/python3 with ``jupyterhub``,
   ``jupyterhub-idle-culler`` and this repository installed) with the recipe unchanged, plus one API service token
   for this script, short idle timeouts (``--kernel-idle``, ``--server-idle``) so that both cullers act during the run;
3. logs each user in through PAM (the hub's login form), starts their server, and checks in a kernel of each:
   the Unix user, where ``helpers`` is imported from (their clone, and an edit to it takes effect), the kernel's
   transport encryption, the umask of the server and the kernel (``/proc/<pid>/status``), the modes of a file and a
   folder the kernel creates, of the connection file and of IPython's history;
4. as the second user, subscribes to the first user's kernel's iopub port while that kernel prints a secret, and,
   as a control, to a plain (unencrypted) ZMQ socket of the first user's that publishes it;
5. runs each ``--notebooks`` notebook (default 10 then 04) for both users at the same time, every code cell in order
   in a fresh kernel of each (as Run All does), through the hub's kernel WebSocket, and prints per user its time,
   its first failing cell, the kernel tree's CPU-seconds (the kernel's own ``os.times()``, reaped children included)
   and the peak RSS of all that user's processes, with the load average;
6. leaves every kernel idle and waits for the server's kernel culler, then for the hub's idle culler;
7. lists the files in the users' homes that others could read, stops the hub, and removes the users
   (``userdel -r``) unless ``--keep``.

It prints figures and a JSON summary (``--json PATH`` writes it too); it asserts nothing and times nothing.
``tests/classroom/test_hub_run.py`` runs it when asked to (LAB_HUB_VENV) and checks the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.cookiejar
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from benchmarks.hub_isolation import Hub, notebook_cells
from helpers.notebook_runner import code_cells, notebook_path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "docs" / "jupyterhub_config_one_host.py"
CLONE = "ws-leak-lab"
SERVICE = "hub-run"
MARK = "HUB_RUN "
ANSI = re.compile(r"\x1b\[[0-9;]*m")

PROBE = r"""
import getpass, json, os, stat, sys
import helpers
from ipykernel.kernelapp import IPKernelApp
_app = IPKernelApp.instance()
_cf = _app.abs_connection_file
with open(_cf) as _f:
    _conn = json.load(_f)
open("hub-run-probe.txt", "w").close()
os.mkdir("hub-run-probe-dir")
_hist = os.path.expanduser("~/.ipython/profile_default/history.sqlite")
def _mode(p):
    return oct(stat.S_IMODE(os.stat(p).st_mode)) if os.path.exists(p) else None
print("HUB_RUN " + json.dumps({
    "user": getpass.getuser(), "uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(),
    "python": sys.version.split()[0], "executable": sys.executable,
    "helpers": helpers.__file__, "pythonpath": os.environ.get("PYTHONPATH"),
    "transport": _conn.get("transport"), "curve_key_in_connection_file": "curve_secretkey" in _conn,
    "iopub_port": _conn.get("iopub_port"), "connection_file_mode": _mode(_cf),
    "file_mode": _mode("hub-run-probe.txt"), "folder_mode": _mode("hub-run-probe-dir"),
    "history_mode": _mode(_hist), "ipython_dir_mode": _mode(os.path.dirname(os.path.dirname(_hist))),
    "home_mode": _mode(os.path.expanduser("~")),
}))
os.remove("hub-run-probe.txt"); os.rmdir("hub-run-probe-dir")
"""

# Written into the learner's clone by their own kernel; a new kernel must import it from there.
EDIT = r"""
import json, os, helpers
_p = os.path.join(os.path.dirname(helpers.__file__), "hub_run_edit.py")
with open(_p, "w") as _f:
    _f.write("VALUE = 'edited by ' + __import__('getpass').getuser()\n")
print("HUB_RUN " + json.dumps({"written": _p}))
"""
EDITED = r"""
import json
import helpers.hub_run_edit as _e
print("HUB_RUN " + json.dumps({"value": _e.VALUE, "file": _e.__file__}))
"""

LISTEN = r"""
import json, time, zmq
_ctx = zmq.Context.instance()
_sub = _ctx.socket(zmq.SUB)
_sub.setsockopt(zmq.SUBSCRIBE, b"")
_sub.setsockopt(zmq.LINGER, 0)
_sub.connect("tcp://127.0.0.1:%(port)d")
_frames = []
_end = time.monotonic() + %(seconds)f
while time.monotonic() < _end:
    if _sub.poll(200):
        _frames.append(b"".join(_sub.recv_multipart()))
_sub.close()
print("HUB_RUN " + json.dumps({"frames": len(_frames), "secret_seen": any(b"%(secret)s" in f for f in _frames)}))
"""
SAY = r"""
import time
for _ in range(8):
    print("%(secret)s", flush=True)
    time.sleep(0.5)
"""
PLAIN_PUB = r"""
import json, threading, time, zmq
_pub = zmq.Context.instance().socket(zmq.PUB)
_pub.setsockopt(zmq.LINGER, 0)
_port = _pub.bind_to_random_port("tcp://127.0.0.1")
def _publish():
    for _ in range(60):
        _pub.send(b"%(secret)s")
        time.sleep(0.2)
    _pub.close()
threading.Thread(target=_publish, daemon=True).start()
print("HUB_RUN " + json.dumps({"port": _port}))
"""
DASHBOARD = r"""
import json
from helpers.dashboard_page import kernel_key
print("HUB_RUN " + json.dumps({"port": server.port, "key": kernel_key()}))
"""
DIRECT = r"""
import json, urllib.error, urllib.request
try:
    _r = urllib.request.urlopen("http://127.0.0.1:%(port)d/dashboard?ws=ws/metrics&key=%(key)s", timeout=10)
    _answer = {"page": _r.status, "page_says": ""}
except urllib.error.HTTPError as _e:
    _answer = {"page": _e.code, "page_says": _e.read().decode()[:100]}
print("HUB_RUN " + json.dumps(_answer))
"""
STOP = "from helpers.servers import stop_current\nprint(stop_current())"
PID = 'import os; print("HUB_RUN " + __import__("json").dumps({"pid": os.getpid()}))'
TIMES = 'import os, json; _t = os.times(); print("HUB_RUN " + json.dumps({"cpu": _t[0] + _t[1] + _t[2] + _t[3]}))'


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Kernel:
    """A kernel on a user's server, driven over the hub's kernel WebSocket, as JupyterLab drives it."""

    def __init__(self, hub: Hub, user: str, token: str) -> None:
        self.hub, self.user, self.token = hub, user, token
        self.id = ""
        self.session = uuid.uuid4().hex
        self.ws: ClientConnection | None = None

    async def start(self, path: str = "") -> None:
        body = {"name": "python3", "path": path}
        self.id = self.hub.json("POST", f"/user/{self.user}/api/kernels", self.token, body)["id"]
        self.ws = await connect(self.hub.ws_url(f"/user/{self.user}/api/kernels/{self.id}/channels"),
                                additional_headers={"Authorization": f"token {self.token}"},
                                max_size=None, open_timeout=60)

    async def run(self, code: str, *, history: bool = False, timeout: float = 300) -> tuple[str, str | None]:
        """Run ``code``: (what it printed, the error as ``Name: message`` or None)."""
        assert self.ws is not None
        msg_id = uuid.uuid4().hex
        await self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": self.session,
                       "username": self.user, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": history, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        printed: list[str] = []
        error = None
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    printed.append(content["text"])
                elif kind == "error":
                    where = [ANSI.sub("", line).strip() for line in content["traceback"][-2:]]
                    error = f"{content['ename']}: {content['evalue']} ({' | '.join(where)[-400:]})"
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(printed), error

    async def report(self, code: str, **kw: Any) -> dict[str, Any]:
        printed, error = await self.run(code, **kw)
        if error:
            raise RuntimeError(f"{self.user}'s kernel: {error}")
        line = next(line for line in printed.splitlines() if line.startswith(MARK))
        return dict(json.loads(line.removeprefix(MARK)))

    async def shutdown(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.id:
            self.hub.request("DELETE", f"/user/{self.user}/api/kernels/{self.id}", self.token)


@dataclass
class Learner:
    name: str
    password: str
    home: Path
    uid: int = 0
    results: dict[str, Any] = field(default_factory=dict)


def sh(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def create(names: list[str]) -> list[Learner]:
    learners = []
    for name in names:
        password = secrets.token_urlsafe(12)
        sh("useradd", "-m", "-K", "HOME_MODE=0700", "-s", "/bin/bash", name)
        sh("chpasswd", input=f"{name}:{password}\n")
        entry = pwd.getpwnam(name)
        home = Path(entry.pw_dir)
        clone = home / CLONE
        # umask 077: the clone is private from the start (git creates its files 0644 under the usual 022).
        sh("sh", "-c", 'umask 077 && exec git clone -q --no-hardlinks "$0" "$1"', str(ROOT), str(clone))
        sh("chown", "-R", f"{name}:{name}", str(clone))
        learners.append(Learner(name, password, home, entry.pw_uid))
    return learners


def shared_inodes(clone: Path) -> int:
    """Files of the clone's object store with more than one link (a hard link into another repository)."""
    return sum(1 for p in (clone / ".git" / "objects").rglob("*") if p.is_file() and p.stat().st_nlink > 1)


def pam_login(hub: Hub, learner: Learner) -> str:
    """Log in through the hub's form (PAM checks the Unix password): the status and where it redirects."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(hub.url + "/hub/login", timeout=30) as response:
        response.read()
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
    form = urllib.parse.urlencode({"username": learner.name, "password": learner.password, "_xsrf": xsrf}).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    try:
        with opener.open(urllib.request.Request(hub.url + "/hub/login", data=form), timeout=60) as response:
            return f"{response.status}"
    except urllib.error.HTTPError as answer:
        return f"{answer.code} to {answer.headers.get('Location', '')}"


def processes_of(uid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error):
            if p.info["uids"] and p.info["uids"].real == uid:
                found.append(p)
    return found


def rss_mib(uid: int) -> float:
    total = 0
    for p in processes_of(uid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:160]}"
    except psutil.Error:
        return f"{process.pid} (gone)"


def kernels_of(uid: int) -> list[int]:
    found = []
    for p in processes_of(uid):
        with contextlib.suppress(psutil.Error):
            if "ipykernel_launcher" in " ".join(p.cmdline()):
                found.append(p.pid)
    return found


def umask_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return line.split()[1]
    return "?"


def server_pid(uid: int) -> int:
    for p in processes_of(uid):
        with contextlib.suppress(psutil.Error):
            if any("jupyterhub-singleuser" in part for part in p.cmdline()):
                return int(p.pid)
    raise RuntimeError(f"no jupyterhub-singleuser process of uid {uid}")


class Peaks:
    """Samples the RSS of every process of each uid every half second: the peak per uid, and the peak load."""

    def __init__(self, uids: list[int]) -> None:
        self.uids = uids
        self.peak = dict.fromkeys(uids, 0.0)
        self.peak_load = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            for uid in self.uids:
                self.peak[uid] = max(self.peak[uid], await asyncio.to_thread(rss_mib, uid))
            self.peak_load = max(self.peak_load, os.getloadavg()[0])
            await asyncio.sleep(0.5)

    def __enter__(self) -> Peaks:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def run_notebook(hub: Hub, learner: Learner, token: str, name: str) -> dict[str, Any]:
    """Every code cell of the notebook in order, in a fresh kernel started in the clone's notebooks folder."""
    path = notebook_path(name)
    kernel = Kernel(hub, learner.name, token)
    await kernel.start(path="notebooks")
    try:
        pid = (await kernel.report(PID))["pid"]
        server = psutil.Process(server_pid(learner.uid))
        server_cpu = sum(server.cpu_times()[:2])
        start = time.monotonic()
        failure = None
        skipped = []
        for index, source in enumerate(code_cells(path)):
            printed, error = await kernel.run(source, history=True)
            skipped += [line.strip()[:160] for line in printed.splitlines() if line.strip().startswith("Skipped")]
            if error:
                failure = f"code cell {index + 1} ({source.splitlines()[0][:60]!r}): {error[:600]}"
                break
        seconds = time.monotonic() - start
        cpu = (await kernel.report(TIMES))["cpu"]
        return {"notebook": path.stem, "seconds": round(seconds, 1), "failure": failure, "skipped": skipped,
                "kernel_pid": pid,
                "kernel_tree_cpu_s": round(cpu, 1),
                "server_cpu_s": round(sum(server.cpu_times()[:2]) - server_cpu, 1)}
    finally:
        await kernel.shutdown()


async def websocket_answer(url: str, token: str) -> str:
    try:
        async with connect(url, additional_headers={"Authorization": f"token {token}"}, open_timeout=30) as ws:
            async with asyncio.timeout(10):
                first = await ws.recv()
            return f"open: {str(first)[:80]}"
    except InvalidStatus as refused:
        return f"handshake refused: HTTP {refused.response.status_code}"
    except ConnectionClosed as closed:
        return f"closed: {closed.rcvd}"
    except (OSError, TimeoutError) as error:
        return f"no answer: {error!r}"


async def dashboard_through_proxies(hub: Hub, token: str, kernel: Kernel, owner: Learner, other: Learner,
                                    other_kernel: Kernel) -> list[dict[str, Any]]:
    """Notebook 08's dashboard, served by the owner's kernel, tried through each user's jupyter-server-proxy with
    the owner's key (as a leaked link would give it): the page's status and the WebSocket's first answer."""
    served = await kernel.report(notebook_cells() + "\n\n" + DASHBOARD)
    port, key = served["port"], served["key"]
    rows = []
    try:
        for via in (owner, other):
            base = f"/user/{via.name}/proxy/{port}/"
            status, body, _ = hub.request("GET", f"{base}dashboard?ws=ws/metrics&key={key}", token)
            ws = await websocket_answer(hub.ws_url(f"{base}ws/metrics?key={key}"), token)
            rows.append({"through": base, "page": status, "page_says": body[:100] if status >= 400 else "",
                         "websocket": ws})
            log(f"{owner.name}'s dashboard through {base} with the key: page {status}, WebSocket {ws}")
        for who, from_kernel in ((owner, kernel), (other, other_kernel)):
            direct = await from_kernel.report(DIRECT % {"port": port, "key": key})
            rows.append({"through": f"{who.name}'s kernel, straight to 127.0.0.1:{port}", **direct})
            log(f"{owner.name}'s dashboard from {who.name}'s kernel straight to its port with the key: {direct}")
    finally:
        await kernel.run(STOP)
    return rows


async def wait_for(check: Any, timeout: float, every: float = 5) -> float | None:
    """Seconds until ``check()`` is true, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await asyncio.to_thread(check):
            return round(time.monotonic() - start, 1)
        await asyncio.sleep(every)
    return None


def readable_by_others(home: Path) -> list[str]:
    """Files and folders under ``home`` with any group or other permission bit (symbolic links left out)."""
    found = [] if stat.S_IMODE(home.stat().st_mode) & 0o077 == 0 else ["."]
    for dirpath, dirnames, filenames in os.walk(home):
        for entry in [*dirnames, *filenames]:
            p = Path(dirpath) / entry
            with contextlib.suppress(OSError):
                st = p.lstat()
                if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                    found.append(str(p.relative_to(home)))
    return found


def versions(python: Path) -> dict[str, str]:
    code = ("import json, sys, importlib.metadata as m; print(json.dumps({'python': sys.version.split()[0], **{n: "
            "m.version(n) for n in ('jupyterhub', 'jupyterhub-idle-culler', 'jupyterlab', 'jupyter-server', "
            "'jupyter-client', 'ipykernel', 'pyzmq')}}))")
    return dict(json.loads(sh(str(python), "-c", code).stdout))


async def measure(args: argparse.Namespace, learners: list[Learner], hub: Hub, token: str) -> dict[str, Any]:
    summary: dict[str, Any] = {"learners": {}, "notebooks": [], "isolation": {}}
    a, b = learners
    for learner in learners:
        learner.results["login"] = pam_login(hub, learner)
        hub.ensure_server(learner.name, token)
        pid = server_pid(learner.uid)
        learner.results["server_umask"] = umask_of(pid)
        learner.results["server_rss_mib_idle"] = round(psutil.Process(pid).memory_info().rss / 2**20, 1)
        learner.results["shared_inodes_in_clone"] = shared_inodes(learner.home / CLONE)
        log(f"{learner.name}: login {learner.results['login']}, server {pid} up, "
            f"RSS {learner.results['server_rss_mib_idle']} MiB, umask {learner.results['server_umask']}")

    kernels = {learner.name: Kernel(hub, learner.name, token) for learner in learners}
    try:
        for learner in learners:
            kernel = kernels[learner.name]
            await kernel.start(path="notebooks")
            probe = await kernel.report(PROBE, history=True)
            probe["kernel_umask"] = umask_of(probe["pid"])
            probe["kernel_rss_mib_idle"] = round(psutil.Process(probe["pid"]).memory_info().rss / 2**20, 1)
            learner.results["probe"] = probe
            learner.results["edit_written"] = (await kernel.report(EDIT))["written"]
            log(f"{learner.name}: {json.dumps(probe)}")
        # A fresh kernel must import the edit from the clone.
        for learner in learners:
            fresh = Kernel(hub, learner.name, token)
            await fresh.start(path="notebooks")
            try:
                learner.results["edit_seen"] = await fresh.report(EDITED)
            finally:
                await fresh.shutdown()
            log(f"{learner.name}: a fresh kernel imports {learner.results['edit_seen']}")

        secret = secrets.token_hex(8)
        port = a.results["probe"]["iopub_port"]
        listening = asyncio.ensure_future(
            kernels[b.name].report(LISTEN % {"port": port, "seconds": 6.0, "secret": secret}))
        await asyncio.sleep(1.5)
        await kernels[a.name].run(SAY % {"secret": secret})
        summary["isolation"]["iopub_of_other_kernel"] = await listening
        plain = (await kernels[a.name].report(PLAIN_PUB % {"secret": secret}))["port"]
        summary["isolation"]["plain_zmq_control"] = await kernels[b.name].report(
            LISTEN % {"port": plain, "seconds": 4.0, "secret": secret})
        log(f"{b.name} listening to {a.name}'s kernel iopub (port {port}): "
            f"{summary['isolation']['iopub_of_other_kernel']}; to a plain ZMQ socket of {a.name}'s: "
            f"{summary['isolation']['plain_zmq_control']}")
        summary["isolation"]["dashboard"] = await dashboard_through_proxies(hub, token, kernels[a.name], a, b,
                                                                         kernels[b.name])
    finally:
        for kernel in kernels.values():
            await kernel.shutdown()

    for name in args.notebooks:
        before = load()
        with Peaks([learner.uid for learner in learners]) as peaks:
            runs = await asyncio.gather(*(run_notebook(hub, learner, token, name) for learner in learners))
        for learner, run in zip(learners, runs, strict=True):
            run.update(user=learner.name, peak_rss_mib=round(peaks.peak[learner.uid], 1),
                       load_before=before, load_after=load(), peak_load_1min=round(peaks.peak_load, 2))
            summary["notebooks"].append(run)
            log(json.dumps(run))

    # Both cullers, on the short timeouts this run gave them: a kernel left idle, then the whole server.
    leftover = {learner.name: Kernel(hub, learner.name, token) for learner in learners}
    for kernel in leftover.values():
        await kernel.start(path="notebooks")
    culler = [p.pid for p in psutil.process_iter(["cmdline"])
              if "jupyterhub_idle_culler" in " ".join(p.info["cmdline"] or [])]
    summary["idle_culler_pids"] = culler
    log(f"idle culler running: {culler}; waiting for the kernel culler ({args.kernel_idle} s idle)")
    for learner in learners:
        learner.results["kernel_culled_after_s"] = await wait_for(  # no API request: it would count as activity
            lambda uid=learner.uid: not kernels_of(uid), timeout=args.kernel_idle * 3 + 120)
        log(f"{learner.name}: idle kernel gone after {learner.results['kernel_culled_after_s']} s")
    for kernel in leftover.values():
        kernel.id = ""  # already culled: nothing to delete
        await kernel.shutdown()
    log(f"waiting for the hub's idle culler ({args.server_idle} s without activity)")
    for learner in learners:
        learner.results["server_culled_after_s"] = await wait_for(
            lambda user=learner.name: not hub.json("GET", f"/hub/api/users/{user}", token).get("servers"),
            timeout=args.server_idle * 2 + 660, every=10)
        log(f"{learner.name}: server stopped by the culler after {learner.results['server_culled_after_s']} s more")
    for learner in learners:
        learner.results["readable_by_others"] = readable_by_others(learner.home)
        learner.results["home_mode"] = oct(stat.S_IMODE(learner.home.stat().st_mode))
        summary["learners"][learner.name] = learner.results
    return summary


def write_config(folder: Path, token: str) -> Path:
    config = folder / "jupyterhub_config.py"
    config.write_text(
        "import os\n"
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(RECIPE)!r})  # noqa: F821 - the recipe, unchanged\n"
        "# This script's API token: it starts servers and kernels and reads the users' models.\n"
        f"c.JupyterHub.services.append({{'name': {SERVICE!r}, 'api_token': os.environ['HUB_RUN_TOKEN']}})\n"
        f"c.JupyterHub.load_roles.append({{'name': {SERVICE!r}, 'services': [{SERVICE!r}], 'scopes': [\n"
        "    'list:users', 'read:users', 'read:servers', 'admin:servers', 'access:servers']})\n"
        "# Activity reaches the hub every 30 s instead of 300 s, so that this run's short server timeout means what\n"
        "# the recipe's 3600 s means: idle since the last notebook, not since the server started.\n"
        "c.JupyterHub.last_activity_interval = 30\n"
        "c.Spawner.environment['JUPYTERHUB_ACTIVITY_INTERVAL'] = '30'\n"
    )
    return config


def wait_until_up(hub: Hub, timeout: float = 120) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(OSError):
            if hub.request("GET", "/hub/api/", None)[0] == 200:
                return round(time.monotonic() - start, 1)
        time.sleep(1)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, measure, tear down (the users and the hub's folder go even when the measurement fails)."""
    python = Path(args.venv) / "bin" / "python"
    token = secrets.token_hex(32)
    folder = Path(tempfile.mkdtemp(prefix="lab-hub-run-"))
    ports = {"LAB_HUB_PORT": free_port(), "LAB_HUB_API_PORT": free_port(), "LAB_PROXY_API_PORT": free_port()}
    env = {**os.environ, "HUB_RUN_TOKEN": token, "LAB_USERS": " ".join(args.users),
           "LAB_KERNEL_IDLE_TIMEOUT": str(args.kernel_idle), "LAB_SERVER_IDLE_TIMEOUT": str(args.server_idle),
           "PATH": f"{Path(args.chp).parent}:{os.environ['PATH']}", **{k: str(v) for k, v in ports.items()}}
    env.pop("PYTHONPATH", None)
    summary: dict[str, Any] = {"versions": versions(python), "load_at_start": load(), "users": args.users,
                               "kernel_idle_timeout_s": args.kernel_idle, "server_idle_timeout_s": args.server_idle}
    log(f"versions: {summary['versions']}; load {summary['load_at_start']}")
    learners: list[Learner] = []
    hub_process = None
    log_path = folder / "hub.log"
    try:
        learners = create(args.users)
        log(f"users {args.users} created, clones in ~/{CLONE}")
        with log_path.open("w") as hub_log:
            hub_process = subprocess.Popen([str(Path(args.venv) / "bin" / "jupyterhub"), "-f",
                                            str(write_config(folder, token))],
                                           cwd=folder, env=env, stdout=hub_log, stderr=subprocess.STDOUT)
        hub = Hub(f"http://127.0.0.1:{ports['LAB_HUB_PORT']}")
        up = wait_until_up(hub)
        if up is None:
            raise RuntimeError(f"the hub did not answer in 120 s: see {log_path}")
        log(f"hub up after {up} s on {hub.url}")
        summary.update(asyncio.run(measure(args, learners, hub, token)))
    finally:
        if hub_process is not None:
            hub_process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                hub_process.wait(60)
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        summary["hub_log"] = {"kernels_without_encryption": text.count("Kernel is running over TCP without encryption"),
                              "culled_kernels": [line[-160:] for line in text.splitlines() if "Culling '" in line],
                              "culler_lines": [line[-160:] for line in text.splitlines() if "Culling server" in line]}
        left = {learner.name: [describe(p) for p in processes_of(learner.uid)] for learner in learners}
        summary["processes_left_after_hub_stop"] = left
        kept = Path(tempfile.gettempdir()) / "lab-hub-run-last.log"
        if log_path.exists():
            shutil.copy(log_path, kept)
        summary["hub_log_path"] = str(kept)
        if not args.keep:
            for learner in learners:
                for process in processes_of(learner.uid):
                    with contextlib.suppress(psutil.Error):
                        process.kill()
                subprocess.run(["userdel", "-r", learner.name], capture_output=True, check=False)
            summary["users_removed"] = [learner.name for learner in learners
                                        if subprocess.run(["id", learner.name], capture_output=True).returncode]
            shutil.rmtree(folder, ignore_errors=True)
    summary["load_at_end"] = load()
    return summary


def problems(args: argparse.Namespace) -> list[str]:
    found = []
    if os.geteuid() != 0:
        found.append("it must run as root (it creates Unix users, and the hub runs as root for PAM and setuid)")
    python = Path(args.venv) / "bin" / "python"
    if not (Path(args.venv) / "bin" / "jupyterhub").exists():
        found.append(f"{args.venv} has no bin/jupyterhub: install jupyterhub and jupyterhub-idle-culler there")
    elif subprocess.run([str(python), "-c", "import jupyterhub_idle_culler, helpers, ws_leakcheck"],
                        capture_output=True).returncode:
        found.append(f"{args.venv} lacks jupyterhub-idle-culler, this lab or its ws-leakcheck: pip install them there")
    if not shutil.which(args.chp):
        found.append(f"no configurable-http-proxy at {args.chp}: npm install --prefix DIR configurable-http-proxy")
    for name in args.users:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            found.append(f"the user {name} exists already: choose other names with --users")
    return found


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--venv", required=True, help="the hub's venv (Debian's python3, jupyterhub, the lab)")
    p.add_argument("--chp", required=True, help="the configurable-http-proxy executable")
    p.add_argument("--users", nargs=2, default=["hublearner1", "hublearner2"], help="two user names to create")
    p.add_argument("--notebooks", nargs="*", default=["10", "04"], help="run at the same time by both users")
    p.add_argument("--kernel-idle", type=int, default=60, help="LAB_KERNEL_IDLE_TIMEOUT for this run (s)")
    p.add_argument("--server-idle", type=int, default=120, help="LAB_SERVER_IDLE_TIMEOUT for this run (s)")
    p.add_argument("--keep", action="store_true", help="keep the users, their homes and the hub's folder")
    p.add_argument("--json", help="also write the summary here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    found = problems(args)
    if found:
        print("Cannot run the hub: " + "; ".join(found) + ".", file=sys.stderr)
        return 2
    summary = run(args)
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
