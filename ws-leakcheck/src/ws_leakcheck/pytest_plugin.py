"""The pytest plugin, registered by the ``pytest11`` entry point when ws-leakcheck is installed.

    def test_the_feed_does_not_leak(leakcheck):
        leakcheck("/ws/feed")                       # the app and the route's script from [tool.ws-leakcheck]
        leakcheck("/ws/chat", app="chat.main:app")  # or named here (a string: served in a process of its own)
        report = leakcheck.check("/ws/chat")        # the report, without asserting

The fixture reads the table of the ``pyproject.toml`` in pytest's root folder, and serves a
``module:attribute`` app with that folder first on its import path, so that a plain ``pytest`` (which does
not put the project's folder on ``sys.path``) finds the app and the project's own packages. A failure is an
ordinary assertion failure whose message is the evidence.

This module imports the checker only when the fixture is used: installing ws-leakcheck adds nothing to a
test run that does not use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ws_leakcheck.report import Report


class LeakCheck:
    """The ``leakcheck`` fixture: ``leakcheck(path, app=None, **options)`` asserts; ``.check(...)`` reports."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, path: str, app: Any = None, **options: Any) -> Report:
        __tracebackhide__ = True
        from ws_leakcheck.testing import assert_no_leak

        return assert_no_leak(app, path, root=self.root, **options)

    def check(self, path: str, app: Any = None, **options: Any) -> Report:
        from ws_leakcheck.testing import check_with_config

        report, _ = check_with_config(app, path, root=self.root, **options)
        return report


@pytest.fixture
def leakcheck(request: pytest.FixtureRequest) -> LeakCheck:
    """Check a WebSocket endpoint for leaks; fails the test with the evidence unless it is clean."""
    return LeakCheck(Path(request.config.rootpath))
