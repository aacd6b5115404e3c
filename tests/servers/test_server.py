import socket
import threading
import time

import psutil
import pytest
import websockets.sync.client as sync_client

from helpers import clients
from helpers.errors import LabError
from helpers.servers import current, serve
from helpers.servers.uvicorn import UvicornServer
from tests.support import endpoints
from tests.support.polling import eventually


def test_the_server_listens_on_loopback_only_on_a_port_the_system_chose():
    server = serve(endpoints.app)
    assert server.listening_addresses() == [("127.0.0.1", server.port)]
    assert server.port != 0
    listening = [c.laddr for c in psutil.Process().net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert all(address.ip == "127.0.0.1" for address in listening), listening


def test_a_real_client_round_trips_a_message():
    server = serve(endpoints.app)
    with sync_client.connect(server.url("/echo")) as ws:
        ws.send("ping")
        assert ws.recv(timeout=2) == "ping"


@pytest.mark.parametrize("backend", ["websockets-sansio", "wsproto", "websockets"])
def test_each_uvicorn_websocket_backend_can_be_chosen(backend):
    server = serve(endpoints.app, ws=backend)
    with sync_client.connect(server.url("/echo")) as ws:
        ws.send("hi")
        assert ws.recv(timeout=2) == "hi"
    assert isinstance(server, UvicornServer) and server.config.ws == backend


def test_starting_again_replaces_the_previous_server_and_frees_its_port():
    first = serve(endpoints.app)
    first_port = first.port
    second = serve(endpoints.app)
    assert current() is second
    assert not first.running
    assert not any(t.name == f"lab-server-{first_port}" for t in threading.enumerate())
    probe = socket.socket()
    probe.bind(("127.0.0.1", first_port))  # the old port is free again
    probe.close()


def test_a_taken_port_is_refused_in_one_sentence():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(LabError, match=f"Port {taken.getsockname()[1]} on 127.0.0.1 is already in use"):
            serve(endpoints.app, port=taken.getsockname()[1])
    finally:
        taken.close()


@pytest.mark.fast
def test_an_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(LabError, match="Unknown WebSocket backend 'h2'; choose one of websockets-sansio, wsproto, "
                                       "websockets"):
        serve(endpoints.app, ws="h2")  # type: ignore[arg-type]  # an unknown backend, on purpose


@pytest.mark.fast
def test_a_non_positive_ping_setting_is_refused():
    with pytest.raises(LabError, match="ping_interval must be a positive number"):
        serve(endpoints.app, ping_interval=0)


def test_the_server_keeps_answering_while_the_main_thread_blocks():
    server = serve(endpoints.app)
    listener = clients.connect(server.url("/pusher"))[0]
    time.sleep(0.2)
    start = time.monotonic()
    time.sleep(1.0)  # what a blocking cell does to the kernel's main thread
    assert listener.longest_gap(since=start) < 0.3


def test_stopping_cancels_handlers_that_would_hang_shutdown_and_says_how_many():
    server = serve(endpoints.app, shutdown_timeout=0.3)
    clients.connect(server.url("/stuck"), 3)
    report = server.stop()
    assert report.cancelled_handlers == 3
    assert not report.stuck   # the stop ended within its own bound, not by giving up


def test_stopping_cancels_orphan_tasks_the_app_left_behind():
    server = serve(endpoints.app, shutdown_timeout=0.3)
    endpoints.orphans.clear()
    group = clients.connect(server.url("/spawner"), 2)
    assert eventually(lambda: len(endpoints.orphans) == 2)
    clients.leave(group, "clean")
    report = server.stop()
    assert report.cancelled_other_tasks == 2
    assert all(task.cancelled() for task in endpoints.orphans)


def test_uvicorn_tracebacks_are_kept_in_the_server_log_not_printed(capfd):
    server = serve(endpoints.app)
    group = clients.connect(server.url("/pusher"), 2)
    clients.leave(group, "rst")
    assert eventually(lambda: len(server.log.errors()) == 2)
    assert server.log.exception_types() == {"WebSocketDisconnect": 2}
    assert "Traceback" not in capfd.readouterr().err


def test_a_count_that_outlasts_the_askers_wait_is_read_from_this_thread_and_logs_nothing(monkeypatch):
    from helpers.servers import base
    from ws_leakcheck import awaitchain

    server = serve(endpoints.app)
    assert isinstance(server, UvicornServer)
    count = awaitchain.count_alive

    def slow_on_the_loop(tasks, codes):   # the count on the loop outlasts the asker's wait, as on a loaded host
        if threading.get_ident() == server.thread.ident:
            time.sleep(3 * base.IN_LOOP_TIMEOUT)
        return count(tasks, codes)

    monkeypatch.setattr(awaitchain, "count_alive", slow_on_the_loop)
    assert server.count_alive({"echo": endpoints.echo}) == {"echo": 0}
    time.sleep(5 * base.IN_LOOP_TIMEOUT)   # the loop's late answer arrives meanwhile
    assert not server.log.exception_types(), [r.getMessage() for r in server.log.records]
