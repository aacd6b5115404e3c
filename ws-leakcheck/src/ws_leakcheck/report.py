"""Verdicts and their presentation: a summary for people, JSON and JUnit XML for CI."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ws_leakcheck.evidence import EXPLAIN, HINTS, Retention, ShutdownEvidence, WayEvidence, exceptions_hint
from ws_leakcheck.verdict import CHECKER_FAILED, EXIT_CODES, UNTESTED, USAGE_ERROR, Decision, decide, exit_code, overall

__all__ = ["CHECKER_FAILED", "EXIT_CODES", "USAGE_ERROR", "Report", "Results"]


def worst(verdicts: list[str]) -> str:
    return overall(verdicts)


@dataclass
class Report:
    """One endpoint on one server: the evidence per way of leaving, and the retained state."""

    app: str
    path: str
    endpoint: str
    options: dict[str, Any]
    ways: dict[str, WayEvidence] = field(default_factory=dict)
    retention: Retention = field(default_factory=Retention)
    seconds: float = 0.0
    server: str = "uvicorn"
    kind: str = "function"
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    shutdown: ShutdownEvidence = field(default_factory=lambda: ShutdownEvidence(skipped="not run"))

    def decision(self) -> Decision:
        """The verdict and its reasons: ``ws_leakcheck.verdict.decide`` on this report's evidence."""
        return decide(self.ways.values(), self.retention, self.shutdown)

    @property
    def verdict(self) -> str:
        return self.decision().verdict

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def kinds(self) -> list[str]:
        found = [k for w in self.ways.values() for k in w.kinds()]
        found += self.retention.kinds()
        if any(w.leaked and not w.frozen for w in self.ways.values()):
            found.append("cpu")  # the CPU figure is printed with every leak
        if self.shutdown.leaked:
            found.append("shutdown")
        return list(dict.fromkeys(found))

    def headline(self) -> str:
        decision = self.decision()
        extra = f" ({decision.reasons[0]})" if decision.verdict == UNTESTED else ""
        return (f"{self.verdict.upper():<8} {self.path}  {self.endpoint}() on {self.server}, "
                f"checked in {self.seconds:.1f} s{extra}")

    def summary(self) -> str:
        decision = self.decision()
        lines = [(f"{self.endpoint}() at {self.path} on {self.server}: {decision.verdict.upper()} "
                  f"(checked in {self.seconds:.1f} s)")]
        if decision.verdict == UNTESTED:
            lines.append(f"  why    {decision.reasons[0]}")
        for way, evidence in self.ways.items():
            findings = evidence.findings()
            lines.append(f"  {way:<6} " + ("; ".join(findings) if findings else "nothing outlived the clients"))
        for finding in self.retention.findings():
            lines.append(f"  rounds {finding}")
        for finding in self.shutdown.findings():
            lines.append(f"  stop   {finding}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def explained(self) -> str:
        """The summary, then a line on each kind of evidence found and a hint for it."""
        lines = [self.summary()]
        kinds = self.kinds()
        for kind in kinds:
            if kind in EXPLAIN:
                per_session = max((w.websockets_per_session for w in self.ways.values()), default=0.0)
                lines.append(f"  - {EXPLAIN[kind]}".replace("{per_session}", f"{per_session:g}"))
            if kind == "exceptions":
                lines.append(f"    hint: {exceptions_hint(list(self.ways.values()))}")
            elif kind in HINTS:
                lines.append(f"    hint: {HINTS[kind]}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": list(self.decision().reasons),
            "app": self.app,
            "path": self.path,
            "endpoint": self.endpoint,
            "kind": self.kind,
            "server": self.server,
            "options": self.options,
            "seconds": round(self.seconds, 2),
            "ways": {way: {**asdict(e), "leaked": e.leaked, "noisy": e.noisy} for way, e in self.ways.items()},
            "retained_per_session": self.retention.retained(),
            "retention_sessions": list(self.retention.sessions),
            "retention": {**asdict(self.retention), "leaked": self.retention.leaked},
            "shutdown": {**asdict(self.shutdown), "blocked": self.shutdown.blocked, "leaked": self.shutdown.leaked},
            "notes": self.notes,
            "findings": self.kinds(),
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report again from ``to_dict()``'s JSON (``--json``): its observations, from which ``verdict``
        decides anew (the recorded observations the fast tests replay)."""

        def known(kind: type, values: dict[str, Any]) -> dict[str, Any]:
            names = {f.name for f in fields(kind)}
            return {k: v for k, v in values.items() if k in names}

        ways = {}
        for way, values in data["ways"].items():
            evidence = WayEvidence(**known(WayEvidence, values))
            evidence.server_close_codes = {int(code): n for code, n in evidence.server_close_codes.items()}
            ways[way] = evidence
        retention_values = known(Retention, data.get("retention", {}))
        retention = Retention(**{**retention_values,
                                 "sessions": tuple(retention_values.get("sessions", (0, 0))),
                                 "rounds": tuple(retention_values.get("rounds", ("", ""))),
                                 "growth": {k: tuple(v) for k, v in retention_values.get("growth", {}).items()}})
        return cls(app=data["app"], path=data["path"], endpoint=data["endpoint"], options=data["options"],
                   ways=ways, retention=retention, seconds=data["seconds"], server=data["server"],
                   kind=data["kind"], notes=list(data["notes"]), versions=data["versions"],
                   shutdown=ShutdownEvidence(**known(ShutdownEvidence, data["shutdown"])))


@dataclass
class Results:
    """Every endpoint on every server of one run: one verdict each, and the worst overall."""

    reports: list[Report] = field(default_factory=list)
    seconds: float = 0.0
    allow_noisy: bool = False
    """Whether a noisy endpoint passes (exit status 0); its verdict still says noisy."""

    @property
    def verdict(self) -> str:
        return worst([r.verdict for r in self.reports])

    @property
    def exit_code(self) -> int:
        """The verdicts' exit status by verdict.PRECEDENCE; noisy is 0 when ``allow_noisy``."""
        return exit_code([r.verdict for r in self.reports], allow_noisy=self.allow_noisy)

    def servers(self) -> list[str]:
        return list(dict.fromkeys(r.server for r in self.reports))

    def text(self) -> str:
        first = self.reports[0] if self.reports else None
        lines = [r.headline() for r in self.reports]
        if len(self.reports) > 1:
            lines.append(f"overall: {self.verdict.upper()} ({len(self.reports)} checks in {self.seconds:.1f} s)")
        if first is not None:
            lines.append(_settings(first.options, self.servers()))
            if first.versions:
                lines.append("versions: " + ", ".join(f"{name} {version}" for name, version in first.versions.items()))
        lines.append("")
        lines += [r.explained() + "\n" for r in self.reports]
        return "\n".join(lines).rstrip() + "\n"

    def to_dict(self) -> dict[str, Any]:
        servers = {
            server: {"verdict": worst([r.verdict for r in self.reports if r.server == server]),
                     "endpoints": [r.to_dict() for r in self.reports if r.server == server]}
            for server in self.servers()
        }
        return {"verdict": self.verdict, "seconds": round(self.seconds, 2), "servers": servers}

    def json(self) -> str:
        return json.dumps(self.to_dict())

    def junit(self) -> str:
        cases = []
        for r in self.reports:
            name = quoteattr(f"{r.path} on {r.server}")
            body = ""
            if r.verdict in ("leak", "noisy", "untested"):
                body = f"<failure message={quoteattr(r.verdict + ': ' + r.path)}>{escape(r.explained())}</failure>"
            cases.append(f'  <testcase classname="leakcheck.{r.server}" name={name} time="{r.seconds:.2f}">'
                         f"{body}</testcase>")
        failures = sum(1 for r in self.reports if r.verdict != "clean")
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="leakcheck" tests="{len(self.reports)}" '
                f'failures="{failures}" time="{self.seconds:.2f}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def _settings(options: dict[str, Any], servers: list[str]) -> str:
    ping = options.get("ping_interval"), options.get("ping_timeout")
    pings = "pings off" if ping[0] is None else f"pings every {ping[0]:g} s, {ping[1]:g} s to answer"
    defaults = {"uvicorn": "uvicorn's own default is 20 s / 20 s", "hypercorn": "hypercorn sends none by default",
                "granian": "granian has none", "daphne": "daphne's own default is 20 s / 30 s"}
    known = "; ".join(defaults[s] for s in servers if s in defaults) or defaults["uvicorn"]
    lifespan = "on" if options.get("lifespan") else "off"
    if options.get("lifespan") and "daphne" in servers:
        lifespan += " (daphne runs none)"
    redis = f", Redis read at {options['redis']}" if options.get("redis") else ""
    served = f"\nserved by: {options.get('python')} ({options.get('python_source')})" if options.get("python") else ""
    return (f"settings: {options.get('clients')} clients per way, {pings} (the checker's default is 0.5 s / 0.5 s, "
            f"so silent clients are found fast; {known}), wait up to "
            f"{options.get('max_wait'):g} s after the clients leave, lifespan {lifespan}{redis}{served}")
