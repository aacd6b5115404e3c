"""Checks for the exercises notebook (05): does the endpoint still do its job, and does anything outlive its clients?

A check has two parts, both with real clients against a real uvicorn server on 127.0.0.1:

1. **The job.** Normal clients use the endpoint as its story says (a viewer waits for a goal, a
   colleague asks who is online, ...) and the check compares what they received with what the
   story promises. An endpoint that accepts and returns, closes at once or sends nothing fails
   here, however little it leaks.
2. **The leaks.** The leak checker (``helpers.leakcheck.check``) drives clients through ways of
   leaving: first ``clean``, then, if nothing outlived those, ``rst`` (``silent`` instead where
   the story has silent clients). It stops at the first run that leaves something behind, so that a
   wrong answer costs seconds, not the whole tour. The sizes of the registries the exercise declares are compared before and
   after (see ``_registry_growth``).

The feedback says what was found, and its hint is chosen by that finding. A verdict repeated word
for word after an edit says so, and why the edit did not change it.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import io
import json
import linecache
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from helpers import clients as lab_clients
from helpers.clients import Client
from helpers.errors import LabError
from helpers.leakcheck import Report, check
from helpers.routes import ASGIApp, websocket_route
from helpers.server import LabServer, serve
from helpers.waiting import wait_until

JOB_WAIT = 2.0
"""Seconds a normal client waits for a message its story promises (the endpoints answer in milliseconds)."""
CHECK_CLIENTS = 2
LEAK_RUNS: tuple[tuple[str, ...], ...] = (("clean",), ("rst",))
"""The leak checker's ways of leaving, in runs; the check stops after the first run that leaves something.
FIN is left out (like RST it ends the connection without a close frame), and ``silent`` replaces RST where the
story has silent clients: each way costs about a second, and a notebook runs six checks."""

# Exercise 6 serves with short keepalive pings, as the leak checker does, so that a ping round fits in the check.
PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5

# Exercise 5: the server is kept busy while members leave (as in notebook 03, "FastAPI's documented connection
# manager"), so that the message and the departures reach the server together; then one member stops reading.
BUSY = 0.2
SCREENSHOT_BYTES = 64 * 1024
SCREENSHOTS = 16
SCREENSHOT_BATCH = 8
SLOW_MEMBER_SNDBUF = 16 * 1024  # with it, a member who reads nothing stops absorbing after about 5 screenshots
STALL_WAIT = 2.0           # no progress for this long is a stall (the pattern's broadcast waits 0.5 s at most)


# What a check found.

@dataclass(frozen=True)
class Problem:
    """One way the endpoint failed its job, or one kind of evidence that something outlived its clients."""

    kind: str
    text: str


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.text)
        self.problem = problem


RESULTS: dict[str, str] = {}
"""The latest verdict of each exercise in this kernel."""


@dataclass(frozen=True)
class Feedback:
    exercise: str
    verdict: str
    """``clean`` (passed), ``broken`` (the job failed), ``leak`` or ``noisy``."""
    message: str
    problems: tuple[Problem, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "clean"

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(p.kind for p in self.problems))

    def __str__(self) -> str:
        return self.message

    def _repr_markdown_(self) -> str:
        return self.message.replace("\n", "  \n")


# Talking to the endpoint as its story says.

@dataclass
class _Listener:
    """A normal client, with the texts it received (the lab's clients count messages; these keep them)."""

    client: Client
    texts: list[str] = field(default_factory=list)
    early: int = 0
    """Messages that arrived before recording began (counted, not kept)."""

    def send(self, text: str) -> None:
        """Send one text; a connection the server already closed is reported by the job, not raised."""
        with contextlib.suppress(ConnectionClosed):
            self.client.send_text(text)

    def got(self, n: int = 1, timeout: float = JOB_WAIT) -> bool:
        """Wait until ``n`` texts arrived (False if they did not in time, or the server closed the connection)."""
        wait_until(lambda: len(self.texts) >= n or self.client.closed_by_server, timeout)
        return len(self.texts) >= n

    def problem(self, text: str) -> Problem:
        """A job not done: ``closed`` if the server hung up on this client, else ``missing``."""
        return Problem("closed" if self.client.closed_by_server else "missing", text)

    def parsed(self) -> list[Any]:
        return [self.json(i) for i in range(len(self.texts))]

    def json(self, index: int) -> Any:
        try:
            return json.loads(self.texts[index])
        except (ValueError, IndexError):
            return None

    def state(self) -> str:
        received = f"received {_count(self.early + len(self.texts), 'message')}"
        if self.client.closed_by_server:
            return f"{received}, then the server closed the connection (close code {self.client.close_code})"
        return f"{received} and is still connected"


def _listen(client: Client) -> _Listener:
    """Keep the texts a lab client receives. Swaps its reader for one that records (cancelling ``recv`` is safe
    in websockets; nothing is lost). To be replaced by the clients' own record once helpers.clients keeps texts."""
    listener = _Listener(client)
    assert client.reader is not None
    loop = client.reader.get_loop()

    async def record() -> None:
        try:
            async for message in client.connection:
                client.received += 1
                client.arrivals.append(time.monotonic())
                listener.texts.append(message if isinstance(message, str) else message.decode(errors="replace"))
        except ConnectionClosed:
            pass

    async def swap() -> None:
        assert client.reader is not None
        client.reader.cancel()
        listener.early = client.received
        client.reader = asyncio.create_task(record())

    asyncio.run_coroutine_threadsafe(swap(), loop).result(5.0)
    return listener


def _connect(server: LabServer, path: str, n: int, who: str) -> list[Client]:
    try:
        return list(lab_clients.connect(server.url(path), n))
    except LabError as error:
        if "HTTP 403" in str(error):
            raise _Refused(Problem("refused", f"The server refused the {who}'s WebSocket handshake (HTTP 403): "
                                              "the endpoint never accepted the connection.")) from None
        raise _Refused(Problem("refused", f"The {who} could not connect: {error}")) from None


def _open(server: LabServer, path: str, n: int, who: str) -> list[_Listener]:
    """Connect ``n`` normal clients, give the handlers a moment (to register, to start a task), and make sure
    the server did not hang up on them at once."""
    listeners = [_listen(client) for client in _connect(server, path, n, who)]
    time.sleep(0.1)
    for listener in listeners:
        if listener.client.closed_by_server:
            raise _Refused(Problem("closed", f"The server closed a {who}'s connection right after accepting it (close code "
                                             f"{listener.client.close_code}), before it could do anything."))
    return listeners


def _count(n: int, word: str) -> str:
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{n} {word}" if n == 1 else f"{n} {plural}"


def _shown(value: Any) -> str:
    return json.dumps(value) if value is not None else "nothing"


@dataclass
class _Job:
    server: LabServer
    path: str
    publish: Callable[[Any], Awaitable[Any]] | None
    registries: Mapping[str, Sized]
    done: list[str] = field(default_factory=list)
    """What the normal clients saw work, for the message of a passed check."""

def _job_scores(job: _Job) -> list[Problem]:
    """Two viewers watch; one goal is published; each must receive it."""
    if job.publish is None:
        raise LabError("Exercise 1's check needs the function that publishes a goal: publish=publish_goal.")
    goal = {"minute": 17, "team": "home"}
    viewers = _open(job.server, job.path, 2, "viewer")
    job.server.run_in_loop(job.publish(goal))
    problems = []
    for number, viewer in enumerate(viewers, 1):
        viewer.got(1)
        if viewer.json(0) != goal:
            problems.append((viewer.problem if not viewer.texts else lambda t: Problem("wrong", t))(
                                    f"Viewer {number} expected the goal {_shown(goal)} within {JOB_WAIT:.0f} s after it was "
                                    f"published; it {viewer.state()}" + (f", first {_shown(viewer.json(0))}" if viewer.texts else "") + "."))
    if not problems:
        job.done.append(f"both viewers received the goal {_shown(goal)}")
    return problems


def _job_presence(job: _Job) -> list[Problem]:
    """Two colleagues online; each question is answered with the count; the count drops when one leaves."""
    alice, bob = _open(job.server, job.path, 2, "colleague")
    answers = []
    for expected in (2, 1):
        if expected == 1:
            lab_clients.leave(bob.client, "clean")
            wait_until(lambda: job.server.connections() <= 1, JOB_WAIT)
            time.sleep(0.2)  # the departed colleague's handler unregisters (or does not)
        alice.send("who is online?")
        alice.got(len(answers) + 1)
        answer = alice.json(len(answers)) if len(alice.texts) > len(answers) else None
        answers.append(answer)
        count = answer.get("online") if isinstance(answer, dict) else None
        if count != expected:
            when = "with two colleagues online" if expected == 2 else "after the other colleague had left"
            return [(alice.problem if answer is None else lambda t: Problem("wrong", t))(
                            f"Asked {when}, a colleague expected {_shown({'online': expected})} and got {_shown(answer)}; "
                            f"it {alice.state()}.")]
    job.done.append("the online count went from 2 to 1 when a colleague left")
    return []


def _job_typing(job: _Job) -> list[Problem]:
    """A writer gets the pulse at once, and an echo for each keystroke."""
    pulse, echo = {"others_typing": False}, {"echo": "h"}
    (writer,) = _open(job.server, job.path, 1, "writer")

    def pulsed() -> bool:  # the pulse comes first, at once: maybe before the texts were recorded
        return pulse in writer.parsed() or writer.early > 0

    writer.send("h")
    wait_until(lambda: pulsed() and echo in writer.parsed(), JOB_WAIT)
    seen = writer.parsed()
    problems = []
    for expected, what, found in ((pulse, "the pulse", pulsed()), (echo, "the echo of its keystroke 'h'", echo in seen)):
        if not found:
            problems.append(writer.problem(f"A writer expected {what}, {_shown(expected)}, within {JOB_WAIT:.0f} s; "
                                               f"it {writer.state()}" + (f": {', '.join(map(_shown, seen))}" if seen else "") + "."))
    if not problems:
        job.done.append("a writer got the pulse and the echo of its keystroke")
    return problems


def _job_sensor(job: _Job) -> list[Problem]:
    """A visitor receives readings, several per second."""
    (visitor,) = _open(job.server, job.path, 1, "visitor")
    wanted = 5
    visitor.got(wanted, JOB_WAIT + 1.0)
    readings = [r for r in (visitor.json(i) for i in range(len(visitor.texts))) if isinstance(r, dict) and "temperature" in r]
    if len(readings) < wanted:
        return [visitor.problem(f"A visitor expected at least {wanted} readings ({_shown({'temperature': 21.5})}) within "
                                   f"{JOB_WAIT + 1:.0f} s (the stream promises 20 a second); it {visitor.state()}, "
                                   f"{_count(len(readings), 'reading')}.")]
    job.done.append(f"a visitor received {len(readings)} readings")
    return []


def _job_classroom(job: _Job) -> list[Problem]:
    """Dead members: two leave while a message is on its way. Then a slow member: one stops reading mid-stream."""
    speaker, *members = _open(job.server, job.path, 5, "member")
    stayers, leavers = members[:2], [m.client for m in members[2:]]
    busy = threading.Event()

    def be_busy() -> None:
        busy.set()
        time.sleep(BUSY)

    job.server.loop.call_soon_threadsafe(be_busy)
    busy.wait(2.0)
    lab_clients.leave(leavers, "rst")   # they drop off the network, and a moment later someone speaks
    speaker.send("hello")
    wait_until(lambda: all(s.texts for s in stayers) or speaker.client.closed_by_server, BUSY + JOB_WAIT)
    time.sleep(0.1)
    problems = []
    if speaker.client.closed_by_server:
        problems.append(Problem("speaker", "A member said 'hello' just after two others dropped off: the server then closed the "
                                           f"speaker's own connection (close code {speaker.client.close_code})."))
    missed = sum("hello" not in s.texts for s in stayers)
    if missed:
        problems.append(Problem("speaker", f"{missed} of the 2 members who stayed never received that 'hello'."))
    if problems:
        return problems
    job.done.append("the members who stayed heard a message sent just after two others dropped off")

    reader, sharer = _open(job.server, job.path, 2, "member")
    (asleep,) = (listener.client for listener in _open(job.server, job.path, 1, "member"))
    _shrink_send_buffer(job.server, asleep)
    lab_clients.leave(asleep, "silent")  # connected, reads nothing any more: a phone asleep, a train in a tunnel
    screenshots = [_noise(i) for i in range(4)]
    sent = 0
    while sent < SCREENSHOTS:
        try:
            for _ in range(SCREENSHOT_BATCH):
                sharer.client.send_text(screenshots[sent % len(screenshots)])
                sent += 1
        except (TimeoutError, OSError, ConnectionClosed):
            pass  # the server stopped reading the sharer: the reception below tells the story
        if not _keeps_up((reader, sharer), sent):
            least = min(len(reader.texts), len(sharer.texts))
            return [Problem("stalled", f"One member stopped reading while another shared screenshots ({SCREENSHOT_BYTES // 1024} KiB "
                                       f"each): after {sent} were shared, the members who read had received {least}, and nothing "
                                       f"more arrived for {STALL_WAIT:.0f} s.")]
    job.done.append(f"{SCREENSHOTS} screenshots reached the members who read, while one member read nothing")
    return []


def _shrink_send_buffer(server: LabServer, client: Client) -> None:
    """Give the server's end of this client's connection a small send buffer (SO_SNDBUF), so that a few
    screenshots fill it: Linux lets a loopback socket buffer about 4 MiB (tcp_wmem), which would take
    hundreds of screenshots. The connection is otherwise the real one."""
    address = client.connection.transport.get_extra_info("sockname")
    for protocol in list(server.uvicorn.server_state.connections):
        transport = getattr(protocol, "transport", None)
        if transport is not None and transport.get_extra_info("peername") == address:
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SLOW_MEMBER_SNDBUF)


