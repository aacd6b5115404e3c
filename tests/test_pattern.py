"""The pattern learners copy (helpers.pattern), driven by real clients over real sockets."""

import pytest

from helpers import pattern
from helpers.apps import fixed, leaks
from helpers.experiment import Experiment
from helpers.server import serve

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


@pytest.mark.parametrize("error", [RuntimeError("boom"), ValueError("x")])
def test_client_gone_is_false_for_errors_that_are_bugs(error):
    assert not pattern.client_gone(error)
