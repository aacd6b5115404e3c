import pytest

from helpers import clients
from helpers.errors import LabError
from helpers.servers import serve
from tests.support import endpoints
from tests.support.polling import eventually


@pytest.fixture
def server():
    endpoints.disconnect_codes.clear()
    return serve(endpoints.app, ping_interval=0.3, ping_timeout=0.3)


NO_CLOSE_FRAME = {1005, 1006}  # "no status received" (sansio, wsproto) or "abnormal closure" (websockets)


@pytest.mark.parametrize(("how", "codes"), [("clean", {1000}), ("fin", NO_CLOSE_FRAME), ("rst", NO_CLOSE_FRAME)])
def test_a_clean_leave_sends_a_close_frame_and_fin_or_rst_do_not(server, how, codes):
    group = clients.connect(server.url("/receiver"), 3)
    clients.leave(group, how)
    assert eventually(lambda: len(endpoints.disconnect_codes) == 3)
    assert set(endpoints.disconnect_codes) <= codes
    assert clients.open_clients() == 0


def test_a_silent_client_stays_connected_until_keepalive_pings_give_up(server):
    group = clients.connect(server.url("/receiver"), 2)
    clients.leave(group, "silent")
    assert server.connections() == 2  # nothing told the server
    assert eventually(lambda: server.connections() == 0, timeout=3.0)


def test_a_silent_client_leaves_what_the_server_sends_unread():
    server = serve(endpoints.app, ping_interval=None)
    client = clients.connect(server.url("/pusher"))[0]
    clients.leave(client, "silent")
    assert eventually(lambda: client.unread_bytes() > 1000, timeout=10.0)   # a bound: a loaded CPU sends late


def test_a_slow_reader_receives_far_less_than_a_fast_one(server):
    fast, slow = clients.connect(server.url("/pusher"), 2)
    clients.leave(slow, "slow")
    before = slow.received
    assert eventually(lambda: fast.received > before + 50)
    assert slow.received - before <= 5


def test_close_all_releases_silent_and_slow_clients(server):
    group = clients.connect(server.url("/receiver"), 4)
    clients.leave(group[:2], "silent")
    clients.leave(group[2:], "slow")
    assert clients.open_clients() == 4
    assert clients.close_all() == 4
    assert eventually(lambda: server.connections() == 0)


def test_a_handshake_refused_by_the_server_says_so_in_one_sentence(server):
    with pytest.raises(LabError, match=r"answered the WebSocket handshake at .*/health with HTTP \d+"):
        clients.connect(f"ws://127.0.0.1:{server.port}/health")


def test_connecting_where_nothing_listens_says_so(server):
    port = server.port
    server.stop()
    with pytest.raises(LabError, match=f"Could not connect to ws://127.0.0.1:{port}/echo"):
        clients.connect(f"ws://127.0.0.1:{port}/echo", timeout=1.0)


def test_an_unknown_way_of_leaving_is_refused(server):
    group = clients.connect(server.url("/receiver"))
    with pytest.raises(LabError, match="Unknown way of leaving 'vanish'"):
        clients.leave(group, "vanish")  # type: ignore[arg-type]  # an unknown way, on purpose


@pytest.mark.fast
def test_the_lab_leaves_in_the_checkers_ways_plus_slow():
    from ws_leakcheck.clients import CHECKED_WAYS

    assert (*CHECKED_WAYS, "slow") == clients.WAYS_OF_LEAVING
