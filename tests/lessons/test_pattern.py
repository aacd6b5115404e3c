"""The pattern learners copy (helpers.pattern), driven by real clients over real sockets."""

import time
from typing import Any

import pytest

from helpers import clients, pattern
from helpers.apps import fixed, leaks
from helpers.experiment import Experiment
from helpers.servers import serve
from helpers.waiting import wait_until

MESSAGES, SIZE = 30, 256 * 1024   # 7.5 MB: more than the stuck client's buffers and the server's (4 MB here) hold
STUCK_RCVBUF = 4096               # the stuck client also turns compression off, so each message fills them in full


def _message() -> str:
    return "x" * SIZE


def _one_stuck_client_and_three_healthy(module):
    """A chat room where one client stops reading (small buffers) while another says MESSAGES large things."""
    module.connected.clear()
    server = serve(module.app)
    with Experiment(server, watch={"chat": module.chat}, live=False) as ex:
        stuck = ex.connect("/ws/chat", 1, rcvbuf=STUCK_RCVBUF)[0]
        healthy = ex.connect("/ws/chat", 3)
        ex.wait_until(lambda: len(module.connected) == 4, timeout=10)
        stuck.hold_reading()
        for _ in range(MESSAGES):
            healthy[0].send_text(_message())
        dropped = ex.wait_until(lambda: len(module.connected) == 3, timeout=10)
        if dropped:
            stuck.hold_reading(False)   # the dropped client reads again, and finds out why it was dropped
        everyone_heard = ex.wait_until(lambda: all(c.received >= MESSAGES for c in healthy), timeout=10)
        heard = [c.received for c in healthy]
        if dropped:
            ex.wait_until(lambda: stuck.close_code is not None, timeout=10)
        return heard, everyone_heard, dropped, stuck.close_code, stuck.close_reason


def test_the_pattern_broadcast_keeps_serving_the_others_and_closes_a_client_that_cannot_keep_up():
    heard, everyone_heard, dropped, code, reason = _one_stuck_client_and_three_healthy(fixed)
    assert everyone_heard, heard
    assert dropped
    assert (code, reason) == (pattern.TOO_SLOW, "too slow") == (1013, "too slow")


def test_the_naive_broadcast_stalls_every_client_behind_one_that_cannot_keep_up():
    heard, everyone_heard, dropped, _, _ = _one_stuck_client_and_three_healthy(leaks)
    assert not everyone_heard and max(heard) < MESSAGES
    assert not dropped


def test_the_pattern_broadcast_drops_a_dead_socket_and_still_delivers_to_the_rest():
    fixed.connected.clear()
    server = serve(fixed.app)
    with Experiment(server, watch={"chat": fixed.chat}, live=False) as ex:
        early = ex.connect("/ws/chat", 2)
        late = ex.connect("/ws/chat", 3)
        ex.wait_until(lambda: len(fixed.connected) == 5, timeout=10)
        ex.leave(early, "rst")
        ex.wait_until(lambda: server.connections() == 3, timeout=10)
        late[0].send_text("hello")
        assert ex.wait_until(lambda: all(c.received == 1 for c in late), timeout=10)
        assert ex.wait_until(lambda: len(fixed.connected) == 3, timeout=10)


@pytest.mark.fast
@pytest.mark.parametrize("error", [RuntimeError("boom"), ValueError("x")])
def test_client_gone_is_false_for_errors_that_are_bugs(error):
    assert not pattern.client_gone(error)


def _one_stops_reading_beside_three(server: Any, watch: dict[str, Any]) -> tuple[clients.Client, clients.ClientGroup]:
    """A chat client with a small receive buffer that stops reading, and three healthy ones, all connected."""
    slow = clients.connect(server.url("/ws/chat"), 1, rcvbuf=STUCK_RCVBUF)[0]
    healthy = clients.connect(server.url("/ws/chat"), 3)
    assert wait_until(lambda: server.count_alive(watch)["chat"] == 4, 10) is not None
    slow.hold_reading()
    return slow, healthy


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn", "granian"])
def test_a_dropped_slow_client_that_reads_again_after_twice_the_bound_ends_disconnected_with_no_handler_left(
        server_name):
    """The hole the pattern had: the close abandoned after CLOSE_TIMEOUT left the client connected, handler alive."""
    fixed.connected.clear()
    server = serve(fixed.app, server=server_name)
    watch = {"chat": fixed.chat}
    try:
        slow, healthy = _one_stops_reading_beside_three(server, watch)
        started = time.monotonic()
        for _ in range(MESSAGES):
            healthy[0].send_text(_message())
        reads_again_at = started + 2 * pattern.DROPPED_WITHIN
        ended = wait_until(lambda: server.count_alive(watch)["chat"] == 3, reads_again_at - time.monotonic())
        assert ended is not None, f"the slow client's handler still ran {2 * pattern.DROPPED_WITHIN} s later"
        assert len(fixed.connected) == 3 and slow.close_code is None   # out of the registry; it has read nothing yet
        time.sleep(max(0.0, reads_again_at - time.monotonic()))
        slow.hold_reading(False)
        assert wait_until(lambda: slow.close_code is not None, 10) is not None, "the slow client is still connected"
        assert wait_until(lambda: server.connections() == 3, 10) is not None, server.connections()
        assert server.count_alive(watch) == {"chat": 3}
        assert all(c.received >= MESSAGES for c in healthy), [c.received for c in healthy]
    finally:
        clients.close_all()
        server.stop()


def test_on_daphne_a_client_that_stops_reading_is_never_too_slow_its_messages_wait_in_the_server():
    """The bound rests on a send that waits when the client stops reading. daphne's never waits (Twisted keeps
    what the app sends in its own buffer), so the broadcast never drops the client: nothing is too slow there."""
    server = serve(fixed.app, server="daphne")
    watch = {"chat": fixed.chat}
    try:
        slow, healthy = _one_stops_reading_beside_three(server, watch)
        for _ in range(MESSAGES):
            healthy[0].send_text(_message())
        assert wait_until(lambda: all(c.received >= MESSAGES for c in healthy), 20) is not None
        time.sleep(2 * pattern.DROPPED_WITHIN)
        assert server.count_alive(watch) == {"chat": 4}   # the slow client's handler too: never dropped
        slow.hold_reading(False)
        assert wait_until(lambda: slow.received >= MESSAGES, 20) is not None, slow.received
        assert slow.close_code is None
    finally:
        clients.close_all()
        server.stop()


@pytest.mark.fast
def test_a_dropped_client_counts_as_gone_so_run_with_receiver_ends_quietly():
    assert pattern.client_gone(pattern.Dropped())
    assert pattern.DROPPED_WITHIN == pattern.SEND_TIMEOUT + pattern.CLOSE_TIMEOUT
