"""Every server the lab runs (uvicorn, hypercorn, granian in the kernel; daphne beside it), with the lessons'
endpoints."""

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, cast

import psutil
import pytest
from fastapi import FastAPI, WebSocket
from websockets.sync.client import connect

from helpers import clients
from helpers.apps import fixed, seed
from helpers.errors import LabError
from helpers.probe import Probe
from helpers.servers import OWN_SETTINGS, SERVER_CLASSES, SERVERS, ServerName, current, serve, server_class
from helpers.servers.daphne import DaphneServer
from helpers.servers.hypercorn import HypercornServer
from tests.support.interrupts import keyboard_interrupt_after, lab_server_threads, slow_app
from tests.support.polling import eventually
from ws_leakcheck import servers as checker_servers

ALL = cast(list[ServerName], list(SERVERS))
IN_KERNEL = ["uvicorn", "hypercorn", "granian"]
WAYS: tuple[clients.Leave, ...] = ("clean", "fin", "rst")
N = 2  # clients per way of leaving
SPEC_VERSION = {"uvicorn": "2.4", "hypercorn": "2.3", "granian": "2.3", "daphne": None}  # FACTS §6, pinned versions
DAPHNE_CLOSE_TIMEOUT = 3.0

app = FastAPI()


@app.websocket("/fails")
async def fails(websocket: WebSocket):
    await websocket.accept()
    raise ValueError("the handler failed")


@app.websocket("/prints")
async def prints(websocket: WebSocket):
    print("a learner's print in a handler")
    await websocket.accept()
    await websocket.send_text("printed")
    await websocket.receive_text()


def settings(server: str) -> dict[str, Any]:
    """Start-up settings for a quick test: daphne's close timeout short, as its option allows."""
    return {"application_close_timeout": DAPHNE_CLOSE_TIMEOUT} if server == "daphne" else {}


def after_send_intervals(k: int = 5) -> None:
    time.sleep(k * seed.SEND_INTERVAL)


@pytest.mark.parametrize("server", ALL)
def test_every_server_listens_on_loopback_only_on_the_port_it_reports(server):
    lab = serve(seed.app, server=server)
    assert lab.name == server and lab.port != 0
    assert lab.listening_addresses() == [("127.0.0.1", lab.port)]


@pytest.mark.parametrize("server", ALL)
def test_every_server_serves_the_articles_endpoint_to_a_real_client(server):
    lab = serve(seed.app, server=server)
    group = clients.connect(lab.url("/ws/metrics"), N)
    assert eventually(lambda: all(c.received >= 3 for c in group))


@pytest.mark.parametrize("server", ALL)
def test_every_server_reports_the_spec_version_it_sends(server):
    lab = serve(seed.app, server=server)
    assert lab.spec_version == SPEC_VERSION[server]
    print(f"{server} {lab.version}: scope['asgi'] = {dict(lab.asgi_scope)}")


@pytest.mark.parametrize("server", ALL)
def test_the_pattern_leaves_no_handler_on_any_server_whichever_way_clients_leave(server):
    lab = serve(fixed.app, server=server)
    probe = Probe(lab, fixed.stream)
    groups = {way: clients.connect(lab.url("/ws/stubborn"), N) for way in WAYS}
    assert eventually(lambda: probe.alive() == {"stream": N * len(WAYS)})
    for way, group in groups.items():
        clients.leave(group, way)
    assert eventually(lambda: probe.alive() == {"stream": 0}, timeout=10)


def test_uvicorn_ends_the_articles_loop_at_its_next_send_whichever_way_clients_leave():
    lab = serve(seed.app, server="uvicorn")
    groups = {way: clients.connect(lab.url("/ws/metrics"), N) for way in WAYS}
    assert eventually(lambda: lab.count_alive({"loop": seed.get_metrics}) == {"loop": N * len(WAYS)})
    for way, group in groups.items():
        clients.leave(group, way)
    assert eventually(lambda: lab.count_alive({"loop": seed.get_metrics}) == {"loop": 0})


