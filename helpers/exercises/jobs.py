"""The jobs of the exercises' endpoints: normal clients use each endpoint as its story says.

Each job connects real clients (``helpers.clients``) to the endpoint, served by a real uvicorn server on
127.0.0.1, does what the story's users do, and returns the problems it saw: one readable sentence each, with
a kind (``refused``, ``closed``, ``missing``, ``wrong``, ``pings``, ``speaker``, ``stalled``) that chooses the hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from websockets.exceptions import ConnectionClosed

from helpers import clients as lab_clients
from helpers.clients import Client
from helpers.errors import LabError
from helpers.routes import ASGIApp
from helpers.servers import LabServer, serve
from helpers.servers.uvicorn import UvicornServer
from helpers.waiting import wait_until

JOB_WAIT = 2.0
"""Seconds a normal client waits for a message its story promises (the endpoints answer in milliseconds)."""
LEAK_RUNS: tuple[tuple[str, ...], ...] = (("rst",),)
"""The leak checker's ways of leaving, in runs; the check stops after the first run that leaves something.
One way per exercise: RST (no close frame, the case a handler can only learn of by receiving), or ``silent``
where the story has silent clients. Each way costs the checker about a second (two on a loaded machine), and
a notebook runs six checks; ``ws-leakcheck`` tries all four ways."""

# Exercise 6 serves with short keepalive pings, as the leak checker does, so that a ping round fits in the check.
PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5

# Exercise 5: the server is kept busy while members leave (as in notebook 03, "FastAPI's documented connection
# manager"), so that the message and the departures reach the server together; then one member stops reading.
# The server's loop is held until both are on their way (at most BUSY seconds): a fixed 0.2 s hold once ended,
# on a loaded CI host, before the message was sent, and the starting code passed this part.
BUSY = 5.0
SCREENSHOT_BYTES = 64 * 1024
SCREENSHOTS = 16
SCREENSHOT_BATCH = 8
SLOW_MEMBER_SNDBUF = 16 * 1024  # with it, a member who reads nothing stops absorbing after about 5 screenshots
STALL_WAIT = 2.0           # no progress for this long is a stall (the pattern's broadcast waits 0.5 s at most)

# Exercise 4: the story's loop retries a failed send after 1 s. The leak checker waits at least this long after the
# clients left (its ``settle``), twice that retry: a wrong fix that retries once and then fails (catching only
# ``WebSocketDisconnect``, the next send raising Starlette's ``WebSocketDisconnected``) is seen ending, with its
# traceback, instead of being caught mid-retry and called a handler still running, as a loaded CPU decided either way.
SENSOR_RETRY = 1.0
SENSOR_SETTLE = 2 * SENSOR_RETRY
LEAK_SETTLE = 0.3
"""The leak checker's own shortest wait after the clients left, for the other exercises."""


@dataclass(frozen=True)
class Problem:
    """One way the endpoint failed its job, or one kind of evidence that something outlived its clients."""

    kind: str
    text: str


