"""For a project's own test suite: ``assert_no_leak(app, path)`` fails with the checker's evidence.

    from ws_leakcheck import assert_no_leak

    def test_notifications_do_not_leak():
        assert_no_leak("myproject.main:app", "/ws/notifications", send=["subscribe"])

The project's ``[tool.ws-leakcheck]`` table (``pyproject.toml``) applies: the route's client script and the
settings, which the arguments given here override. The pytest plugin's ``leakcheck`` fixture is the same
function with the project's app as its default.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ws_leakcheck import config as project_config
from ws_leakcheck.errors import UsageError
from ws_leakcheck.observe import check
from ws_leakcheck.report import Report
from ws_leakcheck.verdict import accepted

CHECK_SETTINGS = ("clients", "ways", "server", "ws", "max_wait", "settle", "ping_interval", "ping_timeout",
                  "lifespan", "shutdown_limit", "redis", "rounds", "python")
"""The table's settings that ``check()`` takes as they are."""


class LeakFound(AssertionError):
    """The endpoint leaked (or was noisy, or its departure could not be tested); the message is the evidence."""

    def __init__(self, report: Report) -> None:
        super().__init__(f"{report.verdict}: {report.path}\n{report.explained()}")
        self.report = report


def _seconds(value: Any) -> float | None:
    if isinstance(value, str):
        return None if value.lower() in ("none", "off") else float(value)
    return None if value is None else float(value)


def check_with_config(
    app: Any,
    path: str,
    *,
    send: Sequence[str] | None = None,
    headers: Sequence[str | tuple[str, str]] | None = None,
    subprotocols: Sequence[str] | None = None,
    query: str | None = None,
    root: Path | None = None,
    **options: Any,
) -> tuple[Report, bool]:
    """``check()`` with the project's table applied (arguments win); the report, and whether noise is allowed."""
    table = project_config.load(root)
    if app is None:
        if table.app is None:
            raise UsageError("Give the app ('module:attribute' or the app object), or set app in "
                                            "[tool.ws-leakcheck] in pyproject.toml.")
        app = table.app
    script = table.script(path)
    settings = {key: value for key, value in table.settings.items() if key in CHECK_SETTINGS}
    for key in ("ping_interval", "ping_timeout"):
        if key in settings:
            settings[key] = _seconds(settings[key])
    if "python" in settings:
        from ws_leakcheck.interpreter import project_python

        settings["python"] = project_python(settings["python"], table.source.parent if table.source else None)[0]
    if isinstance(app, str) and "python" not in settings and "python" not in options:
        # A process of its own: a frozen loop or a handler that never ends dies with it, not with the test run.
        settings["python"] = sys.executable
    allow_noisy = bool(options.pop("allow_noisy", table.settings.get("allow_noisy", False)))
    settings.update(options)
    app_dir = table.app_dir or root
    if app_dir is not None and isinstance(app, str):
        settings.setdefault("app_dir", str(app_dir))
    report = check(
        app, path,
        send=script.send if send is None else send,
        headers=script.headers if headers is None else headers,
        subprotocols=script.subprotocols if subprotocols is None else subprotocols,
        query=script.query if query is None else query,
        **settings,
    )
    return report, allow_noisy


def assert_no_leak(
    app: Any,
    path: str,
    *,
    allow_noisy: bool | None = None,
    send: Sequence[str] | None = None,
    headers: Sequence[str | tuple[str, str]] | None = None,
    subprotocols: Sequence[str] | None = None,
    query: str | None = None,
    **options: Any,
) -> Report:
    """Check ``path`` and raise ``LeakFound`` (an AssertionError) unless it is clean; return the report.

    ``app`` is an app object, ``"module:attribute"`` (served in a process of its own), or None for the table's
    ``app``. ``allow_noisy`` accepts unhandled exceptions on disconnect. An endpoint whose departure was never
    tested (every handshake refused, or every handler ended before its client left) fails: nothing was tested.
    Other options are ``check()``'s (clients, ways, server, ping_interval, ping_timeout, max_wait, lifespan,
    python, ...).
    """
    __tracebackhide__ = True  # pytest shows the test's line and the evidence, not this function
    if allow_noisy is not None:
        options["allow_noisy"] = allow_noisy
    report, noisy_ok = check_with_config(app, path, send=send, headers=headers, subprotocols=subprotocols,
                                         query=query, **options)
    if not accepted(report.verdict, allow_noisy=noisy_ok):
        raise LeakFound(report)
    return report