@pytest.mark.parametrize("server", ["hypercorn", "granian"])
def test_hypercorn_and_granian_keep_the_articles_loop_running_after_every_way_of_leaving(server):
    lab = serve(seed.app, server=server)
    groups = {way: clients.connect(lab.url("/ws/metrics"), N) for way in WAYS}
    assert eventually(lambda: lab.count_alive({"loop": seed.get_metrics}) == {"loop": N * len(WAYS)})
    for way, group in groups.items():
        clients.leave(group, way)
    after_send_intervals(5)
    assert lab.count_alive({"loop": seed.get_metrics}) == {"loop": N * len(WAYS)}
    assert lab.log.errors() == []  # nothing raised, nothing logged: the send is dropped silently


def test_daphne_cancels_the_articles_loop_after_its_application_close_timeout_unless_a_clean_close_made_a_send_raise():
    lab = serve(seed.app, server="daphne", application_close_timeout=DAPHNE_CLOSE_TIMEOUT)
    groups = {way: clients.connect(lab.url("/ws/metrics"), N) for way in WAYS}
    assert eventually(lambda: lab.count_alive({"loop": seed.get_metrics}) == {"loop": N * len(WAYS)})
    left = time.monotonic()
    for way, group in groups.items():
        clients.leave(group, way)
    # still running, but for a clean client's handler that sent after its close frame, before the TCP close (raised)
    assert lab.count_alive({"loop": seed.get_metrics})["loop"] >= N * (len(WAYS) - 1)
    assert eventually(lambda: lab.count_alive({"loop": seed.get_metrics}) == {"loop": 0}, timeout=30)
    lifetime = time.monotonic() - left
    print(f"daphne cancelled the article's loop {lifetime:.1f} s after the clients left "
          f"(application_close_timeout={DAPHNE_CLOSE_TIMEOUT} s, checked every second)")
    assert lifetime >= DAPHNE_CLOSE_TIMEOUT

    def logged(text: str) -> int:
        return sum(text in r.getMessage() for r in lab.log.records)

    killed, raised = "took too long to shut down and was killed", "Attempt to send on a closed protocol"
    assert eventually(lambda: logged(killed) + logged(raised) == N * len(WAYS))
    assert logged(killed) >= N * (len(WAYS) - 1)  # only the clean clients' handlers can raise (autobahn's Disconnected)


@pytest.mark.parametrize("server", ALL)
def test_stopping_any_server_cancels_the_handlers_that_hang_and_says_how_many(server):
    lab = serve("tests.support.endpoints:app", server=server, shutdown_timeout=0.3)
    clients.connect(lab.url("/stuck"), 3)
    assert eventually(lambda: lab.connections() == 3)
    report = lab.stop()
    assert report.cancelled_handlers == 3
    assert not report.stuck
    assert not lab.running


@pytest.mark.parametrize("server", ALL)
def test_every_server_keeps_its_errors_in_the_server_log_and_prints_nothing(server, capfd):
    lab = serve("tests.servers.test_servers:app", server=server)
    clients.connect(lab.url("/fails"))
    assert eventually(lambda: "ValueError" in lab.log.exception_types(), timeout=10)
    lab.stop()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_one_lab_server_at_a_time_whatever_its_kind():
    first = serve(seed.app, server="hypercorn")
    second = serve(seed.app, server="daphne")
    assert not first.running
    assert not any(t.name == f"lab-server-{first.port}" for t in threading.enumerate())
    third = serve(seed.app, server="granian")
    assert not second.running and isinstance(second, DaphneServer)
    assert eventually(lambda: not psutil.pid_exists(second.pid)
                      or psutil.Process(second.pid).status() == psutil.STATUS_ZOMBIE)
    assert current() is third
    for port in (first.port, second.port):
        probe = socket.socket()
        probe.bind(("127.0.0.1", port))  # the old ports are free again
        probe.close()


@pytest.mark.fast
def test_an_unknown_server_is_refused_with_the_choices():
    with pytest.raises(LabError, match="Unknown server 'gunicorn'; choose one of uvicorn, hypercorn, granian, daphne"):
        serve(seed.app, server="gunicorn")  # type: ignore[arg-type]  # an unknown name, on purpose


