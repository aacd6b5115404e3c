"""Checks for the exercises notebook (06): does the endpoint still do its job, and does anything outlive its clients?

A check has two parts, both with real clients against a real uvicorn server on 127.0.0.1:

1. **The job.** Normal clients use the endpoint as its story says (a viewer waits for a goal, a
   colleague asks who is online, ...) and the check compares what they received with what the
   story promises. An endpoint that accepts and returns, closes at once or sends nothing fails
   here, however little it leaks.
2. **The leaks.** The leak checker (``ws_leakcheck.check``) makes clients leave in the way
   the exercise's story needs (``jobs.LEAK_RUNS``: a reset, or going silent), and the sizes of the
   registries the exercise names are compared before and after (``feedback.registry_growth``).

The feedback says what was found, and its hint is chosen by that finding. A verdict repeated word
for word after an edit says so, and why the edit did not change it.
"""

from __future__ import annotations

import contextlib
import io
import linecache
from collections.abc import Callable, Coroutine, Mapping, Sized
from typing import Any

from helpers.errors import LabError
from helpers.exercises.feedback import Feedback, compose, leak_problems, registry_growth, unchanged
from helpers.exercises.jobs import EXERCISES, Problem, run_job
from helpers.routes import ASGIApp, endpoint_codes
from ws_leakcheck import Report, check

__all__ = ["EXERCISES", "RESULTS", "Feedback", "Problem", "check_exercise"]

CHECK_CLIENTS = 2

RESULTS: dict[str, str] = {}
"""The latest verdict of each exercise in this kernel."""

_LAST: dict[str, tuple[str, list[str]]] = {}
"""Per exercise: the last message and the cell source it was about (to say when a verdict did not change)."""


def _leak_reports(app: ASGIApp, path: str, runs: tuple[tuple[str, ...], ...], settle: float) -> list[Report]:
    reports = []
    for ways in runs:
        # The feedback reads handlers, tasks, exceptions and registries (the exercise's own, before and after),
        # not the checker's two extra rounds of retained state, so they are not run; a leaky exercise's server
        # need not be given the checker's full 3 s to exit (it is forced after the limit).
        reports.append(check(app, path, clients=CHECK_CLIENTS, ways=ways, settle=settle, rounds=False,
                             shutdown_limit=1.0))
        if reports[-1].verdict != "clean":
            break
    return reports


def _source_of(app: ASGIApp, path: str) -> list[str]:
    """The source of the cell (or module) that defined the endpoint, as the check ran it."""
    codes = endpoint_codes(app, path)
    return linecache.getlines(codes[0].co_filename) if codes else []


def check_exercise(
    name: str,
    app: ASGIApp,
    path: str,
    *,
    registries: Mapping[str, Sized] | None = None,
    publish: Callable[[Any], Coroutine[Any, Any, Any]] | None = None,
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
            raise LabError(f"Registry {label!r} should be a container with a size (a set, a dict, a list), "
                           f"not {type(registry).__name__}.")
    source = _source_of(app, path)
    sizes_before = {label: len(r) for label, r in registries.items()}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # what the endpoint prints is not the feedback
        problems, done = run_job(name, app, path, publish)
        refused = any(p.kind == "refused" for p in problems)
        runs = EXERCISES[name].leak_runs
        reports = [] if refused else _leak_reports(app, path, runs[:1] if problems else runs, EXERCISES[name].settle)
    leaks = leak_problems(reports) + registry_growth(sizes_before, registries)
    ways = " or ".join({"rst": "by a reset", "silent": "by going silent", "clean": "cleanly", "fin": "by a FIN"}[way]
                       for run in EXERCISES[name].leak_runs for way in run)
    verdict, message = compose(problems + leaks, done, ways, leaked=bool(leaks))
    kinds = list(dict.fromkeys(p.kind for p in problems + leaks))
    note = unchanged(_LAST.get(name), message, source, kinds) if verdict != "clean" else None
    _LAST[name] = (message, source)
    RESULTS[name] = verdict
    return Feedback(name, verdict, message + (f"\n{note}" if note else ""), tuple(problems + leaks))
