"""A worker's connections, read from /proc/net/tcp (helpers.stack.sockets)."""

import pytest

from helpers.stack.sockets import TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT, WorkerSockets

pytestmark = pytest.mark.fast
HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def _row(local: int, remote: int, state: int, queued: int = 0) -> str:
    return (f"   0: 0100007F:{local:04X} 0100007F:{remote:04X} {state:02X} {queued:08X}:00000000 00:00000000 "
            "00000000     0        0 1 1 0000000000000000 20 4 30 10 -1\n")


def test_a_socket_listed_twice_in_one_reading_counts_once():
    table = HEADER + _row(8000, 0, TCP_LISTEN) + _row(8000, 50001, TCP_ESTABLISHED, 4096) \
        + _row(8000, 50002, TCP_ESTABLISHED) + _row(8000, 50001, TCP_ESTABLISHED, 4096) + _row(50001, 8000, 1)
    assert WorkerSockets(8000).rows(table) == [(50001, TCP_ESTABLISHED, 4096), (50002, TCP_ESTABLISHED, 0)]


def test_only_the_given_clients_connections_count():
    table = HEADER + _row(8000, 50001, TCP_ESTABLISHED) + _row(8000, 50009, TCP_TIME_WAIT)
    assert WorkerSockets(8000, peers=frozenset({50009})).rows(table) == [(50009, TCP_TIME_WAIT, 0)]
