"""A worker's accepted TCP connections, read from ``/proc/net/tcp`` (Linux): how many are open, what they hold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT, TCP_CLOSE = 0x01, 0x0A, 0x06, 0x07
"""States in ``/proc/net/tcp`` (include/net/tcp_states.h)."""


@dataclass(frozen=True)
class WorkerSockets:
    """The worker's accepted TCP connections, read from ``/proc/net/tcp``: those whose local port is the
    worker's (its clients' and nginx's use ephemeral ports of their own), less the ones already there
    before the measurement (the lab's readiness check, which a server may keep alive for a while)."""

    port: int
    before: frozenset[int] = frozenset()
    peers: frozenset[int] | None = None
    """When given, only the connections from these remote ports count (``of_clients``)."""

    def read(self) -> list[tuple[int, int, int]]:
        """(remote port, state, send queue in bytes) of each, the listening socket left out.

        One row per remote port: the file is read in several system calls, and a socket can be listed twice (or
        missed) when others open and close meanwhile. A suite run on a busy host counted 11 connections where 3
        clients were connected, and 3 right after; the rows were not kept, so a double listing is the likely cause,
        not a shown one."""
        return self.rows(Path("/proc/net/tcp").read_text())

    def rows(self, table: str) -> list[tuple[int, int, int]]:
        """``read``'s rows, from the text of ``/proc/net/tcp``."""
        found: dict[int, tuple[int, int, int]] = {}
        for line in table.splitlines()[1:]:
            fields = line.split()
            local, remote, state = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16), \
                int(fields[3], 16)
            wanted = remote in self.peers if self.peers is not None else remote not in self.before
            if local == self.port and state != TCP_LISTEN and wanted:
                found[remote] = (remote, state, int(fields[4].split(":")[0], 16))
        return list(found.values())

    def now(self) -> WorkerSockets:
        """Another reading that leaves out every connection open now."""
        return WorkerSockets(self.port, frozenset(remote for remote, _, _ in self.read()))

    def of_clients(self, ports: frozenset[int]) -> WorkerSockets:
        """A reading of only the connections from these client ports: nothing else that shares the worker's
        port number on a busy host (a late readiness check, another user's socket) is counted."""
        return WorkerSockets(self.port, self.before, ports)

    def open(self) -> int:
        """Connections not yet closed (TIME_WAIT and CLOSE left out)."""
        return sum(state not in (TCP_TIME_WAIT, TCP_CLOSE) for _, state, _ in self.read())

    def unsent(self) -> int:
        return sum(queued for _, _, queued in self.read())

    def established(self) -> int:
        """Connections in ESTABLISHED: the worker has not yet received its peer's FIN or RST on them."""
        return sum(state == TCP_ESTABLISHED for _, state, _ in self.read())
