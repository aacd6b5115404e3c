"""For a project's own test suite: ``assert_no_leak(app, path)`` fails with the checker's evidence.

    from helpers.leakcheck.testing import assert_no_leak
    from myproject.main import app

    def test_notifications_do_not_leak():
        assert_no_leak(app, "/ws/notifications", send=["subscribe"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from helpers.leakcheck.checking import check
from helpers.leakcheck.report import Report


class LeakFound(AssertionError):
    """The endpoint leaked (or was noisy, or could not be exercised); the message is the evidence."""

    def __init__(self, report: Report) -> None:
        super().__init__(f"{report.verdict}: {report.path}\n{report.explained()}")
        self.report = report


def assert_no_leak(
    app: Any,
    path: str,
    *,
    allow_noisy: bool = False,
    send: Sequence[str] = (),
    headers: Sequence[str | tuple[str, str]] = (),
    subprotocols: Sequence[str] = (),
    **options: Any,
) -> Report:
    """Check ``path`` and raise ``LeakFound`` (an AssertionError) unless it is clean.

    ``allow_noisy`` accepts unhandled exceptions on disconnect; an endpoint that refused every
    client fails (nothing was tested). Other options are ``check()``'s (clients, ways, server,
    ping_interval, ping_timeout, max_wait, lifespan, python).
    """
    report = check(app, path, send=send, headers=headers, subprotocols=subprotocols, **options)
    accepted = ("clean", "noisy") if allow_noisy else ("clean",)
    if report.verdict not in accepted:
        raise LeakFound(report)
    return report
