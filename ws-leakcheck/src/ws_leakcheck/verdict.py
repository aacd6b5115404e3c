"""The verdicts, their exit statuses, and how several verdicts make one: pure, no I/O.

One endpoint on one server gets one verdict:

========  ====  =================================================================================
verdict   exit  meaning
========  ====  =================================================================================
clean     0     every way of leaving was tested, and nothing outlived the clients
leak      1     something outlived its client (a handler, a task, per-visitor state, a frozen
                loop, a blocked shutdown), or ended only when the server's own timeout killed it
untested  5     the departure was never exercised: every handshake was refused, or every handler
                ended (or closed the connection) before its client left
noisy     3     nothing outlived the clients, but their departure raised unhandled exceptions
========  ====  =================================================================================

Exit status 2 is a usage error, 4 a failure of the checker itself: neither is a verdict.

Several verdicts (paths, servers) make one by PRECEDENCE, the first found wins: leak, untested, noisy,
clean. UNTESTED outranks NOISY, so a pipeline that tolerates noise never hides an untested endpoint;
with ``allow_noisy`` a noisy endpoint counts as clean, and an untested one still fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ws_leakcheck.evidence import Retention, ShutdownEvidence, WayEvidence

CLEAN, LEAK, NOISY, UNTESTED = "clean", "leak", "noisy", "untested"
EXIT_CODES = {CLEAN: 0, LEAK: 1, NOISY: 3, UNTESTED: 5}
USAGE_ERROR = 2
CHECKER_FAILED = 4
PRECEDENCE = (LEAK, UNTESTED, NOISY, CLEAN)
"""The overall verdict of several is the first of these that any of them has."""


def overall(verdicts: Iterable[str], *, allow_noisy: bool = False) -> str:
    """The verdict of several checks (clean when there are none); noisy counts as clean with ``allow_noisy``."""
    found = {CLEAN if (v == NOISY and allow_noisy) else v for v in verdicts}
    return next((v for v in PRECEDENCE if v in found), CLEAN)


def exit_code(verdicts: Iterable[str], *, allow_noisy: bool = False) -> int:
    return EXIT_CODES[overall(verdicts, allow_noisy=allow_noisy)]


def accepted(verdict: str, *, allow_noisy: bool = False) -> bool:
    """Whether a test or a gate passes on this verdict."""
    return exit_code([verdict], allow_noisy=allow_noisy) == 0


# Waiting for what the departed clients left behind: fed one poll at a time, decides when to stop watching.

QUIET = 0.5
"""Seconds without any change, after which what is left is taken as not ending (timers and pollers aside)."""
FROZEN_AFTER = 1.0
"""Seconds without a heartbeat from the server's loop after which it is reported frozen, if the next poll finds it
still without one: a loop that a handler blocks stays so, while a process the host did not run for a second (a
loaded CI machine: 1.1 s, with 3 ms of server CPU per second) beats again at once."""
PERIODS = 3
"""A handler or task that wakes on a timer again and again (a poller) is watched for this many of its own wake
periods after the departure could be noticed, before it is said to carry on: a poller that checks its client
every second and notices within two checks is slow, not stuck."""


@dataclass(frozen=True)
class Poll:
    """One look at the server after the clients left: what of theirs is alive, and whether the loop answers."""

    at: float
    """Seconds since the clients left."""
    alive: Mapping[int, tuple[float | None, float | None]]
    """Task id -> (seconds until its timer wakes it, the loop time it wakes at), both None without a timer."""
    loop_lag: float = 0.0
    """Seconds since the server's loop last answered its heartbeat."""


@dataclass(frozen=True)
class Settled:
    """Why the watch stopped, and what it saw of what is still alive."""

    outcome: str
    """"ended" (nothing left), "stopped" (nothing changes any more), "cap" (the longest wait), or "frozen"."""
    at: float
    ended_at: float | None = None
    """When the last of it ended, after the clients left (None: something is still alive)."""
    extended: float = 0.0
    """Seconds the watch went on for a timer due, or a poller's periods, after everything else was quiet."""
    sleeping: frozenset[int] = frozenset()
    """Still alive, asleep on a timer due after the cap (one that never woke while watched)."""
    periodic: Mapping[int, float] = field(default_factory=dict)
    """Still alive, woken by a timer again and again: task id -> its wake period in seconds."""