@pytest.mark.fast
def test_a_server_whose_package_is_missing_is_refused_in_one_sentence(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "granian" else find_spec(name, *a))
    with pytest.raises(LabError, match="The 'granian' server needs the 'granian' package, which is not installed"):
        serve(seed.app, server="granian")


def test_the_lab_serves_the_servers_the_checker_checks():
    assert SERVERS == checker_servers.SERVERS



@pytest.mark.fast
def test_each_server_has_one_adapter_listed_by_its_name():
    assert list(SERVER_CLASSES) == list(SERVERS)
    assert {server: server_class(server).name for server in ALL} == {server: server for server in ALL}


@pytest.mark.fast
def test_each_setting_one_server_alone_has_is_refused_by_the_others():
    with pytest.raises(LabError, match="picks one of uvicorn's WebSocket backends; hypercorn has its own"):
        serve(seed.app, server="hypercorn", ws="wsproto")
    with pytest.raises(LabError, match="application_close_timeout is daphne's setting; uvicorn has none"):
        serve(seed.app, application_close_timeout=3)
    assert set(OWN_SETTINGS.values()) <= set(SERVERS)

def test_each_server_keeps_its_own_keepalive_defaults():
    assert {s: (lab.ping_interval, lab.ping_timeout) for s in ALL for lab in [serve(seed.app, server=s)]} == {
        "uvicorn": (20.0, 20.0), "hypercorn": (None, None), "granian": (None, None), "daphne": (20.0, 30.0),
    }


def test_hypercorn_takes_a_ping_interval_but_has_no_ping_timeout():
    lab = serve(seed.app, server="hypercorn", ping_interval=5)
    assert isinstance(lab, HypercornServer) and lab.config.websocket_ping_interval == 5
    with pytest.raises(LabError, match="hypercorn has no WebSocket ping timeout"):
        serve(seed.app, server="hypercorn", ping_interval=5, ping_timeout=5)


def test_granian_refuses_pings_it_cannot_send():
    with pytest.raises(LabError, match="granian sends no WebSocket pings"):
        serve(seed.app, server="granian", ping_interval=5)


@pytest.mark.fast
def test_daphne_refuses_to_turn_pings_off():
    with pytest.raises(LabError, match="daphne always sends pings"):
        serve(seed.app, server="daphne", ping_interval=None)


@pytest.mark.fast
def test_daphne_refuses_an_app_it_cannot_import():
    local = FastAPI()
    with pytest.raises(LabError, match="daphne runs in a subprocess, which must import the app"):
        serve(local, server="daphne")


@pytest.mark.fast
def test_daphne_refuses_an_app_defined_in_the_notebook_itself(monkeypatch):
    notebook_app = FastAPI()
    monkeypatch.setattr(sys.modules["__main__"], "notebook_app", notebook_app, raising=False)
    with pytest.raises(LabError, match="defined in this notebook"):
        serve(notebook_app, server="daphne")


@pytest.mark.parametrize("server", ALL)
def test_the_probe_samples_every_server(server):
    lab = serve(seed.app, server=server)
    probe = Probe(lab, seed.get_metrics)
    idle = probe.sample()
    clients.connect(lab.url("/ws/metrics"), 3)
    assert eventually(lambda: probe.sample().alive == {"get_metrics": 3})
    busy = probe.sample()
    assert busy.connections == idle.connections + 3
    assert busy.extra_tasks >= idle.extra_tasks + 3
    assert busy.fds >= idle.fds + 6  # a server and a client socket per connection


@pytest.mark.parametrize("server", ALL)
def test_cpu_seconds_grow_while_the_server_works(server):
    lab = serve("tests.support.endpoints:app", server=server)
    before = lab.cpu_seconds()
    clients.connect(lab.url("/pusher"), 5)  # 500 sends a second
    assert eventually(lambda: lab.cpu_seconds() > before, timeout=10)