def _noise(seed: int) -> str:
    """A screenshot-sized text that compression cannot shrink (permessage-deflate is on)."""
    import random

    generator = random.Random(seed)
    return "".join(generator.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", k=SCREENSHOT_BYTES))


def _keeps_up(readers: tuple[_Listener, ...], sent: int) -> bool:
    """Every reader receives ``sent`` messages, progress never pausing for ``STALL_WAIT`` seconds."""
    last, since = -1, time.monotonic()
    while True:
        least = min(len(r.texts) for r in readers)
        if least >= sent:
            return True
        if least != last:
            last, since = least, time.monotonic()
        elif time.monotonic() - since > STALL_WAIT:
            return False
        time.sleep(0.02)


def _job_logs(job: _Job) -> list[Problem]:
    """A healthy reader changes its filter twice and must stay connected through several ping rounds."""
    (reader,) = _open(job.server, job.path, 1, "reader")
    if not reader.got(1):
        return [reader.problem(f"A reader expected log lines and got none within {JOB_WAIT:.0f} s; it {reader.state()}.")]
    reader.send("level=warning")
    said_at = time.monotonic()
    time.sleep(0.1)
    reader.send("level=error")
    before = len(reader.texts)
    window = 2 * (PING_INTERVAL + PING_TIMEOUT)
    wait_until(lambda: reader.client.closed_by_server, window)
    if reader.client.closed_by_server:
        return [Problem("pings", f"A healthy reader that answers every ping sent its filter, and the server closed its "
                                 f"connection {time.monotonic() - said_at:.1f} s later (close code {reader.client.close_code}; "
                                 f"pings every {PING_INTERVAL} s, {PING_TIMEOUT} s to answer).")]
    lines = len(reader.texts) - before
    if lines < 3:
        return [reader.problem(f"After sending its filter, a reader expected log lines to keep coming; in "
                                   f"{window:.0f} s it received {lines}.")]
    job.done.append(f"a reader that sent its filter twice stayed connected through {window:.0f} s of pings")
    return []


@dataclass(frozen=True)
class _Exercise:
    job: Callable[[_Job], list[Problem]]
    pings: tuple[float, float] | None = None
    """Keepalive pings for the job's server (interval, timeout); uvicorn's defaults (20 s, 20 s) if None."""
    leak_runs: tuple[tuple[str, ...], ...] = LEAK_RUNS


EXERCISES: dict[str, _Exercise] = {
    "scores": _Exercise(_job_scores),
    "presence": _Exercise(_job_presence),
    "typing": _Exercise(_job_typing),
    "sensor": _Exercise(_job_sensor),
    "classroom": _Exercise(_job_classroom),
    "logs": _Exercise(_job_logs, pings=(PING_INTERVAL, PING_TIMEOUT), leak_runs=(("clean",), ("silent",))),
}


def _run_job(name: str, app: ASGIApp, path: str, job: _Job) -> list[Problem]:
    exercise = EXERCISES[name]
    interval, timeout = exercise.pings or (20.0, 20.0)
    job.server = serve(app, ping_interval=interval, ping_timeout=timeout, shutdown_timeout=0.2)
    try:
        return exercise.job(job)
    except _Refused as refused:
        return [refused.problem]
    finally:
        lab_clients.close_all()
        job.server.stop(force=True)


# Leaks.

def _leak_reports(app: ASGIApp, path: str, runs: tuple[tuple[str, ...], ...]) -> list[Report]:
    reports = []
    for ways in runs:
        reports.append(check(app, path, clients=CHECK_CLIENTS, ways=ways))
        if reports[-1].verdict != "clean":
            break
    return reports


def _leak_problems(reports: list[Report]) -> list[Problem]:
    """The evidence of each way of leaving, most telling first: a handler still running holds its own task and
    its WebSocket objects, and an orphaned task holds the WebSocket it sends on, so those are not repeated."""
    problems = []
    for report in reports:
        for way, evidence in report.ways.items():
            by = f"After {evidence.clients} clients left by {way.upper()}"
            orphans = evidence.tasks_alive - evidence.handlers_alive
            if evidence.handlers_alive:
                problems.append(Problem("handlers", f"{by}: {evidence.handlers_alive} of {evidence.clients} handlers still running."))
            if orphans > 0:
                problems.append(Problem("tasks", f"{by}: {_count(orphans, 'task')} started by the handlers still pending, "
                                                 "after their handlers ended."))
            if evidence.websockets_referenced and evidence.tasks_alive <= 0:
                problems.append(Problem("registry", f"{by}: {_count(evidence.websockets_referenced, 'WebSocket object')} "
                                                    "still referenced after their handlers ended (a registry keeps them)."))
            for name, n in evidence.unhandled_exceptions.items():
                kind = "tasks" if "nobody awaited" in name else "noisy"
                problems.append(Problem(kind, f"{by}: unhandled exception logged {n} x: {name}."))
    return problems


# STOPGAP until the leak checker measures retained state of any kind per departed session (helpers.leakcheck
# is being rewritten to do so): the sizes of the module-level containers the exercise declares, before and after
# every session of the check has ended and its server has stopped. Swap for the checker's evidence when it lands.
def _registry_growth(before: Mapping[str, int], registries: Mapping[str, Sized]) -> list[Problem]:
    return [
        Problem("registry", f"{name} holds {_count(len(registry) - before[name], 'entry')} more than before the check, "
                            "although every session of the check has ended.")
        for name, registry in registries.items() if len(registry) > before[name]
    ]


# Feedback.

HINTS: dict[str, str] = {
    "refused": "A WebSocket endpoint must `await websocket.accept()` before it sends or receives; the fix keeps the accept.",
    "closed": "The handler ended (or closed the socket) while its client was still there. A handler's life must be the "
              "connection's life: `run_with_receiver` returns exactly when the client leaves (notebook 04, 'The pattern').",
    "missing": "The fix must keep the endpoint's job: compare it with the story above, and keep every message the "
               "original sent (the pattern runs them as senders: `run_with_receiver(websocket, sender(...))`).",
    "wrong": "The endpoint answers, but not what its story promises: compare the message above with the story.",
    "pings": "A handler that never receives leaves its client's messages unread, and uvicorn (websockets-sansio, wsproto) "
             "then stops reading the connection: the client's pongs go unseen and the ping timeout closes a healthy "
             "client (notebook 04, 'The push-only pitfall'). Keep a receive running: `run_with_receiver`, with "
             "`on_message=` if the messages matter.",
    "speaker": "A send to a member who has just left raises inside the speaker's handler, so one departure ends "
               "the speaker's connection. A broadcast must drop the members that fail and carry on: `broadcast(registry, "
               "text)` from notebook 04 does it.",
    "stalled": "A send to a member who does not read waits once that member's buffers are full, and every member after "
               "it waits too. Send to all members at once, with a time limit each, dropping those that do not keep up: "
               "`broadcast` from notebook 04.",
    "handlers": "A handler still running after its client left is waiting on something that is not a receive (a queue, "
                "a sleep), or it caught the disconnect and carried on. Only a receive tells a handler at once that its "
                "client left (notebook 03, 'Waiting on a feed'; 'Catching the disconnect and carrying on'). Keep a receive "
                "running next to whatever sends, and let a failed send end the handler: `run_with_receiver` from notebook 04 does both.",
    "tasks": "A task started with `create_task` is not tied to the handler that started it (notebook 03, 'An orphaned "
             "task'): it outlives it. Run it in a task group with the receive (`run_with_receiver`), or cancel it in `finally`.",
    "registry": "Cleanup must run however the handler ends: `iter_text()` ends quietly when the client leaves, so an "
                "`except WebSocketDisconnect` around it never fires (notebook 03, 'A registry without finally'). "
                "Unregister in `finally`.",
    "noisy": "Your handler ends by an exception nobody handles when the client leaves. A second send after a failed one "
             "raises Starlette's `WebSocketDisconnected`, which `except WebSocketDisconnect` does not catch (notebook 04, "
             "'The article's fix, mechanism by mechanism'). Stop sending once the client is gone: `run_with_receiver` "
             "does, and treats the departure as the normal end.",
}

WHY_AN_EXCEPT_CHANGES_NOTHING: dict[str, str] = {
    "handlers": "the handlers are waiting, not failing: nothing is raised while they wait",
    "registry": "`iter_text()` ends without raising when the client leaves",
    "pings": "uvicorn closes the client itself; the handler is told nothing",
    "stalled": "a send that waits for a member who does not read raises nothing; it just waits",
    "tasks": "the task is not in the handler's call stack: an `except` in the handler never sees what happens in it",
    "missing": "the endpoint sends nothing that could fail",
}

_LAST: dict[str, tuple[str, list[str]]] = {}
"""Per exercise: the last message and the cell source it was about (to say when a verdict did not change)."""


def _source_of(app: ASGIApp, path: str) -> list[str]:
    """The source of the cell (or module) that defined the endpoint, as the check ran it."""
    endpoint = getattr(websocket_route(app, path).endpoint, "__wrapped__", websocket_route(app, path).endpoint)
    code = getattr(endpoint, "__code__", None)
    return linecache.getlines(code.co_filename) if code is not None else []


def _unchanged(name: str, message: str, source: list[str], kinds: list[str]) -> str | None:
    """A note for a verdict repeated word for word, saying why; None if it changed."""
    last = _LAST.get(name)
    if last is None or last[0] != message:
        return None
    if last[1] == source:
        return ("Same result as your previous check, and the same code: run the exercise cell after editing it, "
                "then this cell (the check uses the endpoint as it was last run).")
    added = [line[1:] for line in difflib.ndiff(last[1], source) if line.startswith("+ ")]
    if any(re.match(r"\s*except\b", line) for line in added):
        reasons = [WHY_AN_EXCEPT_CHANGES_NOTHING[k] for k in kinds if k in WHY_AN_EXCEPT_CHANGES_NOTHING]
        if reasons:
            return (f"Same result as your previous check, word for word: your edit added an `except`, but "
                    f"{'; and '.join(dict.fromkeys(reasons))}. An `except` runs only when an exception reaches it.")
    return ("Same result as your previous check, word for word: your edit changed the code, but not what the check "
            "found. The hint names what has to change.")


def _compose(problems: list[Problem], done: list[str], ways: str, leaked: bool) -> tuple[str, str]:
    job_failed = any(p.kind in ("refused", "closed", "missing", "wrong", "pings", "speaker", "stalled") for p in problems)
    noisy_only = problems and all(p.kind == "noisy" for p in problems)
    if not problems:
        return "clean", (f"Passed: the endpoint did its job ({'; '.join(done)}), and nothing outlived its clients, "
                         f"whichever way they left ({ways}).")
    if job_failed:
        verdict = "broken"
        head = "Not yet: the endpoint does not do what its story promises" + (", and something outlived its clients." if leaked else ".")
    elif noisy_only:
        verdict = "noisy"
        head = "Almost: the endpoint does its job and nothing outlives its clients, but a departure ends in an unhandled exception."
    else:
        verdict = "leak"
        head = "Not yet: the endpoint does its job, but something outlived its clients."
    kinds = list(dict.fromkeys(p.kind for p in problems))
    if "refused" in kinds:
        kinds = ["refused"]
    hints = [HINTS[k] for k in kinds if k in HINTS and not (k in ("missing", "wrong") and len(kinds) > 1)]
    lines = [head, *(f"- {p.text}" for p in problems), *(f"Hint: {h}" for h in dict.fromkeys(hints))]
    return verdict, "\n".join(lines)


def check_exercise(
    name: str,
    app: ASGIApp,
    path: str,
    *,
    registries: Mapping[str, Sized] | None = None,
    publish: Callable[[Any], Awaitable[Any]] | None = None,
) -> Feedback:
    """Check an exercise's endpoint: its job with normal clients, then its leaks; never raises on a wrong answer.

    ``registries`` names the module-level containers the exercise keeps (e.g. ``{"online": online}``);
    ``publish`` is the exercise's function that feeds its subscribers, where its story has one.
    """
    if name not in EXERCISES:
        raise LabError(f"Unknown exercise {name!r}; the exercises are {', '.join(EXERCISES)}.")
    registries = dict(registries or {})
    for label, registry in registries.items():
        if not isinstance(registry, Sized):
            raise LabError(f"Registry {label!r} should be a container with a size (a set, a dict, a list), not {type(registry).__name__}.")
    source = _source_of(app, path)
    sizes_before = {label: len(r) for label, r in registries.items()}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # what the endpoint prints is not the feedback
        job = _Job(server=None, path=path, publish=publish, registries=registries)  # type: ignore[arg-type]
        problems = _run_job(name, app, path, job)
        refused = any(p.kind == "refused" for p in problems)
        runs = EXERCISES[name].leak_runs
        reports = [] if refused else _leak_reports(app, path, runs[:1] if problems else runs)
    leaks = _leak_problems(reports) + _registry_growth(sizes_before, registries)
    ways = ", ".join(way.upper() for run in EXERCISES[name].leak_runs for way in run)
    verdict, message = _compose(problems + leaks, job.done, ways, leaked=bool(leaks))
    kinds = list(dict.fromkeys(p.kind for p in problems + leaks))
    note = _unchanged(name, message, source, kinds) if verdict != "clean" else None
    _LAST[name] = (message, source)
    RESULTS[name] = verdict
    return Feedback(name, verdict, message + (f"\n{note}" if note else ""), tuple(problems + leaks))
