"""Feedback on a check: what was found, in sentences, and the hint chosen by it.

A verdict repeated word for word after an edit says so, and why the edit did not change it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sized
from dataclasses import dataclass

from helpers.exercises.jobs import Problem, count
from ws_leakcheck import Report


@dataclass(frozen=True)
class Feedback:
    """The verdict on one exercise: a message for the learner and the problems behind it."""

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


# Leaks.

def leak_problems(reports: list[Report]) -> list[Problem]:
    """The evidence of each way of leaving, most telling first: a handler still running holds its own task and
    its WebSocket objects, and an orphaned task holds the WebSocket it sends on, so those are not repeated."""
    problems = []
    for report in reports:
        for way, evidence in report.ways.items():
            by = f"After {evidence.clients} clients left by {way.upper()}"
            orphans = evidence.tasks_alive - evidence.handlers_alive
            if evidence.handlers_alive:
                problems.append(Problem("handlers", f"{by}: {evidence.handlers_alive} of {evidence.clients} "
                                                    "handlers still running."))
            if orphans > 0:
                after = ("besides the handlers still running" if evidence.handlers_alive
                         else "after their handlers ended")
                problems.append(Problem("tasks", f"{by}: {count(orphans, 'task')} started by the handlers "
                                                 f"still pending, {after}."))
            if evidence.websockets_referenced and evidence.tasks_alive <= 0:
                problems.append(Problem("registry",
                                        f"{by}: {count(evidence.websockets_referenced, 'WebSocket object')} "
                                        "still referenced after their handlers ended (a registry keeps them)."))
            for name, n in evidence.unhandled_exceptions.items():
                kind = "tasks" if "nobody awaited" in name else "noisy"
                problems.append(Problem(kind, f"{by}: unhandled exception logged {n} x: {name}."))
    return problems


# The registries the exercise declares, measured directly: their sizes before and after every session of the
# check has ended and its server has stopped. ws-leakcheck measures state retained per departed session too, but
# only in its two extra rounds of sessions, which the exercise checks skip to stay short (``rounds=False`` in
# helpers.exercises); one check's sessions are enough for a registry the exercise names.
def registry_growth(before: Mapping[str, int], registries: Mapping[str, Sized]) -> list[Problem]:
    return [
        Problem("registry", f"{name} holds {count(len(registry) - before[name], 'entry')} more than before the check, "
                            "although every session of the check has ended.")
        for name, registry in registries.items() if len(registry) > before[name]
    ]


# Feedback.

EXERCISE_HINTS: dict[str, str] = {
    "refused": "A WebSocket endpoint must `await websocket.accept()` before it sends or receives; the fix keeps "
               "the accept.",
    "closed": "The handler ended (or closed the socket) while its client was still there. A handler's life must be the "
              "connection's life: `run_with_receiver` returns exactly when the client leaves (notebook 04, "
              "'The pattern').",
    "missing": "The fix must keep the endpoint's job: compare it with the story above, and keep every message the "
               "original sent (the pattern runs them as senders: `run_with_receiver(websocket, sender(...))`).",
    "wrong": "The endpoint answers, but not what its story promises: compare the message above with the story.",
    "pings": "A handler that never receives leaves its client's messages unread, and uvicorn (websockets-sansio, "
             "wsproto) then stops reading the connection: the client's pongs go unseen and the ping timeout closes "
             "a healthy client (notebook 04, 'The push-only pitfall'). Keep a receive running: `run_with_receiver`, "
             "with `on_message=` if the messages matter.",
    "speaker": "A send to a member who has just left raises inside the speaker's handler, so one departure ends "
               "the speaker's connection. A broadcast must drop the members that fail and carry on: "
               "`broadcast(registry, text)` from notebook 04 does it.",
    "stalled": "A send to a member who does not read waits once that member's buffers are full, and every member after "
               "it waits too. Send to all members at once, with a time limit each, dropping those that do not keep up: "
               "`broadcast` from notebook 04.",
    "handlers": "A handler still running after its client left is waiting on something that is not a receive (a queue, "
                "a sleep), or it caught the disconnect and carried on. Only a receive tells a handler at once that its "
                "client left (notebook 03, 'Waiting on a feed'; 'Catching the disconnect and carrying on'). Keep a "
                "receive running next to whatever sends, and let a failed send end the handler: `run_with_receiver` "
                "from notebook 04 does both.",
    "tasks": "A task started with `create_task` is not tied to the handler that started it (notebook 03, 'An orphaned "
             "task'): it outlives it. Run it in a task group with the receive (`run_with_receiver`), or cancel it in "
             "`finally`.",
    "registry": "Cleanup must run however the handler ends: `iter_text()` ends quietly when the client leaves, so an "
                "`except WebSocketDisconnect` around it never fires (notebook 03, 'A registry without finally'). "
                "Unregister in `finally`.",
    "noisy": "Your handler ends by an exception nobody handles when the client leaves. A second send after a failed "
             "one raises Starlette's `WebSocketDisconnected`, which `except WebSocketDisconnect` does not catch "
             "(notebook 03, 'Catching the disconnect and carrying on'). Stop sending once the client is gone: "
             "`run_with_receiver` does, and treats the departure as the normal end.",
    "noisy-other": "A departure ends your handler with an exception that nothing handles (its name is above). Let the "
                   "departure be the normal end: `run_with_receiver` ends the senders when the client leaves, and "
                   "`client_gone(error)` tells the errors of a departed client from real failures (notebook 04, "
                   "'The pattern').",
}

WHY_AN_EXCEPT_CHANGES_NOTHING: dict[str, str] = {
    "handlers": "the handlers are waiting, not failing: nothing is raised while they wait",
    "registry": "`iter_text()` ends without raising when the client leaves",
    "pings": "uvicorn closes the client itself; the handler is told nothing",
    "stalled": "a send that waits for a member who does not read raises nothing; it just waits",
    "tasks": "the task is not in the handler's call stack: an `except` in the handler never sees what happens in it",
    "missing": "the endpoint sends nothing that could fail",
}


def unchanged(last: tuple[str, list[str]] | None, message: str, source: list[str], kinds: list[str]) -> str | None:
    """A note for a verdict repeated word for word, saying why; None if it changed.

    ``last`` is the previous check's message and the source of the cell it checked."""
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