class Refused(Exception):
    """The endpoint refused or dropped a normal client at once; the job reports this one problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.text)
        self.problem = problem


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
        received = f"received {count(self.early + len(self.texts), 'message')}"
        if self.client.closed_by_server:
            return f"{received}, then the server closed the connection (close code {self.client.close_code})"
        return f"{received} and is still connected"


def _listen(client: Client) -> _Listener:
    """Keep the texts a lab client receives. Swaps its reader for one that records (cancelling ``recv`` is safe
    in websockets; nothing is lost): ``helpers.clients`` counts what a client receives but keeps no texts."""
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
        status = re.search(r"HTTP (\d+)", str(error))
        if status is None:
            raise Refused(Problem("refused", f"The {who} could not connect: {error}")) from None
        how = "closed the connection" if status.group(1) == "403" else "returned (or failed)"
        raise Refused(Problem("refused", f"The server answered the {who}'s WebSocket handshake with HTTP "
                                         f"{status.group(1)}: the endpoint {how} without accepting the "
                                         "connection.")) from None


def _open(server: LabServer, path: str, n: int, who: str) -> list[_Listener]:
    """Connect ``n`` normal clients, give the handlers a moment (to register, to start a task), and make sure
    the server did not hang up on them at once."""
    listeners = [_listen(client) for client in _connect(server, path, n, who)]
    time.sleep(0.1)
    for listener in listeners:
        if listener.client.closed_by_server:
            raise Refused(Problem("closed", f"The server closed a {who}'s connection right after accepting it "
                                             f"(close code {listener.client.close_code}), before it could do "
                                             "anything."))
    return listeners


def count(n: int, word: str) -> str:
    plural = word[:-1] + "ies" if word.endswith("y") else word + "s"
    return f"{n} {word}" if n == 1 else f"{n} {plural}"


def _shown(value: Any) -> str:
    return json.dumps(value) if value is not None else "nothing"


@dataclass
class Job:
    """One exercise's run: the server serving the learner's app, the path, and the publish function if any."""

    server: UvicornServer
    path: str
    publish: Callable[[Any], Coroutine[Any, Any, Any]] | None
    done: list[str] = field(default_factory=list)
    """What the normal clients saw work, for the message of a passed check."""


def _job_scores(job: Job) -> list[Problem]:
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
                                    f"Viewer {number} expected the goal {_shown(goal)} within {JOB_WAIT:.0f} s "
                                    f"after it was published; it {viewer.state()}"
                                    + (f", first {_shown(viewer.json(0))}" if viewer.texts else "") + "."))
    if not problems:
        job.done.append(f"both viewers received the goal {_shown(goal)}")
    return problems


def _job_presence(job: Job) -> list[Problem]:
    """Two colleagues online; each question is answered with the count; the count drops when one leaves."""
    alice, bob = _open(job.server, job.path, 2, "colleague")
    answers: list[Any] = []
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
                            f"Asked {when}, a colleague expected {_shown({'online': expected})} "
                            f"and got {_shown(answer)}; it {alice.state()}.")]
    job.done.append("the online count went from 2 to 1 when a colleague left")
    return []


def _job_typing(job: Job) -> list[Problem]:
    """A writer gets the pulse at once, and an echo for each keystroke."""
    pulse, echo = {"others_typing": False}, {"echo": "h"}
    (writer,) = _open(job.server, job.path, 1, "writer")

    def pulsed() -> bool:  # the pulse comes first, at once: maybe before the texts were recorded
        return pulse in writer.parsed() or writer.early > 0

    writer.send("h")
    wait_until(lambda: pulsed() and echo in writer.parsed(), JOB_WAIT)
    seen = writer.parsed()
    problems = []
    for expected, what, found in ((pulse, "the pulse", pulsed()),
                                  (echo, "the echo of its keystroke 'h'", echo in seen)):
        if not found:
            problems.append(writer.problem(f"A writer expected {what}, {_shown(expected)}, within {JOB_WAIT:.0f} s; "
                                               f"it {writer.state()}"
                                               + (f": {', '.join(map(_shown, seen))}" if seen else "") + "."))
    if not problems:
        job.done.append("a writer got the pulse and the echo of its keystroke")
    return problems


def _job_sensor(job: Job) -> list[Problem]:
    """A visitor receives readings, several per second."""
    (visitor,) = _open(job.server, job.path, 1, "visitor")
    wanted = 5
    visitor.got(wanted, JOB_WAIT + 1.0)
    readings = [r for r in (visitor.json(i) for i in range(len(visitor.texts)))
                if isinstance(r, dict) and "temperature" in r]
    if len(readings) < wanted:
        return [visitor.problem(f"A visitor expected at least {wanted} readings ({_shown({'temperature': 21.5})}) "
                                   f"within {JOB_WAIT + 1:.0f} s (the stream promises 20 a second); "
                                   f"it {visitor.state()}, {count(len(readings), 'reading')}.")]
    job.done.append(f"a visitor received {len(readings)} readings")
    return []


def _job_classroom(job: Job) -> list[Problem]:
    """Dead members: two leave while a message is on its way. Then a slow member: one stops reading mid-stream."""
    speaker, *members = _open(job.server, job.path, 5, "member")
    stayers, leavers = members[:2], [m.client for m in members[2:]]
    busy, release = threading.Event(), threading.Event()

    def be_busy() -> None:
        busy.set()
        release.wait(BUSY)

    job.server.loop.call_soon_threadsafe(be_busy)
    busy.wait(BUSY)
    try:
        lab_clients.leave(leavers, "rst")   # they drop off the network, and a moment later someone speaks
        speaker.send("hello")
    finally:
        release.set()
    wait_until(lambda: all(s.texts for s in stayers) or speaker.client.closed_by_server, JOB_WAIT)
    time.sleep(0.1)
    problems = []
    if speaker.client.closed_by_server:
        problems.append(Problem("speaker", "A member said 'hello' just after two others dropped off: the server "
                                           "then closed the speaker's own connection "
                                           f"(close code {speaker.client.close_code})."))
    missed = sum("hello" not in s.texts for s in stayers)
    if missed:
        problems.append(Problem("speaker", f"{missed} of the 2 members who stayed never received that 'hello'."))
    if problems:
        return problems
    job.done.append("the members who stayed heard a message sent just after two others dropped off")

    reader, sharer = _open(job.server, job.path, 2, "member")
    (asleep,) = (listener.client for listener in _open(job.server, job.path, 1, "member"))
    _shrink_send_buffer(job.server, asleep)
    lab_clients.leave(asleep, "silent")  # connected, reads nothing any more (its TCP stack still acknowledges)
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
            return [Problem("stalled", f"One member stopped reading while another shared screenshots "
                                       f"({SCREENSHOT_BYTES // 1024} KiB each): after {sent} were shared, "
                                       f"the members who read had received {least}, and nothing more arrived "
                                       f"for {STALL_WAIT:.0f} s.")]
    job.done.append(f"{SCREENSHOTS} screenshots reached the members who read, while one member read nothing")
    return []


def _shrink_send_buffer(server: UvicornServer, client: Client) -> None:
    """Give the server's end of this client's connection a small send buffer (SO_SNDBUF), so that a few
    screenshots fill it: Linux lets a loopback socket buffer about 4 MiB (tcp_wmem), which would take
    hundreds of screenshots. The connection is otherwise the real one."""
    address = client.connection.transport.get_extra_info("sockname")
    for protocol in list(server.uvicorn.server_state.connections):
        transport = getattr(protocol, "transport", None)
        if transport is not None and transport.get_extra_info("peername") == address:
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SLOW_MEMBER_SNDBUF)


@functools.cache
def _noise(seed: int) -> str:
    """A screenshot-sized text that compression barely shrinks (permessage-deflate is on: random base64 letters)."""
    generator = random.Random(seed)
    return "".join(generator.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                                     k=SCREENSHOT_BYTES))


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


def _job_logs(job: Job) -> list[Problem]:
    """A healthy reader changes its filter twice and must stay connected through several ping rounds."""
    (reader,) = _open(job.server, job.path, 1, "reader")
    if not reader.got(1):
        return [reader.problem(f"A reader expected log lines and got none within {JOB_WAIT:.0f} s; "
                               f"it {reader.state()}.")]
    reader.send("level=warning")
    said_at = time.monotonic()
    time.sleep(0.1)
    reader.send("level=error")
    before = len(reader.texts)
    window = 2 * (PING_INTERVAL + PING_TIMEOUT)
    wait_until(lambda: reader.client.closed_by_server, window)
    if reader.client.closed_by_server:
        return [Problem("pings", f"A healthy reader that answers every ping sent its filter, and the server closed its "
                                 f"connection {time.monotonic() - said_at:.1f} s later "
                                 f"(close code {reader.client.close_code}; pings every {PING_INTERVAL} s, "
                                 f"{PING_TIMEOUT} s to answer).")]
    lines = len(reader.texts) - before
    if lines < 3:
        return [reader.problem(f"After sending its filter, a reader expected log lines to keep coming; in "
                                   f"{window:.0f} s it received {lines}.")]
    job.done.append(f"a reader that sent its filter twice stayed connected through {window:.0f} s of pings")
    return []


@dataclass(frozen=True)
class _Exercise:
    job: Callable[[Job], list[Problem]]
    pings: tuple[float, float] | None = None
    """Keepalive pings for the job's server (interval, timeout); uvicorn's defaults (20 s, 20 s) if None."""
    leak_runs: tuple[tuple[str, ...], ...] = LEAK_RUNS
    settle: float = LEAK_SETTLE
    """Seconds the leak checker waits at least, after the clients left, before counting what is left."""


EXERCISES: dict[str, _Exercise] = {
    "scores": _Exercise(_job_scores),
    "presence": _Exercise(_job_presence),
    "typing": _Exercise(_job_typing),
    "sensor": _Exercise(_job_sensor, settle=SENSOR_SETTLE),
    "classroom": _Exercise(_job_classroom),
    "logs": _Exercise(_job_logs, pings=(PING_INTERVAL, PING_TIMEOUT), leak_runs=(("silent",),)),
}


def run_job(
    name: str, app: ASGIApp, path: str, publish: Callable[[Any], Coroutine[Any, Any, Any]] | None
) -> tuple[list[Problem], list[str]]:
    """Serve the app and let exercise ``name``'s normal clients use it: the problems seen, and what worked."""
    exercise = EXERCISES[name]
    interval, timeout = exercise.pings or (20.0, 20.0)
    server = serve(app, ping_interval=interval, ping_timeout=timeout, shutdown_timeout=0.2)
    job = Job(cast(UvicornServer, server), path, publish)  # serve()'s default server; the jobs use its loop
    try:
        return exercise.job(job), job.done
    except Refused as refused:
        return [refused.problem], job.done
    finally:
        lab_clients.close_all()
        job.server.stop(force=True)