class Settle:
    """The decision of when what the clients left has ended or stopped ending: pure, fed with Polls.

    ``least``: the least wait (the departure is noticed only then: for a silent client, after the pings);
    ``cap``: the longest; ``server_wait``: never stop before the server's own timeouts could end it.
    """

    def __init__(self, cap: float, least: float, server_wait: float = 0.0) -> None:
        self.cap, self.least, self.server_wait = cap, least, server_wait
        self.wakes: dict[int, set[float]] = {}
        self.untimed: dict[int, int] = {}
        """Task id -> polls in a row that found it on no timer."""
        self.last_ids: frozenset[int] | None = None
        self.last_change = 0.0
        self.previous_at: float | None = None
        self.missed_beat = False
        """The previous poll found the loop without a heartbeat for ``FROZEN_AFTER``."""
        self.extended = 0.0

    def period(self, key: int) -> float | None:
        """The wake period of a poller: the shortest gap between the wake times seen (None: woke once at most)."""
        times = sorted(self.wakes.get(key, ()))
        gaps = [b - a for a, b in pairwise(times) if b - a > 0.005]
        return min(gaps) if gaps else None

    def feed(self, poll: Poll) -> Settled | None:
        """None: keep watching; else why to stop."""
        at = poll.at
        step = 0.0 if self.previous_at is None else at - self.previous_at
        self.previous_at = at
        if poll.loop_lag > FROZEN_AFTER:
            if self.missed_beat:
                return Settled("frozen", at, extended=self.extended)
            self.missed_beat = True
            return None
        self.missed_beat = False
        ids = frozenset(poll.alive)
        if ids != self.last_ids:
            self.last_change, self.last_ids = at, ids
        if not poll.alive and at >= self.least:
            return Settled("ended", at, ended_at=self.last_change, extended=self.extended)
        timers, periods = [], {}
        for key, (wake_in, wake_at) in poll.alive.items():
            wake_in = self._timer(key, wake_in, wake_at)
            if wake_in is None:
                continue
            period = self.period(key)
            if period is not None:
                periods[key] = period
            elif at + wake_in <= self.cap:
                timers.append(wake_in)
        pollers_due = max((self.least + PERIODS * p for p in periods.values()), default=0.0)
        quiet = at >= self.least and at - self.last_change >= QUIET
        if at >= self.cap:
            return self._stopped("cap", poll)
        if quiet and not timers and at >= self.server_wait and at >= pollers_due:
            return self._stopped("stopped", poll)
        if quiet and (timers or at < pollers_due):
            self.extended += step
        return None

    def _timer(self, key: int, wake_in: float | None, wake_at: float | None) -> float | None:
        """Seconds until ``key``'s timer wakes it, recording the wake time; None: it waits on something else.

        A task found on no timer once, right after one, was caught between its timer firing and its next step
        (each poll is one instant, and on a loaded host the two fall together more often): due now. Found so
        twice in a row, or never seen on a timer, it waits on something else (a send that does not return)."""
        if wake_in is not None and wake_at is not None:
            self.wakes.setdefault(key, set()).add(round(wake_at, 3))
            self.untimed[key] = 0
            return wake_in
        self.untimed[key] = self.untimed.get(key, 0) + 1
        return 0.0 if self._on_timer(key) else None

    def _on_timer(self, key: int) -> bool:
        return key in self.wakes and self.untimed.get(key, 0) <= 1

    def _stopped(self, outcome: str, poll: Poll) -> Settled:
        sleeping, periodic = set(), {}
        for key in poll.alive:
            if not self._on_timer(key):
                continue  # waits on something other than a timer now (a send that does not return)
            period = self.period(key)
            if period is not None:
                periodic[key] = period
            else:
                sleeping.add(key)
        return Settled(outcome, poll.at, extended=self.extended, sleeping=frozenset(sleeping), periodic=periodic)


