"""The checker's evidence beyond the process's objects: a graceful shutdown that blocks, connections the server
process keeps to other services, and whether what never ended still sends or waits."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import zoo
from ws_leakcheck import check
from ws_leakcheck.evidence import CONNECTIONS

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = "helpers.apps.production:app"


# A graceful shutdown, as a deploy asks for it.


def test_a_handler_waiting_on_a_feed_blocks_uvicorns_graceful_shutdown():
    report = check(PRODUCTION, "/ws/prices", clients=2, ways=("fin",), shutdown_limit=2.0)
    assert report.shutdown.blocked and report.shutdown.seconds is None
    assert report.shutdown.handlers_alive == 2
    assert any("Waiting for background tasks to complete" in line for line in report.shutdown.logged), report.shutdown
    assert "stop   blocks shutdown: did not exit within 2 s" in report.summary()
    assert "shutdown" in report.kinds()


def test_the_same_feed_with_a_receive_running_lets_the_server_exit_within_the_limit():
    report = check(PRODUCTION, "/ws/prices-fixed", clients=2, ways=("fin",), shutdown_limit=2.0)
    assert report.verdict == "clean", report.summary()
    assert report.shutdown.seconds is not None and report.shutdown.seconds < report.shutdown.limit_s
    assert "graceful shutdown: exited after" in report.summary()



def test_daphnes_graceful_shutdown_is_measured_too():
    report = check(PRODUCTION, "/ws/prices-fixed", server="daphne", clients=2, ways=("fin",), shutdown_limit=2.0)
    assert report.shutdown.seconds is not None, report.summary()
    assert "graceful shutdown: exited after" in report.summary()

def test_a_blocked_shutdown_exits_1_and_is_in_the_json_report():
    done = subprocess.run(
        [sys.executable, "-m", "ws_leakcheck", PRODUCTION, "/ws/prices", "--clients", "2", "--ways", "fin",
         "--shutdown-limit", "1", "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    endpoint = json.loads(done.stdout)["servers"]["uvicorn"]["endpoints"][0]
    assert endpoint["shutdown"]["blocked"] and endpoint["shutdown"]["leaked"]
    assert endpoint["shutdown"]["limit_s"] == 1.0 and endpoint["shutdown"]["handlers_alive"] == 2
    assert "shutdown" in endpoint["findings"]


# Connections the server process opens to another service.


UPSTREAM = """
import socketserver, sys

class Drain(socketserver.BaseRequestHandler):
    def handle(self):
        while self.request.recv(65536):
            pass

server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Drain)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def upstream(monkeypatch):
    """A TCP service in a process of its own (as Redis or a database is), on 127.0.0.1, port 0, that reads until its
    clients close; its address is given to tests.support.zoo."""
    service = subprocess.Popen([sys.executable, "-c", UPSTREAM], stdout=subprocess.PIPE, text=True)
    assert service.stdout is not None
    address = f"127.0.0.1:{int(service.stdout.readline())}"
    monkeypatch.setenv("LEAKCHECK_ZOO_UPSTREAM", address)
    yield address
    service.kill()
    service.wait(5)
    service.stdout.close()


def test_a_connection_left_open_per_visitor_is_a_leak_with_its_address(upstream):
    report = check("tests.support.zoo:app", "/upstream-per-visitor", clients=3, send=["hello"])
    assert report.verdict == "leak", report.summary()
    assert report.retention.retained() == {CONNECTIONS + upstream: 1.0}
    assert [w.connections_left for w in report.ways.values()] == [{upstream: 3}] * 4
    assert "connections" in report.kinds() and "retained" not in report.kinds()


def test_a_connection_closed_in_finally_leaves_nothing(upstream):
    report = check("tests.support.zoo:app", "/upstream-closed-in-finally", clients=3, send=["hello"])
    assert report.verdict == "clean", report.summary()
    assert all(not w.connections_left for w in report.ways.values())


def test_the_checkers_own_clients_are_not_counted_as_the_servers_connections():
    report = check("tests.support.zoo:app", "/echo", clients=3)
    assert all(not w.connections_left for w in report.ways.values()), report.summary()
    assert not any(name.startswith(CONNECTIONS) for name in report.retention.growth)


# Stuck or sending: what a handler that never ended does.


def test_a_zombie_on_hypercorn_is_reported_as_still_sending_to_nobody():
    report = check("helpers.apps.seed:app", "/ws/metrics", server="hypercorn", clients=2, ways=("fin",))
    evidence = report.ways["fin"]
    assert evidence.handlers_alive == 2 and evidence.blocked_in_send == 0
    assert evidence.sends_per_s is not None and evidence.sends_per_s >= 2 * 10 / 2  # half of 2 x 10 sends/s
    assert "sends per second to nobody (alive and sending)" in report.summary()
    assert "sends" in report.kinds()


