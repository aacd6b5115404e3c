"""Checks for the exercises notebook: the leak checker, with feedback a learner can act on."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from helpers.leakcheck import Report, check
from helpers.routes import ASGIApp

HINTS: dict[str, str] = {
    "scores": "A handler that never receives never learns its client left (notebook 03, section 1). "
    "Keep a receive running next to the sender: run_with_receiver from notebook 04.",
    "presence": "Does your cleanup ever run? iter_text() ends quietly when the client leaves, so an "
    "`except WebSocketDisconnect` around it never fires (notebook 03, section 5). Unregister in `finally`.",
    "typing": "A task started with create_task is not tied to its handler (notebook 03, section 4). "
    "Cancel it when the handler ends, in `finally`, or run it in a task group (run_with_receiver).",
    "sensor": "Catching every exception and carrying on keeps a loop alive for a client that is gone "
    "(notebook 03, section 7). Stop when the client leaves: run_with_receiver from notebook 04.",
}

RESULTS: dict[str, str] = {}
"""The latest verdict of each exercise in this kernel (the tests read it)."""


@dataclass(frozen=True)
class Feedback:
    exercise: str
    verdict: str
    message: str

    @property
    def passed(self) -> bool:
        return self.verdict == "clean"

    def __str__(self) -> str:
        return self.message

    def _repr_markdown_(self) -> str:
        return self.message.replace("\n", "  \n")


def _explain(report: Report, hint: str) -> str:
    if report.verdict == "clean":
        return "Passed: nothing outlived its clients, whichever way they left (clean, FIN, RST, silent)."
    by_findings: dict[str, list[str]] = {}
    for way, evidence in report.ways.items():
        findings = "; ".join(f for f in evidence.findings() if not f.startswith("server CPU"))
        if findings:
            by_findings.setdefault(findings, []).append(way.upper())
    lines = [f"after clients left by {_and(ways)}: {findings}" for findings, ways in by_findings.items()]
    if report.verdict == "leak":
        head = "Not yet: something outlived its clients."
    else:
        head = "Almost: nothing outlives its clients, but disconnects end in unhandled exceptions (tracebacks in the log)."
    return "\n".join([head, *("- " + line for line in lines), f"Hint: {hint}"])


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_exercise(name: str, app: ASGIApp, path: str) -> Feedback:
    """Run the leak checker on an exercise's endpoint and explain the result; never raises on a wrong answer."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # what the endpoint prints is not the feedback
        report = check(app, path, clients=3)
    RESULTS[name] = report.verdict
    return Feedback(name, report.verdict, _explain(report, HINTS[name]))