# From the evidence of every way of leaving, the rounds and the shutdown, to one verdict and its reasons.

RETAINED_PER_SESSION = 0.5
"""A type or container counts as retained per visitor when it grows by at least this much per departed session
in both rounds (n, then 2n sessions): a one-time cache grows in neither."""


def way_leaked(way: WayEvidence) -> bool:
    """Something of this way outlived its clients: a frozen loop, a handler or task still running or ended only by
    the server's own timeout, a WebSocket object still referenced."""
    return (way.frozen or way.handlers_alive > 0 or way.tasks_alive > 0 or way.websockets_referenced > 0
            or way_cancelled_by_server(way))


def way_cancelled_by_server(way: WayEvidence) -> bool:
    """The handlers ended only when the server's own close timeout cancelled them (daphne's
    application_close_timeout): they never ended on their own."""
    return (way.cancelled_by_server > 0 and way.server_cancels_after is not None
            and way.ended_after_s is not None and way.ended_after_s >= way.server_cancels_after - 1.0)


def way_at_once(way: WayEvidence) -> bool:
    """Every session of this way ended (or the server closed it) before its client left: nothing was left to
    outlive the client, so this way tested nothing."""
    return way.handlers_started > 0 and way.ended_at_once >= way.handlers_started


def retained(retention: Retention) -> dict[str, float]:
    """What grows by at least RETAINED_PER_SESSION per departed session in both rounds: left per visitor."""
    n1, n2 = retention.sessions
    return {
        name: round(retention.per_session(name), 2)
        for name, (first, second) in retention.growth.items()
        if n1 and n2 and first >= RETAINED_PER_SESSION * n1 and second >= RETAINED_PER_SESSION * n2
    }


def shutdown_leaked(shutdown: ShutdownEvidence) -> bool:
    """The graceful shutdown blocked, and this endpoint's handlers were running then (or nobody's: the app's tasks)."""
    blocked = shutdown.skipped is None and shutdown.failed is None and shutdown.seconds is None
    return blocked and (shutdown.handlers_alive > 0 or not shutdown.other_handlers)


@dataclass(frozen=True)
class Decision:
    verdict: str
    reasons: tuple[str, ...] = ()
    """Why, one sentence each (empty for clean)."""


def untested_reason(ways: Iterable[WayEvidence]) -> str | None:
    """Why the departure was never exercised, or None when some way did exercise it."""
    ran = [w for w in ways if w.ran]
    if not ran:
        return "no way of leaving could run on this server"
    if not all(w.refused or way_at_once(w) for w in ran):
        return None
    refused = [w.refused for w in ran if w.refused]
    if len(refused) == len(ran):
        return f"every handshake was refused ({refused[0]}): no handler ran"
    codes = sorted({code for w in ran for code in w.server_close_codes})
    closed = f" (close code {', '.join(map(str, codes))})" if codes else ""
    return f"every session ended before its client left{closed}: the departure was never tested"


def decide(ways: Iterable[WayEvidence], retention: Retention, shutdown: ShutdownEvidence) -> Decision:
    """One endpoint's verdict: leak, then untested, then noisy, then clean."""
    ways = list(ways)
    reasons = []
    for way in ways:
        if way_leaked(way):
            reasons.append(f"{way.way}: something outlived its clients")
    if retained(retention):
        reasons.append("state retained per departed session")
    if shutdown_leaked(shutdown):
        reasons.append("its handlers blocked the server's graceful shutdown")
    if reasons:
        return Decision(LEAK, tuple(reasons))
    why = untested_reason(ways)
    if why is not None:
        return Decision(UNTESTED, (why,))
    noisy = [w.way for w in ways if w.unhandled_exceptions]
    if noisy:
        return Decision(NOISY, (f"unhandled exceptions when clients left ({', '.join(noisy)})",))
    return Decision(CLEAN)