def compose(problems: list[Problem], done: list[str], ways: str, leaked: bool) -> tuple[str, str]:
    job_failed = any(p.kind in ("refused", "closed", "missing", "wrong", "pings", "speaker", "stalled")
                     for p in problems)
    noisy_only = problems and all(p.kind == "noisy" for p in problems)
    if not problems:
        return "clean", (f"Passed: the endpoint did its job ({'; '.join(done)}), and nothing outlived its clients "
                         f"when they left ({ways}).")
    if job_failed:
        verdict = "broken"
        head = ("Not yet: the endpoint does not do what its story promises"
                + (", and something outlived its clients." if leaked else "."))
    elif noisy_only:
        verdict = "noisy"
        head = ("Almost: the endpoint does its job and nothing was left once the check's wait was over, but each "
                "departure ended in an unhandled exception.")
    else:
        verdict = "leak"
        head = "Not yet: the endpoint does its job, but something outlived its clients."
    kinds = list(dict.fromkeys(p.kind for p in problems))
    if "refused" in kinds:
        kinds = ["refused"]
    if "noisy" in kinds and not any("WebSocketDisconnected" in p.text for p in problems if p.kind == "noisy"):
        kinds[kinds.index("noisy")] = "noisy-other"
    hints = [EXERCISE_HINTS[k] for k in kinds
             if k in EXERCISE_HINTS and not (k in ("missing", "wrong") and len(kinds) > 1)]
    lines = [head, *(f"- {p.text}" for p in problems), *(f"Hint: {h}" for h in dict.fromkeys(hints))]
    return verdict, "\n".join(lines)