def test_a_daphne_subprocess_dies_with_its_kernel():
    kernel = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import time
            from helpers.servers import serve
            server = serve("helpers.apps.seed:app", server="daphne")
            print(server.pid, flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, cwd=os.getcwd(),
    )
    assert kernel.stdout is not None
    daphne_pid = int(kernel.stdout.readline())
    assert psutil.pid_exists(daphne_pid)
    kernel.send_signal(signal.SIGKILL)
    kernel.wait()
    kernel.stdout.close()
    assert eventually(lambda: not psutil.pid_exists(daphne_pid), timeout=20)


def test_a_keyboard_interrupt_while_daphne_starts_leaves_no_subprocess():
    before = {p.pid for p in psutil.Process().children()}
    with pytest.raises(KeyboardInterrupt), keyboard_interrupt_after(0.2):
        serve(seed.app, server="daphne")
    assert eventually(lambda: {p.pid for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE}
                      <= before, timeout=20)   # a loaded CI machine took more than 3 s to see daphne go


def test_stopping_hypercorn_with_zombies_keeps_asyncios_reports_in_the_log_and_prints_nothing(capfd):
    lab = serve(seed.app, server="hypercorn", shutdown_timeout=0.2)
    group = clients.connect(lab.url("/ws/metrics"), 3)
    assert eventually(lambda: lab.count_alive({"loop": seed.get_metrics}) == {"loop": 3})
    clients.leave(group, "rst")
    report = lab.stop()
    assert report.cancelled_handlers == 3
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "CancelledError" not in captured.out + captured.err


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_a_keyboard_interrupt_while_an_in_kernel_server_starts_leaves_no_thread(server):
    with pytest.raises(KeyboardInterrupt), keyboard_interrupt_after(0.3):
        serve(slow_app, server=server, lifespan=True)
    assert eventually(lambda: not lab_server_threads())
    assert current() is None


def test_the_lab_knows_each_servers_own_keepalive_defaults():
    import hypercorn.config
    import uvicorn

    from helpers.servers.daphne import DaphneServer
    from helpers.servers.granian import GranianServer
    from helpers.servers.hypercorn import HypercornServer
    from helpers.servers.uvicorn import UvicornServer

    config = uvicorn.Config(seed.app)
    assert UvicornServer.keepalive_defaults == {"ping_interval": config.ws_ping_interval,
                                                "ping_timeout": config.ws_ping_timeout}
    assert HypercornServer.keepalive_defaults["ping_interval"] == hypercorn.config.Config().websocket_ping_interval
    assert GranianServer.keepalive_defaults == {"ping_interval": None, "ping_timeout": None}
    # daphne.server installs Twisted's reactor on import: read its defaults in a process of their own.
    read = subprocess.run(
        [sys.executable, "-c", ("import inspect, daphne.server as s; p = inspect.signature(s.Server).parameters; "
         "print(p['ping_interval'].default, p['ping_timeout'].default, p['application_close_timeout'].default)")],
        capture_output=True, text=True, check=True,
    )
    interval, timeout, close_timeout = map(float, read.stdout.split())
    assert DaphneServer.keepalive_defaults == {"ping_interval": interval, "ping_timeout": timeout}
    assert DaphneServer.default_application_close_timeout == close_timeout


@pytest.mark.parametrize("server", IN_KERNEL)
def test_every_in_kernel_server_is_run_by_the_checkers_adapter(server):
    from helpers.servers.base import InProcessServer
    from ws_leakcheck.servers import RUNNERS

    lab = serve(seed.app, server=server, ping_interval=None, ping_timeout=None)
    assert isinstance(lab, InProcessServer)
    assert type(lab.runner) is RUNNERS[server]
    assert lab.runner.started()


def test_what_an_app_prints_under_daphne_does_not_break_the_kernels_questions():
    """daphne's agent keeps its stdout for its answers: a handler's print goes to its stderr."""
    lab = serve("tests.servers.test_servers:app", server="daphne")
    assert isinstance(lab, DaphneServer)
    with connect(f"ws://127.0.0.1:{lab.port}/prints", open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "printed"
        assert lab.count_alive({"prints": prints}) == {"prints": 1}
    assert eventually(lambda: "a learner's print in a handler" in lab._stderr, timeout=5)