def test_a_handler_waiting_on_a_feed_is_reported_as_alive_and_waiting_not_sending():
    report = check(PRODUCTION, "/ws/prices", clients=2, ways=("fin",), shutdown_limit=1.0)
    evidence = report.ways["fin"]
    assert evidence.handlers_alive == 2 and evidence.sends_per_s == 0 and evidence.blocked_in_send == 0
    assert "no sends after their clients left (alive and waiting)" in report.summary()


def test_a_handler_whose_client_stopped_reading_is_reported_as_blocked_in_a_send_not_sending():
    # The silent client stays connected and stops reading; with pings off nothing closes it, so the flood fills the
    # sockets' buffers (the server's send buffer grows to 4 MB: a second here, more on a loaded CPU, each chunk being
    # compressed first) and uvicorn's send then waits for a drain that never comes. The least wait (settle) leaves
    # room for that before the wait's last second, over which the sends are counted: 5 s left one of the two
    # handlers still sending in a clean-clone CI at load 13, and 12 s left both at 15 sends a second in a suite run
    # at load 17 to 22 (each chunk is compressed before it is sent), so it is 20 s.
    report = check("tests.support.zoo:app", "/flood", clients=2, ways=("silent",), ping_interval=None,
                   ping_timeout=None, settle=20.0)
    assert report.verdict == "leak", report.summary()
    evidence = report.ways["silent"]
    assert evidence.handlers_alive == 2 and evidence.blocked_in_send == 2 and evidence.sends_per_s == 0
    assert "2 blocked in a send that does not return (alive and stuck), no sends meanwhile" in report.summary()
    assert "to nobody" not in report.summary() and "waking on a timer" not in report.summary()
    assert "sends" in report.kinds()


def test_noisy_evidence_names_the_file_and_line_of_the_raise_and_the_exception_being_handled():
    """FastAPI's documented chat: the handler catches the disconnect; its except block broadcasts to peers that
    left too, and that send raises."""
    project = Path(__file__).parents[1] / "support" / "zoo_project"
    report = check("chat.main:app", "/ws/chat", clients=3, ways=("clean", "fin"), rounds=False,
                   python=sys.executable, app_dir=str(project))
    assert report.verdict == "noisy", report.summary()
    sites = {name: site for way in report.ways.values() for name, site in way.exception_sites.items()}
    site = sites["WebSocketDisconnect"]
    assert re.fullmatch(r".*chat/main\.py:\d+ in broadcast", site["where"]), site
    assert site["line"] == "await connection.send_text(message)"
    assert site["during"] == "WebSocketDisconnect"
    explained = report.explained()
    assert "WebSocketDisconnect raised at" in explained and "while handling WebSocketDisconnect" in explained
    assert "hint: The handler did catch the disconnect: its except block raised WebSocketDisconnect" in explained


def test_a_handler_that_only_daphnes_close_timeout_ends_is_a_leak_that_says_so():
    leak = check(PRODUCTION, "/ws/prices", server="daphne", clients=2, ways=("fin",), rounds=False)
    fixed = check(PRODUCTION, "/ws/prices-fixed", server="daphne", clients=2, ways=("fin",), rounds=False)
    evidence = leak.ways["fin"]
    assert leak.verdict == "leak" and evidence.handlers_alive == 0, leak.summary()
    assert evidence.cancelled_by_server == 2, evidence
    assert evidence.ended_after_s is not None and evidence.ended_after_s >= 9.0, evidence
    assert "the server cancelled them" in leak.summary() and "daphne's application_close_timeout" in leak.summary()
    assert fixed.verdict == "clean" and fixed.ways["fin"].cancelled_by_server == 0, fixed.summary()


# A task the app started and left running.


def test_a_task_left_pending_is_named_with_where_it_is_defined_and_what_it_awaits():
    report = check("tests.support.zoo:app", "/ensure-future-orphan", clients=2, ways=("fin",))
    fin = report.ways["fin"]
    named = f"pump in support/zoo.py:{zoo.pump.__code__.co_firstlineno}, now in get"   # the feed's queue
    assert fin.tasks_alive == 2 and fin.pending_tasks == [named] * 2, fin.pending_tasks
    assert f"2 task(s) started during the sessions still pending: {named}; {named}" in report.summary()
